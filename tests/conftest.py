"""
Shared helpers: processors that sleep, record or fail, built per test.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

from event_collector import Collector, CollectorQueue, Context, Error, Ok, Payload, Result
from event_collector._pool import ConsumerPool
from event_collector._scaling import Supervisor

#: pytester runs the pytest plugin of the testing kit in tests/test_testing_kit.py.
pytest_plugins = ["pytester"]

Processor = Callable[[Payload[Any], Context], Awaitable[Result[Any]]]


def _no_stray_cancel(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await test(*args, **kwargs)
        except (trio.Cancelled, BaseExceptionGroup) as exc:
            if isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is not None:
                raise  # a real failure, whatever else came with it
            raise AssertionError(
                "a trio.Cancelled escaped the test: something cancelled its body "
                "without the test asking for it (pytest-trio would have let it pass)"
            ) from exc

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Fail an async test out of which ``trio.Cancelled`` escapes (bare or in groups).

    pytest-trio's runner swallows it, so a test whose body was cancelled by the code under
    test (the queue's shutdown deadline once did that) would pass without running its
    assertions.
    """
    for item in items:
        test = getattr(item, "obj", None)
        if inspect.iscoroutinefunction(test) and isinstance(item, pytest.Function):
            item.obj = _no_stray_cancel(test)


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


def fixed(
    collectors: list[Collector[Any]], consumers: int = 1, **options: Any
) -> CollectorQueue[Any]:
    """
    A queue with a fixed pool of ``consumers`` (no autoscaling).
    """
    return CollectorQueue(
        collectors, autoscale=False, min_consumers=1, max_consumers=consumers, **options
    )


async def eventually(condition: Callable[[], bool], interval: float = 0.01) -> None:
    """
    Wait until ``condition()`` is true, checking every ``interval`` seconds.

    For state another process or a socket changes, which no trio.Event announces; bound
    the wait with ``trio.fail_after``.
    """
    while not condition():  # noqa: ASYNC110  (nothing to wait on: the state is elsewhere)
        await trio.sleep(interval)


def pool_of(queue: CollectorQueue[Any]) -> ConsumerPool[Any]:
    """
    The consumer pool of a running queue, for white-box tests of growing and retiring.
    """
    running = queue._running
    assert running is not None
    return running.pool


def supervisor_of(queue: CollectorQueue[Any]) -> Supervisor:
    """
    The supervisor of a running queue, for white-box tests of its wake-ups.
    """
    running = queue._running
    assert running is not None
    return running.supervisor


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
