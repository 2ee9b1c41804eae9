"""
Run a batch: send many payloads, take the results as they come.
"""

import trio

from event_collector import Collector, CollectorQueue, Context, Ok, Payload, Result


async def square(payload: Payload[int], ctx: Context) -> Result[int]:
    """
    Square the payload's value, some later than others.
    """
    await trio.sleep(0.01 * (payload.value % 3))
    return Ok(payload.value * payload.value)


async def main() -> None:
    """
    Send five payloads at once, then a thousand taken as they complete.
    """
    async with CollectorQueue([Collector("square", square)], max_consumers=10) as queue:
        publisher = queue.get_publisher()

        # All at once: the events, in order.
        events = await publisher.send_many(range(5))
        print([(await event.wait()).first().unwrap() for event in events])

        # As they complete: no task and no trio.Event per event.
        total = 0
        async for event in publisher.as_completed(range(1000), window=100):
            result = event.get_result()
            assert result is not None
            total += result.first().unwrap()
        print(total)


if __name__ == "__main__":
    trio.run(main)
