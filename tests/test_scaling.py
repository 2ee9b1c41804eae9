"""
Autoscaling: the sizing rule, the reference burst, scale-down and bounds.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    ConsumersScaled,
    Context,
    MessageBus,
    Ok,
    Payload,
    Result,
)
from event_collector._metrics import MetricsRecorder
from event_collector._scaling import (
    MIN_RATE_EVENTS,
    RATE_SAMPLES,
    SCALE_DOWN_SAMPLES,
    ScalingPolicy,
)

from .conftest import pool_of, sleeper, supervisor_of


class TestPolicy:
    """The rule: clamp(ceil(max(steady, burst) * (1 + margin))), slow to shrink."""

    def test_burst_demand(self) -> None:
        policy = ScalingPolicy(1, 100, 0.15, interval=0.01)
        assert policy.target(qsize=99, busy=1) == 100  # a backlog is served exactly
        assert policy.target(qsize=9, busy=1) == 10
        assert policy.target(qsize=0, busy=1) == 1  # no backlog: steady demand only

    def test_bounds(self) -> None:
        policy = ScalingPolicy(3, 5, 0.15, interval=0.01)
        assert policy.target(qsize=0, busy=0) == 3
        assert policy.target(qsize=50, busy=5) == 5

    def test_steady_demand_is_rate_times_service_time(self) -> None:
        policy = ScalingPolicy(1, 100, 0.0, interval=0.01)
        for tick in range(10):  # 10 arrivals per 0.01 s: 1000 per second
            size = policy.observe(
                tick * 0.01, qsize=0, busy=0, arrivals=10 * tick, service_time=0.008
            )
        assert round(policy.steady, 6) == 8
        assert size == 8

    def test_a_step_is_seen_within_rate_samples(self) -> None:
        policy = ScalingPolicy(1, 1000, 0.0, interval=0.01)
        arrivals = 0
        for tick in range(20):  # 100 per second
            arrivals += 1
            policy.observe(tick * 0.01, 0, 0, arrivals, service_time=0.05)
        per_sample = math.ceil(MIN_RATE_EVENTS / RATE_SAMPLES)  # a step big enough...
        sizes = []
        for tick in range(20, 20 + RATE_SAMPLES):
            arrivals += per_sample
            sizes.append(policy.observe(tick * 0.01, 0, 0, arrivals, service_time=0.05))
        # ...is measured on its own samples only, after RATE_SAMPLES samples.
        assert sizes[-1] == math.ceil(round(per_sample / 0.01 * 0.05, 9))

    def test_low_rates_are_measured_over_more_samples(self) -> None:
        policy = ScalingPolicy(1, 1000, 0.0, interval=0.01)
        for tick in range(200):  # 1 arrival every other sample: 50 per second
            policy.observe(tick * 0.01, 0, 0, arrivals=tick // 2, service_time=0.2)
        assert round(policy.steady, 6) == round(50 * 0.2, 6)

    @pytest.mark.parametrize(
        ("interval", "late"),
        [(0.01, 0.0), (0.5, 0.0), (0.01, 0.002)],
        ids=["default interval", "long interval", "late samples"],
    )
    def test_shrinks_only_after_scale_down_samples(self, interval: float, late: float) -> None:
        policy = ScalingPolicy(1, 100, 0.0, interval=interval)
        assert policy.observe(0.0, qsize=19, busy=1, arrivals=20, service_time=0) == 20
        sizes = [policy.observe(t * interval + late, 0, 0, 20, 0) for t in range(1, 8)]
        # The burst sampled at t=0 holds the size for SCALE_DOWN_SAMPLES samples (its own
        # included), then it drops at once: counted in intervals, and a sample a little late
        # neither adds one nor drops one.
        assert SCALE_DOWN_SAMPLES == 5
        assert sizes == [20, 20, 20, 20, 1, 1, 1]

    def test_a_burst_between_samples_is_kept_for_the_delay(self) -> None:
        policy = ScalingPolicy(1, 100, 0.0, interval=0.01)
        assert policy.observe(0.0, qsize=0, busy=1, arrivals=1, service_time=0) == 1
        assert policy.burst(0.005, qsize=9, busy=1, size=1) == 10
        assert policy.burst(0.006, qsize=0, busy=1, size=10) == 10  # never shrinks
        sizes = [
            policy.observe(t * 0.01, qsize=0, busy=0, arrivals=10, service_time=0)
            for t in range(1, 9)
        ]
        # The size grown at t=0.005 is held for the next SCALE_DOWN_SAMPLES samples, not
        # dropped at t=0.01.
        assert sizes == [10, 10, 10, 10, 10, 1, 1, 1]

    def test_a_wake_up_after_the_backlog_renews_no_hold(self) -> None:
        policy = ScalingPolicy(1, 100, 0.0, interval=0.01)
        assert policy.burst(0.0, qsize=9, busy=1, size=1) == 10
        # Found no backlog: keeps the pool it has, but its size is not held anew.
        assert policy.burst(0.035, qsize=0, busy=1, size=10) == 10
        sizes = [policy.observe(t * 0.01, 0, 0, 10, 0) for t in range(4, 7)]
        assert sizes == [10, 1, 1]

    def test_no_thrashing_at_a_boundary(self) -> None:
        policy = ScalingPolicy(1, 100, 0.0, interval=0.01)
        sizes = [
            policy.observe(t * 0.01, qsize=1 if t % 2 else 0, busy=10, arrivals=t, service_time=0)
            for t in range(100)
        ]
        changes = sum(1 for a, b in itertools.pairwise(sizes) if a != b)
        assert changes <= 2


def scaling_queue(processor: Any, **options: Any) -> CollectorQueue[Any]:
    return CollectorQueue([Collector("c", processor)], logging=False, **options)


class TestSupervisor:
    """The supervisor grows the pool for load and shrinks it, within bounds, when idle."""

    async def test_reference_burst(self, autojump_clock: trio.abc.Clock) -> None:
        queue = scaling_queue(sleeper(0.25), min_consumers=1, max_consumers=100)
        async with queue:
            publisher = queue.get_publisher()
            events = [await publisher.send(i) for i in range(100)]
            for event in events:
                await event.wait()
            finished = trio.current_time()
        assert finished <= 0.25 + 2 * queue.monitor_interval

    async def test_scale_down_never_mid_event(self, autojump_clock: trio.abc.Clock) -> None:
        log: list[tuple[str, Any, float]] = []
        scaled: list[ConsumersScaled] = []

        async def on_scaled(msg: ConsumersScaled, bus: MessageBus) -> None:
            scaled.append(msg)

        queue = scaling_queue(sleeper(0.3, log), min_consumers=2, max_consumers=20)
        queue.get_message_bus().add_msg_handler(ConsumersScaled, on_scaled)
        async with queue:
            publisher = queue.get_publisher()
            for i in range(40):
                await publisher.send(i)
                await trio.sleep(0.01)
            peak = queue.consumer_count()
            await trio.sleep(5)
            settled = queue.consumer_count()
        assert peak > 2
        assert settled == 2
        starts = {value for kind, value, _ in log if kind == "start"}
        ends = {value for kind, value, _ in log if kind == "end"}
        assert starts == ends == set(range(40))
        assert any(m.reason == "idle" and m.new < m.old for m in scaled)
        assert any(m.new > m.old for m in scaled)
        assert all(2 <= m.new <= 20 for m in scaled)

    async def test_grown_consumers_count_at_once_and_take_what_waits(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        queue = scaling_queue(sleeper(1), min_consumers=1, max_consumers=10, monitor_interval=5)
        async with queue:
            await trio.testing.wait_all_tasks_blocked()
            pool_of(queue).grow(3)
            assert queue.consumer_count() == 4  # before any new consumer has run
            publisher = queue.get_publisher()
            events = [publisher.send_nowait(i) for i in range(4)]
            stats = queue.statistics()
            # one handed to the old consumer, three waiting for the new ones to start
            assert (stats.busy, stats.queued, stats.idle) == (1, 3, 3)
            results = [await event.wait() for event in events]
            assert trio.current_time() == 1  # the three new consumers took one each at once
        assert [r.first() for r in results] == [Ok(i) for i in range(4)]

    async def test_a_stall_is_one_late_sample(
        self, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert isinstance(autojump_clock, trio.testing.MockClock)
        samples: list[float] = []
        record = MetricsRecorder.sample

        def sample(self: MetricsRecorder, now: float, load: float, arrivals: int) -> None:
            samples.append(now)
            record(self, now, load, arrivals)

        monkeypatch.setattr(MetricsRecorder, "sample", sample)
        queue = scaling_queue(sleeper(10), min_consumers=1, max_consumers=10, monitor_interval=1)
        async with queue:
            await queue.get_publisher().send(0)  # busy until t=10: the supervisor stays awake
            await trio.sleep(1.5)
            autojump_clock.jump(3.2)  # no task runs from 1.5 to 4.7: the samples due are missed
            await trio.sleep(0.5)
        assert samples[:4] == [1.0, 4.7, 5.0, 6.0]  # then back on the grid

    async def test_fixed_pool_never_scales(self, autojump_clock: trio.abc.Clock) -> None:
        queue = scaling_queue(sleeper(1), autoscale=False, min_consumers=1, max_consumers=3)
        async with queue:
            publisher = queue.get_publisher()
            for i in range(30):
                await publisher.send(i)
            for _ in range(20):
                assert queue.consumer_count() == 3
                await trio.sleep(0.5)


@settings(max_examples=40, deadline=None)
@given(
    arrivals=st.lists(
        st.tuples(st.sampled_from([0.0, 0.005, 0.02, 0.1, 0.5]), st.sampled_from([0.01, 0.1, 0.5])),
        min_size=1,
        max_size=60,
    ),
    bounds=st.tuples(st.integers(1, 4), st.integers(0, 12)),
)
def test_invariants_under_random_load(
    arrivals: list[tuple[float, float]], bounds: tuple[int, int]
) -> None:
    low, extra = bounds
    high = low + extra
    samples: list[int] = []
    snapshots: list[dict[str, Any]] = []
    events: list[CollectorEvent[Any]] = []

    async def work(payload: Payload[float], ctx: Context) -> Result[float]:
        await trio.sleep(payload.value)
        return Ok(payload.value)

    async def scenario() -> None:
        queue = scaling_queue(
            work, min_consumers=low, max_consumers=high, metrics_warmup_interval=0.1
        )

        async def watch() -> None:
            while True:
                samples.append(queue.consumer_count())
                snapshots.append(attrs.asdict(queue.get_metrics()))
                await trio.sleep(0.01)

        async with queue, trio.open_nursery() as watchers:
            watchers.start_soon(watch)
            publisher = queue.get_publisher()
            for pause, service in arrivals:
                events.append(await publisher.send(service))
                await trio.sleep(pause)
            for event in events:
                await event.wait()
            final = queue.get_metrics()
            watchers.cancel_scope.cancel()
        assert final.event_count == len(events)

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    assert all(low <= size <= high for size in samples)
    assert all(event.done for event in events)
    for snapshot in snapshots:
        for name, value in snapshot.items():
            if isinstance(value, int | float):
                assert not math.isnan(value), name
                assert value >= 0, name


class TestBacklogWakeUp:
    """A send that leaves an event no consumer is free to take grows the pool at once."""

    async def test_wake_up_grows_between_samples(self, autojump_clock: trio.abc.Clock) -> None:
        queue = scaling_queue(sleeper(10), min_consumers=1, max_consumers=10, monitor_interval=5)
        async with queue:
            publisher = queue.get_publisher()
            await publisher.send(0)
            await trio.testing.wait_all_tasks_blocked()
            await publisher.send(1)
            await publisher.send(2)  # two waiting behind the busy consumer: a backlog
            await trio.testing.wait_all_tasks_blocked()
            assert trio.current_time() == 0  # long before the first sample at t=5
            assert queue.consumer_count() == 3  # two waiting + one in service

    async def test_burst_onto_an_idle_pool(self, autojump_clock: trio.abc.Clock) -> None:
        """The first event takes the idle consumer; the other nine are a backlog at once."""
        queue = scaling_queue(sleeper(5), min_consumers=1, max_consumers=20, monitor_interval=1)
        async with queue:
            await trio.testing.wait_all_tasks_blocked()
            publisher = queue.get_publisher()
            for i in range(10):
                publisher.send_nowait(i)
            assert queue.get_metrics().busy == 1  # handed its event, not yet awake
            await trio.testing.wait_all_tasks_blocked()
            assert trio.current_time() == 0  # before the first sample at t=1
            assert queue.consumer_count() == 10  # 9 waiting + 1 in service

    async def test_one_event_behind_a_waking_consumer_is_no_burst(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        """The second event is usually the next for a consumer about to wake: wait."""
        queue = scaling_queue(sleeper(5), min_consumers=1, max_consumers=20, monitor_interval=1)
        async with queue:
            await trio.testing.wait_all_tasks_blocked()
            publisher = queue.get_publisher()
            publisher.send_nowait(0)
            publisher.send_nowait(1)
            await trio.testing.wait_all_tasks_blocked()
            assert (trio.current_time(), queue.consumer_count()) == (0, 1)
            await trio.sleep(1)
            await trio.testing.wait_all_tasks_blocked()  # the sample at t=1 has run
            assert queue.consumer_count() == 2  # sized for the waiting event

    async def test_a_burst_after_shrinking_from_the_largest_pool(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        """Shrunk from max_consumers while still busy, the pool still grows for a burst."""
        queue = scaling_queue(sleeper(0.25), min_consumers=1, max_consumers=4, monitor_interval=1)
        async with queue:
            publisher = queue.get_publisher()
            for i in range(4):
                publisher.send_nowait(i)  # a burst: the pool grows to max_consumers
            await trio.sleep(0.25)
            for _ in range(20):  # then one event at a time: it shrinks back, never idle
                await trio.sleep(0.5)
                publisher.send_nowait("trickle")
            await trio.testing.wait_all_tasks_blocked()
            assert queue.consumer_count() == 1
            for i in range(3):
                publisher.send_nowait(i)  # a backlog behind the busy consumer
            await trio.testing.wait_all_tasks_blocked()
            assert trio.current_time() == 10.25  # before the next sample, at t=11
            assert queue.consumer_count() == 4

    async def test_wake_up_never_shrinks(self, autojump_clock: trio.abc.Clock) -> None:
        queue = scaling_queue(sleeper(1), min_consumers=1, max_consumers=10, monitor_interval=5)
        async with queue:
            pool_of(queue).grow(5)  # as if a burst had grown it
            await trio.testing.wait_all_tasks_blocked()  # all idle now
            supervisor_of(queue).wake()  # a wake-up that finds no load left
            await trio.testing.wait_all_tasks_blocked()
            assert trio.current_time() == 0
            assert queue.consumer_count() == 6


class TestSupervisorFailure:
    """A failing supervisor is a bug: it surfaces from async with, and nothing hangs."""

    async def test_failure_surfaces(
        self, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(self: ScalingPolicy, *args: object) -> int:
            raise RuntimeError("supervisor bug")

        monkeypatch.setattr(ScalingPolicy, "observe", broken)
        queue = scaling_queue(sleeper(10), min_consumers=1, max_consumers=4)
        events: list[CollectorEvent[Any]] = []
        with pytest.raises(ExceptionGroup) as info:
            async with queue:
                events.append(await queue.get_publisher().send(1))
                await trio.sleep_forever()
        assert info.group_contains(RuntimeError, match="supervisor bug")
        assert trio.current_time() == queue.monitor_interval  # the first sample
        assert all(event.done for event in events)


class _Steps(trio.abc.Instrument):
    """Counts every task step of the run."""

    def __init__(self) -> None:
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


class TestIdle:
    """An idle queue does not poll: its supervisor sleeps until the next send."""

    @pytest.mark.parametrize("autoscale", [False, True])
    async def test_an_idle_hour_takes_no_steps(
        self, autojump_clock: trio.abc.Clock, autoscale: bool
    ) -> None:
        queue = scaling_queue(sleeper(1), autoscale=autoscale, min_consumers=1, max_consumers=4)
        steps = _Steps()
        async with queue:
            event = await queue.get_publisher().send(0)
            await event.wait()
            await trio.sleep(1)  # a few samples see the queue idle, then it sleeps
            trio.lowlevel.add_instrument(steps)
            await trio.sleep(3600)
            trio.lowlevel.remove_instrument(steps)
        assert steps.count == 1  # this task waking up; at 10 ms it was 360 000

    async def test_the_next_send_wakes_it(self, autojump_clock: trio.abc.Clock) -> None:
        queue = scaling_queue(
            sleeper(5), min_consumers=1, max_consumers=10, monitor_interval=1, avg_load_interval=20
        )
        scaled: list[tuple[float, int]] = []

        async def on_scaled(msg: ConsumersScaled, bus: MessageBus) -> None:
            scaled.append((trio.current_time(), msg.new))

        queue.get_message_bus().add_msg_handler(ConsumersScaled, on_scaled)
        async with queue:
            await trio.sleep(100)  # asleep since the first sample
            publisher = queue.get_publisher()
            for i in range(3):
                publisher.send_nowait(i)  # one busy, two waiting: a backlog
            await trio.sleep(2)
            metrics = queue.get_metrics()
        assert scaled[0] == (100.0, 3)  # grown at once by the woken supervisor
        # The load over the last 20 s: 0 while asleep (98 s of it before), then (1 + 2) / 3
        # at the samples t=101 and 102, each held over the second before it.
        assert metrics.avg_load == pytest.approx((18 * 0 + 2 * 1) / 20)
