"""
Workers of the distributed modes: what every transport's worker shares.

A worker is a CollectorQueue that takes its events from a broker: the same collectors run
in-process or here, unchanged. It holds at most ``credit`` tasks (running, queued, or done
with the result not sent); completed events reach it through a sink (no task and no
``trio.Event`` per event), and results go back in batches. The transport (ZeroMQ from a
gateway, or Redis Streams) is a subclass, picked by :func:`open_worker` from the endpoint.

Leaving the ``async with`` drains: the worker takes no more tasks, shuts its queue down
gracefully (what it holds gets ``drain_timeout`` to finish, the rest resolves with
``ShutdownError``), sends every result, and closes.
"""

from __future__ import annotations

import importlib
import math
import os
import socket as _socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, final

import attrs
import trio

from ._collector import Collector
from ._data import ResultList
from ._event import EventBase
from ._logging import FilteringBoundLogger
from ._producer import is_redis_url
from ._public import NoPublicConstructor
from ._queue import CollectorQueue
from ._serializer import Serializer
from ._tasks import error_info, to_outcome, to_outcomes, to_payload
from ._wire import Outcome, Task

if TYPE_CHECKING:
    import zmq

    from ._remote import CurveClient, Heartbeat

__all__ = ["Worker", "WorkerStatistics", "load_collectors", "open_worker"]

#: Results in one message or transaction at most.
BATCH: Final = 500


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
    #: Whether the broker answers (a gateway has welcomed it and not gone silent since, or
    #: Redis is reachable).
    registered: bool
    #: Tasks that were not valid payloads (answered with an error, not run).
    invalid: int
    #: Messages dropped because they were not the protocol's.
    malformed: int


class Worker(metaclass=NoPublicConstructor):
    """
    A running worker; made by :func:`open_worker`.
    """

    #: The worker's collector queue.
    queue: CollectorQueue[Any]
    #: Where its broker is (the gateway's endpoint, or the Redis URL).
    endpoint: str
    #: Its name (in the gateway's logs; its consumer name with Redis).
    name: str

    def _setup(
        self,
        queue: CollectorQueue[Any],
        *,
        endpoint: str,
        name: str,
        capacity: int,
        serializer: Serializer,
        log: FilteringBoundLogger,
    ) -> None:
        self.queue = queue
        self._publisher = queue.get_publisher()  # the queue runs already
        self.endpoint = endpoint
        self.name = name
        self._capacity = capacity
        self._serializer = serializer
        self._log = log
        # Each running event with the transport's reference to its task and the attempt.
        self._tasks: dict[EventBase[Any], tuple[Any, int]] = {}
        # Finished tasks whose result is not sent yet: (reference, attempt, outcomes).
        self._done: list[tuple[Any, int, tuple[Outcome, ...]]] = []
        self._wake = trio.Event()  # the sending task has something to do
        self._settled = trio.lowlevel.ParkingLot()  # waiting for the last results to go
        self._leaving = False
        self._completed = 0
        self._invalid = 0
        self._malformed = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} to {self.endpoint}>"

    def statistics(self) -> WorkerStatistics:
        """
        Return a snapshot of the worker's state.
        """
        return WorkerStatistics(
            in_flight=len(self._tasks) + len(self._done),
            capacity=self._capacity,
            completed=self._completed,
            registered=self._registered(),
            invalid=self._invalid,
            malformed=self._malformed,
        )

    def _free(self) -> int:
        """
        Return the tasks the worker can take now.

        Its capacity less what its queue holds and the results it has not sent yet.
        """
        if self._leaving:
            return 0
        return max(self._capacity - self.queue.statistics().in_flight - len(self._done), 0)

    def _run(self, reference: Any, task: Task, attempt: int) -> None:
        """
        Put ``task`` into the queue; an invalid one is answered with an error at once.
        """
        try:
            payload = to_payload(task, self._serializer)
        except ValueError as exc:
            self._invalid += 1
            self._finished(reference, attempt, (Outcome(None, error=error_info(exc)),))
            return
        try:
            event = self._publisher.send_nowait(payload)
        except trio.ClosedResourceError as exc:  # a task that crossed our drain
            self._finished(reference, attempt, (Outcome(None, error=error_info(exc)),))
            return
        self._tasks[event] = (reference, attempt)
        event._notify(self)

    def _finished(self, reference: Any, attempt: int, outcomes: tuple[Outcome, ...]) -> None:
        self._done.append((reference, attempt, outcomes))
        self._wake.set()

    def _sent(self, count: int) -> None:
        """
        Note that the first ``count`` results were delivered.
        """
        del self._done[:count]
        self._completed += count
        if not self._tasks and not self._done:
            self._settled.unpark_all()

    # -- the sink: completed events ------------------------------------------------------

    def resolved(self, event: EventBase[Any]) -> None:
        """
        Note a completed event's result, to send with the next batch.
        """
        reference, attempt = self._tasks.pop(event)
        # A one-collector event holds its lone result and key: no ResultList is built.
        outcome, key = event._outcome, event._key
        if type(outcome) is ResultList:
            outcomes = to_outcomes(outcome, self._serializer)
        else:
            assert outcome is not None
            outcomes = (to_outcome(key[0], outcome, self._serializer),)
        # _finished(...), inlined: once per task.
        self._done.append((reference, attempt, outcomes))
        self._wake.set()

    async def wait_for(self, event: EventBase[Any]) -> None:  # pragma: no cover
        raise RuntimeError("a worker's events are not waited for")

    # -- draining ------------------------------------------------------------------------

    async def _drain(self) -> None:
        """
        Take no more tasks; shut the queue down (``drain_timeout``): every task resolves.
        """
        self._leaving = True
        self._leave()
        await self.queue.shut_down_queue()

    async def _deliver_rest(self, timeout: float) -> None:
        """
        Wait up to ``timeout`` for the last results to go.
        """
        self._wake.set()
        with trio.move_on_after(timeout):
            while self._done:
                await self._settled.park()

    # -- what each transport provides ----------------------------------------------------

    def _registered(self) -> bool:
        raise NotImplementedError  # pragma: no cover

    def _leave(self) -> None:
        """
        Tell the broker the worker takes no more tasks (if it needs telling).
        """


def _name() -> str:
    return f"{_socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@asynccontextmanager
async def open_worker(
    collectors: Sequence[Collector[Any]],
    endpoint: str,
    *,
    name: str | None = None,
    credit: int | None = None,
    serializer: Serializer | None = None,
    drain_timeout: float = 10.0,
    logging: bool = True,
    heartbeat: Heartbeat | None = None,
    curve: CurveClient | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    queue: str | None = None,
    visibility_timeout: float | None = None,
    max_attempts: int | None = None,
    **queue_options: Any,
) -> AsyncIterator[Worker]:
    """
    Run a worker for ``async with``: its collectors serve the broker at ``endpoint``.

    Args:
        collectors: The collectors, as for :class:`~event_collector.CollectorQueue`.
        endpoint: A gateway's worker endpoint (ZeroMQ), or a Redis URL.
        name: The worker's name (default: host, pid and a random suffix).
        credit: Tasks the worker holds at most (running and queued); default twice the
            queue's ``max_consumers``.
        serializer: Decodes payload values and encodes results (default: msgpack).
        drain_timeout: Seconds the worker gives the tasks it holds to finish when the block
            ends (its queue's ``consumer_shutdown_timeout`` unless given).
        logging: False silences the worker and its queue.
        heartbeat: ZeroMQ only: ping interval and liveness.
        curve: ZeroMQ only: CURVE keys to encrypt and authenticate the connection.
        context: ZeroMQ only: the ZeroMQ context (default: the process's shared one).
        queue: Redis only: the queue's name (default ``"event-collector"``).
        visibility_timeout: Redis only: seconds a task may stay with a worker that does not
            renew its lease before another worker takes it (default 30; the worker renews
            its own every third of that, so a slow task is not taken from it).
        max_attempts: Redis only: deliveries to workers that died with a task, after which
            it goes to the dead-letter stream and fails (default 3).
        queue_options: Options of the worker's :class:`~event_collector.CollectorQueue`
            (``min_consumers``, ``max_consumers``, ``autoscale``...).

    Raises:
        TypeError: An option of the other transport.

    On leaving the block the worker drains (see ``drain_timeout``); on cancellation it stops
    at once, and its tasks go to another worker (after the heartbeat bound, or Redis's
    visibility timeout).
    """
    from ._producer import _refuse  # noqa: PLC0415

    queue_options.setdefault("consumer_shutdown_timeout", drain_timeout)
    collector_queue: CollectorQueue[Any] = CollectorQueue(
        collectors, max_queue_size=math.inf, logging=logging, **queue_options
    )
    capacity = credit if credit is not None else 2 * collector_queue.max_consumers
    if type(capacity) is not int or capacity < 1:
        raise ValueError(f"credit must be an int >= 1, got {credit!r}")
    serializer = serializer or _default_serializer()
    name = name or _name()
    if is_redis_url(endpoint):
        _refuse("ZeroMQ", heartbeat=heartbeat, curve=curve, context=context)
        from ._redis_worker import open_redis_worker  # noqa: PLC0415  (the redis extra)

        async with open_redis_worker(
            collector_queue,
            endpoint,
            name=name,
            capacity=capacity,
            serializer=serializer,
            drain_timeout=drain_timeout,
            logging=logging,
            queue_name=queue,
            visibility_timeout=visibility_timeout,
            max_attempts=max_attempts,
        ) as worker:
            yield worker
        return
    _refuse("Redis", queue=queue, visibility_timeout=visibility_timeout, max_attempts=max_attempts)
    from ._zmq_worker import open_zmq_worker  # noqa: PLC0415  (the zmq extra)

    async with open_zmq_worker(
        collector_queue,
        endpoint,
        name=name,
        capacity=capacity,
        serializer=serializer,
        drain_timeout=drain_timeout,
        logging=logging,
        heartbeat=heartbeat,
        curve=curve,
        context=context,
    ) as worker:
        yield worker


def _default_serializer() -> Serializer:
    from ._serializer import MsgpackSerializer  # noqa: PLC0415  (msgspec: either extra)

    return MsgpackSerializer()
