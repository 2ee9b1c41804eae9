"""
The worker of the Redis Streams mode: a consumer of the queue's group feeding a queue.

Four tasks:

- the reader takes new tasks with the take script (priority levels in order, never more than
  the worker's free capacity, so several workers share a burst), and blocks on XREADGROUP
  when there are none;
- the flusher stores results with the complete script, which acknowledges each task and adds
  its result to the producer's stream atomically (a task is acknowledged exactly when its
  result is stored), in batches: one script call a batch, one result entry a producer;
- the reclaimer takes, with XAUTOCLAIM, tasks idle with another worker for longer than
  ``visibility_timeout`` (a worker that died), and sends a task whose delivery count passed
  ``max_attempts`` to the dead-letter stream with an error for its producer;
- the lease keeper renews the worker's own tasks (XCLAIM ... JUSTID) every third of the
  visibility timeout, so a slow task is not taken from a live worker.

A malformed entry goes to the dead-letter stream with the reason, and the worker goes on.
Every call to Redis is tried again with a backoff while Redis is down or restarting.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypeAlias, final

import attrs
import coredis
import coredis.exceptions
import msgspec
import trio

from ._logging import get_logger
from ._queue import CollectorQueue
from ._redis_producer import RETRYABLE
from ._redis_streams import COMPLETE, DEFAULT_QUEUE, GROUP, TAKE, Keys, Reply
from ._serializer import Serializer
from ._wire import Outcome, Task
from ._worker import BATCH, Worker

__all__ = ["RedisWorker", "open_redis_worker"]

#: Seconds a task may stay with a worker that does not renew it, by default.
DEFAULT_VISIBILITY_TIMEOUT: Final = 30.0
#: Deliveries to workers that died with a task before it is dead-lettered, by default.
DEFAULT_MAX_ATTEMPTS: Final = 3
#: Seconds results wait in a producer's stream after the last one.
RESULT_TTL: Final = 3600
#: Milliseconds a blocking read waits before the reader looks around again (and how long a
#: draining worker may wait for its last read to end).
_BLOCK_MS: Final = 250

_encode = msgspec.msgpack.Encoder().encode
_decode_task = msgspec.msgpack.Decoder(Task).decode


#: A task entry as taken: its stream, its entry id, its fields ``i``, ``p`` and ``t``.
_Entry: TypeAlias = tuple[str, bytes, bytes | None, bytes | None, bytes | None]


@final
@attrs.frozen
class _Ref:
    """
    Where a task came from: its stream and entry, its producer and id there.
    """

    stream: str
    entry: bytes
    producer: str  # "" when the entry did not say
    task_id: str  # "" when the entry did not say
    counted: bool  # whether it came through the enqueue script (it counts in the size)
    dead: str = ""  # why it goes to the dead-letter stream ("" if it does not)


@final
class RedisWorker(Worker):
    """
    A worker on a Redis queue; made by ``open_worker(collectors, "redis://...")``.
    """

    def _init(
        self,
        client: coredis.Redis[bytes],
        *,
        keys: Keys,
        visibility_timeout: float,
        max_attempts: int,
    ) -> None:
        self._client = client
        self._keys = keys
        self._streams = keys.served(collector.key for collector in self.queue.collectors)
        self._visibility = visibility_timeout
        self._max_attempts = max_attempts
        self._take_script = client.register_script(TAKE)
        self._complete_script = client.register_script(COMPLETE)
        self._slot = trio.lowlevel.ParkingLot()  # the reader, waiting for free capacity
        self._failing_since: float | None = None
        self._groups_missing = False  # the reader makes the group on every stream again
        self._reading = True
        self._read_done = trio.Event()

    def _registered(self) -> bool:
        return self._failing_since is None

    def _leave(self) -> None:
        self._reading = False
        self._slot.unpark_all()

    def _sent(self, count: int) -> None:
        super()._sent(count)
        self._slot.unpark_all()

    def _failed_call(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = trio.current_time()
            self._log.warning("redis_unreachable", url=self.endpoint, error=str(exc))

    def _reached(self) -> None:
        if self._failing_since is not None:
            self._failing_since = None
            self._log.info("redis_reachable", url=self.endpoint)

    async def _ensure_groups(self) -> None:
        """
        Create the workers' group on every stream this worker reads (and the streams).
        """
        for stream in self._streams:
            with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
                await self._client.xgroup_create(stream, GROUP, identifier="0", mkstream=True)

    # -- taking tasks --------------------------------------------------------------------

    async def _read(self) -> None:
        backoff = 0.01
        try:
            while self._reading:
                free = self._free()
                if free <= 0:
                    await self._slot.park()
                    continue
                try:
                    if self._groups_missing:
                        await self._ensure_groups()
                        self._groups_missing = False
                    entries = await self._take(free) or await self._wait_for_tasks()
                except coredis.exceptions.StreamConsumerGroupError:
                    self._groups_missing = True  # Redis lost them (restarted without data)
                    continue
                except coredis.exceptions.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    self._groups_missing = True  # the same, reported from inside a script
                    continue
                except RETRYABLE as exc:
                    self._failed_call(exc)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    continue
                self._reached()
                backoff = 0.01
                for stream, entry, task_id, producer, task in entries:
                    self._start(stream, entry, task_id, producer, task, 1)
        finally:
            self._read_done.set()

    async def _take(self, count: int) -> list[_Entry]:
        reply: Any = await self._take_script(keys=self._streams, args=[GROUP, self.name, count])
        streams = self._streams
        return [
            (streams[reply[at] - 1], reply[at + 1], reply[at + 2], reply[at + 3], reply[at + 4])
            for at in range(0, len(reply), 5)
        ]

    async def _wait_for_tasks(self) -> list[_Entry]:
        """
        Block until a task arrives (one per stream at most), or the block times out.
        """
        got = await self._client.xreadgroup(
            GROUP, self.name, {stream: ">" for stream in self._streams}, count=1, block=_BLOCK_MS
        )
        return [
            (_text(stream), _bytes(item.identifier), *_fields(item.field_values))
            for stream, entries in (got or {}).items()
            for item in entries
        ]

    def _start(
        self,
        stream: str,
        entry: bytes,
        task_id: bytes | None,
        producer: bytes | None,
        task: bytes | None,
        attempt: int,
    ) -> None:
        """
        Run the task in an entry, or send a malformed one to the dead-letter stream.

        ``task_id``, ``producer`` and ``task`` are the entry's fields (None: missing).
        """
        counted = task_id is not None and producer is not None
        producer_name = (producer or b"").decode(errors="replace")
        task_name = (task_id or b"").decode(errors="replace")
        decoded: Task | None = None
        if task is None:
            reason = "malformed entry: no field 't'"
        else:
            try:
                decoded = _decode_task(task)
            except msgspec.DecodeError as exc:
                reason = f"malformed entry: {exc!r}"
        if decoded is None:
            self._malformed += 1
            self._log.warning("malformed_task", stream=stream, entry=entry, reason=reason)
            ref = _Ref(stream, entry, producer_name, task_name, counted, dead=reason)
            self._finished(ref, attempt, (Outcome(None),))
            return
        if attempt > self._max_attempts:
            reason = f"{attempt - 1} workers died with the task (max_attempts {self._max_attempts})"
            self._log.warning("task_dead_lettered", stream=stream, entry=entry, reason=reason)
            ref = _Ref(stream, entry, producer_name, task_name, counted, dead=reason)
            self._finished(ref, attempt, (Outcome(None),))
            return
        self._run(_Ref(stream, entry, producer_name, task_name, counted), decoded, attempt)

    # -- storing results -----------------------------------------------------------------

    async def _flush(self) -> None:
        backoff = 0.01
        while True:
            if not self._done:
                if not self._tasks:
                    self._settled.unpark_all()
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            batch = self._done[:BATCH]
            try:
                await self._complete(batch)
            except RETRYABLE as exc:
                self._failed_call(exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            self._reached()
            backoff = 0.01
            self._sent(len(batch))

    async def _complete(self, batch: list[tuple[Any, int, tuple[Outcome, ...]]]) -> None:
        """
        Store the results of ``batch`` and acknowledge its tasks (the complete script).
        """
        keys = [self._keys.size, self._keys.dead]
        where: dict[str, int] = {}  # KEYS index (from 1) of each stream named
        lines: list[bytes] = []
        replies: list[bytes] = []
        dead: list[str] = []
        for ref, attempt, outcomes in batch:
            assert isinstance(ref, _Ref)
            stream = where.get(ref.stream)
            if stream is None:
                keys.append(ref.stream)
                stream = where[ref.stream] = len(keys)
            result, reply = 0, b""
            if ref.producer and ref.task_id:
                name = self._keys.results(ref.producer)
                result = where.get(name, 0)
                if not result:
                    keys.append(name)
                    result = where[name] = len(keys)
                if ref.dead:
                    reply = _encode(Reply(ref.task_id, error=ref.dead))
                else:
                    reply = _encode(Reply(ref.task_id, attempt, outcomes))
            reason = 0
            if ref.dead:
                reason = len(dead) + 5  # ARGV index: after group, TTL, lines, replies
                dead += [ref.dead, ref.task_id]
            lines.append(
                b"%d %d %d %d %s %d\n"
                % (stream, result, ref.counted, reason, ref.entry, len(reply))
            )
            replies.append(reply)
        args: list[str | bytes | int] = [GROUP, RESULT_TTL, b"".join(lines), b"".join(replies)]
        args += dead
        await self._complete_script(keys=keys, args=args)

    # -- workers that died, and this worker's leases --------------------------------------

    async def _reclaim(self) -> None:
        """
        Take tasks idle with another worker past the visibility timeout.
        """
        idle_ms = int(self._visibility * 1000)
        while True:
            await trio.sleep(self._visibility / 2)
            for stream in self._streams:
                free = self._free()
                if free <= 0:
                    break
                try:
                    claimed: Any = await self._client.xautoclaim(
                        stream, GROUP, self.name, idle_ms, "0-0", count=free
                    )
                    entries = claimed[1]
                    if not entries:
                        continue
                    counts = await self._deliveries(stream, entries)
                except coredis.exceptions.StreamConsumerGroupError:
                    break  # Redis lost the groups: the reader makes them again
                except RETRYABLE as exc:
                    self._failed_call(exc)
                    break
                for item, delivered in zip(entries, counts, strict=True):
                    self._log.info("task_reclaimed", stream=stream, attempt=delivered)
                    fields = _fields(item.field_values)
                    self._start(stream, _bytes(item.identifier), *fields, delivered)

    async def _deliveries(self, stream: str, entries: Any) -> list[int]:
        """
        Return how many times each entry has been delivered (XPENDING, one round trip).
        """
        async with self._client.pipeline(transaction=False) as pipe:
            requests = [
                pipe.xpending(stream, GROUP, start=item.identifier, end=item.identifier, count=1)
                for item in entries
            ]
        counts = []
        for request in requests:
            pending: Any = await request
            counts.append(int(pending[0].delivered) if pending else 1)
        return counts

    async def _keep_leases(self) -> None:
        """
        Renew this worker's hold on its running tasks, so none looks idle to the others.
        """
        while True:
            await trio.sleep(self._visibility / 3)
            held: dict[str, list[bytes]] = {}
            for ref, _ in self._tasks.values():
                held.setdefault(ref.stream, []).append(ref.entry)
            if not held:
                continue
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for stream, entries in held.items():
                        pipe.xclaim(stream, GROUP, self.name, 0, entries, justid=True)
            except coredis.exceptions.StreamConsumerGroupError:
                pass  # Redis lost the groups, and the tasks with them
            except RETRYABLE as exc:
                self._failed_call(exc)


def _fields(values: Any) -> tuple[bytes | None, bytes | None, bytes | None]:
    """
    Return the fields ``i``, ``p`` and ``t`` of an entry's field values (None: missing).
    """
    fields = {_bytes(k): _bytes(v) for k, v in values.items()}
    return fields.get(b"i"), fields.get(b"p"), fields.get(b"t")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


@asynccontextmanager
async def open_redis_worker(
    queue: CollectorQueue[Any],
    url: str,
    *,
    name: str,
    capacity: int,
    serializer: Serializer,
    drain_timeout: float,
    logging: bool,
    queue_name: str | None,
    visibility_timeout: float | None,
    max_attempts: int | None,
) -> AsyncIterator[RedisWorker]:
    """
    Run a Redis worker (see :func:`~event_collector.remote.open_worker`).
    """
    visibility = DEFAULT_VISIBILITY_TIMEOUT if visibility_timeout is None else visibility_timeout
    if not visibility > 0:
        raise ValueError(f"visibility_timeout must be > 0, got {visibility_timeout!r}")
    attempts = DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts
    if type(attempts) is not int or attempts < 1:
        raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    log = get_logger(logging, worker=name)
    client: coredis.Redis[bytes] = coredis.Redis.from_url(url, decode_responses=False)
    worker: RedisWorker = RedisWorker._create()
    body_error: BaseException | None = None
    async with client, queue:
        worker._setup(
            queue, endpoint=url, name=name, capacity=capacity, serializer=serializer, log=log
        )
        worker._init(
            client,
            keys=Keys(DEFAULT_QUEUE if queue_name is None else queue_name),
            visibility_timeout=visibility,
            max_attempts=attempts,
        )
        try:
            await worker._ensure_groups()  # a wrong password or URL fails here, at once
        except RETRYABLE as exc:
            worker._failed_call(exc)  # Redis is not up (yet): the reader waits for it
            worker._groups_missing = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker._read)
            nursery.start_soon(worker._flush)
            nursery.start_soon(worker._reclaim)
            nursery.start_soon(worker._keep_leases)
            log.info("worker_started", url=url, capacity=capacity, streams=len(worker._streams))
            try:
                yield worker
            except BaseException as exc:
                body_error = exc
            if body_error is None:
                worker._leave()
                with trio.move_on_after(_BLOCK_MS / 1000 + 1):
                    await worker._read_done.wait()  # a blocking read ends within a second
                await worker._drain()
                await worker._deliver_rest(drain_timeout)
            nursery.cancel_scope.cancel()
    log.info("worker_stopped")
    if body_error is not None:
        raise body_error
