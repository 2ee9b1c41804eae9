"""
Producers of the distributed modes: what every transport's producer shares.

A producer sends payloads and returns :class:`RemoteEvent`, whose interface is the in-process
event's (:class:`~event_collector.SentEvent`). It keeps at most ``window`` events pending (a
``send`` beyond it waits) and every pending task until its result arrives, so that a task can
be sent again after the broker lost it; a duplicate result is dropped by task id, so each event
resolves exactly once. The transport (ZeroMQ to a gateway, or Redis Streams) is a subclass,
picked by :func:`open_producer` from the endpoint's scheme.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar, final

import attrs
import trio

from ._data import Error, Payload, Result, ResultList, _result_list
from ._errors import GatewayError
from ._event import EventBase, make_pacer
from ._logging import FilteringBoundLogger
from ._public import NoPublicConstructor
from ._serializer import Serializer

if TYPE_CHECKING:
    import zmq

    from ._remote import CurveClient, Heartbeat

__all__ = [
    "DEFAULT_WINDOW",
    "Producer",
    "ProducerStatistics",
    "RemoteEvent",
    "TaskId",
    "failed",
    "is_redis_url",
    "open_producer",
]

T = TypeVar("T")

#: A task's id at its producer: a number (ZeroMQ) or a string (Redis).
TaskId: TypeAlias = int | str

#: Events a producer keeps in flight at most, by default.
DEFAULT_WINDOW: Final = 1000


def is_redis_url(endpoint: str) -> bool:
    """
    Whether ``endpoint`` names a Redis server (``redis://``, ``rediss://``, ``unix://``).
    """
    return endpoint.startswith(("redis://", "rediss://", "unix://"))


def failed(reason: str) -> ResultList[Any]:
    """
    Return the results of a task that could not run, for ``reason``.
    """
    return _result_list((Error(GatewayError(reason)),), (None,))


@final
class RemoteEvent(EventBase[T]):
    """
    A payload sent through a gateway or Redis and, once a worker has run it, its results.

    Returned by :meth:`Producer.send`; the same interface as the in-process
    :class:`~event_collector.CollectorEvent` (both implement
    :class:`~event_collector.SentEvent`). Resolves exactly once: with the worker's results
    (``Error(RemoteError(...))`` for a failed collector), or with ``Error(GatewayError(...))``
    when the task could not run (no gateway, refused, the producer closed first).
    """

    __slots__ = ("_wire", "attempts", "task_id")

    #: The producer's id for the task.
    task_id: TaskId
    #: Deliveries to a worker that the result came from: 1, or more after a worker died.
    attempts: int

    def __init__(self, payload: Payload[Any], task_id: TaskId, task: Any, pacer: Any) -> None:
        super().__init__(payload, pacer)
        self.task_id = task_id
        self.attempts = 0
        # The task as the transport sends it, kept while pending to send it again.
        self._wire = task


@final
@attrs.frozen
class ProducerStatistics:
    """
    A snapshot of a producer, from :meth:`Producer.statistics`.
    """

    #: Events sent and not resolved yet.
    pending: int
    #: Tasks waiting in the producer to go out (for credit, or for room in the queue).
    unsent: int
    #: Tasks the broker would take now, as far as the producer knows.
    credit: int
    #: Whether the broker answers (the gateway has welcomed the producer, or Redis is
    #: reachable).
    connected: bool
    #: Results dropped because their event had resolved already (duplicates).
    duplicates: int
    #: Messages or entries dropped because they were not the protocol's.
    malformed: int


class Producer(Generic[T], metaclass=NoPublicConstructor):
    """
    Sends payloads to workers through a broker; made by :func:`open_producer`.

    Safe to share between tasks.
    """

    #: Where the broker is (the gateway's endpoint, or the Redis URL).
    endpoint: str
    #: This producer's name (in the gateway's logs; its result stream with Redis).
    name: str

    def _setup(
        self,
        endpoint: str,
        *,
        name: str,
        window: int,
        serializer: Serializer,
        log: FilteringBoundLogger,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self._window = window
        self._serializer = serializer
        self._log = log
        self._pacer = make_pacer()
        # Every pending event (with its task, to send it again) until its result comes.
        self._pending: dict[TaskId, RemoteEvent[T]] = {}
        self._outbox: list[Any] = []  # tasks to send
        self._wake = trio.Event()  # the sending task has something to do
        self._room = trio.lowlevel.ParkingLot()  # senders waiting for the window
        # Senders waiting for the window resume once this few are pending: an eighth of the
        # window free, not one slot. A producer that has filled its window (its tasks come
        # faster than they are done) then sends a batch at a time, in one message; woken
        # for each result, it would send each task in a message of its own, and that costs
        # every process on the way more than the task itself (a backlog that feeds itself).
        # While senders wait, a new send waits behind them (else it could take every slot
        # that frees, for as long as the load lasts); they wait only while at least this
        # many are pending, so the common case is one comparison.
        self._refill_below = window - max(window // 8, 1) + 1
        self._settled = trio.lowlevel.ParkingLot()  # close() waiting for the last result
        self._closed = False
        # Raised by the transport while the broker may be unavailable (ZeroMQ: the gateway
        # is silent; Redis: its calls fail): only then does a send that has room ask it
        # (_unavailable) whether to refuse.
        self._troubled = False
        self._duplicates = 0
        self._malformed = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} to {self.endpoint}>"

    def statistics(self) -> ProducerStatistics:
        """
        Return a snapshot of the producer's state.
        """
        return ProducerStatistics(
            pending=len(self._pending),
            unsent=len(self._outbox),
            credit=self._credit_now(),
            connected=self._connected(),
            duplicates=self._duplicates,
            malformed=self._malformed,
        )

    async def send(self, payload: Payload[Any] | object) -> RemoteEvent[T]:
        """
        Send ``payload``, waiting while ``window`` events are pending.

        Args:
            payload: A :class:`~event_collector.Payload`; any other value is sent as
                ``Payload(value)``.

        Returns:
            The event, to ``await event.wait()`` for its results.

        Raises:
            TypeError: The serializer cannot encode the payload's value.
            GatewayError: The broker has not answered for its timeout.
            trio.ClosedResourceError: The producer is closing.

        Always a cancel point, and a schedule point when it waits or every
        ``SCHEDULE_EVERY`` sends. On cancellation nothing is sent.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        event = self._event(payload if type(payload) is Payload else Payload(payload))
        pending = self._pending
        while len(pending) >= self._refill_below and (
            len(pending) >= self._window or self._room  # full, or others wait for room
        ):
            self._check_open()
            await self._room.park()
        if self._closed or self._troubled:
            self._check_open()
        # _enqueue(event), inlined: once per send.
        pending[event.task_id] = event
        self._outbox.append(event._wire)
        self._wake.set()
        if self._pacer():
            await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    def send_nowait(self, payload: Payload[Any] | object) -> RemoteEvent[T]:
        """
        Send ``payload`` if fewer than ``window`` events are pending.

        Raises:
            trio.WouldBlock: ``window`` events are pending, or sends wait for room;
                nothing was sent.
            TypeError: The serializer cannot encode the payload's value.
            GatewayError: The broker has not answered for its timeout.
            trio.ClosedResourceError: The producer is closing.
        """
        event = self._event(payload if type(payload) is Payload else Payload(payload))
        self._check_open()
        pending = len(self._pending)
        if pending >= self._refill_below and (pending >= self._window or self._room):
            raise trio.WouldBlock
        self._enqueue(event)
        return event

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the producer is closing: it sends no more")
        reason = self._unavailable()
        if reason is not None:
            raise GatewayError(reason)

    def _pending_tasks(self) -> list[Any]:
        """
        Return the task of every pending event, as the transport sends it, in send order.
        """
        return [event._wire for event in self._pending.values()]

    def _enqueue(self, event: RemoteEvent[T]) -> None:
        self._pending[event.task_id] = event
        self._outbox.append(event._wire)
        self._wake.set()

    def _resolve(
        self,
        task_id: TaskId,
        attempts: int,
        outcome: ResultList[Any] | Result[Any],
        key: tuple[str | None, ...] = (),
    ) -> None:
        """
        Resolve the pending event of ``task_id``; a second result for it is a duplicate.

        ``outcome`` and ``key`` are as ``EventBase._resolve`` takes them (see
        ``to_resolution``).
        """
        event = self._pending.pop(task_id, None)
        if event is None:
            self._duplicates += 1
            return
        event._wire = None
        event.attempts = attempts
        event._resolve(outcome, key)
        self._released()

    def _fail(self, task_id: TaskId, reason: str) -> None:
        """
        Resolve the pending event of ``task_id`` with ``Error(GatewayError(reason))``.
        """
        event = self._pending.pop(task_id, None)
        if event is None:
            return
        if event._wire in self._outbox:
            self._outbox.remove(event._wire)
        event._wire = None
        event._resolve(failed(reason))
        self._released()

    def _fail_all(self, reason: str) -> None:
        """
        Resolve every pending event with ``Error(GatewayError(reason))``.
        """
        pending, self._pending = self._pending, {}
        self._outbox.clear()
        for event in pending.values():
            event._wire = None
            event._resolve(failed(reason))
        self._room.unpark_all()
        self._settled.unpark_all()

    def _released(self) -> None:
        if self._room and len(self._pending) < self._refill_below:  # sends wait for room
            self._room.unpark_all()
        if not self._pending:
            self._settled.unpark_all()

    async def _close(self, timeout: float, *, wait: bool) -> None:
        """
        Stop sending; wait up to ``timeout`` for pending results; fail the rest.

        Without ``wait`` (an exception or cancellation), fail them at once.
        """
        self._closed = True
        self._room.unpark_all()
        with trio.CancelScope(shield=True):
            if wait:
                with trio.move_on_after(timeout):
                    while self._pending:
                        await self._settled.park()
            self._fail_all("the producer closed before the result arrived")

    # -- what each transport provides ----------------------------------------------------

    def _event(self, payload: Payload[Any]) -> RemoteEvent[T]:
        """
        Return the event of ``payload``, with a new task id and the task as sent.

        Raises ``TypeError`` if the transport cannot send the payload.
        """
        raise NotImplementedError  # pragma: no cover

    def _unavailable(self) -> str | None:
        """
        Return why the broker cannot take tasks now, or None.
        """
        raise NotImplementedError  # pragma: no cover

    def _credit_now(self) -> int:
        raise NotImplementedError  # pragma: no cover

    def _connected(self) -> bool:
        raise NotImplementedError  # pragma: no cover


def _checked(window: int, close_timeout: float) -> None:
    if type(window) is not int or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if not close_timeout >= 0:
        raise ValueError(f"close_timeout must be >= 0, got {close_timeout!r}")


@asynccontextmanager
async def open_producer(
    endpoint: str,
    *,
    name: str | None = None,
    window: int = DEFAULT_WINDOW,
    by_priority: bool = False,
    serializer: Serializer | None = None,
    close_timeout: float = 10.0,
    logging: bool = True,
    heartbeat: Heartbeat | None = None,
    curve: CurveClient | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    queue: str | None = None,
    max_queue: int | None = None,
    connect_timeout: float | None = None,
) -> AsyncIterator[Producer[Any]]:
    """
    Connect a producer to a broker, for ``async with``: the endpoint picks the transport.

    Args:
        endpoint: A gateway's producer endpoint (``tcp://host:port``, ``ipc://path``: the
            ZeroMQ mode), or a Redis URL (``redis://[user:password@]host:port/db``,
            ``rediss://`` for TLS, ``unix://path``: the Redis Streams mode).
        name: The producer's name (default: a random one). With Redis it names the
            producer's result stream: a producer restarted with the same name collects
            the results that arrived while it was down (:meth:`RedisProducer.recovered`).
        window: Events pending at most; ``send`` waits beyond it, until an eighth of the
            window is free again (a later send waits behind it).
        by_priority: Whether this producer's tasks are taken by ``Payload.priority`` (lower
            first) instead of in order: stable with ZeroMQ; with Redis in levels 0 to 9
            (priorities clamped to them).
        serializer: Encodes payload values and decodes results (default: msgpack).
        close_timeout: Seconds leaving the ``async with`` waits for pending results; the
            rest resolve with ``Error(GatewayError(...))``.
        logging: False silences the producer.
        heartbeat: ZeroMQ only: ping interval and liveness; the gateway is declared gone
            after ``heartbeat.bound`` seconds without an answer, and pending events resolve
            with ``Error(GatewayError(...))``.
        curve: ZeroMQ only: CURVE keys (:class:`~event_collector.remote.CurveClient`).
        context: ZeroMQ only: the ZeroMQ context (default: the process's shared one).
        queue: Redis only: the queue's name (default ``"event-collector"``); it namespaces
            the keys, so several applications share one Redis.
        max_queue: Redis only: tasks sent and not finished at most (default 100 000);
            ``send`` waits beyond it. Results wait in the producer's stream for an hour
            after the last one.
        connect_timeout: Redis only: seconds without reaching Redis after which ``send``
            raises ``GatewayError`` and unsent tasks fail (default 10).

    Raises:
        ValueError: ``window`` is below 1 or ``close_timeout`` negative.
        TypeError: An option of the other transport.

    On a normal exit it waits for pending results (up to ``close_timeout``); on an
    exception or cancellation it fails them at once. The body's exception propagates as
    itself.
    """
    _checked(window, close_timeout)
    name = name or f"producer-{uuid.uuid4().hex[:12]}"
    serializer = serializer or _default_serializer()
    if is_redis_url(endpoint):
        _refuse("ZeroMQ", heartbeat=heartbeat, curve=curve, context=context)
        from ._redis_producer import open_redis_producer  # noqa: PLC0415  (the redis extra)

        async with open_redis_producer(
            endpoint,
            name=name,
            window=window,
            by_priority=by_priority,
            serializer=serializer,
            close_timeout=close_timeout,
            logging=logging,
            queue=queue,
            max_queue=max_queue,
            connect_timeout=connect_timeout,
        ) as producer:
            yield producer
        return
    _refuse(
        "Redis",
        queue=queue,
        max_queue=max_queue,
        connect_timeout=connect_timeout,
    )
    from ._zmq_producer import open_zmq_producer  # noqa: PLC0415  (the zmq extra)

    async with open_zmq_producer(
        endpoint,
        name=name,
        window=window,
        by_priority=by_priority,
        serializer=serializer,
        close_timeout=close_timeout,
        logging=logging,
        heartbeat=heartbeat,
        curve=curve,
        context=context,
    ) as producer:
        yield producer


def _refuse(transport: str, **options: object) -> None:
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise TypeError(f"{', '.join(given)}: an option of the {transport} transport only")


def _default_serializer() -> Serializer:
    from ._serializer import MsgpackSerializer  # noqa: PLC0415  (msgspec: either extra)

    return MsgpackSerializer()
