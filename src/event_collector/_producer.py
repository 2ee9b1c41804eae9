"""
The producer of the distributed mode: sends payloads to a gateway and gets each result back.

A producer is a DEALER socket and three tasks: the receiver (results, credit, resets), the
flusher (batches of tasks, as credit allows) and the heartbeat (pings, and the verdict that
the gateway is gone). Its events (:class:`RemoteEvent`) have the in-process events' interface.

Flow control has two bounds: the producer's ``window`` (events sent and not resolved; a
``send`` beyond it waits) and the gateway's credit (tasks it will take now; the rest wait in
the producer's outbox). Every pending task is kept until its result arrives: if the gateway
restarts, or forgets this producer, they are sent again, and a duplicate result is dropped by
task id, so each event resolves exactly once.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, Generic, TypeVar, final

import attrs
import trio
import zmq

from ._data import Error, Payload, ResultList, _result_list
from ._errors import GatewayError
from ._event import EventBase, make_pacer
from ._logging import FilteringBoundLogger, get_logger
from ._public import NoPublicConstructor
from ._remote import CurveClient, Heartbeat, connect_socket
from ._serializer import MsgpackSerializer, Serializer
from ._tasks import to_result_list, to_task
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
    Task,
    TaskResult,
    Welcome,
    decode,
    encode,
)
from ._zmq_trio import ZmqSocket

__all__ = ["DEFAULT_WINDOW", "Producer", "ProducerStatistics", "RemoteEvent", "open_producer"]

T = TypeVar("T")

#: Events a producer keeps in flight at most, by default.
DEFAULT_WINDOW: Final = 1000
#: Tasks in one Submit message at most.
_BATCH: Final = 500


@final
class RemoteEvent(EventBase[T]):
    """
    A payload sent through a gateway and, once a worker has run it, its results.

    Returned by :meth:`Producer.send`; the same interface as the in-process
    :class:`~event_collector.CollectorEvent` (both implement
    :class:`~event_collector.SentEvent`). Resolves exactly once: with the worker's results
    (``Error(RemoteError(...))`` for a failed collector), or with ``Error(GatewayError(...))``
    when the task could not run (no gateway, refused, the producer closed first).
    """

    __slots__ = ("attempts", "task_id")

    #: The producer's number for the task.
    task_id: int
    #: Deliveries to a worker that the result came from: 1, or more after a worker died.
    attempts: int

    def __init__(self, payload: Payload[Any], task_id: int, pacer: Any) -> None:
        super().__init__(payload, pacer)
        self.task_id = task_id
        self.attempts = 0


@final
@attrs.frozen
class ProducerStatistics:
    """
    A snapshot of a producer, from :meth:`Producer.statistics`.
    """

    #: Events sent and not resolved yet.
    pending: int
    #: Tasks waiting in the producer for credit from the gateway.
    unsent: int
    #: Tasks the gateway would take now.
    credit: int
    #: Whether the gateway answers (False before the first answer, and after a silence as
    #: long as the heartbeat bound).
    connected: bool
    #: Results dropped because their event had resolved already (duplicates).
    duplicates: int
    #: Messages dropped because they were not the protocol's.
    malformed: int


@final
class Producer(Generic[T], metaclass=NoPublicConstructor):
    """
    Sends payloads to a gateway; made by :func:`open_producer`.

    Safe to share between tasks.
    """

    def _init(
        self,
        socket: ZmqSocket,
        endpoint: str,
        *,
        name: str,
        window: int,
        by_priority: bool,
        serializer: Serializer,
        heartbeat: Heartbeat,
        log: FilteringBoundLogger,
    ) -> None:
        self._socket = socket
        #: The gateway endpoint this producer connects to.
        self.endpoint = endpoint
        #: This producer's name (in the gateway's logs).
        self.name = name
        self._window = window
        self._by_priority = by_priority
        self._serializer = serializer
        self._heartbeat = heartbeat
        self._log = log
        self._pacer = make_pacer()
        self._pending: dict[int, tuple[RemoteEvent[T], Task]] = {}
        self._outbox: list[Task] = []
        self._credit = 0
        self._submitted = 0  # tasks sent since the session's Welcome
        self._next_id = 1
        self._gateway: str | None = None  # the instance id of the gateway that welcomed us
        self._hello = True  # a Hello is due
        self._last_heard = trio.current_time()
        self._last_sent = trio.current_time()
        self._lost = False  # the gateway has been silent for the heartbeat bound
        self._closed = False
        self._room = trio.lowlevel.ParkingLot()  # senders waiting for the window
        self._settled = trio.lowlevel.ParkingLot()  # close() waiting for the last result
        self._wake = trio.Event()
        self._duplicates = 0
        self._malformed = 0

    def __repr__(self) -> str:
        return f"<Producer {self.name!r} to {self.endpoint}>"

    def statistics(self) -> ProducerStatistics:
        """
        Return a snapshot of the producer's state.
        """
        return ProducerStatistics(
            pending=len(self._pending),
            unsent=len(self._outbox),
            credit=self._credit,
            connected=self._gateway is not None and not self._lost,
            duplicates=self._duplicates,
            malformed=self._malformed,
        )

    async def send(self, payload: Payload[Any] | object) -> RemoteEvent[T]:
        """
        Send ``payload`` to the gateway, waiting while ``window`` events are pending.

        Args:
            payload: A :class:`~event_collector.Payload`; any other value is sent as
                ``Payload(value)``.

        Returns:
            The event, to ``await event.wait()`` for its results.

        Raises:
            TypeError: The serializer cannot encode the payload's value.
            GatewayError: The gateway has not answered for the heartbeat bound.
            trio.ClosedResourceError: The producer is closing.

        Always a cancel point, and a schedule point when it waits or every
        ``SCHEDULE_EVERY`` sends. On cancellation nothing is sent.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        event, task = self._prepare(payload)
        while len(self._pending) >= self._window:
            self._check_open()
            await self._room.park()
        self._check_open()
        self._enqueue(event, task)
        if self._pacer():
            await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    def send_nowait(self, payload: Payload[Any] | object) -> RemoteEvent[T]:
        """
        Send ``payload`` if fewer than ``window`` events are pending.

        Raises:
            trio.WouldBlock: ``window`` events are pending; nothing was sent.
            TypeError: The serializer cannot encode the payload's value.
            GatewayError: The gateway has not answered for the heartbeat bound.
            trio.ClosedResourceError: The producer is closing.
        """
        event, task = self._prepare(payload)
        self._check_open()
        if len(self._pending) >= self._window:
            raise trio.WouldBlock
        self._enqueue(event, task)
        return event

    def _prepare(self, payload: Payload[Any] | object) -> tuple[RemoteEvent[T], Task]:
        if type(payload) is not Payload:
            payload = Payload(payload)
        task_id = self._next_id
        task = to_task(task_id, payload, self._serializer)
        self._next_id += 1
        return RemoteEvent(payload, task_id, self._pacer), task

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the producer is closing: it sends no more")
        if self._lost:
            raise GatewayError(self._lost_reason())

    def _enqueue(self, event: RemoteEvent[T], task: Task) -> None:
        self._pending[task.id] = (event, task)
        self._outbox.append(task)
        self._wake.set()

    def _lost_reason(self) -> str:
        return f"no answer from the gateway at {self.endpoint} for {self._heartbeat.bound:g} s"

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
        if self._lost:
            self._lost = False
            self._log.info("gateway_back", endpoint=self.endpoint)

    def _handle(self, message: Message) -> None:
        match message:
            case Results(results, credit):
                for result in results:
                    self._resolve(result)
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
        self._outbox = [task for _, task in self._pending.values()]
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

    def _resolve(self, result: TaskResult) -> None:
        entry = self._pending.pop(result.id, None)
        if entry is None:
            self._duplicates += 1
            return
        event, _ = entry
        event.attempts = result.attempt
        event._resolve(to_result_list(result.outcomes, self._serializer))
        self._released()

    def _fail(self, task_id: int, reason: str) -> None:
        entry = self._pending.pop(task_id, None)
        if entry is None:
            return
        with contextlib.suppress(ValueError):
            self._outbox.remove(entry[1])
        entry[0]._resolve(_failed(reason))
        self._released()

    def _released(self) -> None:
        self._room.unpark()
        if not self._pending:
            self._settled.unpark_all()

    async def _flush(self) -> None:
        """
        Send the Hello when one is due and the outbox as far as credit goes, in batches.
        """
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self._hello:
                self._hello = False
                hello = Hello(self.name, self._window, self._by_priority)
                await self._socket.send_multipart(encode(hello))
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
            if silent >= heartbeat.bound and not self._lost:
                self._gateway_lost()
            quiet = now - self._last_sent
            if silent >= heartbeat.interval or (
                self._gateway is not None and quiet >= heartbeat.interval
            ):
                message = (
                    Ping()
                    if self._gateway is not None
                    else Hello(self.name, self._window, self._by_priority)
                )
                with contextlib.suppress(trio.WouldBlock):
                    self._socket.send_multipart_nowait(encode(message))
                    self._last_sent = now

    def _gateway_lost(self) -> None:
        reason = self._lost_reason()
        self._log.warning("gateway_lost", endpoint=self.endpoint, pending=len(self._pending))
        self._lost = True
        self._gateway = None
        self._credit = 0
        self._outbox.clear()
        pending, self._pending = self._pending, {}
        for event, _ in pending.values():
            event._resolve(_failed(reason))
        self._room.unpark_all()
        self._settled.unpark_all()

    async def _close(self, timeout: float, *, wait: bool) -> None:
        """
        Stop sending; wait up to ``timeout`` for pending results; fail the rest; say Bye.

        Without ``wait`` (an exception or cancellation), fail them at once.
        """
        self._closed = True
        self._room.unpark_all()
        with trio.CancelScope(shield=True):
            if wait:
                with trio.move_on_after(timeout):
                    while self._pending:
                        await self._settled.park()
            pending, self._pending = self._pending, {}
            for event, _ in pending.values():
                event._resolve(_failed("the producer closed before the result arrived"))
            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                self._socket.send_multipart_nowait(encode(Bye()))


def _failed(reason: str) -> ResultList[Any]:
    return _result_list((Error(GatewayError(reason)),), (None,))


@asynccontextmanager
async def open_producer(
    endpoint: str,
    *,
    name: str | None = None,
    window: int = DEFAULT_WINDOW,
    by_priority: bool = False,
    serializer: Serializer | None = None,
    heartbeat: Heartbeat | None = None,
    close_timeout: float = 10.0,
    curve: CurveClient | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    logging: bool = True,
) -> AsyncIterator[Producer[Any]]:
    """
    Connect a producer to the gateway at ``endpoint``, for ``async with``.

    Args:
        endpoint: The gateway's producer endpoint (``tcp://host:port`` or ``ipc://path``).
        name: The producer's name in the gateway's logs (default: a random one).
        window: Events pending at most; ``send`` waits beyond it.
        by_priority: Whether the gateway dispatches this producer's tasks by
            ``Payload.priority`` (lower first, stable) instead of in order.
        serializer: Encodes payload values and decodes results (default: msgpack).
        heartbeat: Ping interval and liveness; the gateway is declared gone after
            ``heartbeat.bound`` seconds without an answer, and pending events resolve with
            ``Error(GatewayError(...))``.
        close_timeout: Seconds leaving the ``async with`` waits for pending results; the
            rest resolve with ``Error(GatewayError(...))``.
        curve: CURVE keys (:class:`~event_collector.remote.CurveClient`) to encrypt and
            authenticate the connection.
        context: The ZeroMQ context (default: the process's shared one).
        logging: False silences the producer.

    Raises:
        ValueError: ``window`` is below 1 or ``close_timeout`` negative.

    On a normal exit it waits for pending results (up to ``close_timeout``); on an
    exception or cancellation it fails them at once. The body's exception propagates as
    itself.
    """
    if type(window) is not int or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if not close_timeout >= 0:
        raise ValueError(f"close_timeout must be >= 0, got {close_timeout!r}")
    name = name or f"producer-{uuid.uuid4().hex[:12]}"
    log = get_logger(logging, producer=name)
    socket = connect_socket(context, zmq.DEALER, endpoint, curve)
    producer: Producer[Any] = Producer._create()
    producer._init(
        socket,
        endpoint,
        name=name,
        window=window,
        by_priority=by_priority,
        serializer=serializer or MsgpackSerializer(),
        heartbeat=heartbeat or Heartbeat(),
        log=log,
    )
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
            nursery.cancel_scope.cancel()
        socket.close(linger=math.ceil(close_timeout * 1000))
    if body_error is not None:
        raise body_error
