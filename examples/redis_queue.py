"""
The Redis Streams mode: a producer and a worker meeting in Redis, and what the queue holds.

Run it with ``python examples/redis_queue.py redis://HOST:6379/0`` (any URL coredis takes:
``rediss://`` for TLS, ``unix:///path/redis.sock``). The worker runs in this program to keep
it self-contained; in a deployment it is ``event-collector worker MODULE:ATTR --connect
URL`` on any host. First it sends a task for a collector key no worker serves: the task
waits, visibly, in the queue statistics. Then a worker for that key starts, and the
task's result arrives.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import trio

from event_collector import Collector, Context, Ok, Payload, Result
from event_collector.remote import open_producer, open_worker, redis_queue_statistics


async def store(payload: Payload[dict[str, Any]], ctx: Context) -> Result[str]:
    """
    Pretend to store an order.
    """
    return Ok(f"stored order {payload.value['id']}")


async def main(url: str) -> None:
    """
    Queue a task, look at the queue, serve the task, look again.
    """
    queue = f"example-{uuid.uuid4().hex[:8]}"  # a fresh queue: its keys share this tag
    async with open_producer(url, name="orders-api", queue=queue) as producer:
        event = await producer.send(Payload({"id": 1}, keys=["store"]))
        # The producer writes to Redis from a task of its own, in batches: wait for it.
        while (stats := await redis_queue_statistics(url, queue=queue)).size == 0:  # noqa: ASYNC110
            await trio.sleep(0.01)  # (a poll: Redis has nothing to wait on)
        print(f"before any worker: size={stats.size} waiting={dict(stats.waiting)}")

        async with open_worker([Collector("store", store)], url, queue=queue):
            results = await event.wait()  # the same ResultList as in-process
            print("result:", results.first().unwrap())
    stats = await redis_queue_statistics(url, queue=queue)
    print(f"after: size={stats.size} waiting={dict(stats.waiting)} taken={stats.taken}")


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
