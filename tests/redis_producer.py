"""
A producer process for ``test_redis_processes.py``: ``python -m tests.redis_producer``.

``URL QUEUE NAME send COUNT GATE`` sends COUNT tasks ``[n, GATE]`` for the collector ``a``
of ``tests.remote_collectors`` (which wait on the gate directory GATE), waits until all are
in Redis, prints ``sent N TASK_ID`` for each and then ``all sent``, and waits to be killed.

``URL QUEUE NAME recover`` prints ``recovered JSON`` once it has read its result stream to
the end: ``RedisProducer.recovered()`` as ``{task id: the first result's value}`` (or
``"error: ..."``), and exits.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import trio

from event_collector import Ok, Payload
from event_collector.remote import RedisProducer, open_producer


async def send(url: str, queue: str, name: str, count: int, gate: str) -> None:
    async with open_producer(url, queue=queue, name=name, logging=False) as producer:
        events = [await producer.send(Payload([n, gate], keys=["a"])) for n in range(count)]
        while producer.statistics().unsent:  # noqa: ASYNC110  (no event says so)
            await trio.sleep(0.01)
        for n, event in enumerate(events):
            print(f"sent {n} {event.task_id}", flush=True)
        print("all sent", flush=True)
        await trio.sleep(math.inf)


async def recover(url: str, queue: str, name: str) -> None:
    async with open_producer(url, queue=queue, name=name, logging=False) as producer:
        assert isinstance(producer, RedisProducer)
        recovered = await producer.recovered()
    found: dict[str, Any] = {}
    for task_id, results in recovered.items():
        first = results.first()
        found[task_id] = first.value if type(first) is Ok else f"error: {first}"
    print(f"recovered {json.dumps(found)}", flush=True)


def main(argv: list[str]) -> None:
    url, queue, name, action, *rest = argv
    if action == "send":
        trio.run(send, url, queue, name, int(rest[0]), rest[1])
    else:
        trio.run(recover, url, queue, name)


if __name__ == "__main__":
    main(sys.argv[1:])
