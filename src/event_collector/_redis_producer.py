"""
The producer of the Redis Streams mode.

Tasks go into the queue's streams; results come back on the producer's own stream.

Two tasks: the flusher adds the outbox to the task streams in batches through the enqueue
script (which refuses what the queue has no room for: those tasks wait, and ``send`` waits
once ``window`` events are pending), and the reader takes the producer's result stream with
a blocking XREAD and deletes what it has handled. Both reconnect with a backoff when Redis
is unreachable; after ``connect_timeout`` seconds of it, ``send`` raises ``GatewayError`` and
the tasks that never reached Redis fail. Tasks that did reach Redis stay pending: their
results come once Redis is back.

Results of tasks this producer did not send (an earlier run under the same name) are kept
for :meth:`RedisProducer.recovered`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar, final

import coredis
import coredis.exceptions
import msgspec
import trio

from ._data import Delivery, Payload, ResultList
from ._logging import get_logger
from ._producer import Producer, RemoteEvent, failed
from ._redis_streams import DEFAULT_QUEUE, ENQUEUE, Keys, Reply, level_of
from ._serializer import Serializer
from ._tasks import to_resolution, to_result_list, to_task

__all__ = ["RETRYABLE", "RedisProducer", "open_redis_producer"]

T = TypeVar("T")

#: Tasks sent at most, queued or running, by default.
DEFAULT_MAX_QUEUE: Final = 100_000
#: Seconds without reaching Redis after which sends fail, by default.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Tasks in one enqueue at most.
_BATCH: Final = 500
#: Results of earlier runs kept for ``recovered()`` at most.
_RECOVERED: Final = 10_000

#: The errors after which a Redis call is tried again (Redis down, restarting, loading).
RETRYABLE: Final = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.BusyLoadingError,
    OSError,  # TimeoutError included
)

_encode = msgspec.msgpack.Encoder().encode
_decode_replies = msgspec.msgpack.Decoder(list[Reply]).decode


@final
class RedisProducer(Producer[T]):
    """
    A producer on a Redis queue; made by ``open_producer("redis://...")``.
    """

    def _init(
        self,
        client: coredis.Redis[bytes],
        *,
        keys: Keys,
        by_priority: bool,
        max_queue: int,
        connect_timeout: float,
    ) -> None:
        self._client = client
        self._keys = keys
        self._results = keys.results(self.name)
        self._by_priority = by_priority
        self._max_queue = max_queue
        self._connect_timeout = connect_timeout
        self._epoch = uuid.uuid4().hex[:10]  # task ids of this run cannot clash with others'
        self._next = 1
        self._free = max_queue  # room in the queue, as the last enqueue found it
        self._failing_since: float | None = None  # the start of a run of failed calls
        self._last_error = ""
        self._enqueue_script = client.register_script(ENQUEUE)
        self._recovered: dict[str, ResultList[Any]] = {}
        self._freed = trio.Event()  # results came in since the last enqueue
        self._caught_up = trio.Event()  # the reader has read the stream to its end once

    def _event(self, payload: Payload[Any]) -> RemoteEvent[T]:
        task = to_task(0, payload, self._serializer)
        task_id = f"{self._epoch}-{self._next}"
        self._next += 1
        level = level_of(payload.priority, self._by_priority)
        stream = self._keys.task_stream(level, payload.keys, payload.delivery is Delivery.KEY)
        return RemoteEvent(payload, task_id, (stream, task_id, _encode(task)), self._pacer)

    def _unavailable(self) -> str | None:
        since = self._failing_since
        if since is None or trio.current_time() - since < self._connect_timeout:
            return None
        return (
            f"Redis at {self.endpoint} unreachable for {self._connect_timeout:g} s: "
            f"{self._last_error}"
        )

    def _credit_now(self) -> int:
        return self._free

    def _connected(self) -> bool:
        return self._failing_since is None

    async def recovered(self) -> dict[str, ResultList[Any]]:
        """
        Return, once, the results of tasks this producer did not send.

        A producer started with the name of an earlier one finds there what arrived while
        that one was down, by task id (``RemoteEvent.task_id`` of the earlier run). Waits
        until the producer has read its result stream to the end once.
        """
        await self._caught_up.wait()
        recovered, self._recovered = self._recovered, {}
        return recovered

    # -- reaching Redis ------------------------------------------------------------------

    def _failed_call(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = trio.current_time()
            self._troubled = True
            self._log.warning("redis_unreachable", url=self.endpoint, error=str(exc))
        self._last_error = str(exc) or type(exc).__name__
        reason = self._unavailable()
        if reason is not None and self._outbox:
            # Tasks that never reached Redis fail; those that did wait for it to come back.
            unsent, self._outbox = self._outbox, []
            for _, task_id, _ in unsent:
                self._fail(task_id, reason)

    def _reached(self) -> None:
        if self._failing_since is not None:
            self._failing_since = None
            self._troubled = False
            self._log.info("redis_reachable", url=self.endpoint)

    # -- the tasks -----------------------------------------------------------------------

    async def _flush(self) -> None:
        """
        Add the outbox to the task streams in batches, as far as the queue has room.
        """
        backoff = 0.01
        while True:
            if not self._outbox:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            batch = self._outbox[:_BATCH]
            self._freed = trio.Event()  # set by the reader when results free some room
            try:
                added, size = await self._add(batch)
            except RETRYABLE as exc:
                self._failed_call(exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            self._reached()
            self._free = max(self._max_queue - size, 0)
            sent = {id(task) for task in batch[:added]}
            self._outbox = [task for task in self._outbox if id(task) not in sent]
            if added < len(batch):
                # The queue is full: wait for a result of ours (its task left the queue), or
                # poll, for room made by other producers' tasks.
                with trio.move_on_after(backoff):
                    await self._freed.wait()
                backoff = min(backoff * 2, 0.2)
            else:
                backoff = 0.01

    async def _add(self, batch: list[tuple[str, str, bytes]]) -> tuple[int, int]:
        """
        Run the enqueue script for ``batch``; return how many it added and the queue's size.
        """
        keys = [self._keys.size]
        where: dict[str, int] = {}  # KEYS index (from 1) of each task stream
        lines: list[bytes] = []
        for stream, task_id, task in batch:
            index = where.get(stream)
            if index is None:
                keys.append(stream)
                index = where[stream] = len(keys)
            lines.append(b"%d %s %d\n" % (index, task_id.encode(), len(task)))
        tasks = b"".join(task for _, _, task in batch)
        args: list[str | bytes | int] = [self._max_queue, self.name, b"".join(lines), tasks]
        reply: Any = await self._enqueue_script(keys=keys, args=args)
        return int(reply[0]), int(reply[1])

    async def _read(self) -> None:
        """
        Take the result stream (blocking), resolve events, delete what was handled.
        """
        cursor = "0-0"
        backoff = 0.01
        while True:
            try:
                got = await self._client.xread({self._results: cursor}, count=100, block=1000)
            except RETRYABLE as exc:
                self._failed_call(exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            self._reached()
            backoff = 0.01
            entries = (got or {}).get(self._results.encode(), ())
            if not entries:
                self._caught_up.set()
                continue
            self._freed.set()
            handled = []
            for entry in entries:
                identifier = entry.identifier
                cursor = identifier.decode() if isinstance(identifier, bytes) else identifier
                handled.append(identifier)
                self._handle(entry.field_values)
            try:
                await self._client.xdel(self._results, handled)
            except RETRYABLE as exc:
                self._failed_call(exc)  # read again after a restart: duplicates are dropped

    def _handle(self, fields: Any) -> None:
        """
        Resolve the events of the replies in a result entry (see :data:`COMPLETE`).
        """
        try:
            replies = _decode_replies(fields[b"r"])
        except (KeyError, msgspec.DecodeError) as exc:
            self._malformed += 1
            self._log.warning("malformed_result", error=repr(exc))
            return
        for reply in replies:
            if reply.task in self._pending:
                if reply.error is not None:
                    self._resolve(reply.task, 0, failed(reply.error))
                else:
                    resolution = to_resolution(reply.outcomes, self._serializer)
                    self._resolve(reply.task, reply.attempt, *resolution)
            elif len(self._recovered) < _RECOVERED:
                self._recovered[reply.task] = (
                    failed(reply.error)
                    if reply.error is not None
                    else to_result_list(reply.outcomes, self._serializer)
                )
            else:
                self._duplicates += 1


@asynccontextmanager
async def open_redis_producer(
    url: str,
    *,
    name: str,
    window: int,
    by_priority: bool,
    serializer: Serializer,
    close_timeout: float,
    logging: bool,
    queue: str | None,
    max_queue: int | None,
    connect_timeout: float | None,
) -> AsyncIterator[RedisProducer[Any]]:
    """
    Run a Redis producer (see :func:`~event_collector.remote.open_producer`).
    """
    max_queue = DEFAULT_MAX_QUEUE if max_queue is None else max_queue
    if type(max_queue) is not int or max_queue < 1:
        raise ValueError(f"max_queue must be an int >= 1, got {max_queue!r}")
    client: coredis.Redis[bytes] = coredis.Redis.from_url(url, decode_responses=False)
    producer: RedisProducer[Any] = RedisProducer._create()
    producer._setup(
        url,
        name=name,
        window=window,
        serializer=serializer,
        log=get_logger(logging, producer=name),
    )
    producer._init(
        client,
        keys=Keys(DEFAULT_QUEUE if queue is None else queue),
        by_priority=by_priority,
        max_queue=max_queue,
        connect_timeout=DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout,
    )
    body_error: BaseException | None = None
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(producer._flush)
        nursery.start_soon(producer._read)
        try:
            yield producer
        except BaseException as exc:
            body_error = exc
        await producer._close(close_timeout, wait=body_error is None)
        nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
