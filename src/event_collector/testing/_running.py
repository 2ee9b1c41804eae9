"""
Run payloads through a :class:`~event_collector.CollectorQueue` and return their results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import trio
import trio.testing

from .._collector import Collector
from .._data import Payload, ResultList
from .._event import CollectorEvent
from .._queue import CollectorQueue

__all__ = ["process_payloads", "run_on_mock_clock"]

T = TypeVar("T")


async def process_payloads(
    collectors: Sequence[Collector[T]],
    payloads: Iterable[Payload[Any] | object],
    **queue_options: Any,
) -> list[ResultList[T]]:
    """
    Run a queue of ``collectors``, send it ``payloads`` in order, and return their results.

    The queue is built as ``CollectorQueue(collectors, **queue_options)`` and runs inside
    this call: every payload is sent (waiting for room if ``max_queue_size`` says so),
    every event is waited for, then the queue shuts down gracefully. For a trio test (with
    pytest-trio, an ``autojump_clock`` makes sleeping processors instant and times exact).

    Args:
        collectors: The collectors of the queue.
        payloads: The payloads to send; other values are sent as ``Payload(value)``.
        queue_options: Keyword options of :class:`~event_collector.CollectorQueue`.

    Returns:
        One ResultList per payload, in the order they were sent.

    Raises:
        TypeError, ValueError: The queue refused its collectors or options.

    On cancellation the queue stops at once (every event sent gets a result) and
    ``trio.Cancelled`` propagates; bound a test that may hang with ``trio.fail_after``.
    """
    events: list[CollectorEvent[T]] = []
    async with CollectorQueue(collectors, **queue_options) as queue:
        await _send_all(queue, payloads, events)
        return [await event.wait() for event in events]


async def _send_all(
    queue: CollectorQueue[T],
    payloads: Iterable[Payload[Any] | object],
    events: list[CollectorEvent[T]],
) -> None:
    publisher = queue.get_publisher()
    for payload in payloads:
        events.append(await publisher.send(payload))


def run_on_mock_clock(
    collectors: Sequence[Collector[T]],
    payloads: Iterable[Payload[Any] | object],
    *,
    timeout: float = 3600.0,
    **queue_options: Any,
) -> list[ResultList[T]]:
    """
    Like :func:`process_payloads`, in a new ``trio.run`` on a ``MockClock``.

    For a plain (synchronous) test, Hypothesis tests included. The clock starts at 0 and
    jumps whenever every task is blocked (``MockClock(autojump_threshold=0)``), so
    processors that sleep take no real time and each run is deterministic.

    Args:
        collectors: The collectors of the queue.
        payloads: The payloads to send; other values are sent as ``Payload(value)``.
        timeout: Seconds of mock time to wait for every result. A processor that never
            returns would otherwise let the clock jump forever.
        queue_options: Keyword options of :class:`~event_collector.CollectorQueue`.

    Returns:
        One ResultList per payload, in the order they were sent.

    Raises:
        trio.TooSlowError: Some event had no result after ``timeout`` seconds.
        TypeError, ValueError: The queue refused its collectors or options.
    """

    async def main() -> list[ResultList[T]]:
        events: list[CollectorEvent[T]] = []
        async with CollectorQueue(collectors, **queue_options) as queue:
            with trio.move_on_after(timeout):
                await _send_all(queue, payloads, events)
                return [await event.wait() for event in events]
            pending = sum(1 for event in events if not event.done)
            # Raised in the body: the queue stops at once and every event gets a result.
            raise trio.TooSlowError(
                f"{pending} of {len(events)} events sent had no result after {timeout} s "
                "of mock time: does a processor never return? give its Collector a "
                "timeout, or raise this one"
            )

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
