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
"""

from __future__ import annotations

import collections
import math
from typing import Final, final

__all__ = ["MIN_RATE_EVENTS", "RATE_HISTORY", "RATE_SAMPLES", "SCALE_DOWN_SAMPLES", "ScalingPolicy"]

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

    __slots__ = ("_arrivals", "_hold", "_margin", "_max", "_min", "_peaks", "steady")

    def __init__(
        self, min_consumers: int, max_consumers: int, margin: float, interval: float
    ) -> None:
        self._min = min_consumers
        self._max = max_consumers
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
        return min(max(wanted, self._min), self._max)

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
