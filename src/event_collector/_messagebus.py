"""
The message bus: queue events (started, stopped, metrics, scaling) for handlers of yours.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, final

import attrs
import trio

from ._collector import _is_async_callable
from ._logging import FilteringBoundLogger
from ._metrics import Metrics

if TYPE_CHECKING:
    from ._queue import CollectorQueue

__all__ = [
    "BusEvent",
    "BusEventQueue",
    "ConsumersScaled",
    "InitializedQueue",
    "MessageBus",
    "MessageHandler",
    "ReportedMetrics",
    "ShutDownQueue",
]


class BusEvent:
    """
    Base class of the events the queue publishes on its bus.
    """

    __slots__ = ()


@final
@attrs.frozen
class InitializedQueue(BusEvent):
    """
    The queue has entered its lifecycles and its consumers are receiving.
    """

    #: The queue that started.
    collector_queue: CollectorQueue[Any]


@final
@attrs.frozen
class ShutDownQueue(BusEvent):
    """
    The queue's consumers have stopped and every event has its result.

    Handlers run before the queue's nursery closes, bounded by
    ``consumer_shutdown_timeout``.
    """

    #: The queue that stopped.
    collector_queue: CollectorQueue[Any]


@final
@attrs.frozen
class ReportedMetrics(BusEvent):
    """
    The periodic metrics report (every ``report_interval`` seconds).
    """

    #: The metrics reported.
    metrics: Metrics


@final
@attrs.frozen
class ConsumersScaled(BusEvent):
    """
    The autoscaling supervisor changed the pool size.
    """

    #: Pool size before.
    old: int
    #: Pool size asked for.
    new: int
    #: The reason, ``"burst"`` (events waiting), ``"steady"`` (measured flow) or ``"idle"``
    #: (the pool stayed above what the demand needs for ``SCALE_DOWN_SAMPLES`` intervals).
    reason: str


E = TypeVar("E", bound=BusEvent)

#: A bus event handler: ``async def handler(msg, bus) -> None``.
MessageHandler: TypeAlias = Callable[[E, "MessageBus"], Awaitable[None]]


@final
class MessageBus:
    """
    Delivers bus events to handlers, in publication order, off the queue's hot path.

    Handlers of one event run one after the other in registration order, then the next
    event's. They run in a task of the queue's nursery: a slow handler delays later bus
    events, never event processing; a handler that raises is logged with ``exc_info`` and
    the bus goes on. Handlers may be added before the queue starts; events published
    before it starts wait for it.
    """

    def __init__(self) -> None:
        self._handlers: dict[type[BusEvent], list[MessageHandler[Any]]] = {}
        self._send, self._receive = trio.open_memory_channel[BusEvent](math.inf)

    def add_msg_handler(self, event_type: type[E], handler: MessageHandler[E]) -> None:
        """
        Call ``handler(msg, bus)`` for every published event of ``event_type``.

        Raises:
            TypeError: ``event_type`` is not a BusEvent subclass or ``handler`` is not
                an async callable.
        """
        checked: object = event_type  # callers may not be type-checked
        if not (isinstance(checked, type) and issubclass(checked, BusEvent)):
            raise TypeError(f"event_type must be a BusEvent subclass, got {event_type!r}")
        if not _is_async_callable(handler):
            raise TypeError(f"handler must be an async function, got {handler!r}")
        self._handlers.setdefault(event_type, []).append(handler)

    def remove_msg_handler(self, event_type: type[E], handler: MessageHandler[E]) -> None:
        """
        Stop calling ``handler`` for ``event_type``.

        Raises:
            ValueError: The handler is not registered for that event type.
        """
        handlers = self._handlers.get(event_type, [])
        if handler not in handlers:
            raise ValueError(f"{handler!r} is not a handler of {event_type.__name__}")
        handlers.remove(handler)

    def publish(self, msg: BusEvent) -> None:
        """
        Queue ``msg`` for its handlers; never blocks.

        Raises:
            trio.ClosedResourceError: The queue this bus belongs to has stopped.
        """
        self._send.send_nowait(msg)

    def _post(self, msg: BusEvent) -> None:
        """
        Publish for the queue itself: dropped once the bus has stopped (no handler would run).
        """
        with contextlib.suppress(trio.ClosedResourceError):
            self._send.send_nowait(msg)

    def _close(self) -> None:
        """
        Stop accepting events; the dispatcher ends once it has delivered those queued.
        """
        self._send.close()

    async def _dispatch(self, log: FilteringBoundLogger) -> None:
        """
        Deliver events until ``_close``, then return.

        On cancellation the running handler is cancelled and undelivered events are dropped.
        """
        # Closing the send side on the way out, cancelled or not, makes a later publish()
        # raise ClosedResourceError, as documented, rather than BrokenResourceError.
        with self._send, self._receive:
            async for msg in self._receive:
                for handler in tuple(self._handlers.get(type(msg), ())):
                    try:
                        await handler(msg, self)
                    except Exception as exc:
                        log.error(
                            "message_handler_failed",
                            bus_event=type(msg).__name__,
                            handler=getattr(handler, "__qualname__", repr(handler)),
                            exc_info=exc,
                        )


#: The bus as handlers see it (the name the reference API uses).
BusEventQueue: TypeAlias = MessageBus
