"""
The worker of the distributed mode: a CollectorQueue that takes its events from a gateway.

The same collectors run in-process or here, unchanged. A worker grants the gateway credit
(how many tasks it can take: its ``credit`` capacity less what it holds, read from its queue's
statistics) and re-grants a slot with each result. Completed events reach it through a sink
(no task and no ``trio.Event`` per event); results go back in batches.

Leaving the ``async with`` drains: the worker tells the gateway to send no more, finishes
what it holds (up to ``drain_timeout``, then its queue's own shutdown resolves the rest),
sends every result, says Bye, and closes its socket with a linger so nothing is lost.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import socket as _socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, final

import attrs
import trio
import zmq

from ._collector import Collector
from ._data import ResultList
from ._event import EventBase
from ._logging import FilteringBoundLogger, get_logger
from ._public import NoPublicConstructor
from ._queue import CollectorQueue
from ._remote import CurveClient, Heartbeat, connect_socket
from ._serializer import MsgpackSerializer, Serializer
from ._tasks import error_info, to_outcome, to_outcomes, to_payload
from ._wire import (
    Bye,
    Dispatch,
    Leaving,
    Message,
    Outcome,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    Reset,
    Results,
    Task,
    TaskResult,
    Welcome,
    decode,
    encode,
)
from ._zmq_trio import ZmqSocket

__all__ = ["Worker", "WorkerStatistics", "load_collectors", "open_worker"]

#: Results in one message at most.
_BATCH: Final = 500


def load_collectors(path: str) -> list[Collector[Any]]:
    """
    Return the collectors at ``path``, ``package.module:attribute``.

    The attribute is a list of Collector, or a zero-argument callable returning one.

    Raises:
        ValueError: ``path`` is not ``module:attribute``, the module does not import, or
            it has no such attribute.
        TypeError: The attribute is not (and does not return) a list of Collector.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"collectors must be given as package.module:attribute, got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, Collector) and callable(target):
        target = target()
    if isinstance(target, Collector):
        target = [target]
    if not isinstance(target, list | tuple) or not all(
        isinstance(item, Collector) for item in target
    ):
        raise TypeError(f"{path} must be a list of Collector (or a function returning one)")
    return list(target)


@final
@attrs.frozen
class WorkerStatistics:
    """
    A snapshot of a worker, from :meth:`Worker.statistics`.
    """

    #: Tasks the worker holds (running, queued, or done with the result not sent yet).
    in_flight: int
    #: Tasks the worker takes at most.
    capacity: int
    #: Results sent since it started.
    completed: int
    #: Whether a gateway has welcomed it and not gone silent since.
    registered: bool
    #: Tasks that were not valid payloads (answered with an error, not run).
    invalid: int
    #: Messages dropped because they were not the protocol's.
    malformed: int


@final
class Worker(metaclass=NoPublicConstructor):
    """
    A running worker; made by :func:`open_worker`.
    """

    def _init(
        self,
        socket: ZmqSocket,
        queue: CollectorQueue[Any],
        *,
        endpoint: str,
        name: str,
        capacity: int,
        serializer: Serializer,
        heartbeat: Heartbeat,
        log: FilteringBoundLogger,
    ) -> None:
        self._socket = socket
        #: The worker's collector queue.
        self.queue = queue
        #: The gateway endpoint it connects to.
        self.endpoint = endpoint
        #: Its name in the gateway's logs.
        self.name = name
        self._capacity = capacity
        self._serializer = serializer
        self._heartbeat = heartbeat
        self._log = log
        self._tasks: dict[EventBase[Any], tuple[int, int]] = {}  # event -> (id, attempt)
        self._done: list[TaskResult] = []
        self._wake = trio.Event()
        self._gateway: str | None = None
        self._ready = True  # a Ready is due
        self._leaving = False
        self._last_heard = trio.current_time()
        self._settled = trio.lowlevel.ParkingLot()
        self._completed = 0
        self._invalid = 0
        self._malformed = 0

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} to {self.endpoint}>"

    def statistics(self) -> WorkerStatistics:
        """
        Return a snapshot of the worker's state.
        """
        return WorkerStatistics(
            in_flight=len(self._tasks) + len(self._done),
            capacity=self._capacity,
            completed=self._completed,
            registered=self._gateway is not None,
            invalid=self._invalid,
            malformed=self._malformed,
        )

    def _credit(self) -> int:
        """
        Return the tasks the worker can take now.

        Its capacity less what its queue holds and the results it has not sent yet.
        """
        if self._leaving:
            return 0
        return max(self._capacity - self.queue.statistics().in_flight - len(self._done), 0)

    # -- the sink: completed events ------------------------------------------------------

    def resolved(self, event: EventBase[Any]) -> None:
        """
        Note a completed event's result, to send with the next batch.
        """
        task_id, attempt = self._tasks.pop(event)
        # A one-collector event holds its lone result and key: no ResultList is built.
        outcome, key = event._outcome, event._key
        if type(outcome) is ResultList:
            outcomes = to_outcomes(outcome, self._serializer)
        else:
            assert outcome is not None
            outcomes = (to_outcome(key[0], outcome, self._serializer),)
        self._done.append(TaskResult(task_id, attempt, outcomes))
        self._wake.set()

    async def wait_for(self, event: EventBase[Any]) -> None:  # pragma: no cover
        raise RuntimeError("a worker's events are not waited for")

    # -- the tasks -----------------------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            for frames in await self._socket.receive_batch(64):
                try:
                    message = decode(frames)
                except ProtocolError as exc:
                    self._malformed += 1
                    self._log.warning("malformed_message", error=str(exc))
                    continue
                self._last_heard = trio.current_time()
                self._handle(message)

    def _handle(self, message: Message) -> None:
        match message:
            case Dispatch(tasks):
                publisher = self.queue.get_publisher()
                for task in tasks:
                    self._run(publisher, task)
            case Welcome(gateway):
                if gateway != self._gateway:
                    self._log.info("worker_registered", endpoint=self.endpoint)
                self._gateway = gateway
            case Ping():
                self._send_nowait(Pong())
            case Pong():
                pass
            case Reset():
                self._register()
            case _:
                self._malformed += 1
                self._log.warning("unexpected_message", kind=type(message).__name__)

    def _run(self, publisher: Any, task: Task) -> None:
        try:
            payload = to_payload(task, self._serializer)
        except ValueError as exc:
            self._invalid += 1
            outcome = Outcome(None, error=error_info(exc))
            self._done.append(TaskResult(task.id, task.attempt, (outcome,)))
            self._wake.set()
            return
        try:
            event = publisher.send_nowait(payload)
        except trio.ClosedResourceError as exc:  # a dispatch that crossed our Leaving
            outcome = Outcome(None, error=error_info(exc))
            self._done.append(TaskResult(task.id, task.attempt, (outcome,)))
            self._wake.set()
            return
        self._tasks[event] = (task.id, task.attempt)
        event._notify(self)

    def _register(self) -> None:
        self._gateway = None
        self._ready = True
        self._wake.set()

    def _send_nowait(self, message: Message) -> None:
        with contextlib.suppress(trio.WouldBlock):
            self._socket.send_multipart_nowait(encode(message))

    async def _flush(self) -> None:
        """
        Send the Ready when one is due and the results, in batches with their credit.
        """
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self._ready:
                self._ready = False
                await self._socket.send_multipart(encode(Ready(self.name, self._credit())))
            while self._done:
                batch, self._done = self._done[:_BATCH], self._done[_BATCH:]
                credit = 0 if self._leaving else len(batch)
                await self._socket.send_multipart(encode(Results(tuple(batch), credit)))
                self._completed += len(batch)
            if not self._tasks and not self._done:
                self._settled.unpark_all()

    async def _beat(self) -> None:
        heartbeat = self._heartbeat
        while True:
            await trio.sleep(heartbeat.interval)
            silent = trio.current_time() - self._last_heard
            if silent >= heartbeat.bound and self._gateway is not None:
                self._log.warning("gateway_lost", endpoint=self.endpoint)
                self._gateway = None
            if silent >= heartbeat.interval:
                if self._gateway is None:
                    self._send_nowait(Ready(self.name, self._credit()))
                else:
                    self._send_nowait(Ping())

    async def _drain(self, timeout: float) -> None:
        """
        Take no more tasks; wait up to ``timeout`` for those held to finish.
        """
        self._leaving = True
        self._send_nowait(Leaving())
        with trio.move_on_after(timeout):
            while self._tasks or self._done:
                await self._settled.park()

    async def _say_goodbye(self, timeout: float) -> None:
        """
        Send the last results and Bye.
        """
        self._wake.set()
        with trio.move_on_after(timeout):
            while self._done:
                await self._settled.park()
        self._send_nowait(Bye())


@asynccontextmanager
async def open_worker(
    collectors: Sequence[Collector[Any]],
    endpoint: str,
    *,
    name: str | None = None,
    credit: int | None = None,
    serializer: Serializer | None = None,
    heartbeat: Heartbeat | None = None,
    drain_timeout: float = 10.0,
    curve: CurveClient | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    logging: bool = True,
    **queue_options: Any,
) -> AsyncIterator[Worker]:
    """
    Run a worker for ``async with``: its collectors serve the gateway at ``endpoint``.

    Args:
        collectors: The collectors, as for :class:`~event_collector.CollectorQueue`.
        endpoint: The gateway's worker endpoint.
        name: The worker's name in the gateway's logs (default: host, pid and a random
            suffix).
        credit: Tasks the worker holds at most (running and queued); default twice the
            queue's ``max_consumers``.
        serializer: Decodes payload values and encodes results (default: msgpack).
        heartbeat: Ping interval and liveness.
        drain_timeout: Seconds the worker gives the tasks it holds to finish when the block
            ends.
        curve: CURVE keys to encrypt and authenticate the connection.
        context: The ZeroMQ context (default: the process's shared one).
        logging: False silences the worker and its queue.
        queue_options: Options of the worker's :class:`~event_collector.CollectorQueue`
            (``min_consumers``, ``max_consumers``, ``autoscale``...).

    On leaving the block the worker drains (see ``drain_timeout``) and says goodbye; on
    cancellation it stops at once, and the gateway gives its tasks to another worker.
    """
    queue: CollectorQueue[Any] = CollectorQueue(
        collectors, max_queue_size=math.inf, logging=logging, **queue_options
    )
    capacity = credit if credit is not None else 2 * queue.max_consumers
    if type(capacity) is not int or capacity < 1:
        raise ValueError(f"credit must be an int >= 1, got {credit!r}")
    name = name or f"{_socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    log = get_logger(logging, worker=name)
    socket = connect_socket(context, zmq.DEALER, endpoint, curve)
    worker: Worker = Worker._create()
    body_error: BaseException | None = None
    with socket:
        async with queue:
            worker._init(
                socket,
                queue,
                endpoint=endpoint,
                name=name,
                capacity=capacity,
                serializer=serializer or MsgpackSerializer(),
                heartbeat=heartbeat or Heartbeat(),
                log=log,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker._receive)
                nursery.start_soon(worker._flush)
                nursery.start_soon(worker._beat)
                worker._wake.set()  # the Ready
                log.info("worker_started", endpoint=endpoint, capacity=capacity)
                try:
                    yield worker
                except BaseException as exc:
                    body_error = exc
                if body_error is None:
                    await worker._drain(drain_timeout)
                    await queue.shut_down_queue()  # resolves what is left: results too
                    await worker._say_goodbye(drain_timeout)
                nursery.cancel_scope.cancel()
        socket.close(linger=0 if body_error is not None else math.ceil(drain_timeout * 1000))
    log.info("worker_stopped")
    if body_error is not None:
        raise body_error
