"""
Prometheus export: a collector that reads queues, gateways and workers at scrape time.

Nothing is updated per event: a scrape calls :meth:`PrometheusCollector.collect`, which reads
each source's ``statistics()`` (and a queue's ``get_metrics()`` and ``histograms()``) in the
Trio thread and turns them into metric families. :func:`serve_metrics` answers scrapes with
a small HTTP handler on :func:`trio.serve_listeners`, so collecting runs in the Trio thread too:
``prometheus_client.start_http_server`` would collect in a thread of its own, where
``trio.current_time()`` fails and the queue's state is read while Trio changes it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeAlias, final

import trio

try:
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import REGISTRY, CollectorRegistry
    from prometheus_client.registry import Collector as _Collector
except ImportError as exc:  # pragma: no cover  (the tests extra has it)
    raise ImportError(
        "event_collector.prometheus needs the prometheus extra: "
        "pip install 'event-collector[prometheus]'"
    ) from exc

from ._logging import FilteringBoundLogger, get_logger
from ._metrics import Histogram
from ._queue import CollectorQueue
from ._worker import Worker

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["PrometheusCollector", "Source", "register", "serve_metrics"]

#: What one collector reads: a queue, a gateway or a worker (whose queue comes with it).
Source: TypeAlias = "CollectorQueue[Any] | Worker | Gateway"

#: Bytes of request line and headers read at most.
_MAX_HEAD: Final = 8192
#: Seconds a client has to send its request and take the answer.
_REQUEST_TIMEOUT: Final = 10.0
#: Connections answered at once; more are closed at once (the scrapers of one process).
_MAX_CONNECTIONS: Final = 16
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS_500: Final = "Internal Server Error"


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"event_collector_{name}", documentation, labels=labels)


def _counter(name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(f"event_collector_{name}", documentation, labels=labels)


_Family: TypeAlias = GaugeMetricFamily | CounterMetricFamily


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [
        ("+Inf" if bound == math.inf else repr(bound), count)
        for bound, count in histogram.cumulative()
    ]


@final
class _Families:
    """
    The metric families of one scrape, each created once and filled source by source.
    """

    def __init__(self) -> None:
        q, g, w = ["queue"], list[str](), ["worker"]
        self.queue: dict[str, _Family] = {
            "consumers": _gauge("queue_consumers", "Consumer tasks in the pool.", q),
            "busy": _gauge("queue_busy_consumers", "Consumers with an event in hand.", q),
            "queued": _gauge("queue_queued_events", "Events waiting for a consumer.", q),
            "in_flight": _gauge("queue_in_flight_events", "Events sent and not yet resolved.", q),
            "max_size": _gauge(
                "queue_max_size", "Queued events beyond which send waits (+Inf: none).", q
            ),
            "load": _gauge("queue_load", "(queued + busy) / consumers, now.", q),
            "avg_load": _gauge(
                "queue_avg_load", "Time-weighted mean load over avg_load_interval.", q
            ),
            "service": _gauge(
                "queue_mean_service_seconds",
                "Mean service time of the last event_service_data_window_size events.",
                q,
            ),
            "wait": _gauge(
                "queue_mean_wait_seconds",
                "Mean wait time of the last event_service_data_window_size events.",
                q,
            ),
            "wip": _gauge(
                "queue_wip", "Consumers the measured flow needs: arrival rate x service.", q
            ),
            "closed": _gauge("queue_closed", "1 once the queue stopped taking events.", q),
            "sent": _counter("queue_events_sent", "Events sent to the queue.", q),
            "completed": _counter("queue_events_completed", "Events resolved by a consumer.", q),
        }
        self.service = HistogramMetricFamily(
            "event_collector_queue_service_seconds",
            "Seconds from a consumer taking an event to its results being set.",
            labels=q,
        )
        self.wait = HistogramMetricFamily(
            "event_collector_queue_wait_seconds",
            "Seconds from send() to a consumer taking the event.",
            labels=q,
        )
        self.outcomes = _counter(
            "queue_events",
            "Events completed, by outcome: error if any of its results is an Error, else ok "
            "(with time_buckets).",
            [*q, "outcome"],
        )
        self.gateway: dict[str, _Family] = {
            "producers": _gauge("gateway_producers", "Producers connected.", g),
            "workers": _gauge("gateway_workers", "Workers registered and alive.", g),
            "queued": _gauge("gateway_queued_tasks", "Tasks waiting for a worker.", g),
            "in_flight": _gauge("gateway_in_flight_tasks", "Tasks a worker holds.", g),
            "capacity": _gauge("gateway_capacity_tasks", "Tasks the gateway holds at most.", g),
            "redelivered": _counter(
                "gateway_redelivered_tasks",
                "Tasks given again to a worker after the one holding them died.",
                g,
            ),
            "late_results": _counter(
                "gateway_late_results", "Results dropped: late or duplicate.", g
            ),
            "undeliverable": _counter(
                "gateway_undeliverable_results", "Results whose producer was gone.", g
            ),
            "refused": _counter("gateway_refused_tasks", "Tasks refused.", g),
            "malformed": _counter(
                "gateway_malformed_messages", "Messages dropped as not the protocol's.", g
            ),
        }
        self.worker: dict[str, _Family] = {
            "in_flight": _gauge(
                "worker_in_flight_tasks", "Tasks the worker holds (results unsent included).", w
            ),
            "capacity": _gauge("worker_capacity_tasks", "Tasks the worker takes at most.", w),
            "registered": _gauge("worker_registered", "1 while the broker answers.", w),
            "completed": _counter("worker_completed_tasks", "Results sent.", w),
            "invalid": _counter(
                "worker_invalid_tasks", "Tasks that were not valid payloads (not run).", w
            ),
            "malformed": _counter(
                "worker_malformed_messages", "Messages dropped as not the protocol's.", w
            ),
        }

    def all(self) -> Iterator[Metric]:
        yield from self.queue.values()
        yield self.service
        yield self.wait
        yield self.outcomes
        yield from self.gateway.values()
        yield from self.worker.values()

    def add_queue(self, queue: CollectorQueue[Any]) -> None:
        label = [queue.name]
        stats = queue.statistics()
        families = self.queue
        for key in ("consumers", "busy", "queued", "in_flight", "sent", "completed"):
            families[key].add_metric(label, getattr(stats, key))
        families["max_size"].add_metric(label, stats.max_queue_size)
        families["closed"].add_metric(label, float(stats.closed))
        try:
            metrics = queue.get_metrics()
        except RuntimeError:  # not started: the load and the means are 0
            load = avg_load = service = wait = wip = 0.0
        else:
            load, avg_load, wip = metrics.load, metrics.avg_load, metrics.wip
            service, wait = metrics.service_time, metrics.wait_time
        families["load"].add_metric(label, load)
        families["avg_load"].add_metric(label, avg_load)
        families["service"].add_metric(label, service)
        families["wait"].add_metric(label, wait)
        families["wip"].add_metric(label, wip)
        histograms = queue.histograms()
        if histograms is not None:
            self.service.add_metric(
                label, _buckets(histograms.service), sum_value=histograms.service.sum
            )
            self.wait.add_metric(label, _buckets(histograms.wait), sum_value=histograms.wait.sum)
            failed = histograms.failed
            self.outcomes.add_metric([*label, "ok"], histograms.service.count - failed)
            self.outcomes.add_metric([*label, "error"], failed)

    def add_gateway(self, gateway: Gateway) -> None:
        stats = gateway.statistics()
        families = self.gateway
        families["producers"].add_metric([], stats.producers)
        families["workers"].add_metric([], stats.workers)
        families["queued"].add_metric([], stats.queued)
        families["in_flight"].add_metric([], stats.in_flight)
        families["capacity"].add_metric([], stats.capacity)
        families["redelivered"].add_metric([], stats.redelivered)
        families["late_results"].add_metric([], stats.late_results)
        families["undeliverable"].add_metric([], stats.undeliverable)
        families["refused"].add_metric([], stats.refused)
        families["malformed"].add_metric([], stats.malformed)

    def add_worker(self, worker: Worker) -> None:
        label = [worker.name]
        stats = worker.statistics()
        families = self.worker
        families["in_flight"].add_metric(label, stats.in_flight)
        families["capacity"].add_metric(label, stats.capacity)
        families["registered"].add_metric(label, float(stats.registered))
        families["completed"].add_metric(label, stats.completed)
        families["invalid"].add_metric(label, stats.invalid)
        families["malformed"].add_metric(label, stats.malformed)


def _is_gateway(source: object) -> bool:
    module = sys.modules.get(f"{__package__}._gateway")  # loaded if a gateway exists
    return module is not None and isinstance(source, module.Gateway)


@final
class PrometheusCollector(_Collector):
    """
    A ``prometheus_client`` collector of queues, gateways and workers, read at scrape time.

    Register it once per registry (:func:`register` does both) and :meth:`add` what it
    reads; the series and their labels are listed in the "Prometheus" page of the docs.
    A queue's series are labelled with its ``name``, a worker's with its ``name``; a
    gateway's have no label of their own (the scrape target says which gateway). Reads
    only; call it from the Trio thread (as :func:`serve_metrics` does).

    Args:
        sources: Queues, gateways and workers to read from the start.

    Raises:
        TypeError: A source that is none of those.
        ValueError: Two queues or two workers with the same name, or two gateways.
    """

    def __init__(self, *sources: Source) -> None:
        self._queues: dict[str, CollectorQueue[Any]] = {}
        self._workers: dict[str, Worker] = {}
        self._gateways: list[Gateway] = []
        for source in sources:
            self.add(source)

    def add(self, source: Source) -> None:
        """
        Read ``source`` from the next scrape on; a worker's queue comes with it.

        Raises:
            TypeError: ``source`` is not a CollectorQueue, a Gateway or a Worker.
            ValueError: A queue or worker of the same name is already read (give each its
                own ``name``), or a gateway is.
        """
        if isinstance(source, CollectorQueue):
            self._check_name("queue", source.name, self._queues)
            self._queues[source.name] = source
        elif isinstance(source, Worker):
            self._check_name("worker", source.name, self._workers)
            self._check_name("queue", source.queue.name, self._queues)
            self._workers[source.name] = source
            self._queues[source.queue.name] = source.queue
        elif _is_gateway(source):
            if self._gateways:
                raise ValueError("a gateway is already read: use one collector per gateway")
            self._gateways.append(source)
        else:
            raise TypeError(
                f"sources must be a CollectorQueue, a Gateway or a Worker, got {source!r}"
            )

    def remove(self, source: Source) -> None:
        """
        Stop reading ``source`` (a worker's queue with it).

        Raises:
            ValueError: ``source`` is not read.
        """
        if isinstance(source, Worker) and self._workers.get(source.name) is source:
            del self._workers[source.name]
            self._queues.pop(source.queue.name, None)
        elif isinstance(source, CollectorQueue) and self._queues.get(source.name) is source:
            del self._queues[source.name]
        elif source in self._gateways:
            self._gateways.remove(source)
        else:
            raise ValueError(f"{source!r} is not read by this collector")

    def describe(self) -> Iterable[Metric]:
        """
        Return the metric families without samples, so that a registry checks their names.
        """
        return list(_Families().all())

    def collect(self) -> Iterable[Metric]:
        """
        Return the metric families with a sample per source, read now.
        """
        families = _Families()
        for queue in self._queues.values():
            families.add_queue(queue)
        for gateway in self._gateways:
            families.add_gateway(gateway)
        for worker in self._workers.values():
            families.add_worker(worker)
        return [family for family in families.all() if family.samples]

    @staticmethod
    def _check_name(kind: str, name: str, taken: dict[str, Any]) -> None:
        if name in taken:
            raise ValueError(
                f"a {kind} named {name!r} is already read: give each {kind} its own name="
            )


def register(*sources: Source, registry: CollectorRegistry = REGISTRY) -> PrometheusCollector:
    """
    Make a :class:`PrometheusCollector` of ``sources`` and register it in ``registry``.

    Add more sources to the collector it returns; a second collector in the same registry
    would repeat the same series names.

    Raises:
        TypeError: A source that is not a CollectorQueue, a Gateway or a Worker.
        ValueError: Duplicate names (see :meth:`PrometheusCollector.add`), or ``registry``
            already has an event-collector collector.
    """
    collector = PrometheusCollector(*sources)
    registry.register(collector)
    return collector


async def serve_metrics(
    port: int = 0,
    host: str = "127.0.0.1",
    registry: CollectorRegistry = REGISTRY,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """
    Answer Prometheus scrapes of ``registry`` over HTTP on ``host:port`` until cancelled.

    ``GET /metrics`` (or ``/``) returns the exposition text (OpenMetrics if the scraper
    asks for it); ``HEAD`` the same headers. Each request is collected in the Trio thread,
    one connection per request. For ``await nursery.start(serve_metrics, ...)``, which
    returns the port bound (port 0 binds a free one).

    Raises:
        OSError: The port cannot be bound.

    On cancellation the listener closes and requests being answered are dropped.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    log = get_logger(True, component="metrics")

    limit = trio.CapacityLimiter(_MAX_CONNECTIONS)

    async def handler(stream: trio.SocketStream) -> None:
        try:
            limit.acquire_nowait()
        except trio.WouldBlock:  # more scrapers at once than any setup has: refuse
            await stream.aclose()
            return
        try:
            await _answer(stream, registry, log)
        except Exception as exc:  # one bad request never ends the server
            log.error("metrics_request_failed", exc_info=exc)
        finally:
            limit.release()

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        log.info("metrics_serving", host=host, port=bound)
        task_status.started(bound)


async def _answer(
    stream: trio.SocketStream, registry: CollectorRegistry, log: FilteringBoundLogger
) -> None:
    """
    Read one request from ``stream``, answer it, close.
    """
    async with stream:
        with trio.move_on_after(_REQUEST_TIMEOUT):
            try:
                head = await _read_head(stream)
                if head is not None:
                    await stream.send_all(_response(head, registry, log))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the scraper went away


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    """
    Return the request line and headers, or None if the client closed or sent too much.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def _response(head: bytes, registry: CollectorRegistry, log: FilteringBoundLogger) -> bytes:
    """
    Return the whole HTTP response to the request whose line and headers are ``head``.
    """
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3:
        return _plain(400, "bad request line\n")
    method, target, _ = parts
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if method not in ("GET", "HEAD"):
        return _plain(405, "only GET and HEAD\n", extra="Allow: GET, HEAD\r\n")
    if target.split("?", 1)[0] not in ("/metrics", "/"):
        return _plain(404, "metrics are at /metrics\n")
    try:
        encoder, content_type = choose_encoder(headers.get("accept", ""))
    except Exception:  # an Accept header prometheus_client cannot read
        return _plain(400, "bad Accept header\n")
    try:
        body = encoder(registry)
    except Exception as exc:
        log.error("metrics_collect_failed", exc_info=exc)
        return _head(500, "text/plain; charset=utf-8", 0)
    return _head(200, content_type, len(body)) + (b"" if method == "HEAD" else body)


def _head(status: int, content_type: str, length: int, extra: str = "") -> bytes:
    reason = _REASONS.get(status, _REASONS_500)
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n{extra}\r\n"
    ).encode("latin-1")


def _plain(status: int, text: str, extra: str = "") -> bytes:
    body = text.encode()
    return _head(status, "text/plain; charset=utf-8", len(body), extra) + body
