"""
Custom routers: choose the collectors (``select``), or deliver yourself (``handle_event``).

Run it with ``python examples/custom_router.py``.

- ``ShardRouter`` overrides ``select``: each payload goes to one of three shard collectors,
  picked from its ``customer`` field, so one customer's events always reach the same shard.
  The queue runs the chosen collectors.
- ``FallbackRouter`` overrides ``handle_event``: it tries the ``primary`` collector and,
  if that fails, the ``fallback`` one, returning both results. It runs each collector
  through ``Router.deliver``, which keeps logging and per-collector results at shutdown.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import trio

from event_collector import (
    Collector,
    CollectorQueue,
    Context,
    Ok,
    Payload,
    Result,
    ResultList,
    Router,
)


class ShardRouter(Router[str]):
    """
    Send each payload to the shard of its customer: a stable hash, modulo the shard count.
    """

    def select(self, payload: Payload[Any]) -> Sequence[Collector[str]]:
        """
        Return the one collector whose turn it is for this customer.
        """
        shard = zlib.crc32(payload.value["customer"].encode()) % len(self.collectors)
        return [self.collectors[shard]]


async def shard(payload: Payload[dict[str, str]], ctx: Context) -> Result[str]:
    """
    Handle an order on this shard.
    """
    return Ok(f"{ctx.name} took {payload.value['order']}")


class FallbackRouter(Router[str]):
    """
    Try ``primary``; if it fails, deliver to ``fallback`` as well.
    """

    async def handle_event(self, payload: Payload[Any]) -> ResultList[str]:
        """
        Deliver to the primary collector, then to the fallback if the primary failed.
        """
        primary, fallback = self.collectors
        first = await self.deliver(payload, [primary])
        if first.first().is_ok():
            return first
        second = await self.deliver(payload, [fallback])
        return ResultList([*first, *second], [*first.keys, *second.keys])


async def remote_cache(payload: Payload[str], ctx: Context) -> Result[str]:
    """
    Look the value up in a cache that only knows "cached"; raise for anything else.
    """
    if payload.value != "cached":
        raise LookupError(payload.value)
    return Ok("from cache")


async def database(payload: Payload[str], ctx: Context) -> Result[str]:
    """
    Read the value from the slower source that always answers.
    """
    return Ok("from database")


async def main() -> None:
    """
    Run one queue per router and print where each payload went.
    """
    shards = [shard_collector(n) for n in range(3)]
    async with CollectorQueue(shards, router=ShardRouter) as queue:
        publisher = queue.get_publisher()
        for customer, order in [("ada", "o1"), ("bob", "o2"), ("ada", "o3"), ("cyd", "o4")]:
            event = await publisher.send(Payload({"customer": customer, "order": order}))
            [(key, result)] = (await event.wait()).items()
            print(f"{customer}/{order} -> {key}: {result.unwrap()}")

    collectors = [Collector("primary", remote_cache), Collector("fallback", database)]
    async with CollectorQueue(collectors, router=FallbackRouter, failure_log_level=None) as queue:
        publisher = queue.get_publisher()
        for key in ["cached", "other"]:
            results = await (await publisher.send(Payload(key))).wait()
            outcomes = [
                f"{collector}={'ok' if result.is_ok() else 'failed'}"
                for collector, result in results.items()
            ]
            answer = next(r.unwrap() for r in results if isinstance(r, Ok))
            print(f"{key}: {', '.join(outcomes)} -> {answer}")


def shard_collector(n: int) -> Collector[str]:
    """
    Return shard ``n``'s collector.
    """
    return Collector(f"shard-{n}", shard, ctx=Context(name=f"shard-{n}"))


if __name__ == "__main__":
    trio.run(main)
