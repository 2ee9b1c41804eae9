"""
The gateway of the distributed mode: a broker between producers and workers.

Two ROUTER sockets (producers, workers). The gateway queues the producers' tasks (by priority
for producers that ask for it, else in order), dispatches each to the worker with credit and
the fewest tasks in flight, keeps a table of the tasks each worker holds, and routes each
result back to the connection identity that sent the task: nothing in a message decides where
a result goes.

- Credit both ways: a worker says how many tasks it can take and is never given more; a
  producer is granted credit from the gateway's ``capacity`` (tasks it holds, queued or in
  flight), so memory stays bounded however fast producers send.
- Heartbeats: a worker silent for ``heartbeat.bound`` is declared dead and its tasks go back
  to the front of the queue, one attempt more (a task that took down ``max_attempts``
  workers fails instead); a silent producer is forgotten and its queued tasks dropped.
- Exactly one result per task: the first result for a task wins; a late one (from a worker
  declared dead, or for a task of an earlier gateway: each numbers its tasks from a random
  62-bit start) or a duplicate is dropped by task id.
- A message that is not the protocol's is counted, logged and dropped; the gateway goes on.
- Shutting down, it refuses new tasks, gives those it holds ``drain_timeout`` to finish and
  forward, refuses the rest back to their producers, gives the producers a heartbeat
  interval to read all that, then closes.
"""

from __future__ import annotations

import collections
import math
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, final

import attrs
import trio
import zmq

from ._channels import PriorityBuffer
from ._logging import FilteringBoundLogger, get_logger
from ._public import NoPublicConstructor
from ._remote import CurveServer, Heartbeat, bind_socket
from ._tasks import check_task
from ._wire import (
    Bye,
    Dispatch,
    Hello,
    Leaving,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    Refused,
    Reset,
    Results,
    Submit,
    Task,
    TaskResult,
    Welcome,
    decode,
    encode,
)
from ._zmq_trio import ZmqSocket

__all__ = ["Gateway", "GatewayStatistics", "open_gateway"]

#: Tasks a gateway holds at most (queued and in flight), by default.
DEFAULT_CAPACITY: Final = 10_000
#: Deliveries of a task to workers that died with it, after which it fails.
DEFAULT_MAX_ATTEMPTS: Final = 3
#: The priority of tasks whose producer does not ask for priority order, or has none.
DEFAULT_PRIORITY: Final = 100
#: Tasks in one Dispatch message at most.
_BATCH: Final = 256


@final
@attrs.frozen
class GatewayStatistics:
    """
    A snapshot of a gateway, from :meth:`Gateway.statistics`.
    """

    #: Producers connected.
    producers: int
    #: Workers registered.
    workers: int
    #: Tasks waiting for a worker.
    queued: int
    #: Tasks a worker holds.
    in_flight: int
    #: Tasks the gateway holds at most.
    capacity: int
    #: Tasks given again to a worker after the one holding them died.
    redelivered: int
    #: Results dropped: late (from a worker declared dead) or duplicate.
    late_results: int
    #: Results whose producer was gone.
    undeliverable: int
    #: Tasks refused (malformed, beyond credit, during shutdown, too many attempts).
    refused: int
    #: Messages dropped because they were not the protocol's.
    malformed: int


@attrs.define(eq=False)
class _Entry:
    """
    A task the gateway holds: who sent it, its producer's number, where it is now.
    """

    gid: int
    producer: bytes
    task: Task
    attempt: int = 1
    worker: bytes | None = None
    done: bool = False  # resolved while still in the queue (a late result came first)


@attrs.define(eq=False)
class _Producer:
    identity: bytes
    name: str
    window: int
    by_priority: bool
    last_heard: float
    held: int = 0  # tasks of this producer the gateway holds
    credit: int = 0  # granted and not spent
    results: list[TaskResult] = attrs.Factory(list)
    refused: list[int] = attrs.Factory(list)
    grant: int = 0  # credit to send with the next Results


@attrs.define(eq=False)
class _Worker:
    identity: bytes
    name: str
    credit: int
    last_heard: float
    in_flight: dict[int, _Entry] = attrs.Factory(dict)
    leaving: bool = False


def _load(worker: _Worker) -> int:
    """
    Return the tasks ``worker`` holds: dispatch goes to the fewest first.
    """
    return len(worker.in_flight)


@final
class _Sender:
    """
    Sends to the peers of one ROUTER socket in order; blocks only in its own task.
    """

    def __init__(self, socket: ZmqSocket) -> None:
        self._socket = socket
        self._backlog: collections.deque[list[bytes]] = collections.deque()
        self._wake = trio.Event()
        self._emptied = trio.lowlevel.ParkingLot()
        self.undeliverable = 0

    def send(self, identity: bytes, message: Message) -> bool:
        """
        Send ``message`` now or after those waiting; return False if the peer is gone.
        """
        frames = [identity, *encode(message)]
        if self._backlog:
            self._backlog.append(frames)
            return True
        try:
            self._socket.send_multipart_nowait(frames)
        except trio.WouldBlock:
            self._backlog.append(frames)
            self._wake.set()
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.undeliverable += 1  # the peer is gone
            return False
        return True

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._backlog:
                frames = self._backlog.popleft()
                try:
                    await self._socket.send_multipart(frames)
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EHOSTUNREACH:
                        raise
                    self.undeliverable += 1
            self._emptied.unpark_all()

    async def wait_idle(self) -> None:
        """
        Wait until everything given to :meth:`send` has been handed to libzmq.
        """
        while self._backlog:
            await self._emptied.park()
        await trio.lowlevel.checkpoint()


@final
class Gateway(metaclass=NoPublicConstructor):
    """
    A running gateway; made by :func:`open_gateway`.
    """

    #: The endpoint producers connect to (the real port, for ``tcp://host:0``).
    producers_endpoint: str
    #: The endpoint workers connect to.
    workers_endpoint: str
    #: This gateway's instance id: producers and workers see it change on a restart.
    id: str

    def _init(
        self,
        producers: ZmqSocket,
        workers: ZmqSocket,
        *,
        producers_endpoint: str,
        workers_endpoint: str,
        capacity: int,
        max_attempts: int,
        heartbeat: Heartbeat,
        drain_timeout: float,
        log: FilteringBoundLogger,
    ) -> None:
        self._drain_timeout = drain_timeout
        self.producers_endpoint = producers_endpoint
        self.workers_endpoint = workers_endpoint
        self.id = uuid.uuid4().hex
        self._producer_socket = producers
        self._worker_socket = workers
        self._to_producers = _Sender(producers)
        self._to_workers = _Sender(workers)
        self._capacity = capacity
        self._max_attempts = max_attempts
        self._heartbeat = heartbeat
        self._log = log
        self._producers: dict[bytes, _Producer] = {}
        self._workers: dict[bytes, _Worker] = {}
        self._entries: dict[int, _Entry] = {}
        self._queue: PriorityBuffer[_Entry] = PriorityBuffer()
        self._redeliveries: collections.deque[_Entry] = collections.deque()
        # Task numbers start at random: a worker that outlives a gateway sends the results of
        # its tasks to the next one, which must not take them for tasks of its own.
        self._next_gid = secrets.randbits(62)
        self._outstanding = 0  # tasks held plus credit granted: never above capacity
        self._closing = False
        self._drained = trio.Event()
        self._redelivered = 0
        self._late = 0
        self._refused = 0
        self._malformed = 0
        self._malformed_logged_at = -math.inf

    def __repr__(self) -> str:
        return f"<Gateway producers={self.producers_endpoint} workers={self.workers_endpoint}>"

    def statistics(self) -> GatewayStatistics:
        """
        Return a snapshot of the gateway's state.
        """
        in_flight = sum(len(worker.in_flight) for worker in self._workers.values())
        return GatewayStatistics(
            producers=len(self._producers),
            workers=len(self._workers),
            queued=len(self._entries) - in_flight,
            in_flight=in_flight,
            capacity=self._capacity,
            redelivered=self._redelivered,
            late_results=self._late,
            undeliverable=self._to_producers.undeliverable,
            refused=self._refused,
            malformed=self._malformed,
        )

    # -- receiving -----------------------------------------------------------------------

    async def _serve_producers(self) -> None:
        while True:
            for frames in await self._producer_socket.receive_batch(256):
                message = self._decode(frames)
                if message is not None:
                    self._from_producer(frames[0], message)
            self._settle()

    async def _serve_workers(self) -> None:
        while True:
            for frames in await self._worker_socket.receive_batch(256):
                message = self._decode(frames)
                if message is not None:
                    self._from_worker(frames[0], message)
            self._settle()

    def _decode(self, frames: list[bytes]) -> Message | None:
        try:
            if len(frames) < 2:
                raise ProtocolError("no routing identity")
            return decode(frames[1:])
        except ProtocolError as exc:
            self._dropped("malformed_message", str(exc))
            return None

    def _dropped(self, event: str, reason: str) -> None:
        """
        Count a dropped message; log at most one warning a second.
        """
        self._malformed += 1
        now = trio.current_time()
        if now - self._malformed_logged_at >= 1:
            self._malformed_logged_at = now
            self._log.warning(event, reason=reason, dropped=self._malformed)

    def _from_producer(self, identity: bytes, message: Message) -> None:
        producer = self._producers.get(identity)
        if producer is not None:
            producer.last_heard = trio.current_time()
        match message:
            case Submit(tasks):
                if producer is None:
                    self._to_producers.send(identity, Reset("unknown producer: say hello"))
                else:
                    self._submit(producer, tasks)
            case Hello(name, window, by_priority):
                self._hello(identity, name, window, by_priority)
            case Ping():
                if producer is None:
                    self._to_producers.send(identity, Reset("unknown producer: say hello"))
                else:
                    self._to_producers.send(identity, Pong(self.id))
            case Bye():
                if producer is not None:
                    self._forget_producer(producer)
            case _:
                self._dropped("unexpected_message", f"{type(message).__name__} from a producer")

    def _from_worker(self, identity: bytes, message: Message) -> None:
        worker = self._workers.get(identity)
        if worker is not None:
            worker.last_heard = trio.current_time()
        match message:
            case Results(results, credit):
                self._results(results)
                if worker is None:
                    self._to_workers.send(identity, Reset("unknown worker: say ready"))
                elif not worker.leaving:
                    worker.credit += credit
            case Ready(name, credit):
                self._ready(identity, name, credit)
            case Ping():
                if worker is None:
                    self._to_workers.send(identity, Reset("unknown worker: say ready"))
                else:
                    self._to_workers.send(identity, Pong(self.id))
            case Pong():
                if worker is None:
                    self._to_workers.send(identity, Reset("unknown worker: say ready"))
            case Leaving():
                if worker is not None:
                    worker.leaving = True
                    worker.credit = 0
            case Bye():
                if worker is not None:
                    self._worker_gone(worker, "it left")
            case _:
                self._dropped("unexpected_message", f"{type(message).__name__} from a worker")

    # -- producers -----------------------------------------------------------------------

    def _hello(self, identity: bytes, name: str, window: int, by_priority: bool) -> None:
        """
        Start a producer's session; an earlier one of the same connection ends.

        The producer sends its pending tasks again.
        """
        old = self._producers.get(identity)
        if old is not None:
            self._forget_producer(old)
        producer = _Producer(identity, name, max(window, 0), by_priority, trio.current_time())
        self._producers[identity] = producer
        self._log.info("producer_joined", producer=name)
        self._to_producers.send(identity, Welcome(self.id, self._grant(producer)))

    def _grant(self, producer: _Producer) -> int:
        """
        Give ``producer`` the credit it wants, as far as capacity allows; return it.
        """
        if self._closing:
            return 0
        wanted = producer.window - producer.held - producer.credit
        granted = max(min(wanted, self._capacity - self._outstanding), 0)
        producer.credit += granted
        self._outstanding += granted
        return granted

    def _submit(self, producer: _Producer, tasks: tuple[Task, ...]) -> None:
        refused: list[int] = []
        for task in tasks:
            reason = self._refusal(producer, task)
            if reason is not None:
                refused.append(task.id)
                self._refused += 1
                self._log.warning("task_refused", producer=producer.name, reason=reason)
                if producer.credit > 0:  # it spent credit: it gets it back with more
                    producer.credit -= 1
                    self._outstanding -= 1
                continue
            producer.credit -= 1
            producer.held += 1  # credit turned into a task held: outstanding unchanged
            entry = _Entry(self._next_gid, producer.identity, task)
            self._next_gid += 1
            self._entries[entry.gid] = entry
            priority = task.priority if producer.by_priority else None
            self._queue.push(DEFAULT_PRIORITY if priority is None else priority, entry)
        if refused:
            producer.refused.extend(refused)

    def _refusal(self, producer: _Producer, task: Task) -> str | None:
        if self._closing:
            return "the gateway is shutting down"
        if producer.credit <= 0:
            return "sent beyond the credit granted"
        try:
            check_task(task)
        except ValueError as exc:
            return str(exc)
        return None

    def _forget_producer(self, producer: _Producer) -> None:
        """
        Drop a producer: its queued tasks go (their results would have nowhere to go).
        """
        del self._producers[producer.identity]
        self._outstanding -= producer.credit
        for entry in list(self._entries.values()):
            if entry.producer == producer.identity and entry.worker is None:
                self._finish(entry)
        self._log.info("producer_left", producer=producer.name)

    # -- workers -------------------------------------------------------------------------

    def _ready(self, identity: bytes, name: str, credit: int) -> None:
        worker = self._workers.get(identity)
        if worker is None:
            worker = _Worker(identity, name, max(credit, 0), trio.current_time())
            self._workers[identity] = worker
            self._log.info("worker_joined", worker=name, credit=credit)
        else:
            worker.credit = max(credit, 0)
            worker.leaving = False
        self._to_workers.send(identity, Welcome(self.id))

    def _worker_gone(self, worker: _Worker, reason: str) -> None:
        """
        Drop a worker: its tasks go back to the front of the queue, one attempt more.
        """
        del self._workers[worker.identity]
        self._log.info(
            "worker_left", worker=worker.name, reason=reason, tasks=len(worker.in_flight)
        )
        for entry in worker.in_flight.values():
            entry.worker = None
            entry.attempt += 1
            if entry.attempt > self._max_attempts:
                producer = self._producers.get(entry.producer)
                if producer is not None:
                    producer.refused.append(entry.task.id)
                self._refused += 1
                self._log.warning("task_failed_attempts", gid=entry.gid, attempts=entry.attempt - 1)
                self._finish(entry)
            else:
                self._redelivered += 1
                self._redeliveries.append(entry)

    def _results(self, results: tuple[TaskResult, ...]) -> None:
        for result in results:
            entry = self._entries.get(result.id)
            if entry is None or entry.done:
                self._late += 1
                continue
            if entry.worker is not None:
                holder = self._workers.get(entry.worker)
                if holder is not None:
                    holder.in_flight.pop(entry.gid, None)
            producer = self._producers.get(entry.producer)
            if producer is not None:
                producer.results.append(TaskResult(entry.task.id, result.attempt, result.outcomes))
            self._finish(entry)

    def _finish(self, entry: _Entry) -> None:
        """
        Let go of ``entry``: free its slot and its producer's.
        """
        entry.done = True
        del self._entries[entry.gid]
        self._outstanding -= 1
        producer = self._producers.get(entry.producer)
        if producer is not None:
            producer.held -= 1
        if self._closing and not self._entries:
            self._drained.set()

    # -- after every batch: dispatch, credit, flush --------------------------------------

    def _settle(self) -> None:
        self._dispatch()
        for producer in self._producers.values():
            producer.grant += self._grant(producer)
            if producer.results or producer.grant:
                results = tuple(producer.results)
                for start in range(0, max(len(results), 1), _BATCH):
                    batch = results[start : start + _BATCH]
                    credit, producer.grant = producer.grant, 0
                    self._to_producers.send(producer.identity, Results(batch, credit))
                producer.results.clear()
            if producer.refused:
                ids, producer.refused = tuple(producer.refused), []
                self._to_producers.send(producer.identity, Refused(ids, self._refusal_reason()))

    def _refusal_reason(self) -> str:
        if self._closing:
            return "the gateway shut down before the task ran"
        return (
            "the task was refused (malformed, beyond credit, "
            f"or {self._max_attempts} workers died with it)"
        )

    def _next_entry(self) -> _Entry | None:
        while self._redeliveries:
            entry = self._redeliveries.popleft()
            if not entry.done:
                return entry
        while len(self._queue):
            entry = self._queue.pop()
            if not entry.done:
                return entry
        return None

    def _dispatch(self) -> None:
        """
        Give queued tasks to workers with credit, the one with the fewest in flight first.
        """
        ready = [w for w in self._workers.values() if w.credit > 0 and not w.leaving]
        batches: dict[bytes, list[Task]] = {}
        while ready:
            entry = self._next_entry()
            if entry is None:
                break
            worker = ready[0] if len(ready) == 1 else min(ready, key=_load)
            entry.worker = worker.identity
            worker.in_flight[entry.gid] = entry
            worker.credit -= 1
            if worker.credit == 0:
                ready.remove(worker)
            task = entry.task
            batches.setdefault(worker.identity, []).append(
                Task(
                    entry.gid,
                    task.value,
                    task.delivery,
                    task.keys,
                    task.topics,
                    task.priority,
                    entry.attempt,
                )
            )
        taken_back = False
        for identity, tasks in batches.items():
            for start in range(0, len(tasks), _BATCH):
                batch = tuple(tasks[start : start + _BATCH])
                if not self._to_workers.send(identity, Dispatch(batch)):
                    self._unreachable(self._workers[identity], tasks[start:])
                    taken_back = True
                    break
        if taken_back:
            self._dispatch()  # to the workers left

    def _unreachable(self, worker: _Worker, tasks: list[Task]) -> None:
        """
        Drop a worker whose connection is gone; the tasks not sent to it go back unchanged.

        They never reached it: back to the front of the queue, without an attempt more.
        """
        entries = [worker.in_flight.pop(task.id) for task in tasks]
        for entry in entries:
            entry.worker = None
        self._redeliveries.extendleft(reversed(entries))
        self._worker_gone(worker, "its connection is gone")

    # -- heartbeats ----------------------------------------------------------------------

    async def _beat(self) -> None:
        heartbeat = self._heartbeat
        while True:
            await trio.sleep(heartbeat.interval)
            now = trio.current_time()
            for worker in list(self._workers.values()):
                silent = now - worker.last_heard
                if silent >= heartbeat.bound:
                    self._worker_gone(worker, f"silent for {silent:.1f} s")
                elif silent >= heartbeat.interval:
                    self._to_workers.send(worker.identity, Ping())
            for producer in list(self._producers.values()):
                if now - producer.last_heard >= heartbeat.bound:
                    self._forget_producer(producer)
            self._settle()

    # -- shutting down -------------------------------------------------------------------

    async def drain(self) -> None:
        """
        Stop taking tasks and wait until those held are done and their results forwarded.

        New tasks are refused back to their producers at once. The tasks held get
        ``drain_timeout`` seconds to finish; the rest are refused back. The gateway goes on
        answering (heartbeats, late results) until its block ends. Leaving the block drains
        too; calling this first lets you stop the workers after the drain and before the
        gateway closes.

        On cancellation the draining stops; tasks still held stay held.
        """
        if self._closing and not self._entries:
            await trio.lowlevel.checkpoint()
            return
        timeout = self._drain_timeout
        self._closing = True
        self._log.info("gateway_draining", tasks=len(self._entries), timeout=timeout)
        if self._entries:
            with trio.move_on_after(timeout):
                await self._drained.wait()
        for entry in list(self._entries.values()):
            producer = self._producers.get(entry.producer)
            if producer is not None:
                producer.refused.append(entry.task.id)
            self._finish(entry)
        self._settle()
        with trio.move_on_after(timeout):  # let the senders empty their backlogs
            await self._to_producers.wait_idle()
            await self._to_workers.wait_idle()

    async def _linger(self) -> None:
        """
        Stay connected, answering, for a heartbeat interval while producers are connected.

        Producers connect with ``IMMEDIATE``, so libzmq drops the messages a producer has not
        read yet when its connection closes: the last results and refusals of the drain would
        be lost. A live producer reads its socket within an interval.
        """
        if self._producers:
            await trio.sleep(self._heartbeat.interval)


@asynccontextmanager
async def open_gateway(
    producers: str,
    workers: str,
    *,
    capacity: int = DEFAULT_CAPACITY,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    heartbeat: Heartbeat | None = None,
    drain_timeout: float = 10.0,
    curve: CurveServer | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    logging: bool = True,
) -> AsyncIterator[Gateway]:
    """
    Run a gateway for ``async with``: bound to both endpoints until the block ends.

    Args:
        producers: The endpoint producers connect to (``tcp://host:port``, ``tcp://host:0``
            for a free port, ``ipc://path``).
        workers: The endpoint workers connect to.
        capacity: Tasks the gateway holds at most, queued and in flight; producers get no
            more credit beyond it.
        max_attempts: Deliveries to workers that died with a task, after which it fails
            with ``Error(GatewayError(...))`` at its producer.
        heartbeat: Ping interval and liveness for workers and producers.
        drain_timeout: Seconds the gateway gives the tasks it holds to finish when the block
            ends; the rest are refused back to their producers.
        curve: The gateway's CURVE keys and the allow-list of client keys; clients without
            an allowed key cannot connect.
        context: The ZeroMQ context (default: the process's shared one).
        logging: False silences the gateway.

    Raises:
        zmq.ZMQError: An endpoint could not be bound (in use, bad address).

    On leaving the block the gateway drains (see ``drain_timeout``), stays connected for a
    heartbeat interval more while producers are connected (so that they read its last
    messages), then closes; on cancellation it closes at once.
    """
    if type(capacity) is not int or capacity < 1:
        raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
    if type(max_attempts) is not int or max_attempts < 1:
        raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    log = get_logger(logging, component="gateway")
    own_context = None
    if curve is not None and context is None:
        # The ZAP handler's endpoint is one per context: a CURVE gateway gets its own.
        context = own_context = zmq.Context()
    try:
        async with _running_gateway(
            producers,
            workers,
            capacity=capacity,
            max_attempts=max_attempts,
            heartbeat=heartbeat or Heartbeat(),
            drain_timeout=drain_timeout,
            curve=curve,
            context=context,
            log=log,
        ) as gateway:
            yield gateway
    finally:
        if own_context is not None:
            own_context.term()


@asynccontextmanager
async def _running_gateway(
    producers: str,
    workers: str,
    *,
    capacity: int,
    max_attempts: int,
    heartbeat: Heartbeat,
    drain_timeout: float,
    curve: CurveServer | None,
    context: zmq.Context[zmq.Socket[bytes]] | None,
    log: FilteringBoundLogger,
) -> AsyncIterator[Gateway]:
    """
    Authenticate (with CURVE), bind, serve; every exception propagates as itself.

    Never inside an exception group: the ZAP task's nursery is an implementation detail.
    """
    error: BaseException | None = None
    async with trio.open_nursery() as authentication:
        try:
            if curve is not None:
                # Before binding: while no ZAP handler answers, libzmq lets every client in.
                assert context is not None
                from ._auth import serve_zap  # noqa: PLC0415  (only with CURVE)

                await authentication.start(serve_zap, curve, context, log)
            async with _serving(
                producers,
                workers,
                capacity=capacity,
                max_attempts=max_attempts,
                heartbeat=heartbeat,
                drain_timeout=drain_timeout,
                curve=curve,
                context=context,
                log=log,
            ) as gateway:
                yield gateway
        except BaseException as exc:
            error = exc
        authentication.cancel_scope.cancel()
    if error is not None:
        raise error


@asynccontextmanager
async def _serving(
    producers: str,
    workers: str,
    *,
    capacity: int,
    max_attempts: int,
    heartbeat: Heartbeat,
    drain_timeout: float,
    curve: CurveServer | None,
    context: zmq.Context[zmq.Socket[bytes]] | None,
    log: FilteringBoundLogger,
) -> AsyncIterator[Gateway]:
    body_error: BaseException | None = None
    producer_socket, producers_endpoint = bind_socket(context, producers, curve)
    with producer_socket:
        worker_socket, workers_endpoint = bind_socket(context, workers, curve)
        with worker_socket:
            gateway: Gateway = Gateway._create()
            gateway._init(
                producer_socket,
                worker_socket,
                producers_endpoint=producers_endpoint,
                workers_endpoint=workers_endpoint,
                capacity=capacity,
                max_attempts=max_attempts,
                heartbeat=heartbeat,
                drain_timeout=drain_timeout,
                log=log,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(gateway._serve_producers)
                nursery.start_soon(gateway._serve_workers)
                nursery.start_soon(gateway._to_producers.run)
                nursery.start_soon(gateway._to_workers.run)
                nursery.start_soon(gateway._beat)
                log.info("gateway_started", producers=producers_endpoint, workers=workers_endpoint)
                try:
                    yield gateway
                except BaseException as exc:
                    body_error = exc
                else:
                    await gateway.drain()
                    await gateway._linger()
                nursery.cancel_scope.cancel()
            linger = 0 if body_error is not None else 1000
            worker_socket.close(linger=linger)
        producer_socket.close(linger=linger)
    log.info("gateway_stopped")
    if body_error is not None:
        raise body_error
