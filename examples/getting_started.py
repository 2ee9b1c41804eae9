"""
Getting started: 100 events through a collector whose processor takes 0.25 s.

The asyncio library's getting-started script, for Trio: ``trio.sleep`` instead of
``asyncio.sleep``, ``trio.run`` instead of ``asyncio.run``; the rest is the same API.
Run it with ``python examples/getting_started.py``: it prints each result, then the elapsed
time, about 0.25 s, since the pool grows to run the 100 events side by side.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import trio

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    EventPublisher,
    Ok,
    Payload,
    Result,
)


# 1. A processor: (payload, context) -> Ok | Error.
async def event_handler(payload: Payload[dict[str, Any]], ctx: Context) -> Result[dict[str, Any]]:
    """
    Stamp the payload's id with the time it was received, after 'working' 0.25 s.
    """
    now = datetime.datetime.now(datetime.UTC).isoformat()
    await trio.sleep(0.25)  # talk to a database, call an API...
    return Ok({"id": payload.value["id"], "received_at": now})


# 2. Send: each send returns a CollectorEvent, a future of the event's results.
async def send_events(publisher: EventPublisher[dict[str, Any]]) -> list[CollectorEvent[Any]]:
    """
    Send 100 payloads; return their events.
    """
    events = []
    for i in range(100):
        event = await publisher.send(Payload({"id": f"payload-{i}"}))
        events.append(event)
    return events


# 3. Results: wait() gives a ResultList, one result per collector reached.
async def output_results(events: list[CollectorEvent[Any]]) -> None:
    """
    Wait for each event and print its first result's value.
    """
    for event in events:
        result_list = await event.wait()
        print(result_list.first().unwrap())


async def main() -> None:
    """
    Run the queue as an async context manager: it owns its consumer tasks.
    """
    collector = Collector("demo-collector", event_handler)
    collector_queue = CollectorQueue([collector], min_consumers=1, max_consumers=100)
    start = time.monotonic()
    async with collector_queue:
        publisher = collector_queue.get_publisher()
        events = await send_events(publisher)
        await output_results(events)
    print(f"elapsed={time.monotonic() - start:.3f}")


if __name__ == "__main__":
    trio.run(main)
