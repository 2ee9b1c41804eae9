"""
What a Redis queue holds, seen from outside: tasks waiting (by collector key), taken, dead.

Read-only, for dashboards and the command line; it needs no producer or worker running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

import attrs
import coredis

from ._redis_streams import DEFAULT_QUEUE, GROUP, Keys

__all__ = ["RedisQueueStatistics", "redis_queue_statistics"]


@final
@attrs.frozen
class RedisQueueStatistics:
    """
    A snapshot of a Redis queue, from :func:`redis_queue_statistics`.
    """

    #: The queue's name.
    queue: str
    #: Tasks sent and not finished (what ``max_queue`` bounds).
    size: int
    #: Tasks no worker has taken yet, by collector key: None for tasks any worker takes
    #: (broadcast, topics, several keys), a key for tasks only its collector's workers
    #: take; keys with none waiting are left out. A key whose count grows while others
    #: drain has no worker serving it.
    waiting: Mapping[str | None, int]
    #: Tasks taken by a worker and not finished (running, or held by a worker that died,
    #: until the visibility timeout gives them to another).
    taken: int
    #: Entries in the dead-letter stream.
    dead_letters: int


async def redis_queue_statistics(url: str, *, queue: str | None = None) -> RedisQueueStatistics:
    """
    Return what the Redis queue ``queue`` (default ``"event-collector"``) at ``url`` holds.

    Needs the ``redis`` extra; with ACLs, the rights ``+scan +xlen +xpending +get`` on the
    queue's keys.
    """
    keys = Keys(DEFAULT_QUEUE if queue is None else queue)
    client: coredis.Redis[bytes] = coredis.Redis.from_url(url, decode_responses=False)
    waiting: dict[str | None, int] = {}
    taken = 0
    async with client:
        streams = [key.decode() async for key in client.scan_iter(match=keys.tasks_pattern())]
        for stream in sorted(streams):
            length = await client.xlen(stream)
            try:
                summary: Any = await client.xpending(stream, GROUP)
                held = int(summary.pending)
            except coredis.exceptions.StreamConsumerGroupError:  # no worker reads it yet
                held = 0
            if length > held:
                key = keys.key_of(stream)
                waiting[key] = waiting.get(key, 0) + length - held
            taken += held
        size = int(await client.get(keys.size) or 0)
        dead = await client.xlen(keys.dead)
    return RedisQueueStatistics(
        queue=keys.queue, size=size, waiting=waiting, taken=taken, dead_letters=dead
    )
