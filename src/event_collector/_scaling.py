"""
Autoscaling: how many consumers the measured load needs, with hysteresis on the way down.

The rule, evaluated every ``monitor_interval`` (and at once when a send leaves an event no
consumer is free to take; see the concepts page):

- *steady demand* is Little's law's work in progress: the arrival rate times the mean
  service time. The rate is measured over the last ``RATE_SAMPLES`` samples, widened until
  it spans ``MIN_RATE_EVENTS`` arrivals (or ``RATE_HISTORY`` samples): short enough at high
  rates to see a step in load within two or three samples, long enough at low rates not to
  chase noise. The reported ``Metrics.wip`` is the same product over the metrics window;
- *burst demand*, when events are waiting, is the events waiting plus those in service;
- the target is ``clamp(max(ceil(steady * (1 + wip_margin)), burst), min, max)``: the margin
  covers the uncertainty of a prediction, while a backlog is known exactly (putting the
  margin on it too made a step in load overshoot by half).

The pool grows to the target at once. It shrinks only to the largest target of the last
``SCALE_DOWN_SAMPLES`` monitor intervals, so load hovering at a boundary does not make it
thrash, and only idle consumers are retired.

The :class:`Supervisor` is the task that samples: it feeds the metrics and, with autoscale,
the policy. When nothing is happening (no arrival since the last sample, nothing queued or in
service, a pool that cannot shrink) it stops sampling and sleeps until the next send wakes it,
so an idle queue costs nothing; the idle stretch is recorded as load 0.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, final

import trio

from ._logging import FilteringBoundLogger
from ._messagebus import ConsumersScaled

if TYPE_CHECKING:
    from ._channels import QueueChannel
    from ._messagebus import MessageBus
    from ._metrics import MetricsRecorder
    from ._pool import ConsumerPool

__all__ = [
    "MIN_RATE_EVENTS",
    "RATE_HISTORY",
    "RATE_SAMPLES",
    "SCALE_DOWN_SAMPLES",
    "ScalingPolicy",
    "Supervisor",
]

#: Monitor intervals the target must stay below the pool size before the pool shrinks:
#: enough for load hovering at a boundary not to thrash. The pool keeps its excess that long
#: after every burst and every drop in load; at ten intervals the step-load benchmark's mean
#: pool was 1.235x demand on the MockClock, at five 1.208x.
SCALE_DOWN_SAMPLES: Final = 5
#: Fewest samples behind the supervisor's arrival rate.
RATE_SAMPLES: Final = 2
#: Fewest arrivals behind the supervisor's arrival rate, when the history has them.
MIN_RATE_EVENTS: Final = 30
#: Most samples behind the supervisor's arrival rate.
RATE_HISTORY: Final = 100


@final
class ScalingPolicy:
    """
    Turns load samples into pool sizes.

    Args:
        min_consumers: Smallest pool size.
        max_consumers: Largest pool size.
        margin: ``wip_margin``, the fraction added to demand.
        interval: ``monitor_interval``, the seconds between samples.
    """

    __slots__ = (
        "_arrivals",
        "_hold",
        "_margin",
        "_peaks",
        "max_consumers",
        "min_consumers",
        "steady",
    )

    def __init__(
        self, min_consumers: int, max_consumers: int, margin: float, interval: float
    ) -> None:
        #: Smallest pool size.
        self.min_consumers = min_consumers
        #: Largest pool size.
        self.max_consumers = max_consumers
        self._margin = margin
        # A target is forgotten SCALE_DOWN_SAMPLES intervals after it was noted, less a
        # quarter interval so that a sample a little early or late (or float rounding) adds
        # or drops no sample.
        self._hold = (SCALE_DOWN_SAMPLES - 0.25) * interval
        #: Arrival rate x service time at the last sample.
        self.steady = 0.0
        # (time, arrivals) of the last RATE_HISTORY + 1 samples.
        self._arrivals: collections.deque[tuple[float, int]] = collections.deque(
            maxlen=RATE_HISTORY + 1
        )
        # (time, target) of recent samples; targets strictly decreasing from the left, so
        # the left end is the largest target held.
        self._peaks: collections.deque[tuple[float, int]] = collections.deque()

    def target(self, qsize: int, busy: int) -> int:
        """
        Return the pool size the current counts call for, without hysteresis.
        """
        wanted = math.ceil(round(self.steady * (1 + self._margin), 9))
        if qsize:
            wanted = max(wanted, qsize + busy)
        return min(max(wanted, self.min_consumers), self.max_consumers)

    def observe(self, now: float, qsize: int, busy: int, arrivals: int, service_time: float) -> int:
        """
        Take the periodic sample and return the pool size to have now.

        Growing is immediate; shrinking goes to the largest target of the last
        ``SCALE_DOWN_SAMPLES`` intervals.

        Args:
            now: Time of the sample.
            qsize: Events waiting.
            busy: Consumers processing.
            arrivals: Events sent since start.
            service_time: Mean service time of recent events (0 if none yet).
        """
        history = self._arrivals
        history.append((now, arrivals))
        self.steady = self._rate(now, arrivals) * service_time
        return self._remember(now, self.target(qsize, busy))

    def burst(self, now: float, qsize: int, busy: int, size: int) -> int:
        """
        Return the pool size for a backlog seen between samples: grow only, never shrink.

        The target is remembered like a sampled one, so the pool it grows is kept for
        ``SCALE_DOWN_SAMPLES`` intervals like any other (else a burst grew the pool and the
        next sample shrank it, over and over). A wake-up that finds the backlog gone keeps
        the pool as it is and renews no hold.

        Args:
            now: The time.
            qsize: Events waiting.
            busy: Consumers processing.
            size: The pool size now.
        """
        return max(self._remember(now, self.target(qsize, busy)), size)

    def _remember(self, now: float, target: int) -> int:
        """
        Note ``target`` and return the largest target held.
        """
        peaks = self._peaks
        while peaks and peaks[-1][1] <= target:
            peaks.pop()
        peaks.append((now, target))
        while peaks[0][0] < now - self._hold:
            peaks.popleft()
        return peaks[0][1]

    def _rate(self, now: float, arrivals: int) -> float:
        """
        Return arrivals per second over the window the module docstring describes.
        """
        history = self._arrivals
        index = max(len(history) - 1 - RATE_SAMPLES, 0)
        while index > 0 and arrivals - history[index][1] < MIN_RATE_EVENTS:
            index -= 1
        since, then = history[index]
        return (arrivals - then) / (now - since) if now > since else 0.0


@final
class Supervisor:
    """
    The task that samples the load and, with autoscale, sizes the pool; asleep when idle.

    It samples every ``monitor_interval`` while the queue is not idle.

    The publisher reads one attribute per send, :attr:`wake_above`, and calls :meth:`wake`
    when a send leaves more events queued than that: any send while the supervisor sleeps
    (-1), a backlog to grow the pool for at once while it samples.

    Args:
        pool: The consumers.
        channel: The queue's channel (events queued, arrivals).
        recorder: Where samples go.
        policy: The autoscaling policy (with the pool's bounds), or None for a fixed pool.
        interval: ``monitor_interval``.
        bus: Where ``ConsumersScaled`` is posted.
        log: The queue's logger.
        now: The run's clock.
    """

    def __init__(
        self,
        pool: ConsumerPool[Any],
        channel: QueueChannel[Any],
        recorder: MetricsRecorder,
        policy: ScalingPolicy | None,
        *,
        interval: float,
        bus: MessageBus,
        log: FilteringBoundLogger,
        now: Callable[[], float],
    ) -> None:
        self._pool = pool
        self._channel = channel
        self._recorder = recorder
        self._policy = policy
        self._interval = interval
        self._bus = bus
        self._log = log
        self._now = now
        self._wakeup = trio.Event()
        self._sent = 0  # arrivals at the last sample
        #: A send that leaves more events than this queued wakes the supervisor; -1 while
        #: it sleeps, so that any send does (one handed to a consumer leaves none).
        self.wake_above: float = self._backlog_threshold()

    def _backlog_threshold(self) -> float:
        policy = self._policy
        if policy is None:
            return math.inf
        # One queued event is usually the next of a consumer about to take it: only a
        # second one is a backlog worth growing for between samples.
        return 1 if self._pool.size < policy.max_consumers else math.inf

    def wake(self) -> None:
        """
        Wake the supervisor: a send to an idle queue, or a backlog.
        """
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def run(self) -> None:
        """
        Sample until cancelled.

        Between samples it wakes only when a send left a backlog, to grow the pool for the
        burst at once. After a stall (a long garbage collection, a host that did not run the
        process) it samples once, late, instead of once per missed interval.
        """
        interval, now = self._interval, self._now
        start = now()
        tick = 0
        while True:
            tick += 1
            next_sample = start + tick * interval
            while now() < next_sample:
                with trio.move_on_at(next_sample):
                    await self._wakeup.wait()
                if self._wakeup.is_set():
                    self._wakeup = trio.Event()
                    self._burst()
            sampled = now()
            if self._sample(sampled):
                await self._sleep()
                self._burst()  # the sends that woke it may be a burst already
                start, tick = now(), 0
            else:
                tick = max(tick, math.floor((sampled - start) / interval))

    def _sample(self, now: float) -> bool:
        """
        Take the periodic sample; return whether the queue is idle.

        Idle: nothing arrived since the last sample, nothing is queued or in service, and
        the pool cannot shrink (fixed, at ``min_consumers``, or shutting down). Nothing a
        later sample could see would change until the next send.
        """
        pool, channel, recorder = self._pool, self._channel, self._recorder
        queued, busy, size, sent = channel.queued, pool.busy, pool.size, channel.sent
        recorder.sample(now, (queued + busy) / size if size else 0.0, sent)
        policy = self._policy
        if policy is not None:
            self._resize(policy.observe(now, queued, busy, sent, recorder.mean_service_time()))
        arrived, self._sent = sent != self._sent, sent
        return (
            not arrived
            and not queued
            and not busy
            and (policy is None or pool.size <= policy.min_consumers or pool.closing)
        )

    def _burst(self) -> None:
        """
        Size the pool for a backlog seen between samples.
        """
        if self._policy is None:
            return
        pool = self._pool
        self._resize(self._policy.burst(self._now(), self._channel.queued, pool.busy, pool.size))

    async def _sleep(self) -> None:
        """
        Sleep until a send; then record the idle stretch as load 0.
        """
        self.wake_above = -1
        try:
            await self._wakeup.wait()
        finally:
            self._wakeup = trio.Event()
            self.wake_above = self._backlog_threshold()
        self._recorder.sample(self._now(), 0.0, self._channel.sent)

    def _resize(self, target: int) -> None:
        """
        Grow the pool to ``target`` at once, or retire idle consumers down to it.
        """
        pool = self._pool
        size = pool.size
        if target == size or (pool.closing and target < size):
            return
        if target > size:
            if not pool.grow(target - size):
                return  # the last consumer has left: the queue is stopping
            queued = self._channel.queued
            assert self._policy is not None
            reason = "burst" if queued and queued + pool.busy > self._policy.steady else "steady"
            self._log.debug("consumers_scaled", old=size, new=target, reason=reason)
            self._bus._post(ConsumersScaled(size, target, reason))
        elif retired := pool.retire(size - target):
            self._log.debug("consumers_scaled", old=size, new=size - retired, reason="idle")
            self._bus._post(ConsumersScaled(size, size - retired, "idle"))
        self.wake_above = self._backlog_threshold()
