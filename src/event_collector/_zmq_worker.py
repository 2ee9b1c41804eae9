"""
The worker of the ZeroMQ mode: a DEALER socket to the gateway, and three tasks.

The receiver puts dispatched tasks into the queue and answers pings; the flusher sends the
Ready (registration, with the credit the worker has) and the results in batches, each
granting its slots again; the heartbeat pings a silent gateway and, after the bound, says
Ready again until a gateway (the same or a restarted one) welcomes it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, final

import trio
import zmq

from ._logging import get_logger
from ._queue import CollectorQueue
from ._remote import CurveClient, Heartbeat, connect_socket
from ._serializer import Serializer
from ._wire import (
    Bye,
    Dispatch,
    Leaving,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    Reset,
    Results,
    TaskResult,
    Welcome,
    decode,
    encode,
)
from ._worker import BATCH, Worker
from ._zmq_trio import ZmqSocket

__all__ = ["ZmqWorker", "open_zmq_worker"]


@final
class ZmqWorker(Worker):
    """
    A worker of a gateway over ZeroMQ; made by ``open_worker(collectors, "tcp://...")``.
    """

    def _init(self, socket: ZmqSocket, heartbeat: Heartbeat) -> None:
        self._socket = socket
        self._heartbeat = heartbeat
        self._gateway: str | None = None
        self._ready = True  # a Ready is due
        self._last_heard = trio.current_time()

    def _registered(self) -> bool:
        return self._gateway is not None

    def _leave(self) -> None:
        self._send_nowait(Leaving())

    def _send_nowait(self, message: Message) -> None:
        with contextlib.suppress(trio.WouldBlock):
            self._socket.send_multipart_nowait(encode(message))

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
                for task in tasks:
                    self._run(task.id, task, task.attempt)
            case Welcome(gateway):
                if gateway != self._gateway:
                    self._log.info("worker_registered", endpoint=self.endpoint)
                self._gateway = gateway
            case Ping():
                self._send_nowait(Pong())
            case Pong():
                pass
            case Reset():
                self._gateway = None
                self._ready = True
                self._wake.set()
            case _:
                self._malformed += 1
                self._log.warning("unexpected_message", kind=type(message).__name__)

    async def _flush(self) -> None:
        """
        Send the Ready when one is due and the results, in batches with their credit.
        """
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self._ready:
                self._ready = False
                await self._socket.send_multipart(encode(Ready(self.name, self._free())))
            while self._done:
                batch = self._done[:BATCH]
                results = tuple(
                    TaskResult(gid, attempt, outcomes) for gid, attempt, outcomes in batch
                )
                credit = 0 if self._leaving else len(batch)
                await self._socket.send_multipart(encode(Results(results, credit)))
                self._sent(len(batch))
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
                    self._send_nowait(Ready(self.name, self._free()))
                else:
                    self._send_nowait(Ping())


@asynccontextmanager
async def open_zmq_worker(
    queue: CollectorQueue[Any],
    endpoint: str,
    *,
    name: str,
    capacity: int,
    serializer: Serializer,
    drain_timeout: float,
    logging: bool,
    heartbeat: Heartbeat | None,
    curve: CurveClient | None,
    context: zmq.Context[zmq.Socket[bytes]] | None,
) -> AsyncIterator[ZmqWorker]:
    """
    Run a ZeroMQ worker (see :func:`~event_collector.remote.open_worker`).
    """
    log = get_logger(logging, worker=name)
    socket = connect_socket(context, zmq.DEALER, endpoint, curve)
    worker: ZmqWorker = ZmqWorker._create()
    body_error: BaseException | None = None
    with socket:
        async with queue:
            worker._setup(
                queue,
                endpoint=endpoint,
                name=name,
                capacity=capacity,
                serializer=serializer,
                log=log,
            )
            worker._init(socket, heartbeat or Heartbeat())
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
                    await worker._drain()
                    await worker._deliver_rest(drain_timeout)
                    worker._send_nowait(Bye())
                nursery.cancel_scope.cancel()
        socket.close(linger=0 if body_error is not None else math.ceil(drain_timeout * 1000))
    log.info("worker_stopped")
    if body_error is not None:
        raise body_error
