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
task, a msgpack ``Task``). A result entry holds the results of one completion for one
producer: its field ``r`` is a msgpack array of :class:`Reply`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, final

import msgspec

from ._wire import Outcome

__all__ = [
    "COMPLETE",
    "DEFAULT_LEVEL",
    "DEFAULT_QUEUE",
    "ENQUEUE",
    "GROUP",
    "LEVELS",
    "TAKE",
    "Keys",
    "Reply",
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


@final
class Reply(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """
    One task's result, in a result entry: its outcomes, or why it could not run.
    """

    #: The producer's task id.
    task: str
    #: Which delivery of the task produced the outcomes (0 with ``error``).
    attempt: int = 0
    outcomes: tuple[Outcome, ...] = ()
    #: Why the task could not run (it was dead-lettered), or None.
    error: str | None = None


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
#: the producer's name, a line per task, then the tasks (msgpack ``Task``) end to end. A
#: task's line is "S ID N\n": its stream KEYS[S], its id, the length of its bytes. Returns
#: {how many were added (the first ones; the rest wait for room), the size}.
ENQUEUE: Final = """
local producer, tasks = ARGV[2], ARGV[4]
local size = tonumber(redis.call('GET', KEYS[1]) or '0')
local room = tonumber(ARGV[1]) - size
if room <= 0 then return {0, size} end
local added, at = 0, 1
for s, id, n in string.gmatch(ARGV[3], '(%d+) (%S+) (%d+)\\n') do
  if added >= room then break end
  local stop = at + tonumber(n)
  redis.call('XADD', KEYS[tonumber(s)], '*',
    'i', id, 'p', producer, 't', string.sub(tasks, at, stop - 1))
  added = added + 1
  at = stop
end
return {added, redis.call('INCRBY', KEYS[1], added)}
"""

#: Take up to ARGV[3] new tasks for consumer ARGV[2] of group ARGV[1], from the streams in
#: KEYS in order (so by priority level): one round trip, never more than asked for.
#: Returns five values a task, flat: the index of its stream in KEYS, its entry id, and its
#: fields ``i``, ``p`` and ``t`` (nil when the entry has not got one).
TAKE: Final = """
local group, consumer, wanted = ARGV[1], ARGV[2], tonumber(ARGV[3])
local taken, n = {}, 0
for k, key in ipairs(KEYS) do
  if wanted <= 0 then break end
  local got = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', wanted,
    'STREAMS', key, '>')
  if got then
    for _, entry in ipairs(got[1][2]) do
      local fields, i, p, t = entry[2], false, false, false
      for f = 1, #fields, 2 do
        local name = fields[f]
        if name == 'i' then i = fields[f + 1]
        elseif name == 'p' then p = fields[f + 1]
        elseif name == 't' then t = fields[f + 1] end
      end
      taken[n + 1], taken[n + 2], taken[n + 3], taken[n + 4], taken[n + 5] = k, entry[1], i, p, t
      n = n + 5
      wanted = wanted - 1
    end
  end
end
return taken
"""

#: Store results and acknowledge their tasks, atomically, each only if this worker's XACK
#: took it (so a task taken by two workers gets one result). KEYS = size, the dead-letter
#: stream, then the task streams and the producers' result streams of the batch. ARGV = the
#: group, the result TTL, a line per task, the tasks' replies end to end, then the dead
#: letters' reasons and task ids. A task's line is "S R C D ID N\n": its stream KEYS[S], its
#: producer's result stream KEYS[R] (0: none, no result is stored), C 1 if it counts in the
#: queue's size, its dead-letter reason ARGV[D] and task id ARGV[D + 1] (0: not dead), its
#: entry id, and the length of its reply (a msgpack Reply). Each producer gets one result
#: entry, ``r``: a msgpack array of the replies of its acknowledged tasks (fewer than 65 536);
#: acknowledged entries are deleted, one XDEL a stream. Returns how many were acknowledged.
COMPLETE: Final = """
local group, ttl, replies = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local at, acked, counted, results, order, done = 1, 0, 0, {}, {}, {}
for s, r, c, d, id, n in string.gmatch(ARGV[3], '(%d+) (%d+) (%d) (%d+) (%S+) (%d+)\\n') do
  local stream, stop = KEYS[tonumber(s)], at + tonumber(n)
  if redis.call('XACK', stream, group, id) == 1 then
    acked = acked + 1
    if c == '1' then counted = counted + 1 end
    if r ~= '0' then
      local result = KEYS[tonumber(r)]
      local parts = results[result]
      if not parts then
        parts = {}
        results[result] = parts
        order[#order + 1] = result
      end
      parts[#parts + 1] = string.sub(replies, at, stop - 1)
    end
    if d ~= '0' then
      d = tonumber(d)
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*',
        'stream', stream, 'id', id, 'task', ARGV[d + 1], 'reason', ARGV[d])
    end
    local ids = done[stream]
    if not ids then
      ids = {}
      done[stream] = ids
    end
    ids[#ids + 1] = id
  end
  at = stop
end
for stream, ids in pairs(done) do
  redis.call('XDEL', stream, unpack(ids))
end
for _, result in ipairs(order) do
  local parts = results[result]
  local n = #parts
  local header = n < 16 and string.char(0x90 + n)
    or string.char(0xdc, math.floor(n / 256), n % 256)
  redis.call('XADD', result, '*', 'r', header .. table.concat(parts))
  redis.call('EXPIRE', result, ttl)
end
if counted > 0 then redis.call('DECRBY', KEYS[1], counted) end
return acked
"""
