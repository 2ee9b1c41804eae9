"""
Data types that cross the collector queue: payloads, results and collector contexts.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any, Final, Generic, NoReturn, TypeAlias, TypeVar, final, overload

import attrs
import trio

from ._errors import ProcessingError

__all__ = [
    "Context",
    "Delivery",
    "Error",
    "Ok",
    "Payload",
    "QueueType",
    "Result",
    "ResultList",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
D = TypeVar("D")


@final
class Delivery(enum.Enum):
    """
    How the router picks the collectors that receive a payload.
    """

    #: Every collector of the queue.
    BROADCAST = "broadcast"
    #: The collectors whose key is in ``Payload.keys``.
    KEY = "key"
    #: The collectors that listen to at least one of ``Payload.topics`` (exact match).
    TOPIC = "topic"


@final
class QueueType(enum.Enum):
    """
    The order in which queued events leave the queue.
    """

    #: First in, first out (a trio memory channel).
    FIFO = "fifo"
    #: Lowest ``Payload.priority`` first; equal priorities in arrival order.
    PRIORITY = "priority"
    #: Last in, first out.
    LIFO = "lifo"


def _names(field: str, value: Iterable[str]) -> tuple[str, ...]:
    """
    Convert collector keys or topics: any iterable of ``str`` becomes a tuple.

    A bare ``str`` is refused because ``keys="a"`` would only work by luck of single letters.
    """
    if type(value) is tuple:
        names: tuple[str, ...] = value
    elif isinstance(value, str):
        raise TypeError(f"{field} must be a sequence of str, not a str: use [{value!r}]")
    else:
        names = tuple(value)
    for name in names:
        if type(name) is not str:
            raise TypeError(f"{field} must hold str, got {type(name).__name__}")
    return names


#: Key tuples already checked, each its own value: most payloads name the same few keys,
#: and a dict lookup costs less than checking them again. Bounded: when full, new tuples
#: are checked every time.
_CHECKED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}
_CHECKED_KEYS_MAX: Final = 1024


def _to_keys(keys: Iterable[str]) -> tuple[str, ...]:
    names = _names("keys", keys)
    if len(_CHECKED_KEYS) < _CHECKED_KEYS_MAX:
        _CHECKED_KEYS[names] = names
    return names


def _to_topics(topics: Iterable[str]) -> tuple[str, ...]:
    return _names("topics", topics)


# Enum members are looked up through the metaclass (70 ns each): per-event code compares
# with these instead.
_BROADCAST, _KEY, _TOPIC = Delivery.BROADCAST, Delivery.KEY, Delivery.TOPIC


def _infer_delivery(keys: tuple[str, ...], topics: tuple[str, ...]) -> Delivery:
    """
    Return the delivery that ``keys`` and ``topics`` imply when none is given.

    Keys alone mean KEY and topics alone TOPIC: a payload that names collectors must never
    go to all of them by default.
    """
    if keys:
        if topics:
            raise ValueError(
                "keys and topics are both given: say which routes the payload, "
                "delivery=Delivery.KEY or delivery=Delivery.TOPIC"
            )
        return _KEY
    return _TOPIC if topics else _BROADCAST


def _is_priority(value: object) -> bool:
    """
    Whether ``value`` is a valid priority: an int (IntEnum members too), not a bool.
    """
    return isinstance(value, int) and type(value) is not bool


@final
@attrs.frozen(init=False)
class Payload(Generic[T]):
    """
    An event value plus the metadata that says where and in which order to deliver it.

    Args:
        value: The event itself; any object, need not be hashable or comparable.
        delivery: How the router picks collectors. Left out, it follows from what is given:
            ``Delivery.KEY`` with ``keys``, ``Delivery.TOPIC`` with ``topics``,
            ``Delivery.BROADCAST`` (every collector) with neither.
        keys: Collector keys for ``Delivery.KEY``; lists are stored as tuples.
        topics: Topics for ``Delivery.TOPIC``; lists are stored as tuples.
        priority: Priority in a ``QueueType.PRIORITY`` queue, lower first (an ``int``, an
            ``IntEnum`` member included); ``None`` means the queue's ``default_priority``.
            Ignored by FIFO and LIFO queues.

    Raises:
        TypeError: ``keys`` or ``topics`` is a bare ``str`` or holds a non-``str``;
            ``priority`` is not an ``int``; ``delivery`` is not a ``Delivery``.
        ValueError: ``Delivery.KEY`` without keys, ``Delivery.TOPIC`` without topics, or
            both keys and topics with no ``delivery`` to say which one counts.
    """

    value: T
    delivery: Delivery
    keys: tuple[str, ...]
    topics: tuple[str, ...]
    priority: int | None

    # Hand-written: a payload is built per event, and attrs' frozen __init__ allocates a
    # bound setattr per instance. The fields are set through their slots (_set_payload_*),
    # which skips the frozen __setattr__ at half the cost of object.__setattr__.
    def __init__(
        self,
        value: T,
        delivery: Delivery | None = None,
        keys: Iterable[str] = (),
        topics: Iterable[str] = (),
        priority: int | None = None,
    ) -> None:
        # Skip the conversion for the default () only, not for every falsy value ("" is a
        # slip to refuse).
        if type(keys) is not tuple or keys:
            try:
                keys = _CHECKED_KEYS[keys]  # type: ignore[index]  # KeyError or TypeError
            except (KeyError, TypeError):
                keys = _to_keys(keys)
        if type(topics) is not tuple or topics:
            topics = _to_topics(topics)
        if delivery is None:
            delivery = _infer_delivery(keys, topics)
        elif delivery is _KEY:
            if not keys:
                raise ValueError("Delivery.KEY needs at least one key")
        elif delivery is _TOPIC:
            if not topics:
                raise ValueError("Delivery.TOPIC needs at least one topic")
        elif delivery is not _BROADCAST:
            raise TypeError(f"delivery must be a Delivery, got {type(delivery).__name__}")
        if priority is not None and not _is_priority(priority):
            raise TypeError(f"priority must be an int or None, got {type(priority).__name__}")
        _set_payload_value(self, value)
        _set_payload_delivery(self, delivery)
        _set_payload_keys(self, keys)
        _set_payload_topics(self, topics)
        _set_payload_priority(self, priority)


def _slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """
    Return the setter of the slot ``name`` of ``cls``, which bypasses a frozen __setattr__.
    """
    setter: Callable[[Any, Any], None] = cls.__dict__[name].__set__
    return setter


_set_payload_value = _slot_setter(Payload, "value")
_set_payload_delivery = _slot_setter(Payload, "delivery")
_set_payload_keys = _slot_setter(Payload, "keys")
_set_payload_topics = _slot_setter(Payload, "topics")
_set_payload_priority = _slot_setter(Payload, "priority")


@final
@attrs.frozen(init=False)
class Ok(Generic[T_co]):
    """
    A successful result holding the processor's return value.

    Usable in ``match``: ``case Ok(value): ...``.
    """

    value: T_co  # type: ignore[misc]  # frozen, so covariance is sound (attrs types it a param)

    def __init__(self, value: T_co) -> None:
        _set_ok_value(self, value)

    def is_ok(self) -> bool:
        """
        Return True: this result is a success.
        """
        return True

    def is_error(self) -> bool:
        """
        Return False: this result is not a failure.
        """
        return False

    def unwrap(self) -> T_co:
        """
        Return the value.
        """
        return self.value

    def unwrap_or(self, default: object) -> T_co:
        """
        Return the value; ``default`` is only used by :class:`Error`.
        """
        return self.value


_set_ok_value = _slot_setter(Ok, "value")


def _to_exception(error: BaseException | str) -> BaseException:
    if isinstance(error, BaseException):
        return error
    if isinstance(error, str):
        return ProcessingError(error)
    raise TypeError(f"error must be an exception or a str, got {type(error).__name__}")


@final
@attrs.frozen
class Error:
    """
    A failed result holding the exception that describes the failure.

    ``Error("text")`` wraps the text in :class:`~event_collector.ProcessingError`.
    Usable in ``match``: ``case Error(err): ...``.
    """

    error: BaseException = attrs.field(converter=_to_exception)

    def is_ok(self) -> bool:
        """
        Return False: this result is not a success.
        """
        return False

    def is_error(self) -> bool:
        """
        Return True: this result is a failure.
        """
        return True

    def unwrap(self) -> NoReturn:
        """
        Raise the wrapped exception.

        Raises:
            BaseException: The exception this result holds.
        """
        raise self.error

    def unwrap_or(self, default: D) -> D:
        """
        Return ``default``: a failure has no value.
        """
        return default


#: The outcome of one collector: ``Ok(value)`` or ``Error(exception)``.
Result: TypeAlias = Ok[T] | Error

_AnyResult: TypeAlias = Ok[Any] | Error


def _to_results(results: Iterable[Result[T]]) -> tuple[Result[T], ...]:
    results = results if type(results) is tuple else tuple(results)
    for result in results:
        if type(result) is not Ok and type(result) is not Error:
            raise TypeError(f"a ResultList holds Ok or Error, got {type(result).__name__}")
    return results


def _to_result_keys(keys: Iterable[str | None], count: int) -> tuple[str | None, ...]:
    if isinstance(keys, str):
        raise TypeError(f"keys must be a sequence of str or None, not a str: use [{keys!r}]")
    converted = tuple(keys)
    for key in converted:
        if key is not None and type(key) is not str:
            raise TypeError(f"keys must hold str or None, got {type(key).__name__}")
    if len(converted) != count:
        raise ValueError("a ResultList needs exactly one key (or None) per result")
    return converted


@final
@attrs.frozen(init=False)
class ResultList(Sequence[Result[T_co]]):
    """
    The results of one event, one per collector reached, in collector registration order.

    An immutable sequence: ``len()``, indexing and ``for`` work as on a tuple. Generic in
    the value type of its ``Ok`` results: the events of a queue whose processors return
    ``Ok[int]`` give ``ResultList[int]``, whose ``first()`` is ``Ok[int] | Error``.

    Args:
        results: The results, each ``Ok`` or ``Error``.
        keys: The key of the collector behind each result, or ``None`` where no collector
            produced it (the ``Ok(None)`` of an event that matched no collector, or the
            ``Error`` of an event cancelled before it left the queue). Defaults to all ``None``.

    Raises:
        TypeError: A result is neither ``Ok`` nor ``Error``.
        ValueError: ``keys`` and ``results`` differ in length.
    """

    results: tuple[Result[T_co], ...]
    keys: tuple[str | None, ...]

    def __init__(
        self, results: Iterable[Result[T_co]], keys: Iterable[str | None] | None = None
    ) -> None:
        checked = _to_results(results)
        _set_results(self, checked)
        _set_result_keys(
            self, (None,) * len(checked) if keys is None else _to_result_keys(keys, len(checked))
        )

    @overload
    def __getitem__(self, index: int) -> Result[T_co]: ...
    @overload
    def __getitem__(self, index: slice) -> ResultList[T_co]: ...
    def __getitem__(self, index: int | slice) -> Result[T_co] | ResultList[T_co]:
        if isinstance(index, slice):
            return ResultList(self.results[index], self.keys[index])
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Result[T_co]]:
        return iter(self.results)

    @property
    def delivered(self) -> bool:
        """
        Whether at least one collector was reached.

        False for an event that matched no collector (its single result is ``Ok(None)``) and
        for an event cancelled by shutdown before it left the queue.
        """
        return any(key is not None for key in self.keys)

    def first(self) -> Result[T_co]:
        """
        Return the first result.

        Raises:
            IndexError: The list is empty.
        """
        if not self.results:
            raise IndexError("result list is empty")
        return self.results[0]

    def items(self) -> Iterator[tuple[str | None, Result[T_co]]]:
        """
        Iterate over ``(collector key, result)`` pairs.
        """
        return zip(self.keys, self.results, strict=True)

    def by_key(self) -> dict[str, Result[T_co]]:
        """
        Return the results of reached collectors, keyed by collector key.
        """
        return {key: result for key, result in self.items() if key is not None}

    def iter(self) -> AsyncIterator[Result[T_co]]:
        """
        Return an async iterator over the results (``async for result in rl.iter()``).

        Kept for compatibility with the asyncio library this API comes from; a plain ``for``
        does the same without awaiting. Each step is a checkpoint.
        """
        return _AsyncResults(iter(self.results))


def _result_list(results: tuple[Result[T], ...], keys: tuple[str | None, ...]) -> ResultList[T]:
    """
    Build a ResultList from values the library made itself, skipping validation.
    """
    result_list: ResultList[T] = object.__new__(ResultList)
    _set_results(result_list, results)
    _set_result_keys(result_list, keys)
    return result_list


_set_results = _slot_setter(ResultList, "results")
_set_result_keys = _slot_setter(ResultList, "keys")


@final
class _AsyncResults(Generic[T_co]):
    __slots__ = ("_results",)

    def __init__(self, results: Iterator[Result[T_co]]) -> None:
        self._results = results

    def __aiter__(self) -> _AsyncResults[T_co]:
        return self

    async def __anext__(self) -> Result[T_co]:
        await trio.lowlevel.checkpoint()
        try:
            return next(self._results)
        except StopIteration:
            raise StopAsyncIteration from None


@final
class Context(SimpleNamespace):
    """
    An attribute bag for a collector's own objects (a database client, settings...).

    Each :class:`~event_collector.Collector` gets an empty one unless you pass your own;
    its lifecycle sets attributes on it and its processor reads them.

    Example:
        ``ctx = Context(table="readings"); ctx.client = make_client()``
    """
