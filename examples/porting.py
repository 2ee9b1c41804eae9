"""
The asyncio library's calls, in their Trio form, side by side in one runnable script.

Run it with ``python examples/porting.py``. Each part prints what it shows.
"""

from __future__ import annotations

import trio

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    Error,
    InitializedQueue,
    MessageBus,
    Ok,
    Payload,
    Result,
    ShutDownQueue,
)


async def event_handler(payload: Payload[str], ctx: Context) -> Result[str]:
    """
    Upper-case the value: the same signature as in asyncio, with trio.sleep.
    """
    await trio.sleep(0.01)
    return Ok(payload.value.upper())


# Bus handlers take (msg, bus), not (msg, queue).
async def handle_init_queue(msg: InitializedQueue, bus: MessageBus) -> None:
    """
    Print when the queue has started.
    """
    print("collector queue initialized")


async def handle_shut_down_queue(msg: ShutDownQueue, bus: MessageBus) -> None:
    """
    Print when the queue has stopped.
    """
    print("collector queue has shut down")


async def started_by_hand() -> None:
    """
    ``await queue.init_queue()`` becomes ``await queue.init_queue(nursery)``.
    """
    collector_queue: CollectorQueue[str] = CollectorQueue([Collector("demo", event_handler)])
    msgbus = collector_queue.get_message_bus()
    msgbus.add_msg_handler(InitializedQueue, handle_init_queue)
    msgbus.add_msg_handler(ShutDownQueue, handle_shut_down_queue)
    async with trio.open_nursery() as nursery:  # Trio runs background tasks in a nursery
        try:
            await collector_queue.init_queue(nursery)  # = await nursery.start(queue.run)
            publisher = collector_queue.get_publisher()
            event = await publisher.send(Payload("hello"))
            result_list = await event.wait()
            # get_result() is synchronous: no await (None while the event is pending).
            assert event.get_result() == result_list
            # async for over iter() still works; a plain for does the same.
            async for result in result_list.iter():
                match result:
                    case Ok(value):
                        print("result:", value)
                    case Error(error):
                        print("error:", error)
        finally:
            await collector_queue.shut_down_queue()


async def full_queue() -> None:
    """
    ``asyncio.QueueFull`` becomes ``trio.WouldBlock`` from ``send_nowait``; ``send`` waits.
    """
    queue: CollectorQueue[str] = CollectorQueue(
        [Collector("demo", event_handler)], max_queue_size=1, autoscale=False, max_consumers=1
    )
    async with queue:
        publisher = queue.get_publisher()
        events: list[CollectorEvent[str]] = []
        try:
            while True:  # one event goes to the idle consumer, one fills the queue
                events.append(publisher.send_nowait(Payload(f"event {len(events)}")))
        except trio.WouldBlock:
            print("queue full: send_nowait raised trio.WouldBlock")
        events.append(await publisher.send(Payload("last")))  # send waits for room instead
        results = [(await event.wait()).first().unwrap() for event in events]
        print("last result:", results[-1])


async def main() -> None:
    """
    Run both parts.
    """
    await started_by_hand()
    await full_queue()


if __name__ == "__main__":
    trio.run(main)
