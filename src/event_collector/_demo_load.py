"""
The demo's load and what it measures: no output here, so all of it runs on a MockClock.

:func:`arrival_schedule` draws the events of a run: arrival times whose rate rises from 0,
peaks halfway through ``duration`` and falls back to 0 (a density proportional to
``sin(pi * t / duration) ** 2``), and a service time for each (log-normal around
``service_time``), both from ``seed``. :func:`run_load` sends them to a :class:`Target` (an
in-process queue from :func:`local_target`, or the distributed mode of ``_demo_remote``) at
their times, waits for every result, hands a :class:`Sample` to a view every ``tick`` and
returns a :class:`DemoReport`.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol, final

import attrs
import trio

from ._collector import Collector
from ._data import Context, Ok, Payload, Result
from ._event import SentEvent
from ._messagebus import ConsumersScaled, MessageBus
from ._queue import CollectorQueue

__all__ = [
    "RATE_WINDOW",
    "SERVICE_SIGMA",
    "Arrival",
    "DemoConfig",
    "DemoReport",
    "PoolState",
    "Sample",
    "Summary",
    "Target",
    "arrival_schedule",
    "demo_collectors",
    "intended_rate",
    "local_target",
    "run_load",
]

#: Sigma of the log-normal service times (a coefficient of variation of 0.53).
SERVICE_SIGMA: Final = 0.5
#: Seconds behind the arrival and completion rates of a sample.
RATE_WINDOW: Final = 0.5


@final
@attrs.frozen
class DemoConfig:
    """
    One run of the demo: the load and the pool it runs on.
    """

    #: Events sent over the run.
    events: int = 2000
    #: Seconds over which they arrive.
    duration: float = 7.0
    #: Mean seconds an event takes to process.
    service_time: float = 0.1
    #: Smallest pool (of each worker, in the distributed mode).
    min_consumers: int = 1
    #: Largest pool (of each worker, in the distributed mode).
    max_consumers: int = 100
    #: Seed of the arrival and service times.
    seed: int = 0
    #: Seconds between two samples.
    tick: float = 0.1

    @property
    def peak_rate(self) -> float:
        """
        The intended arrival rate halfway through, twice the mean rate.
        """
        return 2 * self.events / self.duration


@final
@attrs.frozen
class Arrival:
    """
    One event of the schedule: when it is sent and how long it takes.
    """

    #: Seconds after the start of the run.
    at: float
    #: Seconds its processor sleeps.
    work: float


def intended_rate(config: DemoConfig, t: float) -> float:
    """
    Return the arrival rate the schedule is drawn from at ``t`` seconds (events/s).
    """
    if not 0 <= t <= config.duration:
        return 0.0
    return config.peak_rate * math.sin(math.pi * t / config.duration) ** 2


def arrival_schedule(config: DemoConfig) -> tuple[Arrival, ...]:
    """
    Draw the run's events, in order of arrival; the same for the same config.

    The arrival times are ``config.events`` points of a Poisson process whose rate is
    :func:`intended_rate` (drawn by rejection and sorted); the service times are log-normal
    with mean ``config.service_time`` and sigma :data:`SERVICE_SIGMA`.
    """
    rng = random.Random(config.seed)
    times: list[float] = []
    while len(times) < config.events:
        t = rng.random() * config.duration
        if rng.random() < math.sin(math.pi * t / config.duration) ** 2:
            times.append(t)
    times.sort()
    if config.service_time == 0:
        return tuple(Arrival(t, 0.0) for t in times)
    mu = math.log(config.service_time) - SERVICE_SIGMA**2 / 2
    return tuple(Arrival(t, rng.lognormvariate(mu, SERVICE_SIGMA)) for t in times)


async def process(payload: Payload[dict[str, Any]], ctx: Context) -> Result[int]:
    """
    Sleep the event's ``work`` seconds (the demo's processor); return its number.
    """
    await trio.sleep(payload.value["work"])
    return Ok(payload.value["i"])


def demo_collectors() -> list[Collector[int]]:
    """
    Return the demo's one collector (also what its worker processes load).
    """
    return [Collector("demo", process)]


@final
@attrs.frozen
class PoolState:
    """
    What a target's consumer pool is doing now.
    """

    #: Consumers of each pool (one per worker process in the distributed mode).
    pools: tuple[int, ...]
    #: Consumers with an event in hand.
    busy: int
    #: Events waiting for a consumer (at the gateway too, in the distributed mode).
    queued: int
    #: Mean seconds in service of the recent events (``Metrics.service_time``).
    service_time: float
    #: Mean seconds the recent events waited for a consumer (``Metrics.wait_time``).
    wait_time: float
    #: Times the autoscaler resized the pool(s) so far.
    resizes: int

    @property
    def consumers(self) -> int:
        """
        Consumers in all the pools.
        """
        return sum(self.pools)

    @property
    def load(self) -> float:
        """
        ``(queued + busy) / consumers``, as ``Metrics.load``: above 1, events wait.
        """
        return (self.queued + self.busy) / self.consumers if self.consumers else 0.0


class Target(Protocol):
    """
    Where the demo sends its events: an in-process queue, or a gateway and its workers.
    """

    async def send(self, payload: Payload[Any]) -> SentEvent[Any]:
        """
        Send one event.
        """
        ...

    def pool(self) -> PoolState:
        """
        Return what the consumer pools are doing now.
        """
        ...

    async def final_metrics(self) -> dict[str, Any]:
        """
        Return the metrics the run ends with, as JSON-ready values.
        """
        ...


@final
class _LocalTarget:
    def __init__(self, queue: CollectorQueue[int]) -> None:
        self._queue = queue
        self._publisher = queue.get_publisher()
        self._resizes = 0
        queue.get_message_bus().add_msg_handler(ConsumersScaled, self._scaled)

    async def _scaled(self, message: ConsumersScaled, bus: MessageBus) -> None:
        self._resizes += 1

    async def send(self, payload: Payload[Any]) -> SentEvent[Any]:
        return await self._publisher.send(payload)

    def pool(self) -> PoolState:
        stats = self._queue.statistics()
        metrics = self._queue.get_metrics()
        return PoolState(
            pools=(stats.consumers,),
            busy=stats.busy,
            queued=stats.queued,
            service_time=metrics.service_time,
            wait_time=metrics.wait_time,
            resizes=self._resizes,
        )

    async def final_metrics(self) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return self._queue.get_metrics().as_log_fields()


@asynccontextmanager
async def local_target(config: DemoConfig) -> AsyncIterator[Target]:
    """
    Run the demo's collector in an in-process queue, for ``async with``.

    The queue logs nothing (the demo shows its metrics) and its averages have no warm-up.
    """
    queue = CollectorQueue(
        demo_collectors(),
        min_consumers=config.min_consumers,
        max_consumers=config.max_consumers,
        metrics_warmup_interval=0,
        logging=False,
    )
    async with queue:
        yield _LocalTarget(queue)


@final
@attrs.frozen
class Sample:
    """
    The run at one tick: what was sent and done, the rates, and the pool.
    """

    #: Seconds since the run started.
    time: float
    #: The schedule's arrival rate now (events/s).
    intended_rate: float
    #: Events sent per second over the last :data:`RATE_WINDOW`.
    arrival_rate: float
    #: Events resolved per second over the last :data:`RATE_WINDOW`.
    completion_rate: float
    #: Events sent so far.
    sent: int
    #: Events resolved so far.
    done: int
    #: Events resolved with an error so far.
    failed: int
    #: Events in the run.
    total: int
    #: The pool(s).
    pool: PoolState

    @property
    def demand(self) -> float:
        """
        Little's law: the consumers the arrival rate keeps busy (rate x service time).
        """
        return self.arrival_rate * self.pool.service_time


@final
@attrs.frozen
class Summary:
    """
    The numbers a run ends with.
    """

    #: Events sent.
    events: int
    #: Events resolved with ``Ok``.
    ok: int
    #: Events resolved with an ``Error``.
    failed: int
    #: Seconds from the start to the last result.
    elapsed: float
    #: Events resolved per second over ``elapsed``.
    throughput: float
    #: Highest arrival rate of a sample (events/s).
    peak_arrival_rate: float
    #: Seconds from send to result: mean, median, 99th percentile, largest.
    latency_mean: float
    latency_p50: float
    latency_p99: float
    latency_max: float
    #: Mean service time of the last events (``Metrics.service_time``).
    service_time: float
    #: Largest, time-averaged and last pool size (all pools together).
    peak_consumers: int
    mean_consumers: float
    final_consumers: int
    #: Times the autoscaler resized the pool(s).
    resizes: int
    #: Highest load of a sample.
    peak_load: float


@final
@attrs.frozen
class DemoReport:
    """
    A finished run: its config, its samples, its summary and the target's last metrics.
    """

    config: DemoConfig
    samples: tuple[Sample, ...]
    summary: Summary
    metrics: dict[str, Any]


@final
class _Tracker:
    """
    Counts sends and results, and the rates over the last :data:`RATE_WINDOW`.
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self.sent = 0
        self.done = 0
        self.failed = 0
        self.latencies: list[float] = []
        self._sends: collections.deque[float] = collections.deque()
        self._dones: collections.deque[float] = collections.deque()

    def record_send(self, now: float) -> None:
        self.sent += 1
        self._sends.append(now)

    def record_result(self, now: float, latency: float, *, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        self.latencies.append(latency)
        self._dones.append(now)

    def rates(self, now: float) -> tuple[float, float]:
        span = min(RATE_WINDOW, now - self.start)
        if span <= 0:
            return 0.0, 0.0
        for times in (self._sends, self._dones):
            while times and times[0] <= now - RATE_WINDOW:
                times.popleft()
        return len(self._sends) / span, len(self._dones) / span


async def run_load(
    config: DemoConfig,
    target: Target,
    view: Callable[[Sample], None] | None = None,
) -> DemoReport:
    """
    Send the schedule's events to ``target`` at their times; return once all resolved.

    ``view`` gets a :class:`Sample` every ``config.tick`` seconds and the last one at the
    end. On cancellation the events not sent yet are dropped and the sampler stops; the
    target resolves those it holds as it shuts down.
    """
    schedule = arrival_schedule(config)
    start = trio.current_time()
    tracker = _Tracker(start)
    samples: list[Sample] = []

    def take(now: float) -> Sample:
        arrival_rate, completion_rate = tracker.rates(now)
        return Sample(
            time=now - start,
            intended_rate=intended_rate(config, now - start),
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            sent=tracker.sent,
            done=tracker.done,
            failed=tracker.failed,
            total=len(schedule),
            pool=target.pool(),
        )

    def show(sample: Sample) -> None:
        if samples and samples[-1].time == sample.time:
            samples[-1] = sample
        else:
            samples.append(sample)
        if view is not None:
            view(sample)

    async def sample_every_tick() -> None:
        tick = 0
        while True:
            show(take(trio.current_time()))
            tick += 1
            await trio.sleep_until(start + tick * config.tick)

    async def wait_for(event: SentEvent[Any], sent_at: float) -> None:
        results = await event.wait()
        now = trio.current_time()
        tracker.record_result(now, now - sent_at, ok=isinstance(results.first(), Ok))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample_every_tick)
        async with trio.open_nursery() as waiters:
            for number, arrival in enumerate(schedule):
                await trio.sleep_until(start + arrival.at)
                event = await target.send(Payload({"i": number, "work": arrival.work}))
                now = trio.current_time()
                tracker.record_send(now)
                waiters.start_soon(wait_for, event, now)
        nursery.cancel_scope.cancel()
    show(take(trio.current_time()))
    return DemoReport(
        config=config,
        samples=tuple(samples),
        summary=_summarize(tracker, samples),
        metrics=await target.final_metrics(),
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    """
    Return the nearest-rank percentile of sorted values (0 for none).
    """
    if not ordered:
        return 0.0
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def _summarize(tracker: _Tracker, samples: list[Sample]) -> Summary:
    last = samples[-1]
    latencies = sorted(tracker.latencies)
    return Summary(
        events=tracker.sent,
        ok=tracker.done - tracker.failed,
        failed=tracker.failed,
        elapsed=last.time,
        throughput=tracker.done / last.time if last.time > 0 else 0.0,
        peak_arrival_rate=max(sample.arrival_rate for sample in samples),
        latency_mean=sum(latencies) / len(latencies) if latencies else 0.0,
        latency_p50=_percentile(latencies, 0.5),
        latency_p99=_percentile(latencies, 0.99),
        latency_max=latencies[-1] if latencies else 0.0,
        service_time=last.pool.service_time,
        peak_consumers=max(sample.pool.consumers for sample in samples),
        mean_consumers=sum(sample.pool.consumers for sample in samples) / len(samples),
        final_consumers=last.pool.consumers,
        resizes=last.pool.resizes,
        peak_load=max(sample.pool.load for sample in samples),
    )
