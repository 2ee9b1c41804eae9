"""
Autoscaling: how many consumers the measured load needs, with hysteresis on the way down.

The rule, evaluated every ``monitor_interval`` (and at once when a send finds no idle
consumer):

- *steady demand* is the mean number of busy consumers over the last ``STEADY_HORIZON``
  seconds (an exponential moving average). In steady state this is arrival rate x service
  time, Little's law's work in progress, measured over a horizon short enough to follow load
  changes (the reported ``Metrics.wip`` uses the longer rate window);
- *burst demand*, when events are waiting, is the events waiting plus those in service;
- the target is ``clamp(ceil(max(steady, burst) * (1 + wip_margin)), min, max)``.

The pool grows to the target at once. It shrinks only to the largest target seen over the
last ``SCALE_DOWN_DELAY`` seconds, so load hovering at a boundary does not make it thrash,
and only idle consumers are retired.
"""

from __future__ import annotations

import collections
import math
from typing import Final, final

__all__ = ["SCALE_DOWN_DELAY", "STEADY_HORIZON", "ScalingPolicy"]

#: Seconds the target must stay below the pool size before the pool shrinks.
SCALE_DOWN_DELAY: Final = 0.25
#: Time constant, in seconds, of the moving average behind steady demand.
STEADY_HORIZON: Final = 0.1


@final
class ScalingPolicy:
    """
    Turns load samples into pool sizes.

    Args:
        min_consumers: Smallest pool size.
        max_consumers: Largest pool size.
        margin: ``wip_margin``, the fraction added to demand.
        interval: ``monitor_interval``, the time between two :meth:`observe` calls.

    """

    __slots__ = ("_margin", "_max", "_min", "_peaks", "_smoothing", "steady")

    def __init__(self, min_consumers: int, max_consumers: int, margin: float, interval: float):
        self._min = min_consumers
        self._max = max_consumers
        self._margin = margin
        self._smoothing = 1.0 - math.exp(-interval / STEADY_HORIZON)
        #: Mean busy consumers over the steady horizon.
        self.steady = 0.0
        # (time, target) of recent observations; targets strictly decreasing from the left,
        # so the left end is the largest target of the last SCALE_DOWN_DELAY seconds.
        self._peaks: collections.deque[tuple[float, int]] = collections.deque()

    def target(self, qsize: int, busy: int) -> int:
        """
        Return the pool size the current counts call for, without hysteresis.
        """
        demand = max(self.steady, qsize + busy if qsize else 0)
        wanted = math.ceil(round(demand * (1 + self._margin), 9))
        return min(max(wanted, self._min), self._max)

    def observe(self, now: float, qsize: int, busy: int) -> int:
        """
        Take the periodic sample and return the pool size to have now.

        Growing is immediate; shrinking goes to the largest target of the last
        ``SCALE_DOWN_DELAY`` seconds.
        """
        self.steady += self._smoothing * (busy - self.steady)
        target = self.target(qsize, busy)
        peaks = self._peaks
        while peaks and peaks[-1][1] <= target:
            peaks.pop()
        peaks.append((now, target))
        while peaks[0][0] <= now - SCALE_DOWN_DELAY:
            peaks.popleft()
        return peaks[0][1]
