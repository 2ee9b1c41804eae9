"""
Export a queue's metrics to Prometheus, served over HTTP beside the queue.

Run it with ``python examples/prometheus_export.py``: it sends ten events, scrapes its own
metrics endpoint as Prometheus would, and prints two of the series.
"""

from __future__ import annotations

import trio
from prometheus_client import CollectorRegistry

from event_collector import Collector, CollectorQueue, Context, Ok, Payload, Result
from event_collector.prometheus import register, serve_metrics
from event_collector.queue import TIME_BUCKETS


async def store(payload: Payload[int], ctx: Context) -> Result[int]:
    """
    Take a millisecond.
    """
    await trio.sleep(0.001)
    return Ok(payload.value)


async def scrape(port: int) -> str:
    """
    GET /metrics, as Prometheus does; return the exposition text.
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = b""
        while chunk := await stream.receive_some():
            response += chunk
    return response.decode().partition("\r\n\r\n")[2]


async def main() -> None:
    """
    Serve the metrics of queue "orders", send it ten events, scrape, print two series.
    """
    registry = CollectorRegistry()  # or leave it out: prometheus_client's default REGISTRY
    queue = CollectorQueue(
        [Collector("store", store)],
        name="orders",  # the "queue" label of its series
        time_buckets=TIME_BUCKETS,  # keep service and wait time histograms
    )
    register(queue, registry=registry)
    async with queue, trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, 0, "127.0.0.1", registry)  # 0: a free port
        publisher = queue.get_publisher()
        events = [await publisher.send(n) for n in range(10)]
        for event in events:
            await event.wait()
        text = await scrape(port)
        nursery.cancel_scope.cancel()  # stop serving
    wanted = ("event_collector_queue_events_completed_total", "event_collector_queue_load")
    for line in text.splitlines():
        if line.startswith(wanted):
            print(line)


if __name__ == "__main__":
    trio.run(main)
