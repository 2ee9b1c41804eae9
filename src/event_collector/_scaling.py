"""
Autoscaling: how many consumers the measured load needs, sized for Poisson noise.

Even a perfectly measured Poisson flow keeps a random number of consumers busy, about its
demand ``d`` give or take ``sqrt(d)``; a pool that follows that number is resized dozens of
times a second. So the rule sizes the pool for the noise instead, and moves it only for a
change that the noise does not explain. Every ``monitor_interval`` (and, for a backlog,
between samples):

- *demand* ``d`` is Little's law's work in progress: the arrival rate times the mean service
  time. The rate is measured since the last change in load, over at most ``RATE_HISTORY``
  (100) samples, a second at the default interval (500 arrivals give it to 4.5%). A *change*
  is declared when the arrivals of the last ``RATE_SAMPLES`` (2) samples, widened until
  they span ``MIN_RATE_EVENTS`` (30) arrivals, are more than ``CHANGE_Z`` (4) standard
  deviations from what the rate before them predicts: under one rate their share of the
  arrivals is binomial, with their share of the time as the probability, and chance goes
  that far once in 16,000 samples while a tenfold step does on its first. The rate is then
  measured afresh from the last sample. The rate before must span ``RATE_SAMPLES`` samples
  itself, and no change is declared for ``RATE_SAMPLES + 1`` samples from one that comes more
  than two intervals late: the process stalled, and the arrivals held up meanwhile come in a
  flood that is no change in load;
- the *margin* is ``max(NOISE_MARGIN * sqrt(d), wip_margin * d)``. ``NOISE_MARGIN`` (1) is
  the beta of square-root staffing: one standard deviation of the busy count spare, with
  which an M/M/c queue (Erlang C) makes 19% to 23% of events wait at demands of 2 to 41,
  those for a quarter of a service time on average at a demand of 10. ``wip_margin`` (0.15)
  covers the error of the measured demand, which grows with ``d``, not its square root (a
  mean of 500 service times of coefficient of variation 1 is off by 4.5%: 15% is three
  standard errors); it is the larger part above a demand of ``(1 / 0.15) ** 2`` = 44;
- the *target* is ``clamp(ceil(d + margin), min_consumers, max_consumers)``: 4 for a
  demand of 2, 14 for 10, 48 for 41, 115 for 100;
- a *backlog* counts when the events waiting exceed the consumers free to take them (idle,
  or spawned and not yet running) by more than ``wake_backlog = floor(WAKE_BACKLOG *
  sqrt(d))`` (``WAKE_BACKLOG`` is 4; 12 at a demand of 10, 0 before one is measured). With
  the pool at the target, an M/M/c queue gets that long 0.4% of the time at demands of 2 to
  41: smaller backlogs are the noise the margin absorbs. A counted backlog asks, at once,
  for the events waiting plus those in service, which is known exactly.

Hysteresis: the pool keeps its size while it lies in the *band* from ``d`` to ``d +
SHRINK_MARGINS * margin`` (``SHRINK_MARGINS`` is 2), the target give or take one margin;
the measured demand wobbles by 0.2 to 0.3 of ``sqrt(d)`` (500 to 2000 events/s), so the
edges are three to five wobbles away. The pool grows at once to the target when it falls
below ``d``, or to a counted backlog. It shrinks to the target when it rises above the
band, but only to the largest size asked for in the last ``SCALE_DOWN_SAMPLES`` (5) samples
(the *hold*: a quiet spell shorter than that is no drop in load), and only once the events
present (waiting and in service) fit in the smaller pool, so that it shrinks in one step,
not one consumer at a time as busy ones finish. For the ``SCALE_DOWN_SAMPLES + 1`` samples
after a change in load (and after start) the band is off and the pool follows the target,
so that a size set from the first, noisiest estimate leaves the hold instead of being
kept. Only idle consumers are retired.

The :class:`Supervisor` is the task that samples: it feeds the metrics and, with autoscale,
the policy. When nothing is happening (no arrival since the last sample, nothing queued or in
service, a pool that cannot shrink) it stops sampling and sleeps until the next send wakes it,
so an idle queue costs nothing; the idle stretch is recorded as load 0.

Interface (what a supervisor and a publisher call; nothing else is needed):

- every ``monitor_interval``, ``size = policy.observe(now, queued, busy, size, arrivals,
  service_time)``, then grow the pool to ``size`` or retire idle consumers down to it;
- after a send that leaves ``queued`` events no consumer is free to take, wake the
  supervisor if ``policy.wakes(queued, size)`` (``queued > policy.wake_backlog`` and the
  pool is below ``max_consumers``; ``wake_backlog`` changes only in ``observe``); once
  woken, ``size = policy.burst(now, queued, busy, size)``, then grow the pool to ``size``.

``queued`` is the events sent and not yet taken by a consumer, ``busy`` the consumers
processing or handed an event, ``size`` every consumer spawned and not yet exited,
``arrivals`` the events sent since start, ``service_time`` the mean of recent service
times (0 before any).
"""

from __future__ import annotations

import bisect
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
    "CHANGE_Z",
    "MIN_RATE_EVENTS",
    "NOISE_MARGIN",
    "RATE_HISTORY",
    "RATE_SAMPLES",
    "SCALE_DOWN_SAMPLES",
    "SHRINK_MARGINS",
    "WAKE_BACKLOG",
    "ScalingPolicy",
    "Supervisor",
]

#: Monitor intervals a smaller size must be asked for before the pool shrinks (the hold):
#: a quiet spell shorter than that (50 ms by default) is no drop in load.
SCALE_DOWN_SAMPLES: Final = 5
#: Fewest samples behind the short-window rate that detects a change in load: short, so
#: that a tenfold step shows on its first sample (from 200 events/s: 30 arrivals in six
#: samples where 12 were due, 5.4 standard deviations).
RATE_SAMPLES: Final = 2
#: Fewest arrivals behind the short-window rate, when the history has them: enough for the
#: binomial test to be near normal.
MIN_RATE_EVENTS: Final = 30
#: Most samples behind the arrival rate: a second at the default ``monitor_interval``, 500
#: arrivals at 500 events/s, which give it to 4.5%.
RATE_HISTORY: Final = 100
#: Spare consumers per square root of demand (the beta of square-root staffing): one
#: standard deviation of a Poisson busy count, so that about a fifth of events wait.
NOISE_MARGIN: Final = 1.0
#: Margins of spare consumers beyond which the pool shrinks: the band is the target give
#: or take one margin, three to five times the wobble of the measured demand.
SHRINK_MARGINS: Final = 2.0
#: Events waiting per square root of demand beyond which a backlog grows the pool: Poisson
#: noise takes the queue of a pool at the target that far 0.4% of the time.
WAKE_BACKLOG: Final = 4.0
#: Standard deviations between the short window's arrivals and the rate before it that
#: make a change in load: chance goes that far once in 16,000 samples.
CHANGE_Z: Final = 4.0


@final
class ScalingPolicy:
    """
    Turns load samples into pool sizes (the rule is in the module docstring).

    Args:
        min_consumers: Smallest pool size.
        max_consumers: Largest pool size.
        margin: ``wip_margin``, the fraction of demand kept spare at high demand.
        interval: ``monitor_interval``, the seconds between samples.
    """

    __slots__ = (
        "_arrivals",
        "_calm",
        "_hold",
        "_late",
        "_margin",
        "_peaks",
        "_settle",
        "_since",
        "_young",
        "max_consumers",
        "min_consumers",
        "steady",
        "wake_backlog",
    )

    def __init__(
        self, min_consumers: int, max_consumers: int, margin: float, interval: float
    ) -> None:
        #: Smallest pool size.
        self.min_consumers = min_consumers
        #: Largest pool size.
        self.max_consumers = max_consumers
        self._margin = margin
        # A size asked for is forgotten SCALE_DOWN_SAMPLES intervals after it was asked
        # for, less a quarter interval so that a sample a little early or late (or float
        # rounding) adds or drops no sample.
        self._hold = (SCALE_DOWN_SAMPLES - 0.25) * interval
        # The band is off until the rate spans this long: one sample more than the hold,
        # so that the size asked for on the first sample after a change has expired.
        self._settle = (SCALE_DOWN_SAMPLES + 1.25) * interval
        #: Demand (arrival rate x mean service time) at the last sample.
        self.steady = 0.0
        #: Events waiting beyond which a backlog grows the pool; set at each sample.
        self.wake_backlog = 0
        # (time, arrivals) of the last RATE_HISTORY + 1 samples.
        self._arrivals: collections.deque[tuple[float, int]] = collections.deque(
            maxlen=RATE_HISTORY + 1
        )
        # Time of the sample the rate is measured from since the last change in load.
        self._since = -math.inf
        # A sample this long after the previous one follows a stall of the process, whose
        # held-up arrivals come in a flood after it: no change is declared for the
        # RATE_SAMPLES + 1 samples from it (``_calm`` counts them down).
        self._late = 2 * interval
        self._calm = 0
        self._young = True
        # (time, size) asked for by recent samples; sizes strictly decreasing from the
        # left, so the left end is the largest size held.
        self._peaks: collections.deque[tuple[float, int]] = collections.deque()

    def margin(self, demand: float) -> float:
        """
        Return the spare consumers to keep for ``demand``.
        """
        return max(NOISE_MARGIN * math.sqrt(demand), self._margin * demand)

    def need(self, demand: float) -> int:
        """
        Return the target pool size for ``demand``: ``ceil(demand + margin)``, clamped.
        """
        return self._clamp(math.ceil(round(demand + self.margin(demand), 9)))

    def target(self, qsize: int, busy: int) -> int:
        """
        Return the pool size the last demand and these counts call for, without hysteresis.
        """
        wanted = self.need(self.steady)
        if qsize > self.wake_backlog:
            wanted = max(wanted, self._clamp(qsize + busy))
        return wanted

    def wakes(self, queued: int, size: int) -> bool:
        """
        Return whether a send that left ``queued`` events waiting should wake the supervisor.
        """
        return queued > self.wake_backlog and size < self.max_consumers

    def observe(
        self, now: float, qsize: int, busy: int, size: int, arrivals: int, service_time: float
    ) -> int:
        """
        Take the periodic sample and return the pool size to have now.

        Args:
            now: Time of the sample.
            qsize: Events waiting.
            busy: Consumers processing (or handed an event).
            size: The pool size now.
            arrivals: Events sent since start.
            service_time: Mean service time of recent events (0 if none yet).
        """
        self._arrivals.append((now, arrivals))
        demand = self.steady = self._rate(now, arrivals) * service_time
        # Events waiting beyond the consumers free to take them (idle, or spawned and not
        # yet running) make a backlog when there are more than wake_backlog of them, for
        # the demand just measured (the bound later sends are held to as well).
        self.wake_backlog = math.floor(WAKE_BACKLOG * math.sqrt(demand))
        backlog = qsize + busy if qsize + busy - size > self.wake_backlog else 0
        top = demand + SHRINK_MARGINS * self.margin(demand)
        if backlog > size or size < demand:
            asked = max(self.need(demand), self._clamp(backlog))
        elif size > top or self._young:
            asked = self.need(demand)
        else:  # in the band: ask for what is held, renewing it
            asked = min(self._clamp(size), self._held(now, size))
        wanted = self._remember(now, asked)
        if wanted < size and qsize + busy > wanted:
            return size  # wait for busy consumers, then shrink in one step
        return wanted

    def burst(self, now: float, qsize: int, busy: int, size: int) -> int:
        """
        Return the pool size for a backlog seen between samples: grow only, never shrink.

        A backlog of more than ``wake_backlog`` events asks for the events waiting plus
        those in service, and the size is held like a sampled one. A wake-up that finds
        the backlog gone (or within ``wake_backlog``) keeps the pool as it is and renews
        no hold.

        Args:
            now: The time.
            qsize: Events waiting.
            busy: Consumers processing (or handed an event).
            size: The pool size now.
        """
        if qsize + busy - size <= self.wake_backlog:
            return size
        return max(self._remember(now, self._clamp(qsize + busy)), size)

    def _clamp(self, size: int) -> int:
        return min(max(size, self.min_consumers), self.max_consumers)

    def _held(self, now: float, default: int) -> int:
        """
        Return the largest size asked for within the hold, or ``default`` if none.
        """
        peaks = self._peaks
        while peaks and peaks[0][0] < now - self._hold:
            peaks.popleft()
        return peaks[0][1] if peaks else default

    def _remember(self, now: float, size: int) -> int:
        """
        Note ``size`` as asked for and return the largest size held.
        """
        peaks = self._peaks
        while peaks and peaks[-1][1] <= size:
            peaks.pop()
        peaks.append((now, size))
        return self._held(now, size)

    def _rate(self, now: float, arrivals: int) -> float:
        """
        Return arrivals per second since the last change in load (see the module docstring).
        """
        history = self._arrivals
        last = len(history) - 1
        if last and now - history[last - 1][0] > self._late:
            self._calm = RATE_SAMPLES + 1
        elif self._calm:
            self._calm -= 1
        short = max(last - RATE_SAMPLES, 0)
        while short > 0 and arrivals - history[short][1] < MIN_RATE_EVENTS:
            short -= 1
        first = bisect.bisect_left(history, self._since, key=lambda mark: mark[0])
        # The rate before the short window must span RATE_SAMPLES samples itself.
        if first <= short - RATE_SAMPLES and not self._calm:
            # Under one steady rate the short window's share of the arrivals since
            # ``first`` is binomial, with its share of the time as the probability.
            (start, before), (split, counted) = history[first], history[short]
            total = arrivals - before
            share = (now - split) / (now - start)
            expected = total * share
            deviation = math.sqrt(expected * (1 - share))
            if abs(arrivals - counted - expected) > CHANGE_Z * max(deviation, 1.0):
                first = last - 1
                self._since = history[first][0]
        since, then = history[first]
        self._young = now - since < self._settle
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
        """
        Return the events left queued by a send above which the send wakes the supervisor.
        """
        policy = self._policy
        if policy is None or self._pool.size >= policy.max_consumers:
            return math.inf
        return policy.wake_backlog

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
        if self._policy is not None:
            service_time = recorder.mean_service_time()
            target = self._policy.observe(now, queued, busy, size, sent, service_time)
            self._resize(target)
            self.wake_above = self._backlog_threshold()
        arrived, self._sent = sent != self._sent, sent
        return (
            not arrived
            and not queued
            and not busy
            and (self._policy is None or pool.size <= self._policy.min_consumers or pool.closing)
        )

    def _burst(self) -> None:
        """
        Size the pool for a backlog seen between samples.
        """
        if self._policy is None:
            return
        pool = self._pool
        self._resize(self._policy.burst(self._now(), self._channel.queued, pool.busy, pool.size))
        self.wake_above = self._backlog_threshold()

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
