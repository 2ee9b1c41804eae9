"""
The message bus and the metrics reporter.
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog
import trio
import trio.testing

from event_collector import (
    BusEvent,
    Collector,
    CollectorQueue,
    ConsumersScaled,
    InitializedQueue,
    MessageBus,
    Ok,
    ReportedMetrics,
    ShutDownQueue,
)
from event_collector import messagebus as bus_module
from event_collector import queue as queue_module

from .conftest import METRIC_LOG_FIELDS, sleeper


def fixed(**options: Any) -> CollectorQueue[Any]:
    return CollectorQueue([Collector("a", sleeper(1))], autoscale=False, max_consumers=2, **options)


class TestHandlers:
    """Handlers get the queue's events in order, off the hot path."""

    async def test_lifecycle_events_in_order(self, autojump_clock: trio.abc.Clock) -> None:
        seen: list[tuple[str, object]] = []
        queue = fixed(report_interval=1, logging=False)

        async def on_event(msg: BusEvent, bus: MessageBus) -> None:
            assert bus is queue.get_message_bus()
            seen.append((type(msg).__name__, trio.current_time()))

        bus = queue.get_message_bus()
        for event_type in (InitializedQueue, ReportedMetrics, ShutDownQueue):
            bus.add_msg_handler(event_type, on_event)
        async with queue:
            await queue.get_publisher().send(1)
            await trio.sleep(2.5)
        assert seen == [
            ("InitializedQueue", 0),
            ("ReportedMetrics", 1),
            ("ReportedMetrics", 2),
            ("ShutDownQueue", 2.5),
        ]

    async def test_events_carry_the_queue_and_metrics(self) -> None:
        got: list[BusEvent] = []

        async def keep(msg: BusEvent, bus: MessageBus) -> None:
            got.append(msg)

        queue = fixed(report_interval=0.01, logging=False)
        queue.get_message_bus().add_msg_handler(InitializedQueue, keep)
        queue.get_message_bus().add_msg_handler(ShutDownQueue, keep)
        async with queue:
            pass
        assert got == [InitializedQueue(queue), ShutDownQueue(queue)]
        assert got[0].collector_queue is queue  # type: ignore[attr-defined]

    async def test_failing_handler_is_logged_and_harmless(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        calls: list[str] = []

        async def broken(msg: BusEvent, bus: MessageBus) -> None:
            calls.append("broken")
            raise RuntimeError("handler bug")

        async def fine(msg: BusEvent, bus: MessageBus) -> None:
            calls.append("fine")

        queue = fixed()
        bus = queue.get_message_bus()
        bus.add_msg_handler(InitializedQueue, broken)
        bus.add_msg_handler(InitializedQueue, fine)
        bus.add_msg_handler(ShutDownQueue, fine)
        with structlog.testing.capture_logs() as logs:
            async with queue:
                results = await (await queue.get_publisher().send(1)).wait()
        assert results.first() == Ok(1)
        assert calls == ["broken", "fine", "fine"]
        failures = [e for e in logs if e["event"] == "message_handler_failed"]
        assert len(failures) == 1
        assert failures[0]["bus_event"] == "InitializedQueue"
        assert isinstance(failures[0]["exc_info"], RuntimeError)

    async def test_slow_handler_does_not_block_processing(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        async def slow(msg: BusEvent, bus: MessageBus) -> None:
            await trio.sleep(1000)

        queue = fixed(consumer_shutdown_timeout=5, logging=False)
        queue.get_message_bus().add_msg_handler(InitializedQueue, slow)
        async with queue:
            await (await queue.get_publisher().send(1)).wait()
            assert trio.current_time() == 1
        # The stuck handler is cancelled once shutdown's bound has passed.
        assert trio.current_time() == 1 + 5

    async def test_scaling_is_published(self, autojump_clock: trio.abc.Clock) -> None:
        scaled: list[ConsumersScaled] = []

        async def keep(msg: ConsumersScaled, bus: MessageBus) -> None:
            scaled.append(msg)

        queue = CollectorQueue(
            [Collector("a", sleeper(0.5))], min_consumers=1, max_consumers=8, logging=False
        )
        queue.get_message_bus().add_msg_handler(ConsumersScaled, keep)
        async with queue:
            for i in range(8):
                await queue.get_publisher().send(i)
        assert scaled[0].old == 1
        assert scaled[0].new > 1
        assert scaled[0].reason == "burst"
        assert max(m.new for m in scaled) == 8

    async def test_remove_handler(self) -> None:
        calls: list[str] = []

        async def handler(msg: BusEvent, bus: MessageBus) -> None:
            calls.append("called")  # pragma: no cover

        queue = fixed(logging=False)
        bus = queue.get_message_bus()
        bus.add_msg_handler(InitializedQueue, handler)
        bus.remove_msg_handler(InitializedQueue, handler)
        with pytest.raises(ValueError, match="is not a handler"):
            bus.remove_msg_handler(InitializedQueue, handler)
        async with queue:
            pass
        assert calls == []

    def test_bad_registrations(self) -> None:
        bus = fixed().get_message_bus()

        def sync_handler(msg: BusEvent, bus: MessageBus) -> None:
            pass

        async def handler(msg: BusEvent, bus: MessageBus) -> None:
            pass  # pragma: no cover

        with pytest.raises(TypeError, match="async function"):
            bus.add_msg_handler(InitializedQueue, sync_handler)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="BusEvent subclass"):
            bus.add_msg_handler(int, handler)  # type: ignore[type-var, arg-type]  # under test


class TestReporter:
    """report_interval logs the metrics and publishes them; logging=False only publishes."""

    async def test_metrics_log_entries(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed(report_interval=0.75)  # reports at 0.75 and 1.5; the event ends at 1
        with structlog.testing.capture_logs() as logs:
            async with queue:
                await queue.get_publisher().send(1)
                await trio.sleep(1.75)
        reports = [e for e in logs if e["event"] == "collector queue metrics"]
        assert len(reports) == 2
        assert all(e["queue_id"] == queue.id and e["log_level"] == "info" for e in reports)
        assert set(reports[0]) >= METRIC_LOG_FIELDS
        assert (reports[0]["busy"], reports[1]["busy"]) == (1, 0)
        assert reports[1]["event_count"] == 1

    async def test_silent_reporter_still_publishes(self, autojump_clock: trio.abc.Clock) -> None:
        reported: list[ReportedMetrics] = []

        async def keep(msg: ReportedMetrics, bus: MessageBus) -> None:
            reported.append(msg)

        queue = fixed(report_interval=0.5, logging=False)
        queue.get_message_bus().add_msg_handler(ReportedMetrics, keep)
        with structlog.testing.capture_logs() as logs:
            async with queue:
                await trio.sleep(1.25)
        assert logs == []
        assert [m.metrics.consumers for m in reported] == [2, 2]


def test_bus_events_importable_from_queue_module() -> None:
    for name in ("InitializedQueue", "ShutDownQueue", "ReportedMetrics", "ConsumersScaled"):
        assert getattr(queue_module, name) is getattr(bus_module, name)
