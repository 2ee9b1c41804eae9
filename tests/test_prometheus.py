"""
Prometheus export: the series of queues, gateways and workers, and the HTTP server.

In-process tests read the exposition text (parsed with prometheus_client's own parser) of
queues on the MockClock and check exact values. Server tests talk HTTP over a Trio socket on
the real clock (the server puts a deadline on each request, which the autojump clock would
fire while the client's bytes are in flight), each bounded by ``trio.fail_after``. Process
tests run ``event-collector gateway`` and ``worker`` with ``--metrics-port 0`` on ``ipc://``
endpoints and scrape them while producers send tasks.
"""

from __future__ import annotations

import math
import signal
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import click
import prometheus_client.registry
import pytest
import structlog.testing
import trio
import trio.testing
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from event_collector import Collector, CollectorQueue, Context, Error, Ok, Payload, Result
from event_collector._cli import _require_prometheus, _worker_commands
from event_collector.prometheus import PrometheusCollector, register, serve_metrics
from event_collector.remote import Heartbeat, open_producer

from .processes import HEARTBEAT, Processes, running_processes

#: The example the docs include.
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "prometheus_export.py"
#: ``{(series name, labels as sorted pairs): value}``, from exposition text.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """
    Return each family's type by name, and every sample's value.
    """
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return types, samples


def scrape(registry: CollectorRegistry) -> tuple[dict[str, str], Samples]:
    return parse(generate_latest(registry).decode())


def q(name: str, queue: str = "orders", **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """
    The key of series ``event_collector_queue_NAME`` of ``queue``.
    """
    return f"event_collector_queue_{name}", tuple(sorted({"queue": queue, **labels}.items()))


async def work(payload: Payload[float], ctx: Context) -> Result[float]:
    """
    Take ``payload.value`` seconds.
    """
    await trio.sleep(payload.value)
    return Ok(payload.value)


def one_consumer(**options: Any) -> CollectorQueue[Any]:
    settings: dict[str, Any] = {
        "name": "orders",
        "autoscale": False,
        "max_consumers": 1,
        "event_service_data_window_size": 2,
        "metrics_warmup_interval": 0,
        "logging": False,
    }
    settings.update(options)
    return CollectorQueue([Collector("w", work)], **settings)


class TestQueueSeries:
    """A queue's series read its statistics, metrics and histograms at scrape time."""

    async def test_scripted_timeline(self, autojump_clock: trio.abc.Clock) -> None:
        # One consumer; services 1, 1, 2 s sent at t=0: they run 0-1, 1-2, 2-4 and wait
        # 0, 1, 2 s.
        registry = CollectorRegistry()
        queue = one_consumer(time_buckets=[0.5, 1, 2])
        register(queue, registry=registry)
        async with queue:
            publisher = queue.get_publisher()
            events = [await publisher.send(seconds) for seconds in (1.0, 1.0, 2.0)]
            await trio.sleep(0.5)
            types, running = scrape(registry)
            for event in events:
                await event.wait()
            _, done = scrape(registry)
        _, stopped = scrape(registry)

        assert running[q("consumers")] == 1
        assert running[q("busy_consumers")] == 1
        assert running[q("queued_events")] == 2
        assert running[q("in_flight_events")] == 3
        assert running[q("load")] == 3.0
        assert running[q("events_sent_total")] == 3
        assert running[q("events_completed_total")] == 0
        assert running[q("closed")] == 0
        assert running[q("max_size")] == math.inf

        assert done[q("busy_consumers")] == done[q("queued_events")] == 0
        assert done[q("load")] == 0.0
        assert done[q("events_completed_total")] == 3
        # The means cover the last 2 events (event_service_data_window_size).
        assert done[q("mean_service_seconds")] == 1.5
        assert done[q("mean_wait_seconds")] == 1.5
        service = {le: done[q("service_seconds_bucket", le=le)] for le in ("0.5", "1.0", "2.0")}
        assert service == {"0.5": 0, "1.0": 2, "2.0": 3}
        assert done[q("service_seconds_bucket", le="+Inf")] == 3
        assert done[q("service_seconds_count")] == 3
        assert done[q("service_seconds_sum")] == 4.0
        wait = {le: done[q("wait_seconds_bucket", le=le)] for le in ("0.5", "1.0", "2.0", "+Inf")}
        assert wait == {"0.5": 1, "1.0": 2, "2.0": 3, "+Inf": 3}
        assert done[q("wait_seconds_sum")] == 3.0

        assert stopped[q("closed")] == 1
        assert stopped[q("events_completed_total")] == 3

        assert types["event_collector_queue_service_seconds"] == "histogram"
        assert types["event_collector_queue_events_sent"] == "counter"
        assert types["event_collector_queue_consumers"] == "gauge"

    async def test_events_by_outcome(self) -> None:
        async def refuse(payload: Payload[float], ctx: Context) -> Result[float]:
            return Error("no")

        registry = CollectorRegistry()
        queue = CollectorQueue(
            [Collector("w", work), Collector("f", refuse)],
            name="orders",
            autoscale=False,
            time_buckets=[1],
            logging=False,
        )
        register(queue, registry=registry)
        async with queue:
            publisher = queue.get_publisher()
            payloads = [Payload(0.0, keys=["w"]), Payload(0.0, keys=["f"]), Payload(0.0)]
            for payload in payloads:  # ok; an Error; a broadcast with one Error among two
                await (await publisher.send(payload)).wait()
            _, done = scrape(registry)
        assert done[q("events_total", outcome="ok")] == 1
        assert done[q("events_total", outcome="error")] == 2
        assert done[q("events_completed_total")] == 3

    def test_not_started_reads_zeros(self) -> None:
        registry = CollectorRegistry()
        register(one_consumer(max_queue_size=50), registry=registry)
        types, samples = scrape(registry)
        assert samples[q("consumers")] == 0
        assert samples[q("load")] == 0.0
        assert samples[q("mean_service_seconds")] == 0.0
        assert samples[q("max_size")] == 50
        assert samples[q("events_sent_total")] == 0
        # No time_buckets: no histograms; and no gateway or worker series.
        assert "event_collector_queue_service_seconds" not in types
        assert not any(name.startswith("event_collector_gateway") for name in types)
        assert not any(name.startswith("event_collector_worker") for name in types)

    async def test_queues_by_name(self, autojump_clock: trio.abc.Clock) -> None:
        registry = CollectorRegistry()
        small, large = one_consumer(name="small"), one_consumer(name="large", max_consumers=3)
        collector = register(small, registry=registry)
        collector.add(large)
        async with small, large:
            _, samples = scrape(registry)
            collector.remove(small)
            _, without = scrape(registry)
        assert samples[q("consumers", "small")] == 1
        assert samples[q("consumers", "large")] == 3
        assert q("consumers", "small") not in without
        assert without[q("consumers", "large")] == 3


class TestCollectorRules:
    """What a collector refuses: duplicates, strangers, a second one per registry."""

    def test_same_queue_name_twice(self) -> None:
        collector = PrometheusCollector(one_consumer())
        with pytest.raises(ValueError, match="a queue named 'orders' is already read"):
            collector.add(one_consumer())

    def test_not_a_source(self) -> None:
        with pytest.raises(TypeError, match="must be a CollectorQueue, a Gateway or a Worker"):
            PrometheusCollector(object())  # type: ignore[arg-type]  # what is refused

    def test_remove_unknown(self) -> None:
        queue = one_consumer()
        collector = PrometheusCollector(queue)
        with pytest.raises(ValueError, match="is not read"):
            collector.remove(one_consumer())  # same name, another queue
        collector.remove(queue)
        with pytest.raises(ValueError, match="is not read"):
            collector.remove(queue)

    def test_second_collector_in_a_registry(self) -> None:
        registry = CollectorRegistry()
        register(one_consumer(name="a"), registry=registry)
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            register(one_consumer(name="b"), registry=registry)


async def http(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """
    Send ``request`` to ``127.0.0.1:port``; return the status line, headers and body.
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, body


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, CollectorRegistry]]:
    """
    A metrics server on a free port for a registry with the not started queue ``orders``.
    """
    registry = CollectorRegistry()
    register(one_consumer(), registry=registry)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, 0, "127.0.0.1", registry)
        yield port, registry
        nursery.cancel_scope.cancel()


class TestServer:
    """serve_metrics answers scrapes over HTTP, in the Trio thread."""

    async def test_get(self, server: tuple[int, CollectorRegistry]) -> None:
        port, registry = server
        with trio.fail_after(10):
            status, headers, body = await http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            _, root, _ = await http(port, b"GET /?name[]=x HTTP/1.0\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert int(headers["content-length"]) == len(body)
        assert headers["connection"] == "close"
        assert body == generate_latest(registry)
        assert parse(body.decode())[1][q("consumers")] == 0
        assert root["content-type"] == headers["content-type"]

    async def test_openmetrics_when_asked(self, server: tuple[int, CollectorRegistry]) -> None:
        port, _ = server
        request = b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n"
        with trio.fail_after(10):
            status, headers, body = await http(port, request)
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-type"].startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")

    async def test_head(self, server: tuple[int, CollectorRegistry]) -> None:
        port, registry = server
        with trio.fail_after(10):
            status, headers, body = await http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert int(headers["content-length"]) == len(generate_latest(registry))
        assert body == b""

    @pytest.mark.parametrize(
        ("request_", "status"),
        [
            (b"GET /other HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
            (b"nonsense\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (
                b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=abc"
                b"\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
        ],
    )
    async def test_errors(
        self, server: tuple[int, CollectorRegistry], request_: bytes, status: str
    ) -> None:
        port, _ = server
        with trio.fail_after(10):
            got, headers, body = await http(port, request_)
        assert got == status
        assert int(headers["content-length"]) == len(body) > 0
        if "405" in status:
            assert headers["allow"] == "GET, HEAD"

    async def test_connections_beyond_the_limit_are_closed_at_once(
        self, server: tuple[int, CollectorRegistry]
    ) -> None:
        port, registry = server
        with trio.fail_after(10):
            idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(16)]
            await trio.testing.wait_all_tasks_blocked()  # 16 handlers wait for requests
            extra = await trio.open_tcp_stream("127.0.0.1", port)
            assert await extra.receive_some() == b""  # closed without an answer
            await extra.aclose()
            for stream in idle:
                await stream.aclose()
            await trio.testing.wait_all_tasks_blocked()  # their handlers have ended
            status, _, body = await http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert body == generate_latest(registry)

    async def test_oversized_request_is_dropped(
        self, server: tuple[int, CollectorRegistry]
    ) -> None:
        port, _ = server
        received = b""
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                try:
                    await stream.send_all(b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 2000)
                    while chunk := await stream.receive_some():
                        received += chunk
                except trio.BrokenResourceError:
                    pass  # closed with our bytes unread: a reset
        assert received == b""

    async def test_failing_collector_is_a_500(self) -> None:
        class Broken(prometheus_client.registry.Collector):
            def collect(self) -> Iterable[Metric]:
                raise RuntimeError("broken")

        registry = CollectorRegistry()
        registry.register(Broken())
        with trio.fail_after(10), structlog.testing.capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve_metrics, 0, "127.0.0.1", registry)
                status, _, _ = await http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
                nursery.cancel_scope.cancel()
        assert status == "HTTP/1.1 500 Internal Server Error"
        assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
            "metrics_collect_failed"
        ]

    async def test_port_is_reported_and_freed(self) -> None:
        registry = CollectorRegistry()
        with trio.fail_after(10), structlog.testing.capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve_metrics, 0, "127.0.0.1", registry)
                status, _, _ = await http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
                nursery.cancel_scope.cancel()
            with pytest.raises(OSError, match="connect"):
                await trio.open_tcp_stream("127.0.0.1", port)
        assert status == "HTTP/1.1 200 OK"
        serving = [entry for entry in logs if entry["event"] == "metrics_serving"]
        assert [(entry["host"], entry["port"]) for entry in serving] == [("127.0.0.1", port)]


class TestCommandLine:
    """--metrics-port: the extra it needs, and one port per worker process."""

    def test_missing_extra_is_a_usage_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
        _require_prometheus(None)  # no --metrics-port: nothing needed
        with pytest.raises(click.UsageError, match=r"pip install 'event-collector\[prometheus\]'"):
            _require_prometheus(0)

    def test_ports_beyond_65535_are_a_usage_error(self) -> None:
        _require_prometheus(65534, 2)  # 65534 and 65535
        _require_prometheus(0, 100)  # a free port each
        with pytest.raises(click.UsageError, match="ports up to 65536, beyond 65535"):
            _require_prometheus(65534, 3)

    @pytest.mark.parametrize(
        ("port", "first", "expected"),
        [(9000, 0, ["9000", "9001"]), (9000, 1, ["9001", "9002"]), (0, 1, ["0", "0"])],
    )
    def test_a_port_per_worker_process(self, port: int, first: int, expected: list[str]) -> None:
        options = {"metrics_port": port, "metrics_host": "0.0.0.0"}
        command = _worker_commands("m:c", "ipc://x", options, log_level="info", first_port=first)
        ports = [command(index) for index in range(2)]
        assert [line[line.index("--metrics-port") + 1] for line in ports] == expected
        assert all(line[line.index("--metrics-host") + 1] == "0.0.0.0" for line in ports)


@pytest.fixture
async def processes() -> AsyncIterator[Processes]:
    async with running_processes() as started:
        yield started


async def scrape_port(port: int) -> Samples:
    with trio.fail_after(10):
        status, _, body = await http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    return parse(body.decode())[1]


@pytest.mark.skipif(sys.platform != "linux", reason="Linux process tests")
class TestProcesses:
    """A gateway and a worker process serve their figures while tasks go through."""

    async def test_gateway_and_worker(self, processes: Processes) -> None:
        with trio.fail_after(60):
            gateway = await processes.gateway(
                processes.ipc("p"), processes.ipc("w"), "--metrics-port", "0"
            )
            [serving] = await gateway.proc.wait_for_log("metrics_serving")
            gateway_port = serving["port"]
            worker = await processes.worker(
                "tests.remote_collectors:one",
                gateway.workers,
                *("--name", "w1", "--metrics-port", "0", "--max-consumers", "2"),
            )
            [serving] = await worker.wait_for_log("metrics_serving")
            worker_port = serving["port"]
            await gateway.proc.wait_for_log("worker_joined")
            async with open_producer(gateway.producers, heartbeat=Heartbeat(0.2, 5)) as remote:
                events = [await remote.send(Payload([n, 0.01])) for n in range(5)]
                for event in events:
                    assert (await event.wait())[0].unwrap()[1] in range(5)
                at_gateway = await scrape_port(gateway_port)
            at_worker = await scrape_port(worker_port)

            assert at_gateway[("event_collector_gateway_workers", ())] == 1
            assert at_gateway[("event_collector_gateway_producers", ())] == 1
            assert at_gateway[("event_collector_gateway_queued_tasks", ())] == 0
            assert at_gateway[("event_collector_gateway_in_flight_tasks", ())] == 0
            assert at_gateway[("event_collector_gateway_capacity_tasks", ())] == 10_000
            assert at_gateway[("event_collector_gateway_redelivered_tasks_total", ())] == 0
            assert at_gateway[("process_resident_memory_bytes", ())] > 0  # the process's own

            w1 = (("worker", "w1"),)
            assert at_worker[("event_collector_worker_completed_tasks_total", w1)] == 5
            assert at_worker[("event_collector_worker_registered", w1)] == 1
            assert at_worker[("event_collector_worker_in_flight_tasks", w1)] == 0
            assert at_worker[("event_collector_worker_capacity_tasks", w1)] == 4
            assert at_worker[q("events_completed_total", "default")] == 5
            assert at_worker[q("consumers", "default")] >= 1
            # The CLI's worker keeps histograms: 5 services of at least 10 ms each.
            assert at_worker[q("service_seconds_count", "default")] == 5
            assert at_worker[q("service_seconds_bucket", "default", le="0.005")] == 0
            assert at_worker[q("service_seconds_sum", "default")] >= 0.05

            for proc in (worker, gateway.proc):
                proc.process.send_signal(signal.SIGTERM)
                assert await proc.wait_exit() == 0, proc.describe()

    async def test_worker_processes_each_serve(self, processes: Processes) -> None:
        with trio.fail_after(60):
            gateway = await processes.gateway(processes.ipc("p"), processes.ipc("w"))
            supervisor = await processes.worker(
                "tests.remote_collectors:one",
                gateway.workers,
                *("--processes", "2", "--metrics-port", "0"),
            )
            serving = await supervisor.wait_for_log("metrics_serving", 2)
            ports = {entry["port"] for entry in serving}
            assert len(ports) == 2
            await supervisor.wait_for_log("worker_registered", 2)  # welcomed by the gateway
            names = set()
            for port in ports:
                samples = await scrape_port(port)
                [(name, value)] = [
                    (dict(labels)["worker"], value)
                    for (series, labels), value in samples.items()
                    if series == "event_collector_worker_registered"
                ]
                assert value == 1
                names.add(name)
            assert len(names) == 2

    async def test_serve_gateway_and_workers(self, processes: Processes) -> None:
        with trio.fail_after(60):
            serve = await processes.start(
                "serve",
                *("serve", "tests.remote_collectors:one", "--producers", processes.ipc("p")),
                *("--processes", "1", "--metrics-port", "0", *HEARTBEAT),
            )
            serving = await serve.wait_for_log("metrics_serving", 2)
            await serve.wait_for_log("worker_joined")
            kinds = []
            for entry in serving:
                series = {name for name, _ in await scrape_port(entry["port"])}
                kinds.append(
                    (
                        "event_collector_gateway_workers" in series,
                        "event_collector_worker_registered" in series,
                    )
                )
            assert sorted(kinds) == [(False, True), (True, False)]
            serve.process.send_signal(signal.SIGTERM)
            assert await serve.wait_exit() == 0, serve.describe()


class TestExample:
    """examples/prometheus_export.py, which the docs include, prints what it says."""

    async def test_runs(self) -> None:
        with trio.fail_after(30):
            done = await trio.run_process(
                [sys.executable, str(EXAMPLE)], capture_stdout=True, capture_stderr=True
            )
        assert done.stdout.decode().splitlines() == [
            'event_collector_queue_load{queue="orders"} 0.0',
            'event_collector_queue_events_completed_total{queue="orders"} 10.0',
        ]
        assert done.stderr == b""  # structlog unconfigured: no info entries
