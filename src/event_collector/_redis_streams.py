"""
The Redis Streams layout of a queue: its keys, the fields of its entries, its scripts.

Every key of a queue named ``Q`` carries the hash tag ``{Q}``, so a queue lives in one slot
of a Redis cluster and its scripts may touch all its keys:

- ``{Q}:t:L:*``: tasks of priority level ``L`` for any worker (broadcast, topics, several
  keys); ``{Q}:t:L:k:KEY``: tasks for the single collector key ``KEY``, read only by
  workers serving it (a task for a key no worker serves waits there, visibly). Levels run
  from 0 (first) to :data:`LEVELS` - 1; a producer that does not ask for priority uses
  :data:`DEFAULT_LEVEL`.
- ``{Q}:r:PRODUCER``: the results for the producer of that name, kept ``result_ttl`` seconds
  after the last one.
- ``{Q}:size``: the tasks sent and not yet finished. The enqueue script adds a task only
  while it is below ``max_queue``: a full queue makes ``send`` wait; nothing unprocessed is
  ever trimmed.
- ``{Q}:dead``: tasks that could not run (malformed, or a worker died with them
  ``max_attempts`` times), with the reason.

Workers of a queue form the consumer group :data:`GROUP` on every task stream. A task entry
has the fields ``i`` (the producer's task id), ``p`` (the producer's name) and ``t`` (the
task, a msgpack ``Task``); a result entry ``i`` and either ``r`` (a msgpack ``TaskResult``) or
``e`` (why the task could not run).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "COMPLETE",
    "DEFAULT_LEVEL",
    "DEFAULT_QUEUE",
    "ENQUEUE",
    "GROUP",
    "LEVELS",
    "TAKE",
    "Keys",
    "level_of",
]

#: The queue name when none is given.
DEFAULT_QUEUE: Final = "event-collector"
#: Priority levels: a task's ``Payload.priority``, clamped to ``0 .. LEVELS - 1``.
LEVELS: Final = 10
#: The level of tasks whose producer does not ask for priority, or that have none.
DEFAULT_LEVEL: Final = 5
#: The consumer group of the workers on every task stream.
GROUP: Final = "workers"


def level_of(priority: int | None, by_priority: bool) -> int:
    """
    Return the priority level of a task (lower is taken first).
    """
    if not by_priority or priority is None:
        return DEFAULT_LEVEL
    return min(max(priority, 0), LEVELS - 1)


class Keys:
    """
    The key names of one queue.
    """

    __slots__ = ("dead", "queue", "size", "tag")

    def __init__(self, queue: str) -> None:
        if not queue or "{" in queue or "}" in queue:
            raise ValueError(f"queue must be a non-empty name without braces, got {queue!r}")
        self.queue = queue
        self.tag = "{" + queue + "}"
        self.size = f"{self.tag}:size"
        self.dead = f"{self.tag}:dead"

    def tasks(self, level: int, key: str | None = None) -> str:
        """
        Return the task stream of ``level``, for one collector key or (None) for any worker.
        """
        return f"{self.tag}:t:{level}:k:{key}" if key is not None else f"{self.tag}:t:{level}:*"

    def task_stream(self, level: int, keys: tuple[str, ...], delivery_is_key: bool) -> str:
        """
        Return the stream a task goes to: its one key's, or the one for any worker.
        """
        if delivery_is_key and len(keys) == 1:
            return self.tasks(level, keys[0])
        return self.tasks(level)

    def served(self, keys: Iterable[str]) -> list[str]:
        """
        Return the task streams a worker serving ``keys`` reads, in the order it takes them.
        """
        keys = list(keys)
        return [
            stream
            for level in range(LEVELS)
            for stream in (self.tasks(level), *(self.tasks(level, key) for key in keys))
        ]

    def tasks_pattern(self) -> str:
        """
        Return a SCAN pattern matching every task stream of the queue.
        """
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self.tag)
        return f"{escaped}:t:*"

    def key_of(self, stream: str) -> str | None:
        """
        Return the collector key a task stream is for, or None for any worker's.
        """
        _level, _, rest = stream.removeprefix(f"{self.tag}:t:").partition(":")
        return rest.removeprefix("k:") if rest.startswith("k:") else None

    def results(self, producer: str) -> str:
        """
        Return the result stream of the producer named ``producer``.
        """
        return f"{self.tag}:r:{producer}"


#: Add tasks while the queue has room: KEYS = size, then the task streams; ARGV = the bound,
#: the count, then per task: the index of its stream in KEYS, its id, its producer, its
#: bytes. Returns {how many were added (the first ones; the rest wait for room), the size}.
ENQUEUE: Final = """
local limit, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local size = tonumber(redis.call('GET', KEYS[1]) or '0')
local added = math.min(count, limit - size)
if added <= 0 then return {0, size} end
for n = 0, added - 1 do
  local at = 3 + n * 4
  redis.call('XADD', KEYS[tonumber(ARGV[at])], '*',
    'i', ARGV[at + 1], 'p', ARGV[at + 2], 't', ARGV[at + 3])
end
return {added, redis.call('INCRBY', KEYS[1], added)}
"""

#: Take up to ARGV[3] new tasks for consumer ARGV[2] of group ARGV[1], from the streams in
#: KEYS in order (so by priority level): one round trip, never more than asked for.
#: Returns {stream, id, fields} triples.
TAKE: Final = """
local group, consumer, wanted = ARGV[1], ARGV[2], tonumber(ARGV[3])
local taken = {}
for _, key in ipairs(KEYS) do
  if wanted <= 0 then break end
  local got = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', wanted,
    'STREAMS', key, '>')
  if got then
    for _, stream in ipairs(got) do
      for _, entry in ipairs(stream[2]) do
        taken[#taken + 1] = {key, entry[1], entry[2]}
        wanted = wanted - 1
      end
    end
  end
end
return taken
"""

#: Store results and acknowledge their tasks, atomically, each only if this worker's XACK
#: took it (so a task taken by two workers gets one result): KEYS = size, the dead-letter
#: stream, then per task its stream and its producer's result stream (the dead-letter stream
#: again when the producer is unknown); ARGV = the group, the result TTL, the count, then
#: per task: entry id, task id ("" if unknown), result field ("r" or "e"), result, a
#: dead-letter reason ("" if none), "1" if it counts in the queue's size. Returns how many
#: tasks it acknowledged.
COMPLETE: Final = """
local group, ttl, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local acked, counted = 0, 0
for n = 0, count - 1 do
  local stream, reply = KEYS[3 + 2 * n], KEYS[4 + 2 * n]
  local at = 4 + 6 * n
  local id, task, field, value, dead = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3],
    ARGV[at + 4]
  if redis.call('XACK', stream, group, id) == 1 then
    if task ~= '' then
      redis.call('XADD', reply, '*', 'i', task, field, value)
      redis.call('EXPIRE', reply, ttl)
    end
    if dead ~= '' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*',
        'stream', stream, 'id', id, 'task', task, 'reason', dead)
    end
    redis.call('XDEL', stream, id)
    acked = acked + 1
    if ARGV[at + 5] == '1' then counted = counted + 1 end
  end
end
if counted > 0 then redis.call('DECRBY', KEYS[1], counted) end
return acked
"""
