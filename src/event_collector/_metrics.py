"""
Queue metrics: what the queue measures, and the O(1)-per-event bookkeeping behind it.
"""

from __future__ import annotations

import collections
import datetime
from typing import final

import attrs

__all__ = ["Metrics", "MetricsRecorder"]


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
    #: Mean of the load sampled every ``monitor_interval`` over the last
    #: ``avg_load_interval`` seconds.
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
class MetricsRecorder:
    """
    Counts arrivals and completions and keeps the windows behind :class:`Metrics`.

    The per-event work is a counter increment on send and one ring-buffer update on
    completion. Everything windowed in time is sampled by the monitor every
    ``monitor_interval`` (:meth:`sample`), so reading metrics never scans events.

    Args:
        start: Start time of the queue (trio clock).
        service_window: Completed events behind the mean service and wait times.
        rate_window: Seconds behind the arrival and departure rates.
        load_window: Seconds behind the average load.
        warmup: Seconds during which averages read 0.
    """

    __slots__ = (
        "_load_sum",
        "_load_window",
        "_loads",
        "_marks",
        "_rate_window",
        "_ring_index",
        "_service_sum",
        "_services",
        "_start",
        "_wait_sum",
        "_waits",
        "_warmup",
        "arrivals",
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
    ) -> None:
        self._start = start
        self._rate_window = rate_window
        self._load_window = load_window
        self._warmup = warmup
        #: Events sent (incremented by the publisher).
        self.arrivals = 0
        #: Events completed.
        self.departures = 0
        self._services: list[float] = [0.0] * service_window
        self._waits: list[float] = [0.0] * service_window
        self._ring_index = 0
        self._service_sum = 0.0
        self._wait_sum = 0.0
        # (time, arrivals, departures) at each sample, oldest first, within the rate window.
        self._marks: collections.deque[tuple[float, int, int]] = collections.deque()
        self._marks.append((start, 0, 0))
        # (time, load) at each sample within the load window, and their sum.
        self._loads: collections.deque[tuple[float, float]] = collections.deque()
        self._load_sum = 0.0

    def served(self, wait: float, service: float) -> None:
        """
        Record one completed event: seconds it waited in the queue and in service.
        """
        index = self._ring_index
        self._wait_sum += wait - self._waits[index]
        self._service_sum += service - self._services[index]
        self._waits[index] = wait
        self._services[index] = service
        index += 1
        self._ring_index = 0 if index == len(self._services) else index
        self.departures += 1

    def mean_service_time(self) -> float:
        """
        Return the mean service time of the recent events, warm-up or not (0 if none).
        """
        completed = min(self.departures, len(self._services))
        return max(self._service_sum / completed, 0.0) if completed else 0.0

    def sample(self, now: float, load: float) -> None:
        """
        Take the periodic sample: the current load and the arrival/departure counts.
        """
        self._marks.append((now, self.arrivals, self.departures))
        self._loads.append((now, load))
        self._load_sum += load
        self._trim(now)

    def _trim(self, now: float) -> None:
        marks, loads = self._marks, self._loads
        while len(marks) > 1 and marks[1][0] <= now - self._rate_window:
            marks.popleft()
        while loads and loads[0][0] <= now - self._load_window:
            self._load_sum -= loads.popleft()[1]

    def snapshot(self, now: float, qsize: int, busy: int, consumers: int) -> Metrics:
        """
        Return the metrics at ``now`` for the given instantaneous counts.
        """
        self._trim(now)
        load = (qsize + busy) / consumers if consumers else 0.0
        since, arrived, departed = self._marks[0]
        elapsed = now - since
        arrival_rate = (self.arrivals - arrived) / elapsed if elapsed > 0 else 0.0
        departure_rate = (self.departures - departed) / elapsed if elapsed > 0 else 0.0
        if now - self._start < self._warmup:
            avg_load = service_time = wait_time = 0.0
        else:
            avg_load = max(self._load_sum / len(self._loads), 0.0) if self._loads else 0.0
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
