"""
Seeded load generators for the autoscaling tests and benchmarks.

:func:`steady_load` runs a :class:`CollectorQueue` under a steady but noisy load (Poisson
arrivals, log-normal service times) and measures how often the pool is resized and how
large it is against the offered demand. It takes its time from ``trio.current_time()``, so
it is exact and repeatable under ``trio.testing.MockClock(autojump_threshold=0)`` and
measures the host as well on the real clock (``benchmarks/run.py`` runs it both ways).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from typing import Any

import attrs
import trio
import trio.testing

from event_collector import (
    Collector,
    CollectorQueue,
    ConsumersScaled,
    Context,
    MessageBus,
    Ok,
    Payload,
    Result,
)

#: Median service time of the issue's load, in seconds.
MEDIAN_SERVICE: float = 0.015
#: Sigma of the log-normal service times (of the log of the time).
SERVICE_SIGMA: float = 0.8


def mean_service(median: float = MEDIAN_SERVICE, sigma: float = SERVICE_SIGMA) -> float:
    """
    Return the mean of a log-normal service time: ``median * exp(sigma**2 / 2)``.
    """
    return median * math.exp(sigma * sigma / 2)


@attrs.frozen
class SteadyLoad:
    """
    What :func:`steady_load` measured after its warm-up.
    """

    #: Offered arrivals per second.
    rate: float
    #: Offered demand: ``rate`` x the mean service time (consumers busy on average).
    demand: float
    #: ``ConsumersScaled`` events per second.
    resizes_per_s: float
    #: Most ``ConsumersScaled`` events in any one whole second.
    max_resizes_in_a_second: int
    #: Mean of the pool size sampled every monitor interval, over ``demand``.
    mean_pool_over_demand: float
    #: Smallest and largest pool size sampled.
    pool_range: tuple[int, int]
    #: Mean seconds an event waited for a consumer.
    mean_wait: float
    #: Fraction of the events that waited longer than one monitor interval.
    waited_fraction: float

    @property
    def mean_wait_ms(self) -> float:
        """
        ``mean_wait`` in milliseconds.
        """
        return self.mean_wait * 1e3


async def steady_load(
    rate: float,
    *,
    seed: int,
    duration: float = 8.0,
    warmup: float = 2.0,
    median: float = MEDIAN_SERVICE,
    sigma: float = SERVICE_SIGMA,
    stalls: Sequence[tuple[float, float]] = (),
    **options: Any,
) -> SteadyLoad:
    """
    Offer Poisson arrivals at ``rate`` with log-normal service times; measure the pool.

    Arrival gaps are ``expovariate(rate)``, service times ``lognormvariate(log(median),
    sigma)``, both from ``random.Random(seed)``. The queue has the default autoscale
    settings with ``min_consumers=1``, ``max_consumers=200`` (``options`` override them).
    Resizes (``ConsumersScaled`` bus events) and pool sizes (sampled every monitor
    interval) count from ``warmup`` to ``duration`` seconds after start.

    Args:
        rate: Arrivals per second.
        seed: Seed of the arrivals and service times.
        duration: Seconds of load.
        warmup: Seconds at the start not measured.
        median: Median service time.
        sigma: Sigma of the log of the service time.
        stalls: (seconds after start, seconds) of stalls of the whole process, during which
            no task runs: the MockClock jumps, the real clock is blocked in ``time.sleep``.
        options: ``CollectorQueue`` options.
    """
    rng = random.Random(seed)
    settings: dict[str, Any] = {"min_consumers": 1, "max_consumers": 200, "logging": False}
    settings.update(options)

    waits: list[float] = []  # of the events sent after the warm-up

    async def work(payload: Payload[tuple[float, float, bool]], ctx: Context) -> Result[None]:
        service, sent_at, measured = payload.value
        if measured:
            waits.append(trio.current_time() - sent_at)
        await trio.sleep(service)
        return Ok(None)

    queue = CollectorQueue([Collector("w", work)], **settings)
    start = trio.current_time()
    resized: list[float] = []

    async def on_scaled(msg: ConsumersScaled, bus: MessageBus) -> None:
        resized.append(trio.current_time() - start)

    queue.get_message_bus().add_msg_handler(ConsumersScaled, on_scaled)
    sizes: list[int] = []
    async with queue, trio.open_nursery() as nursery:
        publisher = queue.get_publisher()

        async def sample() -> None:
            due = start + warmup
            while True:
                await trio.sleep_until(due)
                sizes.append(queue.consumer_count())
                due += queue.monitor_interval

        async def stall() -> None:
            for at, seconds in stalls:
                await trio.sleep_until(start + at)
                clock = trio.lowlevel.current_clock()
                if isinstance(clock, trio.testing.MockClock):
                    clock.jump(seconds)
                else:
                    time.sleep(seconds)  # noqa: ASYNC251 (blocking every task is the point)

        nursery.start_soon(sample)
        nursery.start_soon(stall)
        due = start
        while True:
            due += rng.expovariate(rate)
            if due >= start + duration:
                break
            service = rng.lognormvariate(math.log(median), sigma)
            await trio.sleep_until(due)
            now = trio.current_time()
            publisher.send_nowait(Payload((service, now, now >= start + warmup)))
        nursery.cancel_scope.cancel()
    window = duration - warmup
    counted = [t for t in resized if warmup <= t < duration]
    per_second = [0] * math.ceil(window)
    for t in counted:
        per_second[int(t - warmup)] += 1
    demand = rate * mean_service(median, sigma)
    return SteadyLoad(
        rate=rate,
        demand=demand,
        resizes_per_s=len(counted) / window,
        max_resizes_in_a_second=max(per_second),
        mean_pool_over_demand=sum(sizes) / len(sizes) / demand,
        pool_range=(min(sizes), max(sizes)),
        mean_wait=sum(waits) / len(waits),
        waited_fraction=sum(1 for w in waits if w > queue.monitor_interval) / len(waits),
    )
