"""
Routing: one queue, three collectors, payloads by key, by topic and to everyone.

Run it with ``python examples/routing.py``. Each line shows a payload and the results it
got, as ``collector=value`` in collector registration order.
"""

from __future__ import annotations

from typing import Any

import trio

from event_collector import (
    Collector,
    CollectorQueue,
    Context,
    Delivery,
    Ok,
    Payload,
    Result,
    ResultList,
)


async def store(payload: Payload[Any], ctx: Context) -> Result[str]:
    """
    Pretend to store the value.
    """
    return Ok(f"stored {payload.value}")


async def audit(payload: Payload[Any], ctx: Context) -> Result[str]:
    """
    Pretend to write an audit record.
    """
    return Ok(f"audited {payload.value}")


async def notify(payload: Payload[Any], ctx: Context) -> Result[str]:
    """
    Pretend to notify someone.
    """
    return Ok(f"notified {payload.value}")


# A collector has a key (for Delivery.KEY) and may listen to topics (for Delivery.TOPIC).
COLLECTORS = [
    Collector("store", store, topics=["orders"]),
    Collector("audit", audit, topics=["orders", "payments"]),
    Collector("notify", notify, topics=["payments"]),
]


def show(label: str, results: ResultList[str]) -> None:
    """
    Print which collectors answered, or that nothing was delivered.
    """
    if not results.delivered:
        print(f"{label}: not delivered, {results.first()}")
        return
    answers = ", ".join(f"{key}={result.unwrap()!r}" for key, result in results.items())
    print(f"{label}: {answers}")


async def main() -> None:
    """
    Send one payload per delivery mode and print the results of each.
    """
    async with CollectorQueue(COLLECTORS) as queue:
        publisher = queue.get_publisher()
        payloads = {
            # keys alone mean Delivery.KEY: the collectors named
            "key store": Payload("order-1", keys=["store"]),
            "keys notify+store": Payload("order-2", keys=["notify", "store"]),
            # topics alone mean Delivery.TOPIC: every collector sharing a topic
            "topic orders": Payload("order-3", topics=["orders"]),
            "topic payments": Payload("payment-4", topics=["payments"]),
            # neither means Delivery.BROADCAST: every collector
            "broadcast": Payload("shutdown-notice"),
            # with both keys and topics, delivery says which one routes
            "both, by topic": Payload(
                "order-5", delivery=Delivery.TOPIC, keys=["store"], topics=["payments"]
            ),
            # a key no collector has: a single Ok(None), nothing delivered
            "key unknown": Payload("order-6", keys=["archive"]),
        }
        for label, payload in payloads.items():
            event = await publisher.send(payload)
            show(label, await event.wait())


if __name__ == "__main__":
    trio.run(main)
