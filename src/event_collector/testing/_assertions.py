"""
Assertions on events and results, failing with a message that says what differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._data import Error, ResultList
from .._event import SentEvent

__all__ = ["assert_all_ok", "assert_all_resolved", "assert_routed_exactly"]

#: Items a failure message lists before it says "and N more".
_SHOWN = 10


def _listed(items: list[str]) -> str:
    shown = "\n  ".join(items[:_SHOWN])
    more = f"\n  ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"\n  {shown}{more}"


def assert_all_resolved(events: Iterable[SentEvent[Any]]) -> None:
    """
    Assert that every event has its results (``event.done``).

    Args:
        events: Events returned by ``send``, in-process or remote.

    Raises:
        AssertionError: Some event is still pending; the message lists them with their
            position and payload.
    """
    __tracebackhide__ = True
    events = list(events)
    pending = [f"#{i}: {event!r}" for i, event in enumerate(events) if not event.done]
    if pending:
        raise AssertionError(
            f"{len(pending)} of {len(events)} events are not resolved:{_listed(pending)}"
        )


def _result_list(results: ResultList[Any] | SentEvent[Any]) -> ResultList[Any]:
    __tracebackhide__ = True
    if isinstance(results, ResultList):
        return results
    result_list = results.get_result()
    if result_list is None:
        raise AssertionError(f"the event is not resolved yet: {results!r}")
    return result_list


def assert_routed_exactly(results: ResultList[Any] | SentEvent[Any], keys: Iterable[str]) -> None:
    """
    Assert that an event reached exactly the collectors named ``keys``, each once.

    The order does not matter (results come in collector registration order). With no
    keys, the event must have matched no collector (its results are ``[Ok(None)]``); an
    event cancelled by a shutdown before it was routed, or whose router failed, reached
    nobody and fails the assertion whatever ``keys`` says.

    Args:
        results: The event's ResultList, or the event itself (which must be resolved).
        keys: The keys of the collectors the event should have reached.

    Raises:
        AssertionError: The event reached other collectors, or one twice, or was not
            routed; the message names the missing and unexpected keys.
        TypeError: ``keys`` is a bare ``str``.
    """
    __tracebackhide__ = True
    if isinstance(keys, str):
        raise TypeError(f"keys must be a sequence of str, not a str: use [{keys!r}]")
    expected = sorted(set(keys))
    result_list = _result_list(results)
    if not result_list.delivered:
        first = result_list.first() if len(result_list) else None
        if isinstance(first, Error):
            raise AssertionError(
                f"the event was not routed (expected exactly {expected}): its result is {first!r}"
            )
        if expected:
            raise AssertionError(f"the event reached no collector, expected exactly {expected}")
        return
    reached = [key for key in result_list.keys if key is not None]
    twice = sorted({key for key in reached if reached.count(key) > 1})
    missing = [key for key in expected if key not in reached]
    unexpected = sorted(set(reached) - set(expected))
    if missing or unexpected or twice:
        problems = [
            f"{label} {names}"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("reached more than once", twice),
            )
            if names
        ]
        raise AssertionError(
            f"the event reached {reached}, expected exactly {expected}: {'; '.join(problems)}"
        )


def assert_all_ok(results: ResultList[Any] | Iterable[ResultList[Any]]) -> None:
    """
    Assert that every result of one event, or of many events, is an ``Ok``.

    Args:
        results: One event's ResultList, or the ResultLists of many events (as
            :func:`~event_collector.testing.run_on_mock_clock` returns them).

    Raises:
        AssertionError: Some result is an ``Error``; the message lists each with the
            event's position and the collector's key.
    """
    __tracebackhide__ = True
    result_lists = [results] if isinstance(results, ResultList) else list(results)
    errors = [
        f"event #{i}, collector {key!r}: {result!r}"
        for i, result_list in enumerate(result_lists)
        for key, result in result_list.items()
        if isinstance(result, Error)
    ]
    if errors:
        count = sum(len(result_list) for result_list in result_lists)
        raise AssertionError(f"{len(errors)} of {count} results are errors:{_listed(errors)}")
