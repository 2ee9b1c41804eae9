"""
A priority queue: a busy consumer takes the waiting events lowest priority first.

Run it with ``python examples/priority.py``. The pool is one consumer (``autoscale=False``,
``max_consumers=1``), held busy by a first event while the others are sent, so they queue
up; once it is free it takes them by priority, equal priorities in the order they came.
"""

from __future__ import annotations

import enum
from typing import Any

import trio

from event_collector import Collector, CollectorQueue, Context, Ok, Payload, QueueType, Result


class Urgency(enum.IntEnum):
    """
    Priorities: any int, IntEnum members included; lower goes first.
    """

    PAGE = 0
    TICKET = 5
    LOG = 9


async def handle(payload: Payload[str], ctx: Context) -> Result[str]:
    """
    Record the order of processing; the first event waits until the others are queued.
    """
    if payload.value == "hold":
        ctx.holding.set()
        await ctx.release.wait()
    ctx.order.append(payload.value)
    return Ok(payload.value)


async def main() -> None:
    """
    Queue events of mixed priorities behind a busy consumer; print the order they ran in.
    """
    ctx = Context(order=[], holding=trio.Event(), release=trio.Event())
    queue: CollectorQueue[Any] = CollectorQueue(
        [Collector("work", handle, ctx=ctx)],
        queue_type=QueueType.PRIORITY,
        default_priority=Urgency.TICKET.value,  # for payloads sent with priority=None
        autoscale=False,
        max_consumers=1,
    )
    async with queue:
        publisher = queue.get_publisher()
        first = await publisher.send(Payload("hold"))
        await ctx.holding.wait()  # the only consumer is busy: what follows waits in the queue
        events = [
            await publisher.send(Payload("log-1", priority=Urgency.LOG)),
            await publisher.send(Payload("ticket-1")),  # default_priority
            await publisher.send(Payload("page-1", priority=Urgency.PAGE)),
            await publisher.send(Payload("log-2", priority=Urgency.LOG)),
            await publisher.send(Payload("ticket-2", priority=Urgency.TICKET)),
            await publisher.send(Payload("page-2", priority=Urgency.PAGE)),
            await publisher.send(Payload("urgent", priority=-1)),
        ]
        print(f"queued behind the busy consumer: {queue.statistics().queued}")
        ctx.release.set()
        for event in [first, *events]:
            await event.wait()
    print("processing order:", " ".join(ctx.order))


if __name__ == "__main__":
    trio.run(main)
