"""
Shutdown: every event gets a result, lifecycles exit, errors propagate as themselves.
"""

from __future__ import annotations

import contextlib
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
    CollectorQueue,
    ConsumersScaled,
    Context,
    Error,
    EventPublisher,
    MessageBus,
    Ok,
    Payload,
    Result,
    ResultList,
    ShutdownError,
    ShutDownQueue,
)

from .conftest import echo, fixed, pool_of, sleeper


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
        events: list[CollectorEvent[Any]] = []
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
        events: list[CollectorEvent[Any]] = []
        caught: list[BaseException] = []
        with trio.move_on_after(5) as scope:
            try:
                async with queue:
                    events.extend([await queue.get_publisher().send(i) for i in range(3)])
                    await trio.sleep_forever()
            except BaseException as exc:
                caught.append(exc)
                raise
        assert scope.cancelled_caught
        assert [type(exc) for exc in caught] == [trio.Cancelled]  # not in an ExceptionGroup
        assert trio.current_time() == 5
        assert all(is_shutdown(e.get_result()[0]) for e in events)  # type: ignore[index]
        assert log == ["enter a", "exit a"]

    async def test_body_exception_keeps_its_cause_when_cancelled_from_outside(self) -> None:
        """The body fails as a cancellation from outside stops the queue's tasks."""
        cause = OSError("the cause")
        caught: list[BaseException] = []
        with trio.CancelScope() as outer:
            try:
                async with fixed([Collector("a", echo)]):
                    outer.cancel()
                    raise KeyError("body") from cause
            except KeyError as exc:
                caught.append(exc)
        [error] = caught
        assert error.__cause__ is cause
        assert error.__suppress_context__  # as `raise ... from cause` left it

    async def test_cancelled_while_starting(self) -> None:
        caught: list[BaseException] = []
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                async with fixed([Collector("a", echo)], consumers=3):
                    pytest.fail("the body must not run")  # pragma: no cover
            except BaseException as exc:
                caught.append(exc)
                raise
        assert [type(exc) for exc in caught] == [trio.Cancelled]

    async def test_cancelled_after_shut_down_queue(self, autojump_clock: trio.abc.Clock) -> None:
        """The shutdown's bus event is handled while the body goes on; then the bus closes."""
        handled: list[object] = []

        async def on_shutdown(msg: ShutDownQueue, bus: MessageBus) -> None:
            handled.append(msg)

        queue = fixed([Collector("a", echo)])
        queue.get_message_bus().add_msg_handler(ShutDownQueue, on_shutdown)
        with trio.move_on_after(5) as scope:
            async with queue:
                await queue.shut_down_queue()  # returns once the last consumer has left
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert handled == [ShutDownQueue(queue)]  # the bus ran on while the body slept
        with pytest.raises(trio.ClosedResourceError):
            queue.get_message_bus().publish(ShutDownQueue(queue))

    async def test_backlog_wake_up_as_the_queue_is_cancelled(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        """The supervisor, woken by a send, runs after the bus has stopped: nothing leaks."""
        for _ in range(50):  # the wake-up and the cancellation race in one scheduler batch
            queue = CollectorQueue([Collector("a", sleeper(10))], min_consumers=1, max_consumers=4)
            with trio.CancelScope() as outer:
                async with queue:
                    publisher = queue.get_publisher()
                    event = await publisher.send(1)
                    await trio.testing.wait_all_tasks_blocked()  # the one consumer is busy
                    publisher.send_nowait(2)  # wakes the supervisor
                    outer.cancel()
                    await trio.sleep_forever()
            assert outer.cancelled_caught
            assert is_shutdown(event.get_result()[0])  # type: ignore[index]

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

    async def test_queue_stopped_is_logged_after_a_failed_teardown(self) -> None:
        log: list[str] = []
        collectors = [
            Collector("a", echo, lifecycle=recording_lifecycle(log, "a", fail_teardown=True))
        ]
        with structlog.testing.capture_logs() as logs, pytest.raises(OSError, match="teardown"):
            async with fixed(collectors):
                pass
        events = [e["event"] for e in logs]
        assert events[-2:] == ["lifecycle_teardown_failed", "queue_stopped"]

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
            pool = pool_of(queue)
            event = await queue.get_publisher().send(1)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.retire(3) == 2  # the busy one is left alone
            await trio.testing.wait_all_tasks_blocked()
            assert queue.consumer_count() == 1
            assert (await event.wait()).first() == Ok(1)
        assert log == [("start", 1, 0), ("end", 1, 1)]

    async def test_a_consumer_handed_an_event_is_not_retired(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        """Handed an event, a consumer has left the channel before it wakes: not idle."""
        log: list[tuple[str, Any, float]] = []
        queue = fixed([Collector("a", sleeper(1, log))], consumers=1)
        async with queue:
            pool = pool_of(queue)
            await trio.testing.wait_all_tasks_blocked()
            event = queue.get_publisher().send_nowait(1)  # hands the event to the consumer
            assert queue.statistics().busy == 1  # before it wakes up
            assert pool.retire(1) == 0
            assert (await event.wait()).first() == Ok(1)
            assert queue.consumer_count() == 1
        assert log == [("start", 1, 0), ("end", 1, 1)]


class TestGrowthDuringShutdown:
    """The supervisor may grow the pool while shutdown drains it."""

    async def test_growing_as_the_last_consumer_leaves(self) -> None:
        """
        The pool grows while shutdown empties its nursery: nothing is started once it has
        closed, and consumers spawned just before take no event and exit.

        The grow and the leaving consumer wake in the same scheduler batch, whose order trio
        picks at random, so the race is run often enough to see both orders.
        """
        for _ in range(40):
            queue = fixed([Collector("a", echo)], consumers=1)
            async with trio.open_nursery() as nursery, queue:
                pool = pool_of(queue)
                event = await queue.get_publisher().send(1)
                await trio.testing.wait_all_tasks_blocked()

                async def grow() -> None:
                    pool.grow(3)  # noqa: B023 (runs as shutdown closes the channel)

                nursery.start_soon(grow)
            assert pool.size == 0
            assert queue.consumer_count() == 0
            assert event.get_result() == ResultList([Ok(1)], ["a"])

    async def test_backlog_wake_up_after_the_last_consumer_left(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        """
        A sender unblocked as shutdown begins wakes the supervisor after the bus has closed.

        The supervisor must not publish on the closed bus nor scale a finished pool.
        """

        async def slow_first_two(payload: Payload[Any], ctx: Context) -> Result[Any]:
            if payload.value in ("a", "b"):
                await trio.sleep(1)
            return Ok(payload.value)

        for _ in range(50):  # the wake-up and the last consumer's exit share a batch
            queue = CollectorQueue(
                [Collector("a", slow_first_two)],
                min_consumers=2,
                max_consumers=2,
                max_queue_size=1,
                monitor_interval=1000,
            )
            scaled: list[ConsumersScaled] = []

            async def on_scaled(msg: ConsumersScaled, bus: MessageBus) -> None:
                scaled.append(msg)  # noqa: B023 (each queue has its own handler)

            queue.get_message_bus().add_msg_handler(ConsumersScaled, on_scaled)

            async def blocked_send(publisher: EventPublisher[Any]) -> None:
                with contextlib.suppress(trio.ClosedResourceError):
                    await publisher.send("c")

            async with trio.open_nursery() as nursery, queue:
                publisher = queue.get_publisher()
                await publisher.send("a")
                await publisher.send("b")
                await trio.testing.wait_all_tasks_blocked()  # both busy until t+1
                await publisher.send("full")
                nursery.start_soon(blocked_send, publisher)
                await trio.testing.wait_all_tasks_blocked()
                await trio.sleep(1)  # leave as the consumers finish
            assert scaled == []  # a fixed size of 2: nothing to scale

    async def test_growing_after_an_outside_cancellation_emptied_the_pool(self) -> None:
        """
        A cancellation from outside can stop every consumer before the queue notes it.

        A supervisor woken by a send just before it still runs once, and may grow the pool
        after the consumers' nursery has closed: that must start nothing (it raised
        RuntimeError, nested in groups, out of ``async with``).
        """
        queue = CollectorQueue([Collector("a", echo)], min_consumers=1, max_consumers=4)
        with trio.CancelScope() as outer:
            async with queue:
                pool = pool_of(queue)
                outer.cancel()
                with trio.CancelScope(shield=True):  # the body sees the cancellation late
                    await trio.testing.wait_all_tasks_blocked()
                    assert pool.size == 0  # the consumers have left, their nursery closed
                    assert pool.grow(1) == 0  # as the woken supervisor does
                    assert queue.consumer_count() == 0
        assert outer.cancelled_caught


class TestShutdownWhileStarting:
    """shut_down_queue() called while lifecycles are still being entered."""

    async def test_request_is_kept(self, autojump_clock: trio.abc.Clock) -> None:
        @asynccontextmanager
        async def slow_setup(ctx: Context) -> AsyncIterator[None]:
            await trio.sleep(1)
            yield

        queue = fixed([Collector("a", echo, lifecycle=slow_setup)])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queue.run)
            await trio.sleep(0.5)
            with trio.fail_after(100):  # the request used to be lost, and this hung
                await queue.shut_down_queue()
            assert trio.current_time() == 1  # stopped as soon as it had started
        with pytest.raises(trio.ClosedResourceError):
            queue.get_publisher().send_nowait(1)

    async def test_waiters_are_released_when_starting_fails(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        @asynccontextmanager
        async def failing_setup(ctx: Context) -> AsyncIterator[None]:
            await trio.sleep(1)
            if not getattr(ctx, "reachable", False):
                raise OSError("cannot connect")
            yield  # pragma: no cover

        queue = fixed([Collector("a", echo, lifecycle=failing_setup)])

        async def run_queue() -> None:
            with pytest.raises(OSError, match="cannot connect"):
                await queue.run()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_queue)
            await trio.sleep(0.5)
            with trio.fail_after(100):
                await queue.shut_down_queue()
            assert trio.current_time() == 1

    async def test_from_a_lifecycle_setup(self, autojump_clock: trio.abc.Clock) -> None:
        """A setup that stops its own queue does not wait for itself."""
        queue: CollectorQueue[Any]

        @asynccontextmanager
        async def stops_its_queue(ctx: Context) -> AsyncIterator[None]:
            await queue.shut_down_queue()
            yield

        queue = fixed([Collector("a", echo, lifecycle=stops_its_queue)])
        with trio.fail_after(100):
            async with queue:
                with pytest.raises(trio.ClosedResourceError):
                    queue.get_publisher().send_nowait(1)  # stopped as soon as it started
        assert trio.current_time() == 0
