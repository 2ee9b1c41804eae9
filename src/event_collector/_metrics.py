"""
Queue metrics: what the queue measures, and the O(1)-per-event bookkeeping behind it.
"""

from __future__ import annotations

import collections
import datetime
import math
from bisect import bisect_left
from collections.abc import Callable
from typing import final

import attrs

from ._data import Error, ResultList

__all__ = ["Histogram", "Metrics", "MetricsRecorder", "QueueStatistics", "TimeHistograms"]


@final
@attrs.frozen
class QueueStatistics:
    """
    A snapshot of a queue's pool and channel, from :meth:`CollectorQueue.statistics`.

    Counts only, read in O(1): what tests, dashboards and the distributed worker's flow
    control need to know about the queue now. ``idle + busy == consumers``.
    """

    #: Consumer tasks in the pool.
    consumers: int
    #: Consumers waiting for an event (parked in the channel, or about to start).
    idle: int
    #: Consumers with an event in hand.
    busy: int
    #: Events waiting in the queue for a consumer.
    queued: int
    #: Events sent and not yet resolved: ``queued + busy``.
    in_flight: int
    #: The queue's ``max_queue_size``.
    max_queue_size: int | float
    #: Events sent since the queue started.
    sent: int
    #: Events completed (resolved by a consumer) since the queue started.
    completed: int
    #: Whether the queue has stopped taking events (shutting down or stopped).
    closed: bool


@final
@attrs.frozen
class Metrics:
    """
    A snapshot of a queue's load and flow, from :meth:`CollectorQueue.get_metrics`.

    Times are seconds on trio's clock. Averages (``avg_load``, ``service_time``,
    ``wait_time`` and so ``wip``) read 0 until ``metrics_warmup_interval`` has passed since
    the queue started; counts and rates are live from the start.
    """

    #: When the snapshot was taken (UTC, wall clock).
    timestamp: datetime.datetime
    #: Events waiting in the queue, not yet taken by a consumer.
    qsize: int
    #: Consumers processing an event now.
    busy: int
    #: Consumers in the pool.
    consumers: int
    #: ``(qsize + busy) / consumers``: above 1, events wait; 0 with no consumers.
    load: float
    #: Mean load over the last ``avg_load_interval`` seconds, weighted by time: the load
    #: sampled every ``monitor_interval`` holds since the sample before, the load now since
    #: the last sample, and a stretch in which the queue was idle (its supervisor asleep,
    #: taking no samples) counts as load 0.
    avg_load: float
    #: Mean seconds from a consumer taking an event to its results being set, over the last
    #: ``event_service_data_window_size`` completed events.
    service_time: float
    #: Mean seconds from ``send()`` to a consumer taking the event (a wait for room in a
    #: full queue included), over the same events as ``service_time``.
    wait_time: float
    #: Events sent per second over the last ``metrics_collector_window_size`` seconds (since
    #: start while the queue is younger than that).
    arrival_rate: float
    #: Events completed per second, over the same window as ``arrival_rate``.
    departure_rate: float
    #: The work in progress the measured flow needs, ``arrival_rate * service_time``; by
    #: Little's law, the number of busy consumers in steady state.
    wip: float
    #: Events completed since the queue started.
    event_count: int

    def as_log_fields(self) -> dict[str, object]:
        """
        Return the fields as the metrics log entry shows them (``metrics_timestamp`` ISO).
        """
        fields = attrs.asdict(self)
        fields["metrics_timestamp"] = fields.pop("timestamp").isoformat()
        return fields


@final
@attrs.frozen
class Histogram:
    """
    Observations counted in buckets since the queue started, as Prometheus histograms count.
    """

    #: Upper bounds of the buckets, increasing; a last bucket without bound follows them.
    bounds: tuple[float, ...]
    #: Observations in each bucket, ``len(bounds) + 1`` of them: ``counts[i]`` those above
    #: ``bounds[i - 1]`` and at most ``bounds[i]``, ``counts[-1]`` those above every bound.
    counts: tuple[int, ...]
    #: The sum of the observations.
    sum: float

    @property
    def count(self) -> int:
        """
        The number of observations.
        """
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """
        Return ``(bound, observations at most bound)`` per bucket, ending with ``math.inf``.
        """
        pairs, total = [], 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


@final
@attrs.frozen
class TimeHistograms:
    """
    The service and wait times of a queue's completed events, in buckets.

    From :meth:`CollectorQueue.histograms`: every event completed since the queue started,
    where :class:`Metrics` averages a window.
    """

    #: Seconds from a consumer taking an event to its results being set.
    service: Histogram
    #: Seconds from ``send()`` to a consumer taking the event.
    wait: Histogram
    #: Events completed with at least one ``Error`` among their results (the others all
    #: ``Ok``): ``service.count - failed`` succeeded.
    failed: int = 0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> TimeHistograms:
        """
        Return histograms with no observation, in buckets up to ``bounds``.
        """
        zeros = (0,) * (len(bounds) + 1)
        return cls(Histogram(bounds, zeros, 0.0), Histogram(bounds, zeros, 0.0))


@final
class MetricsRecorder:
    """
    Keeps the windows behind :class:`Metrics`.

    The per-event work is one ring-buffer update on completion (:meth:`served`), and two
    bucket counts with histograms (:meth:`served_in_buckets`). Everything
    windowed in time is sampled by the monitor (:meth:`sample`), so reading metrics never
    scans events. Arrivals are counted by the queue's channel and passed in.

    Args:
        start: Start time of the queue (trio clock).
        service_window: Completed events behind the mean service and wait times.
        rate_window: Seconds behind the arrival and departure rates.
        load_window: Seconds behind the average load.
        warmup: Seconds during which averages read 0.
        bounds: Upper bounds of the service and wait time histograms' buckets, increasing;
            empty for no histograms.
    """

    __slots__ = (
        "_bounds",
        "_failed",
        "_last_sample",
        "_load_area",
        "_load_time",
        "_load_window",
        "_loads",
        "_loads_busy",
        "_marks",
        "_rate_window",
        "_ring_index",
        "_service_buckets",
        "_service_sum",
        "_service_total",
        "_services",
        "_start",
        "_trimmed",
        "_wait_buckets",
        "_wait_sum",
        "_wait_total",
        "_waits",
        "_warmup",
        "departures",
    )

    def __init__(
        self,
        *,
        start: float,
        service_window: int,
        rate_window: float,
        load_window: float,
        warmup: float,
        bounds: tuple[float, ...] = (),
    ) -> None:
        self._start = start
        self._rate_window = rate_window
        self._load_window = load_window
        self._warmup = warmup
        #: Events completed.
        self.departures = 0
        self._services: list[float] = [0.0] * service_window
        self._waits: list[float] = [0.0] * service_window
        self._ring_index = 0
        self._service_sum = 0.0
        self._wait_sum = 0.0
        # The histograms: a count per bucket (the last one unbounded) and the sums.
        self._bounds = bounds
        self._service_buckets = [0] * (len(bounds) + 1)
        self._wait_buckets = [0] * (len(bounds) + 1)
        self._service_total = 0.0
        self._wait_total = 0.0
        self._failed = 0  # events with an Error among their results
        # (time, arrivals, departures) at each sample, oldest first, within the rate window.
        self._marks: collections.deque[tuple[float, int, int]] = collections.deque()
        self._marks.append((start, 0, 0))
        # (end, load, duration) of each sample: the load held over (end - duration, end].
        # Their sums: load x duration (the area) and duration; and how many have load > 0.
        self._loads: collections.deque[tuple[float, float, float]] = collections.deque()
        self._load_area = 0.0
        self._load_time = 0.0
        self._loads_busy = 0
        self._trimmed = 0  # entries dropped since the sums were last recomputed
        self._last_sample = start

    def served(self, wait: float, service: float, outcome: object = None) -> None:
        """
        Record one completed event: seconds it waited in the queue and in service.

        Its ``outcome`` counts only with histograms (:meth:`served_in_buckets`).
        """
        index = self._ring_index
        self._wait_sum += wait - self._waits[index]
        self._service_sum += service - self._services[index]
        self._waits[index] = wait
        self._services[index] = service
        index += 1
        self._ring_index = 0 if index == len(self._services) else index
        self.departures += 1

    def served_in_buckets(self, wait: float, service: float, outcome: object) -> None:
        """
        Record one completed event as :meth:`served` does, and count it in the histograms.

        It counts as failed if ``outcome`` (an Error, or a ResultList) holds an Error.
        """
        self.served(wait, service)
        if type(outcome) is Error or (
            type(outcome) is ResultList and any(type(r) is Error for r in outcome.results)
        ):
            self._failed += 1
        bounds = self._bounds
        self._service_buckets[bisect_left(bounds, service)] += 1
        self._wait_buckets[bisect_left(bounds, wait)] += 1
        self._service_total += service
        self._wait_total += wait

    @property
    def on_served(self) -> Callable[[float, float, object], None]:
        """
        What the pool calls per completed event: with histograms only if they have buckets.

        Counting in buckets costs 2 % more instructions per event (callgrind, one no-op
        collector), so a queue without ``time_buckets`` does not pay for it.
        """
        return self.served_in_buckets if self._bounds else self.served

    def histograms(self) -> TimeHistograms | None:
        """
        Return the service and wait time histograms of every event completed so far.

        None if the recorder has no buckets.
        """
        if not self._bounds:
            return None
        return TimeHistograms(
            Histogram(self._bounds, tuple(self._service_buckets), self._service_total),
            Histogram(self._bounds, tuple(self._wait_buckets), self._wait_total),
            self._failed,
        )

    def mean_service_time(self) -> float:
        """
        Return the mean service time of the recent events, warm-up or not (0 if none).
        """
        completed = min(self.departures, len(self._services))
        return max(self._service_sum / completed, 0.0) if completed else 0.0

    def sample(self, now: float, load: float, arrivals: int) -> None:
        """
        Take the periodic sample: ``load`` held since the last sample, and the counts.

        Args:
            now: The time of the sample.
            load: The load since the previous sample (the load now, for a periodic sample;
                0 for a stretch the queue spent idle).
            arrivals: Events sent since the queue started.
        """
        self._marks.append((now, arrivals, self.departures))
        duration = now - self._last_sample
        self._last_sample = now
        if duration > 0:
            self._loads.append((now, load, duration))
            self._load_area += load * duration
            self._load_time += duration
            if load:
                self._loads_busy += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        marks, loads = self._marks, self._loads
        while len(marks) > 1 and marks[1][0] <= now - self._rate_window:
            marks.popleft()
        while loads and loads[0][0] <= now - self._load_window:
            _, load, duration = loads.popleft()
            self._load_area -= load * duration
            self._load_time -= duration
            if load:
                self._loads_busy -= 1
            self._trimmed += 1
        # Running sums drift by rounding (a long-idle queue read 1.9e-15): recompute them
        # exactly once as many entries have left as there are (amortised O(1)), and hold
        # the area at exactly 0 while no entry has load.
        if self._trimmed > len(loads):
            self._trimmed = 0
            self._load_area = math.fsum(load * duration for _, load, duration in loads)
            self._load_time = math.fsum(duration for _, _, duration in loads)
        if not self._loads_busy:
            self._load_area = 0.0

    def _avg_load(self, now: float, load_now: float) -> float:
        """
        Return the time-weighted mean load over the window ending at ``now``.

        The samples in the window, plus the time since the last one at the load now (0 while
        the queue is idle and its supervisor asleep, however long that has been).
        """
        window_start = now - self._load_window
        tail = now - max(self._last_sample, window_start)
        area, time = self._load_area + load_now * tail, self._load_time + tail
        if self._loads:
            end, load, duration = self._loads[0]
            outside = (end - duration) - window_start
            if outside < 0:  # the oldest entry began before the window: count its inside
                area += load * outside
                time += outside
        return max(area / time, 0.0) if time > 0 else 0.0

    def snapshot(self, now: float, arrivals: int, qsize: int, busy: int, consumers: int) -> Metrics:
        """
        Return the metrics at ``now`` for the given counts.
        """
        self._trim(now)
        load = (qsize + busy) / consumers if consumers else 0.0
        since, arrived, departed = self._marks[0]
        elapsed = now - since
        arrival_rate = (arrivals - arrived) / elapsed if elapsed > 0 else 0.0
        departure_rate = (self.departures - departed) / elapsed if elapsed > 0 else 0.0
        if now - self._start < self._warmup:
            avg_load = service_time = wait_time = 0.0
        else:
            avg_load = self._avg_load(now, load)
            completed = min(self.departures, len(self._services))
            service_time = self.mean_service_time()
            wait_time = max(self._wait_sum / completed, 0.0) if completed else 0.0
        return Metrics(
            timestamp=datetime.datetime.now(datetime.UTC),
            qsize=qsize,
            busy=busy,
            consumers=consumers,
            load=load,
            avg_load=avg_load,
            service_time=service_time,
            wait_time=wait_time,
            arrival_rate=arrival_rate,
            departure_rate=departure_rate,
            wip=arrival_rate * service_time,
            event_count=self.departures,
        )
