"""
The producer of the ZeroMQ mode: a DEALER socket to the gateway, and three tasks.

The receiver takes results, credit and resets; the flusher sends the Hello and the outbox in
batches, as far as the gateway's credit goes; the heartbeat pings a silent gateway and, after
``heartbeat.bound`` seconds of silence, declares it gone: pending events resolve with
``Error(GatewayError(...))`` and ``send`` raises until the gateway answers again. A Welcome
starts a session: every pending task is sent (again), so a gateway that restarted, or that
forgot this producer, gets them all.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar, final

import trio
import zmq

from ._data import Payload
from ._logging import get_logger
from ._producer import Producer, RemoteEvent
from ._remote import CurveClient, Heartbeat, connect_socket
from ._serializer import Serializer
from ._tasks import to_resolution, to_task
from ._wire import (
    Bye,
    Hello,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Refused,
    Reset,
    Results,
    Submit,
    Welcome,
    decode,
    encode,
)
from ._zmq_trio import ZmqSocket

__all__ = ["ZmqProducer", "open_zmq_producer"]

T = TypeVar("T")

#: Tasks in one Submit message at most.
_BATCH: Final = 500


@final
class ZmqProducer(Producer[T]):
    """
    A producer connected to a gateway over ZeroMQ; made by ``open_producer("tcp://...")``.
    """

    def _init(
        self,
        socket: ZmqSocket,
        *,
        by_priority: bool,
        heartbeat: Heartbeat,
    ) -> None:
        self._socket = socket
        self._by_priority = by_priority
        self._heartbeat = heartbeat
        self._credit = 0
        self._submitted = 0  # tasks sent since the session's Welcome
        self._next = 1
        self._gateway: str | None = None  # the instance id of the gateway that welcomed us
        self._hello = True  # a Hello is due
        self._last_heard = trio.current_time()
        self._last_sent = trio.current_time()

    def _event(self, payload: Payload[Any]) -> RemoteEvent[T]:
        task_id = self._next
        task = to_task(task_id, payload, self._serializer)
        self._next = task_id + 1
        return RemoteEvent(payload, task_id, task, self._pacer)

    def _unavailable(self) -> str | None:
        if not self._troubled:  # the gateway has been silent for the heartbeat bound
            return None
        return f"no answer from the gateway at {self.endpoint} for {self._heartbeat.bound:g} s"

    def _credit_now(self) -> int:
        return self._credit

    def _connected(self) -> bool:
        return self._gateway is not None and not self._troubled

    # -- the tasks -----------------------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            for frames in await self._socket.receive_batch(256):
                try:
                    message = decode(frames)
                except ProtocolError as exc:
                    self._malformed += 1
                    self._log.warning("malformed_message", error=str(exc))
                    continue
                self._heard()
                self._handle(message)

    def _heard(self) -> None:
        self._last_heard = trio.current_time()
        if self._troubled:
            self._troubled = False
            self._log.info("gateway_back", endpoint=self.endpoint)

    def _handle(self, message: Message) -> None:
        match message:
            case Results(results, credit):
                for result in results:
                    resolution = to_resolution(result.outcomes, self._serializer)
                    self._resolve(result.id, result.attempt, *resolution)
                self._add_credit(credit)
            case Welcome(gateway, credit):
                self._welcome(gateway, credit)
            case Pong(gateway):
                if self._gateway is not None and gateway != self._gateway:
                    self._reset("the gateway restarted")
            case Reset(reason):
                self._reset(reason or "the gateway does not know this producer")
            case Refused(ids, reason):
                for task_id in ids:
                    self._fail(task_id, f"refused by the gateway: {reason}")
            case _:
                self._malformed += 1
                self._log.warning("unexpected_message", kind=type(message).__name__)

    def _welcome(self, gateway: str, credit: int) -> None:
        """
        Start a session (a Welcome answers a Hello): every pending task goes (again).

        A result of a task sent in an earlier session may still come; whichever result
        comes first resolves the event and the other is dropped as a duplicate.

        A second Welcome from the gateway that welcomed this session answers a Hello said
        again while the first went unanswered. The gateway started the session over on
        it, but before any task sent since the first Welcome reached it (Hellos stop at a
        Welcome, and a connection keeps its order): those tasks are in the new session,
        and are not sent again, or the copies would go beyond the credit and be refused.
        """
        if gateway == self._gateway:
            self._credit = max(credit - self._submitted, 0)
            self._wake.set()
            return
        if self._gateway is not None:
            self._log.info("gateway_restarted", endpoint=self.endpoint)
        self._gateway = gateway
        self._outbox = self._pending_tasks()
        self._credit = 0
        self._submitted = 0
        self._add_credit(credit)

    def _reset(self, reason: str) -> None:
        self._log.info("gateway_reset", endpoint=self.endpoint, reason=reason)
        self._gateway = None
        self._credit = 0
        self._hello = True
        self._wake.set()

    def _add_credit(self, credit: int) -> None:
        if credit > 0:
            self._credit += credit
            self._wake.set()

    def _hello_message(self) -> Hello:
        return Hello(self.name, self._window, self._by_priority)

    async def _flush(self) -> None:
        """
        Send the Hello when one is due and the outbox as far as credit goes, in batches.
        """
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self._hello:
                self._hello = False
                await self._socket.send_multipart(encode(self._hello_message()))
                self._last_sent = trio.current_time()
            while self._credit and self._outbox:
                count = min(self._credit, len(self._outbox), _BATCH)
                batch, self._outbox = self._outbox[:count], self._outbox[count:]
                self._credit -= count
                self._submitted += count
                await self._socket.send_multipart(encode(Submit(tuple(batch))))
                self._last_sent = trio.current_time()

    async def _beat(self) -> None:
        """
        Ping a silent gateway; give up on it after the bound; say Hello until it is back.

        Also ping a gateway that has heard nothing from this producer for an interval: it
        forgets a producer it does not hear from for the bound, and one that only waits for
        results has nothing else to send.
        """
        heartbeat = self._heartbeat
        while True:
            await trio.sleep(heartbeat.interval)
            now = trio.current_time()
            silent = now - self._last_heard
            if silent >= heartbeat.bound and not self._troubled:
                self._gateway_lost()
            quiet = now - self._last_sent
            if silent >= heartbeat.interval or (
                self._gateway is not None and quiet >= heartbeat.interval
            ):
                message = Ping() if self._gateway is not None else self._hello_message()
                with contextlib.suppress(trio.WouldBlock):
                    self._socket.send_multipart_nowait(encode(message))
                    self._last_sent = now

    def _gateway_lost(self) -> None:
        self._troubled = True
        reason = self._unavailable()
        assert reason is not None
        self._log.warning("gateway_lost", endpoint=self.endpoint, pending=len(self._pending))
        self._gateway = None
        self._credit = 0
        self._fail_all(reason)

    def _goodbye(self) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
            self._socket.send_multipart_nowait(encode(Bye()))


@asynccontextmanager
async def open_zmq_producer(
    endpoint: str,
    *,
    name: str,
    window: int,
    by_priority: bool,
    serializer: Serializer,
    close_timeout: float,
    logging: bool,
    heartbeat: Heartbeat | None,
    curve: CurveClient | None,
    context: zmq.Context[zmq.Socket[bytes]] | None,
) -> AsyncIterator[ZmqProducer[Any]]:
    """
    Run a ZeroMQ producer (see :func:`~event_collector.remote.open_producer`).
    """
    socket = connect_socket(context, zmq.DEALER, endpoint, curve)
    producer: ZmqProducer[Any] = ZmqProducer._create()
    producer._setup(
        endpoint,
        name=name,
        window=window,
        serializer=serializer,
        log=get_logger(logging, producer=name),
    )
    producer._init(socket, by_priority=by_priority, heartbeat=heartbeat or Heartbeat())
    body_error: BaseException | None = None
    with socket:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer._receive)
            nursery.start_soon(producer._flush)
            nursery.start_soon(producer._beat)
            producer._wake.set()  # the Hello
            try:
                yield producer
            except BaseException as exc:
                body_error = exc
            await producer._close(close_timeout, wait=body_error is None)
            producer._goodbye()
            nursery.cancel_scope.cancel()
        socket.close(linger=math.ceil(close_timeout * 1000))
    if body_error is not None:
        raise body_error
