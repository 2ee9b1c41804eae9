"""
Shared helpers: processors that sleep, record or fail, built per test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from event_collector import Collector, CollectorQueue, Context, Error, Ok, Payload, Result

Processor = Callable[[Payload[Any], Context], Awaitable[Result[Any]]]

#: The fields of a "collector queue metrics" log entry.
METRIC_LOG_FIELDS = frozenset(
    {
        "metrics_timestamp",
        "qsize",
        "busy",
        "consumers",
        "load",
        "avg_load",
        "service_time",
        "wait_time",
        "arrival_rate",
        "departure_rate",
        "wip",
        "event_count",
    }
)


def sleeper(seconds: float, log: list[tuple[str, Any, float]] | None = None) -> Processor:
    """
    A processor that sleeps ``seconds`` and returns ``Ok(payload.value)``.

    With ``log``, it appends ``("start", value, time)`` and ``("end", value, time)``.
    """

    async def process(payload: Payload[Any], ctx: Context) -> Result[Any]:
        if log is not None:
            log.append(("start", payload.value, trio.current_time()))
        await trio.sleep(seconds)
        if log is not None:
            log.append(("end", payload.value, trio.current_time()))
        return Ok(payload.value)

    return process


async def echo(payload: Payload[Any], ctx: Context) -> Result[Any]:
    """
    Return ``Ok(payload.value)`` at once, without a checkpoint.
    """
    return Ok(payload.value)


async def fail(payload: Payload[Any], ctx: Context) -> Result[Any]:
    """
    Raise ``ValueError(payload.value)``.
    """
    raise ValueError(payload.value)


async def refuse(payload: Payload[Any], ctx: Context) -> Result[Any]:
    """
    Return ``Error("refused")`` without raising.
    """
    return Error("refused")


def fixed(collectors: list[Collector], consumers: int = 1, **options: Any) -> CollectorQueue:
    """
    A queue with a fixed pool of ``consumers`` (no autoscaling).
    """
    return CollectorQueue(
        collectors, autoscale=False, min_consumers=1, max_consumers=consumers, **options
    )


class _Rescheduled(trio.abc.Instrument):
    """
    Counts the steps of one task after the first: the times it yielded and was resumed.
    """

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.count += 1


@contextmanager
def schedule_points(task: trio.lowlevel.Task | None = None) -> Iterator[_Rescheduled]:
    """
    Count the times ``task`` (default: this one) is resumed inside the block (``.count``).
    """
    counter = _Rescheduled(task or trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(counter)
    try:
        yield counter
    finally:
        trio.lowlevel.remove_instrument(counter)
