"""
Shutdown, cancellation and errors: every sent event resolves exactly once.

Run it with ``python examples/shutdown.py``. Four ways a queue ends:

1. leaving ``async with``: queued events are still processed, for up to
   ``consumer_shutdown_timeout`` seconds; what is left then gets ``Error(ShutdownError())``;
2. ``shut_down_queue()`` from another task, on a queue run with ``nursery.start(queue.run)``;
3. ``shut_down_queue()`` from a processor (a "stop" command);
4. a cancellation from outside: nothing more is processed and the cancellation propagates.
"""

from __future__ import annotations

from typing import Any

import trio

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    Error,
    Ok,
    Payload,
    Result,
    ShutdownError,
)


async def work(payload: Payload[float], ctx: Context) -> Result[float]:
    """
    Sleep as many seconds as the payload says.
    """
    await trio.sleep(payload.value)
    return Ok(payload.value)


def outcome(event: CollectorEvent[Any]) -> str:
    """
    ``ok``, ``shutdown`` or the error's type, for a resolved event.
    """
    results = event.get_result()
    assert results is not None, "every event resolves before the queue stops"
    match results.first():
        case Ok(_):
            return "ok"
        case Error(ShutdownError()):
            return "shutdown"
        case Error(error):
            return type(error).__name__


async def leave_async_with() -> None:
    """
    Leave ``async with`` with events queued: the quick ones finish, the slow one cannot.
    """
    queue: CollectorQueue[float] = CollectorQueue(
        [Collector("work", work)],
        autoscale=False,
        max_consumers=2,
        consumer_shutdown_timeout=0.5,
        logging=False,
    )
    async with queue:
        publisher = queue.get_publisher()
        events = [await publisher.send(Payload(delay)) for delay in (0.0, 0.1, 60.0, 0.0)]
    # The queue has stopped: every event has its result.
    print("1. leaving async with:", [outcome(event) for event in events])
    try:
        await publisher.send(Payload(0.0))
    except trio.ClosedResourceError as exc:
        print("   send after shutdown:", exc)


async def from_another_task() -> None:
    """
    Run the queue in a nursery of yours; stop it from another task.
    """
    queue: CollectorQueue[float] = CollectorQueue([Collector("work", work)], logging=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)  # returns once the consumers receive
        event = await queue.get_publisher().send(Payload(0.1))
        await queue.shut_down_queue()  # waits until every event has its result
        print("2. shut_down_queue() from another task:", outcome(event))


async def from_a_processor() -> None:
    """
    Stop the queue from a processor: a "stop" command, which gets its own result.
    """

    async def command(payload: Payload[str], ctx: Context) -> Result[str]:
        if payload.value == "stop":
            await ctx.queue.shut_down_queue()  # from a processor: starts it and returns
            return Ok("stopping")
        return Ok(payload.value)

    ctx = Context()
    queue: CollectorQueue[str] = CollectorQueue(
        [Collector("commands", command, ctx=ctx)], logging=False
    )
    ctx.queue = queue
    async with queue:
        publisher = queue.get_publisher()
        stop = await publisher.send(Payload("stop"))
        result = (await stop.wait()).first().unwrap()
        try:
            await publisher.send(Payload("more"))
        except trio.ClosedResourceError:
            print(f"3. shut_down_queue() from a processor: {result!r}, later sends refused")


async def cancelled_from_outside() -> None:
    """
    Cancel the code around the queue: pending events resolve, Cancelled propagates.
    """
    queue: CollectorQueue[float] = CollectorQueue([Collector("work", work)], logging=False)
    events: list[CollectorEvent[float]] = []
    with trio.move_on_after(0.2) as scope:
        async with queue:
            publisher = queue.get_publisher()
            events.append(await publisher.send(Payload(0.0)))
            events.append(await publisher.send(Payload(60.0)))
            await trio.sleep_forever()
    outcomes = [outcome(event) for event in events]
    print(f"4. cancelled from outside: {outcomes}, cancelled_caught={scope.cancelled_caught}")


async def main() -> None:
    """
    Run the four scenarios one after the other.
    """
    await leave_async_with()
    await from_another_task()
    await from_a_processor()
    await cancelled_from_outside()


if __name__ == "__main__":
    trio.run(main)
