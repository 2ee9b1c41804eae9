"""
Queue metrics against hand-computed values on the MockClock.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
import structlog.testing
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector import Collector, CollectorQueue, Context, Ok, Payload, Result
from event_collector._metrics import MetricsRecorder

from .conftest import METRIC_LOG_FIELDS


async def work(payload: Payload[float], ctx: Context) -> Result[float]:
    """
    Take ``payload.value`` seconds.
    """
    await trio.sleep(payload.value)
    return Ok(payload.value)


def one_consumer(**options: Any) -> CollectorQueue[Any]:
    settings: dict[str, Any] = {
        "autoscale": False,
        "max_consumers": 1,
        "monitor_interval": 0.75,
        "metrics_collector_window_size": 5,
        "avg_load_interval": 2,
        "event_service_data_window_size": 2,
        "metrics_warmup_interval": 0,
        "logging": False,
    }
    settings.update(options)
    return CollectorQueue([Collector("w", work)], **settings)


class TestMetrics:
    """Each metric matches its definition for a scripted timeline."""

    async def test_scripted_timeline(self, autojump_clock: trio.abc.Clock) -> None:
        # One consumer; services 1, 1, 2 s sent at t=0: they run 0-1, 1-2, 2-4 and wait
        # 0, 1, 2 s. Samples every 0.75 s never fall on a boundary: loads 3, 2, 1, 1, 1, 0
        # at t = 0.75, 1.5, 2.25, 3, 3.75, 4.5, each held over the 0.75 s before it. At 4.5
        # the queue is idle (nothing arrived, queued or busy): the supervisor sleeps.
        async with one_consumer() as queue:
            publisher = queue.get_publisher()
            for seconds in (1.0, 1.0, 2.0):
                await publisher.send(seconds)
            await trio.sleep(0.5)
            early = queue.get_metrics()
            await trio.sleep_until(4.6)
            late = queue.get_metrics()
            await trio.sleep_until(8)
            later = queue.get_metrics()

        assert (early.qsize, early.busy, early.consumers, early.load) == (2, 1, 1, 3.0)
        assert early.event_count == 0
        assert early.arrival_rate == 3 / 0.5
        assert early.departure_rate == 0
        assert early.avg_load == 3  # no sample yet: the load now, held since the start
        assert early.service_time == early.wait_time == early.wip == 0

        assert (late.qsize, late.busy, late.load, late.event_count) == (0, 0, 0.0, 3)
        # The window (2.6, 4.6]: load 1 over (2.6, 3] and (3, 3.75], 0 over (3.75, 4.5], and
        # the load now, 0, since the last sample.
        assert late.avg_load == pytest.approx((1 * 0.4 + 1 * 0.75 + 0 * 0.75 + 0 * 0.1) / 2)
        assert late.service_time == (1 + 2) / 2  # the last two events (window of 2)
        assert late.wait_time == (1 + 2) / 2
        assert late.arrival_rate == 3 / 4.6  # younger than the 5 s window: since start
        assert late.departure_rate == 3 / 4.6
        assert late.wip == late.arrival_rate * late.service_time

        # At t=8 the rate window starts at the t=3 sample: 0 arrivals, 1 departure (t=4).
        assert later.arrival_rate == 0
        assert later.departure_rate == 1 / 5
        assert later.wip == 0
        assert later.event_count == 3

    async def test_warmup_zeroes_averages_only(self, autojump_clock: trio.abc.Clock) -> None:
        async with one_consumer(metrics_warmup_interval=3) as queue:
            publisher = queue.get_publisher()
            await publisher.send(1.0)  # runs 0-1: load 1 at t=0.75, idle at 1.5 (asleep)
            await trio.sleep_until(2)
            await publisher.send(10.0)  # runs 2-12; wakes the supervisor: samples at 2.75...
            await trio.sleep_until(2.9)
            warming = queue.get_metrics()
            await trio.sleep_until(3.1)
            warm = queue.get_metrics()
        assert warming.event_count == 1
        assert warming.arrival_rate == 2 / 2.9
        assert warming.load == 1
        averages = [warming.avg_load, warming.service_time, warming.wait_time, warming.wip]
        assert averages == [0, 0, 0, 0]
        # The window (1.1, 3.1]: load 0 over (1.1, 1.5] and the idle (1.5, 2], 1 over
        # (2, 2.75] and, the load now, since.
        assert warm.avg_load == pytest.approx((0 * 0.4 + 0 * 0.5 + 1 * 0.75 + 1 * 0.35) / 2)
        assert warm.service_time == 1
        assert warm.wait_time == 0
        assert warm.wip == (2 / 3.1) * 1

    async def test_not_started(self) -> None:
        with pytest.raises(RuntimeError, match="not been started"):
            one_consumer().get_metrics()

    def test_log_fields(self) -> None:
        recorder = MetricsRecorder(
            start=0, service_window=3, rate_window=5, load_window=5, warmup=0
        )
        fields = recorder.snapshot(1.0, 0, 0, 0, 1).as_log_fields()
        assert set(fields) == METRIC_LOG_FIELDS
        assert isinstance(fields["metrics_timestamp"], str)


class TestRecorder:
    """The recorder's windows are bounded and never report negative values."""

    def test_service_ring_keeps_the_last_events(self) -> None:
        recorder = MetricsRecorder(
            start=0, service_window=3, rate_window=5, load_window=5, warmup=0
        )
        for service in (8.0, 1.0, 2.0, 3.0):
            recorder.served(0.5, service)
        metrics = recorder.snapshot(1.0, 4, 0, 0, 1)
        assert metrics.service_time == (1 + 2 + 3) / 3
        assert metrics.wait_time == 0.5
        assert metrics.event_count == 4

    def test_no_consumers_means_zero_load(self) -> None:
        recorder = MetricsRecorder(
            start=0, service_window=3, rate_window=5, load_window=5, warmup=0
        )
        metrics = recorder.snapshot(0.0, 0, 4, 0, 0)
        assert metrics.load == 0
        assert metrics.arrival_rate == 0  # no time has passed
        assert all(
            not (isinstance(value, float) and (math.isnan(value) or value < 0))
            for value in attrs.asdict(metrics).values()
        )


class TestNoDrift:
    """Running sums do not drift: a window of zero load reads exactly 0."""

    @settings(max_examples=200, deadline=None)
    @given(
        loads=st.lists(
            st.floats(0, 50, allow_nan=False, allow_subnormal=False), min_size=1, max_size=300
        ),
        idle=st.integers(1, 50),
    )
    def test_zero_after_a_window_of_zeros(self, loads: list[float], idle: int) -> None:
        recorder = MetricsRecorder(
            start=0, service_window=3, rate_window=5, load_window=1, warmup=0
        )
        now = 0.0
        for load in loads:
            now += 0.01
            recorder.sample(now, load, 0)
        for _ in range(100 + idle):  # the load window (1 s) and then some, all idle
            now += 0.01
            recorder.sample(now, 0.0, 0)
        assert recorder.snapshot(now, 0, 0, 0, 1).avg_load == 0.0

    def test_long_run_keeps_the_mean(self) -> None:
        recorder = MetricsRecorder(
            start=0, service_window=3, rate_window=5, load_window=1, warmup=0
        )
        for i in range(1, 200_001):
            recorder.sample(i * 0.01, 0.1 * (i % 7), 0)
        metrics = recorder.snapshot(2000.0, 0, 0, 0, 1)
        exact = sum(0.1 * (i % 7) for i in range(199_901, 200_001)) / 100
        assert metrics.avg_load == pytest.approx(exact, rel=1e-12)


class TestHistograms:
    """Service and wait times counted in buckets, when the queue has time_buckets."""

    async def test_scripted_timeline(self, autojump_clock: trio.abc.Clock) -> None:
        # One consumer; services 1, 1, 2 s sent at t=0 wait 0, 1, 2 s (as above).
        async with one_consumer(time_buckets=[0.5, 1, 2]) as queue:
            before = queue.histograms()
            publisher = queue.get_publisher()
            events = [await publisher.send(seconds) for seconds in (1.0, 1.0, 2.0)]
            for event in events:
                await event.wait()
            histograms = queue.histograms()
        assert before is not None
        assert before.service.counts == (0, 0, 0, 0)
        assert histograms is not None
        # A value on a bound counts in that bound's bucket (Prometheus' "le").
        assert histograms.service.bounds == (0.5, 1.0, 2.0)
        assert histograms.service.counts == (0, 2, 1, 0)
        assert histograms.service.sum == 4.0
        assert histograms.service.count == 3
        assert histograms.wait.counts == (1, 1, 1, 0)
        assert histograms.wait.sum == 3.0
        assert histograms.wait.cumulative() == [(0.5, 1), (1.0, 2), (2.0, 3), (math.inf, 3)]

    async def test_above_every_bound(self, autojump_clock: trio.abc.Clock) -> None:
        async with one_consumer(time_buckets=[0.5]) as queue:
            await (await queue.get_publisher().send(3.0)).wait()
        histograms = queue.histograms()
        assert histograms is not None
        assert histograms.service.counts == (0, 1)
        assert histograms.service.cumulative() == [(0.5, 0), (math.inf, 1)]

    async def test_none_without_buckets(self, autojump_clock: trio.abc.Clock) -> None:
        queue = one_consumer()
        assert queue.time_buckets is None
        assert queue.histograms() is None
        async with queue:
            await (await queue.get_publisher().send(1.0)).wait()
            assert queue.histograms() is None

    def test_not_started(self) -> None:
        histograms = one_consumer(time_buckets=(1, 2)).histograms()
        assert histograms is not None
        assert histograms.service.counts == histograms.wait.counts == (0, 0, 0)
        assert histograms.service.sum == 0.0

    @pytest.mark.parametrize(
        ("buckets", "error", "message"),
        [
            ([], ValueError, "time_buckets must not be empty"),
            ("1", TypeError, "time_buckets must be a sequence of numbers"),
            ([1, "2"], TypeError, "time_buckets must be numbers"),
            ([True], TypeError, "time_buckets must be numbers"),
            ([0, 1], ValueError, "time_buckets must be > 0 and finite"),
            ([1, math.inf], ValueError, "time_buckets must be > 0 and finite"),
            ([1, 1], ValueError, "time_buckets must be increasing"),
            ([2, 1], ValueError, "time_buckets must be increasing"),
        ],
    )
    def test_invalid(self, buckets: Any, error: type[Exception], message: str) -> None:
        with pytest.raises(error, match=message):
            one_consumer(time_buckets=buckets)


class TestName:
    """A queue's name: its option, its default and its log entries."""

    def test_default(self) -> None:
        queue = one_consumer()
        assert queue.name == "default"
        assert repr(queue).startswith(f"<CollectorQueue 'default' {queue.id} ")

    async def test_in_log_entries(self, autojump_clock: trio.abc.Clock) -> None:
        with structlog.testing.capture_logs() as logs:
            async with one_consumer(name="orders", logging=True):
                pass
        starting = [entry for entry in logs if entry["event"] == "queue_starting"]
        assert [entry["name"] for entry in starting] == ["orders"]

    @pytest.mark.parametrize(
        ("name", "error"), [("", ValueError), (3, TypeError), (None, TypeError)]
    )
    def test_invalid(self, name: Any, error: type[Exception]) -> None:
        with pytest.raises(error, match="name must"):
            one_consumer(name=name)
