"""
Shutdown: every event gets a result, lifecycles exit, errors propagate as themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from event_collector import (
    Collector,
    CollectorEvent,
    Context,
    Error,
    Ok,
    ResultList,
    ShutdownError,
)
from event_collector._pool import ConsumerPool

from .conftest import echo, fixed, sleeper


def is_shutdown(result: object) -> bool:
    return isinstance(result, Error) and isinstance(result.error, ShutdownError)


def recording_lifecycle(
    log: list[str], name: str, *, fail_setup: bool = False, fail_teardown: bool = False
) -> Callable[[Context], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifecycle(ctx: Context) -> AsyncIterator[None]:
        if fail_setup:
            raise OSError(f"setup {name}")
        log.append(f"enter {name}")
        ctx.name = name
        try:
            yield
        finally:
            log.append(f"exit {name}")
            if fail_teardown:
                raise OSError(f"teardown {name}")

    return lifecycle


class TestGraceful:
    """Leaving async with drains the queue within consumer_shutdown_timeout."""

    async def test_queued_events_are_processed(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(1))]) as queue:
            events = [await queue.get_publisher().send(i) for i in range(5)]
        assert trio.current_time() == 5
        assert [e.get_result() for e in events] == [ResultList([Ok(i)], ["a"]) for i in range(5)]

    async def test_timeout_bounds_the_drain(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(100))], consumer_shutdown_timeout=10)
        async with queue:
            events = [await queue.get_publisher().send(i) for i in range(3)]
            await trio.testing.wait_all_tasks_blocked()
        assert trio.current_time() == 10
        running, *queued = (e.get_result() for e in events)
        assert running is not None
        assert running.keys == ("a",)
        assert is_shutdown(running.first())
        assert running.delivered
        for result in queued:
            assert result is not None
            assert result.keys == (None,)
            assert is_shutdown(result.first())
            assert not result.delivered

    async def test_partial_results_of_a_broadcast(self, autojump_clock: trio.abc.Clock) -> None:
        collectors = [
            Collector("fast", sleeper(1)),
            Collector("slow", sleeper(100)),
            Collector("mid", sleeper(2)),
        ]
        async with fixed(collectors, consumer_shutdown_timeout=10) as queue:
            event = await queue.get_publisher().send("x")
        results = await event.wait()
        assert trio.current_time() == 10
        assert results.keys == ("fast", "slow", "mid")
        assert results[0] == Ok("x")
        assert is_shutdown(results[1])
        assert results[2] == Ok("x")

    async def test_lifecycles_exit_in_reverse_after_consumers(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        log: list[str] = []

        async def note(payload: Any, ctx: Context) -> Ok[str]:
            await trio.sleep(1)
            log.append(f"processed by {ctx.name}")
            return Ok(ctx.name)

        collectors = [
            Collector(name, note, lifecycle=recording_lifecycle(log, name)) for name in "abc"
        ]
        async with fixed(collectors) as queue:
            assert log == ["enter a", "enter b", "enter c"]
            await queue.get_publisher().send("x")
        assert sorted(log[3:6]) == ["processed by a", "processed by b", "processed by c"]
        assert log[6:] == ["exit c", "exit b", "exit a"]

    async def test_wait_returns_after_shutdown(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(100))], consumer_shutdown_timeout=1) as queue:
            event = await queue.get_publisher().send(1)
        assert is_shutdown((await event.wait()).first())


class TestAbort:
    """An exception or cancellation stops the queue at once; nothing hangs."""

    async def test_body_exception_propagates_as_itself(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        log: list[str] = []
        queue = fixed([Collector("a", sleeper(5), lifecycle=recording_lifecycle(log, "a"))])
        events: list[CollectorEvent] = []
        with pytest.raises(KeyError) as info:
            async with queue:
                events.extend([await queue.get_publisher().send(i) for i in range(3)])
                await trio.sleep(1)
                raise KeyError("boom")
        assert type(info.value) is KeyError
        assert trio.current_time() == 1  # no drain
        assert all(e.done and is_shutdown(e.get_result()[0]) for e in events)  # type: ignore[index]
        assert events[0].get_result().keys == ("a",)  # type: ignore[union-attr]
        assert events[1].get_result().keys == (None,)  # type: ignore[union-attr]
        assert log == ["enter a", "exit a"]

    async def test_cancellation_from_outside(self, autojump_clock: trio.abc.Clock) -> None:
        log: list[str] = []
        queue = fixed([Collector("a", sleeper(100), lifecycle=recording_lifecycle(log, "a"))])
        events: list[CollectorEvent] = []
        with trio.move_on_after(5) as scope:
            async with queue:
                events.extend([await queue.get_publisher().send(i) for i in range(3)])
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert trio.current_time() == 5
        assert all(is_shutdown(e.get_result()[0]) for e in events)  # type: ignore[index]
        assert log == ["enter a", "exit a"]

    async def test_cancelling_run(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(100))])
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            event = await queue.get_publisher().send(1)
            await trio.sleep(3)
            nursery.cancel_scope.cancel()
        assert trio.current_time() == 3
        assert is_shutdown((await event.wait()).first())


class TestLifecycleErrors:
    """Lifecycle failures: setup errors propagate, teardowns all run."""

    async def test_setup_failure(self) -> None:
        log: list[str] = []
        calls: list[object] = []

        async def never(payload: Any, ctx: Context) -> Ok[None]:
            calls.append(payload)  # pragma: no cover
            return Ok(None)  # pragma: no cover

        collectors = [
            Collector("a", never, lifecycle=recording_lifecycle(log, "a")),
            Collector("b", never, lifecycle=recording_lifecycle(log, "b", fail_setup=True)),
            Collector("c", never, lifecycle=recording_lifecycle(log, "c")),
        ]
        queue = fixed(collectors)
        body_ran = False
        with structlog.testing.capture_logs() as logs, pytest.raises(OSError, match="setup b"):
            async with queue:
                body_ran = True  # pragma: no cover
        assert not body_ran
        assert log == ["enter a", "exit a"]
        assert queue.consumer_count() == 0
        assert calls == []
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["lifecycle_setup_failed"]

    async def test_lifecycle_must_return_a_context_manager(self) -> None:
        def not_a_manager(ctx: Context) -> Any:
            return None

        queue = fixed([Collector("a", echo, lifecycle=not_a_manager)])
        with pytest.raises(TypeError, match="must return an async context manager"):
            async with queue:
                pass  # pragma: no cover

    async def test_one_teardown_failure_is_raised_as_itself(self) -> None:
        log: list[str] = []
        collectors = [
            Collector("a", echo, lifecycle=recording_lifecycle(log, "a")),
            Collector("b", echo, lifecycle=recording_lifecycle(log, "b", fail_teardown=True)),
            Collector("c", echo, lifecycle=recording_lifecycle(log, "c")),
        ]
        with structlog.testing.capture_logs() as logs, pytest.raises(OSError, match="teardown b"):
            async with fixed(collectors):
                pass
        assert log[3:] == ["exit c", "exit b", "exit a"]
        failed = [e for e in logs if e["event"] == "lifecycle_teardown_failed"]
        assert [e["collector"] for e in failed] == ["b"]

    async def test_several_teardown_failures_are_grouped(self) -> None:
        log: list[str] = []
        collectors = [
            Collector(n, echo, lifecycle=recording_lifecycle(log, n, fail_teardown=True))
            for n in "ab"
        ]
        with pytest.raises(ExceptionGroup) as info:
            async with fixed(collectors):
                pass
        assert [str(e) for e in info.value.exceptions] == ["teardown b", "teardown a"]

    async def test_body_error_wins_over_teardown_error(self) -> None:
        log: list[str] = []
        collectors = [
            Collector("a", echo, lifecycle=recording_lifecycle(log, "a", fail_teardown=True))
        ]
        with pytest.raises(KeyError):
            async with fixed(collectors):
                raise KeyError("body")
        assert log == ["enter a", "exit a"]

    async def test_hanging_teardown_is_bounded(self, autojump_clock: trio.abc.Clock) -> None:
        log: list[str] = []

        @asynccontextmanager
        async def hangs(ctx: Context) -> AsyncIterator[None]:
            yield
            await trio.sleep_forever()

        collectors = [
            Collector("a", echo, lifecycle=recording_lifecycle(log, "a")),
            Collector("b", echo, lifecycle=hangs),
        ]
        with pytest.raises(trio.TooSlowError, match="teardown of 'b'"):
            async with fixed(collectors, consumer_shutdown_timeout=4):
                pass
        assert trio.current_time() == 4
        assert log == ["enter a", "exit a"]

    async def test_teardown_runs_when_cancelled(self, autojump_clock: trio.abc.Clock) -> None:
        log: list[str] = []

        @asynccontextmanager
        async def slow_close(ctx: Context) -> AsyncIterator[None]:
            yield
            await trio.sleep(1)
            log.append("closed")

        with trio.move_on_after(2):
            async with fixed([Collector("a", echo, lifecycle=slow_close)]):
                await trio.sleep_forever()
        assert log == ["closed"]
        assert trio.current_time() == 3


class TestRetirement:
    """The pool retires idle consumers only, never one in the middle of an event."""

    async def test_retire_cancels_idle_consumers_only(self, autojump_clock: trio.abc.Clock) -> None:
        log: list[tuple[str, Any, float]] = []
        queue = fixed([Collector("a", sleeper(1, log))], consumers=3)
        async with queue:
            pool = queue._pool
            assert isinstance(pool, ConsumerPool)
            event = await queue.get_publisher().send(1)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.retire(3) == 2  # the busy one is left alone
            await trio.testing.wait_all_tasks_blocked()
            assert queue.consumer_count() == 1
            assert (await event.wait()).first() == Ok(1)
        assert log == [("start", 1, 0), ("end", 1, 1)]

    async def test_retired_in_the_instant_of_a_hand_off(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        """A consumer handed an event as it is retired passes the event on, whole."""
        log: list[tuple[str, Any, float]] = []
        queue = fixed([Collector("a", sleeper(1, log))], consumers=1)
        async with queue:
            pool = queue._pool
            assert isinstance(pool, ConsumerPool)
            await trio.testing.wait_all_tasks_blocked()
            event = queue.get_publisher().send_nowait(1)  # hands the event to the consumer
            assert pool.retire(1) == 1  # before it wakes up
            assert (await event.wait()).first() == Ok(1)
            assert queue.consumer_count() == 1
        assert log == [("start", 1, 0), ("end", 1, 1)]


class TestGrowthDuringShutdown:
    """The supervisor may grow the pool while shutdown drains it."""

    async def test_growing_as_the_last_consumer_leaves(self) -> None:
        """
        The pool grows while shutdown empties its nursery: the late starts are dropped.

        The grow and the leaving consumer wake in the same scheduler batch, whose order trio
        picks at random, so the race is run often enough to see both orders.
        """
        for _ in range(40):
            queue = fixed([Collector("a", echo)], consumers=1)
            async with trio.open_nursery() as nursery, queue:
                pool = queue._pool
                assert isinstance(pool, ConsumerPool)
                event = await queue.get_publisher().send(1)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(pool.grow, 3)  # runs as shutdown closes the channel
            assert pool.size == 0
            assert queue.consumer_count() == 0
            assert event.get_result() == ResultList([Ok(1)], ["a"])
