"""
What crosses the wire for each event: a payload as a task, results as outcomes, and back.

Exceptions never cross as objects: an ``Error`` becomes its type's name, message and traceback
text, and arrives as ``Error(RemoteError(...))``.
"""

from __future__ import annotations

import traceback
from typing import Any, Final

from ._data import Delivery, Error, Ok, Payload, Result, ResultList, _result_list
from ._errors import GatewayError, RemoteError
from ._serializer import Serializer
from ._wire import BROADCAST, KEY, TOPIC, ErrorInfo, Outcome, Task

__all__ = [
    "error_info",
    "to_outcome",
    "to_outcomes",
    "to_payload",
    "to_resolution",
    "to_result",
    "to_result_list",
    "to_task",
]

_CODES: Final = {Delivery.BROADCAST: BROADCAST, Delivery.KEY: KEY, Delivery.TOPIC: TOPIC}
_DELIVERIES: Final = {code: delivery for delivery, code in _CODES.items()}
# Compared by identity in to_task: a dict lookup would call Enum.__hash__, in Python.
_KEY_DELIVERY: Final = Delivery.KEY
_TOPIC_DELIVERY: Final = Delivery.TOPIC
# The key tuple of each collector's results, shared: a finished event keeps one, and a tuple
# per result would be allocations the producer's garbage collector counts. Bounded: keys
# come from workers.
_KEYS: dict[str | None, tuple[str | None]] = {}
_MAX_KEYS: Final = 1024


def to_task(task_id: int, payload: Payload[Any], serializer: Serializer) -> Task:
    """
    Return ``payload`` as a task numbered ``task_id``.

    Raises:
        TypeError: The serializer cannot encode the payload's value (the message names the
            type).
    """
    try:
        value = serializer.encode(payload.value)
    except TypeError as exc:
        raise TypeError(f"payload value cannot be sent: {exc}") from None
    delivery = payload.delivery
    return Task(
        task_id,
        value,
        KEY if delivery is _KEY_DELIVERY else TOPIC if delivery is _TOPIC_DELIVERY else BROADCAST,
        payload.keys,
        payload.topics,
        payload.priority,
    )


def check_task(task: Task) -> None:
    """
    Refuse a task no worker could route, before it is queued.

    Raises:
        ValueError: The delivery is unknown, or KEY/TOPIC has no keys/topics.
    """
    if task.delivery not in _DELIVERIES:
        raise ValueError(f"unknown delivery {task.delivery}")
    if task.delivery == KEY and not task.keys:
        raise ValueError("Delivery.KEY needs at least one key")
    if task.delivery == TOPIC and not task.topics:
        raise ValueError("Delivery.TOPIC needs at least one topic")


def to_payload(task: Task, serializer: Serializer) -> Payload[Any]:
    """
    Return the payload ``task`` carries.

    Raises:
        ValueError: The task is not a valid payload (its value does not decode, or its
            routing is inconsistent).
    """
    try:
        value = serializer.decode(task.value)
        return Payload(
            value, _DELIVERIES[task.delivery], task.keys, task.topics, priority=task.priority
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"task {task.id} is not a valid payload: {exc}") from None


def error_info(error: BaseException) -> ErrorInfo:
    """
    Return ``error`` as text: its type's qualified name, its message, its traceback.
    """
    if isinstance(error, RemoteError):  # from a worker further down: keep the original
        return ErrorInfo(error.type_name, error.message, error.traceback)
    kind = type(error)
    return ErrorInfo(
        f"{kind.__module__}.{kind.__qualname__}",
        str(error),
        "".join(traceback.format_exception(error)),
    )


def to_outcome(key: str | None, result: Result[Any], serializer: Serializer) -> Outcome:
    """
    Return one collector's result as an outcome (an unsendable ``Ok`` value is an error).
    """
    if type(result) is Ok:
        try:
            return Outcome(key, serializer.encode(result.value))
        except TypeError as exc:
            info = ErrorInfo("builtins.TypeError", f"result cannot be sent: {exc}")
            return Outcome(key, error=info)
    assert type(result) is Error
    return Outcome(key, error=error_info(result.error))


def to_outcomes(results: ResultList[Any], serializer: Serializer) -> tuple[Outcome, ...]:
    """
    Return a worker's results as outcomes; an ``Ok`` value that cannot be sent is an error.
    """
    return tuple(to_outcome(key, result, serializer) for key, result in results.items())


def to_result(outcome: Outcome, serializer: Serializer) -> Result[Any]:
    """
    Return one outcome as the producer's result.
    """
    if outcome.error is not None:
        info = outcome.error
        return Error(RemoteError(info.type, info.message, info.traceback))
    if outcome.value is None:
        return Error(GatewayError(f"malformed result of {outcome.key!r}: no value"))
    try:
        value = serializer.decode(outcome.value)
    except Exception as exc:
        message = f"result of collector {outcome.key!r} could not be decoded: {exc}"
        return Error(GatewayError(message))
    return Ok(value)


def to_result_list(outcomes: tuple[Outcome, ...], serializer: Serializer) -> ResultList[Any]:
    """
    Return outcomes as the producer's ResultList.
    """
    return _result_list(
        tuple(to_result(outcome, serializer) for outcome in outcomes),
        tuple(outcome.key for outcome in outcomes),
    )


def to_resolution(
    outcomes: tuple[Outcome, ...], serializer: Serializer
) -> tuple[ResultList[Any] | Result[Any], tuple[str | None, ...]]:
    """
    Return outcomes as ``EventBase._resolve`` takes them.

    One outcome (one collector reached, the usual case) is its result and key, and the
    event builds the ResultList only when asked for it; more are a ResultList.
    """
    if len(outcomes) == 1:
        outcome = outcomes[0]
        key = _KEYS.get(outcome.key)
        if key is None:
            key = (outcome.key,)
            if len(_KEYS) < _MAX_KEYS:
                _KEYS[outcome.key] = key
        return to_result(outcome, serializer), key
    return to_result_list(outcomes, serializer), ()
