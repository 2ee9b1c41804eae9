"""
The running queue: construction rules, running modes, publishing, results, queue types.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import structlog
import trio
import trio.testing

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    Delivery,
    Error,
    Ok,
    Payload,
    QueueStatistics,
    QueueType,
    Result,
    ResultList,
    Router,
    SimpleRouter,
)
from event_collector import queue as queue_module
from event_collector.queue import SCHEDULE_EVERY
from event_collector.testing import Recorder

from .conftest import echo, fail, fixed, refuse, schedule_points, sleeper


class TestConstruction:
    """Bad configuration is refused at construction with a message naming the rule."""

    def test_defaults_are_the_documented_constants(self) -> None:
        queue = CollectorQueue([Collector("a", echo)])
        assert queue.router is SimpleRouter
        assert queue.autoscale is True
        assert queue.min_consumers == queue_module.DEFAULT_MIN_CONSUMERS == 1
        assert queue.max_consumers == queue_module.DEFAULT_MAX_CONSUMERS == 100
        assert queue.wip_margin == queue_module.WIP_MARGIN == 0.15
        assert queue.monitor_interval == queue_module.MONITOR_INTERVAL == 0.01
        assert queue.report_interval == queue_module.REPORT_INTERVAL == 0
        assert queue.avg_load_interval == queue_module.AVG_LOAD_INTERVAL == 60
        assert queue.metrics_collector_window_size == 60
        assert queue.event_service_data_window_size == 500
        assert queue.metrics_warmup_interval == queue_module.METRICS_WARMUP_INTERVAL == 3
        assert queue.queue_type is QueueType.FIFO
        assert queue.default_priority == 100
        assert queue.max_queue_size == math.inf
        assert queue.consumer_shutdown_timeout == queue_module.CONSUMER_SHUTDOWN_TIMEOUT == 10
        assert queue.logging is True

    def test_collector_class_instead_of_instance(self) -> None:
        with pytest.raises(TypeError, match="not classes"):
            CollectorQueue([Collector])  # type: ignore[arg-type]  # the slip under test

    @pytest.mark.parametrize("collectors", [[object()], ["a"], [None]])
    def test_non_collector(self, collectors: list[Any]) -> None:
        with pytest.raises(TypeError, match="Collector instances"):
            CollectorQueue(collectors)

    def test_single_collector_not_in_a_list(self) -> None:
        with pytest.raises(TypeError, match="list of Collector"):
            CollectorQueue(Collector("a", echo))  # type: ignore[arg-type]  # the slip under test

    def test_empty(self) -> None:
        with pytest.raises(ValueError, match="must not be empty"):
            CollectorQueue([])

    def test_duplicate_keys(self) -> None:
        with pytest.raises(ValueError, match="'a' appears twice"):
            CollectorQueue([Collector("a", echo), Collector("b", echo), Collector("a", fail)])

    def test_router_instance(self) -> None:
        collectors = [Collector("a", echo)]
        with pytest.raises(TypeError, match="Router subclass"):
            CollectorQueue(collectors, router=SimpleRouter(collectors))  # type: ignore[arg-type]

    def test_router_overriding_nothing(self) -> None:
        class Lazy(Router[Any]):
            pass

        with pytest.raises(TypeError, match="must override select"):
            CollectorQueue([Collector("a", echo)], router=Lazy)

    @pytest.mark.parametrize(
        ("option", "value", "error", "message"),
        [
            ("min_consumers", 0, ValueError, "min_consumers must be >= 1"),
            ("min_consumers", 1.5, TypeError, "min_consumers must be an int"),
            ("max_consumers", 0, ValueError, "max_consumers must be >= 1"),
            ("monitor_interval", 0, ValueError, "monitor_interval must be > 0"),
            ("monitor_interval", -1, ValueError, "monitor_interval must be > 0"),
            ("monitor_interval", "1", TypeError, "monitor_interval must be a number"),
            ("report_interval", -0.5, ValueError, "report_interval must be >= 0"),
            ("avg_load_interval", 0, ValueError, "avg_load_interval must be > 0"),
            ("metrics_collector_window_size", 4.9, ValueError, "must be >= 5"),
            ("event_service_data_window_size", 0, ValueError, "must be >= 1"),
            ("metrics_warmup_interval", -1, ValueError, "must be >= 0"),
            ("consumer_shutdown_timeout", 0, ValueError, "must be > 0"),
            ("consumer_shutdown_timeout", math.nan, TypeError, "must be a number"),
            ("max_queue_size", 0, ValueError, "max_queue_size must be >= 1"),
            ("max_queue_size", 2.5, TypeError, "max_queue_size must be an int or math.inf"),
            ("wip_margin", 1.5, ValueError, "between 0 and 1"),
            ("queue_type", "fifo", TypeError, "queue_type"),
            ("default_priority", "high", TypeError, "default_priority must be an int"),
            ("default_priority", True, TypeError, "default_priority must be an int"),
            ("autoscale", 1, TypeError, "autoscale"),
            ("logging", "yes", TypeError, "logging"),
        ],
    )
    def test_bad_option(
        self, option: str, value: object, error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error, match=message):
            options: dict[str, Any] = {option: value}
            CollectorQueue([Collector("a", echo)], **options)

    def test_min_above_max(self) -> None:
        with pytest.raises(ValueError, match="max_consumers must be >= min_consumers"):
            CollectorQueue([Collector("a", echo)], min_consumers=5, max_consumers=4)


class TestRunning:
    """The queue runs as an async context manager or under nursery.start, once."""

    async def test_async_with_returns_the_queue_and_starts_the_pool(self) -> None:
        queue = fixed([Collector("a", echo)], consumers=4)
        assert queue.consumer_count() == 0
        async with queue as running:
            assert running is queue
            assert queue.consumer_count() == 4
            stats = queue.statistics()
            assert (stats.idle, stats.busy) == (4, 0)  # every consumer is waiting for an event
        assert queue.consumer_count() == 0

    async def test_not_started(self) -> None:
        queue = fixed([Collector("a", echo)])
        with pytest.raises(RuntimeError, match="not been started"):
            queue.get_publisher()
        with pytest.raises(RuntimeError, match="not been started"):
            await queue.shut_down_queue()

    async def test_runs_once(self) -> None:
        queue = fixed([Collector("a", echo)])
        async with queue:
            pass
        with pytest.raises(RuntimeError, match="a queue runs once"):
            async with queue:
                pass  # pragma: no cover

    async def test_nursery_start_and_shut_down(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(1))], consumers=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            assert queue.consumer_count() == 2
            events = [await queue.get_publisher().send(i) for i in range(4)]
            await queue.shut_down_queue()
            assert trio.current_time() == 2
            assert [e.get_result() for e in events] == [
                ResultList([Ok(i)], ["a"]) for i in range(4)
            ]
        assert queue.consumer_count() == 0

    async def test_shut_down_from_the_body(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(1))])
        async with queue:
            publisher = queue.get_publisher()
            event = await publisher.send("x")
            await queue.shut_down_queue()
            assert event.get_result() == ResultList([Ok("x")], ["a"])
            with pytest.raises(trio.ClosedResourceError):
                await publisher.send("late")
            with pytest.raises(trio.ClosedResourceError):
                publisher.send_nowait("late")
            await queue.shut_down_queue()  # again: just returns

    async def test_getting_started_scenario(self, autojump_clock: trio.abc.Clock) -> None:
        """The reference demo: 100 events of 0.25 s on 100 consumers take 0.25 s."""
        queue = CollectorQueue(
            [Collector("demo-collector", sleeper(0.25))],
            min_consumers=1,
            max_consumers=100,
            autoscale=False,
        )
        async with queue:
            publisher = queue.get_publisher()
            events = [await publisher.send(Payload({"id": f"payload-{i}"})) for i in range(100)]
            values = [(await event.wait()).first().unwrap() for event in events]
            assert trio.current_time() == 0.25
        assert values == [{"id": f"payload-{i}"} for i in range(100)]


class TestPublisher:
    """send/send_nowait queue payloads, apply backpressure; send is always a cancel point."""

    async def test_plain_values_are_wrapped(self) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            event = await queue.get_publisher().send({"id": 1})
            assert event.payload == Payload({"id": 1})
            assert (await event.wait()).first() == Ok({"id": 1})

    async def test_a_send_that_wakes_a_consumer_yields_to_it(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        async with fixed([Collector("a", sleeper(1))]) as queue:
            publisher = queue.get_publisher()
            with schedule_points() as points:
                await publisher.send(0)
            assert points.count == 1

    async def test_sends_to_a_backlog_yield_every_schedule_every(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        async with fixed([Collector("a", sleeper(1))]) as queue:
            publisher = queue.get_publisher()
            await publisher.send(0)  # the consumer is busy from now on
            with schedule_points() as points:
                for i in range(1, 1 + 3 * SCHEDULE_EVERY):
                    await publisher.send(i)
            assert points.count == 3

    async def test_a_consumer_takes_waiting_events_without_yielding_for_each(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        consumers: list[trio.lowlevel.Task] = []

        async def first_slow(payload: Payload[int], ctx: Context) -> Result[int]:
            consumers.append(trio.lowlevel.current_task())
            if payload.value == 0:
                await trio.sleep(1)
            return Ok(payload.value)

        async with fixed([Collector("a", first_slow)]) as queue:
            publisher = queue.get_publisher()
            events = [await publisher.send(i) for i in range(1 + 2 * SCHEDULE_EVERY)]
            with schedule_points(consumers[0]) as points:
                results = [(await event.wait()).first() for event in events]
            # Woken once by the clock; once more as the first event took SCHEDULE_SLICE
            # or more (the consumer cannot tell that its processor yielded meanwhile),
            # and again after SCHEDULE_EVERY events.
            assert points.count == 3
        assert results == [Ok(i) for i in range(1 + 2 * SCHEDULE_EVERY)]
        assert set(consumers) == {consumers[0]}

    async def test_deadline_during_a_loop_of_sends_loses_nothing(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            publisher = queue.get_publisher()
            sent: list[CollectorEvent[Any]] = []
            with trio.move_on_after(1) as scope:
                for i in range(10 * SCHEDULE_EVERY):
                    if i == 3:
                        autojump_clock.jump(2)  # the deadline passes between two sends
                    sent.append(await publisher.send(i))
            assert scope.cancelled_caught
            assert 3 < len(sent) <= 3 + SCHEDULE_EVERY  # seen at the next schedule point
            results = [(await event.wait()).first() for event in sent]
            assert results == [Ok(i) for i in range(len(sent))]
            assert queue.get_metrics().event_count == len(sent)

    async def test_send_cancelled_before_queueing(self) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            with trio.CancelScope() as scope:
                scope.cancel()
                await queue.get_publisher().send(1)
            assert scope.cancelled_caught
            assert queue.current_load() == 0

    async def test_backpressure(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(1))], max_queue_size=1)
        async with queue:
            publisher = queue.get_publisher()
            first = await publisher.send(1)  # taken by the consumer at once
            await trio.testing.wait_all_tasks_blocked()
            publisher.send_nowait(2)  # fills the queue
            with pytest.raises(trio.WouldBlock):
                publisher.send_nowait(3)
            third = await publisher.send(3)  # waits until the consumer takes 2
            assert trio.current_time() == 1
            assert first.done
            results = await third.wait()
            assert results.first() == Ok(3)
            assert trio.current_time() == 3

    async def test_an_event_taken_before_its_blocked_sender_resumes_is_counted(self) -> None:
        gate = trio.Event()

        async def gated(payload: Payload[int], ctx: Context) -> Result[int]:
            if payload.value == 0:
                await gate.wait()
            return Ok(payload.value)

        queue = fixed([Collector("a", gated)], max_queue_size=1)
        async with queue, trio.open_nursery() as nursery:
            publisher = queue.get_publisher()
            events = [await publisher.send(0), await publisher.send(1)]  # busy, then full

            async def send_blocked() -> None:
                events.append(await publisher.send(2))

            nursery.start_soon(send_blocked)
            await trio.testing.wait_all_tasks_blocked()
            # The consumer takes 1 (which moves 2 into the buffer) and 2 in one step.
            gate.set()
            await trio.testing.wait_all_tasks_blocked()
            assert [(await event.wait()).first() for event in events] == [Ok(0), Ok(1), Ok(2)]
            stats = queue.statistics()
            assert (stats.sent, stats.completed, stats.queued, stats.busy) == (3, 3, 0, 0)

    async def test_blocked_sender_gets_closed_error_at_shutdown(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        queue = fixed([Collector("a", sleeper(1))], max_queue_size=1)
        outcome: list[str] = []

        async def late_sender() -> None:
            try:
                await queue.get_publisher().send(3)
            except trio.ClosedResourceError:
                outcome.append("closed")

        async with queue:
            publisher = queue.get_publisher()
            await publisher.send(1)
            await trio.testing.wait_all_tasks_blocked()
            await publisher.send(2)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(late_sender)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(queue.shut_down_queue)
        assert outcome == ["closed"]


class TestCollectorEvent:
    """An event resolves once; any number of tasks can wait for it."""

    async def test_pending_then_done(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(1))]) as queue:
            event = await queue.get_publisher().send(1)
            pending = (event.done, event.get_result(), repr(event))
            results = await event.wait()
            assert pending[:2] == (False, None)
            assert "pending" in pending[2]
            assert event.done
            assert event.get_result() == results == ResultList([Ok(1)], ["a"])
            assert "done" in repr(event)

    async def test_many_waiters(self, autojump_clock: trio.abc.Clock) -> None:
        got: list[ResultList[Any]] = []
        async with fixed([Collector("a", sleeper(1))]) as queue:
            event = await queue.get_publisher().send(1)

            async def waiter() -> None:
                got.append(await event.wait())

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(waiter)
        assert got == [ResultList([Ok(1)], ["a"])] * 3

    async def test_waits_on_a_done_event_yield_every_schedule_every(self) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            event = await queue.get_publisher().send(1)
            await event.wait()
            with schedule_points() as points:
                for _ in range(3 * SCHEDULE_EVERY):
                    assert (await event.wait()).first() == Ok(1)
            assert points.count == 3

    async def test_wait_on_a_done_event_is_a_cancel_point(self) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            event = await queue.get_publisher().send(1)
            await event.wait()
            with trio.CancelScope() as scope:
                scope.cancel()
                await event.wait()
            assert scope.cancelled_caught
            assert event.get_result() == ResultList([Ok(1)], ["a"])

    async def test_cancelled_wait_leaves_the_event_alone(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        async with fixed([Collector("a", sleeper(2))]) as queue:
            event = await queue.get_publisher().send(1)
            with trio.move_on_after(1):
                await event.wait()
            assert not event.done
            assert (await event.wait()).first() == Ok(1)
            assert trio.current_time() == 2


class TestFailures:
    """Processor and router failures become Error results; consumers keep going."""

    async def test_processor_failures_do_not_stop_consumers(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        async def slow(payload: Payload[Any], ctx: Context) -> Result[Any]:
            await trio.sleep(5)
            return Ok(None)  # pragma: no cover

        async def wrong(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return 42  # type: ignore[return-value]  # the mistake under test

        collectors = [
            Collector("fail", fail),
            Collector("wrong", wrong),
            Collector("slow", slow, timeout=1),
            Collector("refuse", refuse),
            Collector("echo", echo),
        ]
        async with fixed(collectors, consumers=2) as queue:
            publisher = queue.get_publisher()
            results = await (await publisher.send("boom")).wait()
            again = await (await publisher.send(Payload(1, Delivery.KEY, ["echo"]))).wait()
            assert queue.consumer_count() == 2
        by_key = results.by_key()
        assert isinstance(by_key["fail"], Error)
        assert isinstance(by_key["fail"].error, ValueError)
        assert isinstance(by_key["wrong"], Error)
        assert "must return Ok or Error, got int" in str(by_key["wrong"].error)
        assert isinstance(by_key["slow"], Error)
        assert isinstance(by_key["slow"].error, trio.TooSlowError)
        assert by_key["refuse"].is_error()
        assert by_key["echo"] == Ok("boom")
        assert results.keys == ("fail", "wrong", "slow", "refuse", "echo")
        assert again == ResultList([Ok(1)], ["echo"])

    async def test_single_collector_failures(self) -> None:
        """The one-collector fast path turns failures into Errors like Collector.process."""

        async def wrong(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return None  # type: ignore[return-value]  # the mistake under test

        collectors = [Collector("fail", fail), Collector("wrong", wrong)]
        with structlog.testing.capture_logs() as logs:
            async with fixed(collectors) as queue:
                publisher = queue.get_publisher()
                failed = await (await publisher.send(Payload("x", Delivery.KEY, ["fail"]))).wait()
                wrong_type = await (
                    await publisher.send(Payload("y", Delivery.KEY, ["wrong"]))
                ).wait()
        assert failed.keys == ("fail",)
        assert isinstance(failed.first(), Error)
        assert isinstance(failed.first().error, ValueError)  # type: ignore[union-attr]
        assert "must return Ok or Error, got NoneType" in str(wrong_type.first().error)  # type: ignore[union-attr]
        failures = [(entry["event"], entry["collector"]) for entry in logs if "error" in entry]
        assert failures == [
            ("processor_failed", "fail"),
            ("processor_returned_wrong_type", "wrong"),
        ]

    async def test_custom_router_failures(self) -> None:
        class Broken(Router[Any]):
            async def handle_event(self, payload: Payload[Any]) -> ResultList[Any]:
                if payload.value == "raise":
                    raise RuntimeError("router bug")
                return "not a result list"  # type: ignore[return-value]  # under test

        with structlog.testing.capture_logs() as logs:
            async with fixed([Collector("a", echo)], router=Broken) as queue:
                publisher = queue.get_publisher()
                raised = await (await publisher.send("raise")).wait()
                wrong = await (await publisher.send("wrong")).wait()
        assert isinstance(raised.first(), Error)
        assert str(raised.first().error) == "router bug"  # type: ignore[union-attr]
        assert not raised.delivered
        assert "must return a ResultList, got str" in str(wrong.first().error)  # type: ignore[union-attr]
        failures = [entry for entry in logs if entry["event"] == "router_failed"]
        assert len(failures) == 2
        assert all(entry["log_level"] == "warning" for entry in failures)


class TestQueueTypes:
    """FIFO, PRIORITY and LIFO queues release waiting events in their order."""

    async def order_of(
        self, queue_type: QueueType, payloads: list[Payload[int]], **options: Any
    ) -> list[int]:
        recorder = Recorder(delay=1)
        async with fixed([recorder.collector("a")], queue_type=queue_type, **options) as queue:
            publisher = queue.get_publisher()
            await publisher.send(Payload(-1))  # occupies the only consumer
            await trio.testing.wait_all_tasks_blocked()
            for payload in payloads:
                await publisher.send(payload)
        return recorder.values[1:]

    async def test_fifo(self, autojump_clock: trio.abc.Clock) -> None:
        payloads = [Payload(i, priority=p) for i, p in enumerate([5, 1, 3])]
        assert await self.order_of(QueueType.FIFO, payloads) == [0, 1, 2]

    async def test_lifo(self, autojump_clock: trio.abc.Clock) -> None:
        payloads = [Payload(i) for i in range(4)]
        assert await self.order_of(QueueType.LIFO, payloads) == [3, 2, 1, 0]

    async def test_priority_with_default(self, autojump_clock: trio.abc.Clock) -> None:
        priorities = [5, 1, None, 3, 1, 0]
        payloads = [Payload(i, priority=p) for i, p in enumerate(priorities)]
        order = await self.order_of(QueueType.PRIORITY, payloads, default_priority=4)
        assert order == [5, 1, 4, 3, 2, 0]

    async def test_intenum_default_priority(self, autojump_clock: trio.abc.Clock) -> None:
        class Level(enum.IntEnum):
            HIGH = 0
            NORMAL = 5

        payloads = [Payload(0, priority=Level.NORMAL), Payload(1), Payload(2, priority=1)]
        order = await self.order_of(QueueType.PRIORITY, payloads, default_priority=Level.HIGH)
        assert order == [1, 2, 0]


class TestLoadAndLogging:
    """current_load reflects queued and busy work; logging=False is silent."""

    async def test_current_load(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(1))], consumers=2) as queue:
            assert queue.current_load() == 0
            publisher = queue.get_publisher()
            for i in range(5):
                await publisher.send(i)
            await trio.testing.wait_all_tasks_blocked()
            assert queue.current_load() == (3 + 2) / 2

    async def test_logging_false_is_silent(self, autojump_clock: trio.abc.Clock) -> None:
        with structlog.testing.capture_logs() as logs:
            queue = fixed(
                [Collector("a", fail), Collector("b", sleeper(100))],
                logging=False,
                consumer_shutdown_timeout=1,
            )
            async with queue:
                await queue.get_publisher().send(1)
        assert logs == []

    async def test_lifecycle_of_the_queue_is_logged(self) -> None:
        with structlog.testing.capture_logs() as logs:
            queue = fixed([Collector("a", echo)])
            async with queue:
                pass
        events = [entry["event"] for entry in logs]
        assert events == ["queue_starting", "queue_started", "queue_shutting_down", "queue_stopped"]
        assert {entry["queue_id"] for entry in logs} == {queue.id}


def test_event_type_is_exported() -> None:
    assert queue_module.CollectorEvent is CollectorEvent


@pytest.fixture
def unconfigured_structlog() -> Iterator[None]:
    """
    structlog as an application that never configured it has it; restored afterwards.
    """
    config, configured = structlog.get_config(), structlog.is_configured()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.reset_defaults()
        if configured:
            structlog.configure(**config)


class TestProportionateLogging:
    """Unconfigured, the library shows problems on stderr, not chatter on stdout."""

    @pytest.mark.usefixtures("unconfigured_structlog")
    async def test_warnings_only_on_stderr(
        self, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
    ) -> None:
        queue = CollectorQueue([Collector("f", fail)], min_consumers=1, max_consumers=8)
        async with queue:
            publisher = queue.get_publisher()
            events = [await publisher.send(i) for i in range(6)]  # a burst: the pool grows
            await trio.sleep(1)  # and shrinks again
        assert all(isinstance(event.get_result().first(), Error) for event in events)  # type: ignore[union-attr]
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("processor_failed") == 6
        assert "Traceback" not in err
        assert "consumers_scaled" not in err
        assert "queue_started" not in err


class TestStatistics:
    """statistics() is a frozen snapshot of the pool and the channel, read in O(1)."""

    async def test_while_running(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(1))], consumers=2, max_queue_size=10)
        before = queue.statistics()
        async with queue:
            publisher = queue.get_publisher()
            for i in range(5):
                await publisher.send(i)
            await trio.testing.wait_all_tasks_blocked()
            running = queue.statistics()
            await trio.sleep(1)
            await trio.testing.wait_all_tasks_blocked()  # both took their next event
            later = queue.statistics()
        after = queue.statistics()
        assert (before.consumers, before.sent, before.closed) == (0, 0, False)
        assert running == QueueStatistics(
            consumers=2,
            idle=0,
            busy=2,
            queued=3,
            in_flight=5,
            max_queue_size=10,
            sent=5,
            completed=0,
            closed=False,
        )
        assert (later.busy, later.queued, later.completed) == (2, 1, 2)
        assert (after.consumers, after.in_flight, after.completed, after.closed) == (0, 0, 5, True)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            running.busy = 0  # type: ignore[misc]  # frozen is the point

    async def test_closed_only_once_stopped_not_while_starting(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        """Starting, the queue is not closed; a failed start leaves it closed."""

        @asynccontextmanager
        async def slow_setup(ctx: Context) -> AsyncIterator[None]:
            await trio.sleep(1)
            if ctx.fail:
                raise OSError("cannot connect")
            yield

        seen: list[bool] = []
        for failing in (False, True):
            queue = fixed(
                [Collector("a", echo, lifecycle=slow_setup, ctx=Context(fail=failing))],
                logging=False,
            )
            async with trio.open_nursery() as nursery:

                async def start(queue: CollectorQueue[Any] = queue) -> None:
                    with contextlib.suppress(OSError):
                        async with queue:
                            seen.append(queue.statistics().closed)

                nursery.start_soon(start)
                await trio.sleep(0.5)
                seen.append(queue.statistics().closed)  # entering the lifecycle
            seen.append(queue.statistics().closed)
        assert seen == [False, False, True, False, True]
