"""
The message bus: handlers for the queue's own events (started, resized, metrics, stopped).

Run it with ``python examples/message_bus.py``. A burst of 200 events of 50 ms each meets
a pool of one consumer: the supervisor grows it at once (``burst``), then, once the burst
is over and the queue idle, shrinks it back (``idle``). Every handler prints a line; the
sizes (and the number of metrics reports, one every 0.1 s while there is work) depend on
how fast the machine is, the shape does not.
"""

from __future__ import annotations

from typing import Any

import trio

from event_collector import (
    Collector,
    CollectorQueue,
    ConsumersScaled,
    Context,
    InitializedQueue,
    MessageBus,
    Ok,
    Payload,
    ReportedMetrics,
    Result,
    ShutDownQueue,
)


class Watcher:
    """
    Bus handlers that print what the queue reports, and tell ``main`` when it shrank back.
    """

    def __init__(self) -> None:
        self.back_to_one = trio.Event()

    async def on_started(self, msg: InitializedQueue, bus: MessageBus) -> None:
        """
        Say the queue has started: lifecycles entered, consumers receiving.
        """
        print(f"started: {msg.collector_queue.consumer_count()} consumer(s)")

    async def on_scaled(self, msg: ConsumersScaled, bus: MessageBus) -> None:
        """
        Say the supervisor resized the pool (``reason``: burst, steady or idle).
        """
        print(f"scaled: {msg.old} -> {msg.new} ({msg.reason})")
        if msg.new == 1:
            self.back_to_one.set()

    async def on_metrics(self, msg: ReportedMetrics, bus: MessageBus) -> None:
        """
        Print the periodic report (every ``report_interval`` seconds) while busy.
        """
        if msg.metrics.qsize or msg.metrics.busy:  # skip the reports of an idle queue
            print(f"metrics: load {msg.metrics.load:.1f}, {msg.metrics.consumers} consumers")

    async def on_stopped(self, msg: ShutDownQueue, bus: MessageBus) -> None:
        """
        Say the queue has stopped: every event has its result.
        """
        print(f"stopped: {msg.collector_queue.statistics().completed} events completed")


async def work(payload: Payload[int], ctx: Context) -> Result[int]:
    """
    Fifty milliseconds of I/O.
    """
    await trio.sleep(0.05)
    return Ok(payload.value)


async def main() -> None:
    """
    Register the handlers, send a burst, wait for the pool to shrink again, stop.
    """
    queue: CollectorQueue[Any] = CollectorQueue(
        [Collector("work", work)],
        min_consumers=1,
        max_consumers=50,
        report_interval=0.1,
        logging=False,  # the handlers say it all
    )
    watcher = Watcher()
    bus = queue.get_message_bus()  # handlers may be added before the queue starts
    bus.add_msg_handler(InitializedQueue, watcher.on_started)
    bus.add_msg_handler(ConsumersScaled, watcher.on_scaled)
    bus.add_msg_handler(ReportedMetrics, watcher.on_metrics)
    bus.add_msg_handler(ShutDownQueue, watcher.on_stopped)
    async with queue:
        publisher = queue.get_publisher()
        events = [await publisher.send(Payload(i)) for i in range(200)]
        for event in events:
            await event.wait()
        print("burst done")
        # Idle now: after SCALE_DOWN_SAMPLES quiet samples the pool shrinks back.
        await watcher.back_to_one.wait()
        bus.remove_msg_handler(ReportedMetrics, watcher.on_metrics)


if __name__ == "__main__":
    trio.run(main)
