"""
:class:`CollectorQueue`: a publisher, a consumer pool and a router, run in one nursery.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Final, Self, TypeAlias, final

import attrs
import trio

from ._channels import open_lifo_channel, open_priority_channel
from ._collector import Collector
from ._data import Error, QueueType, _result_list
from ._errors import ShutdownError
from ._logging import FilteringBoundLogger, get_logger
from ._messagebus import (
    ConsumersScaled,
    InitializedQueue,
    MessageBus,
    ReportedMetrics,
    ShutDownQueue,
)
from ._metrics import Metrics, MetricsRecorder
from ._pool import ConsumerPool, EventReceiver
from ._publisher import CollectorEvent, EventPublisher, EventSender
from ._router import Router, SimpleRouter
from ._scaling import ScalingPolicy

__all__ = [
    "AVG_LOAD_INTERVAL",
    "CONSUMER_SHUTDOWN_TIMEOUT",
    "DEFAULT_MAX_CONSUMERS",
    "DEFAULT_MIN_CONSUMERS",
    "EVENT_SERVICE_DATA_WINDOW_SIZE",
    "METRICS_COLLECTOR_WINDOW_SIZE",
    "METRICS_WARMUP_INTERVAL",
    "MONITOR_INTERVAL",
    "REPORT_INTERVAL",
    "WIP_MARGIN",
    "CollectorQueue",
    "MonotonicTime",
]

#: A point on trio's clock (``trio.current_time()``), in seconds.
MonotonicTime: TypeAlias = float

#: Consumers the pool starts with and never goes below.
DEFAULT_MIN_CONSUMERS: Final = 1
#: Consumers the pool never goes above; the whole pool when ``autoscale=False``.
DEFAULT_MAX_CONSUMERS: Final = 100
#: Seconds a graceful shutdown keeps processing queued events before cancelling.
CONSUMER_SHUTDOWN_TIMEOUT: Final = 10.0
#: Fraction added to the measured demand when sizing the pool.
WIP_MARGIN: Final = 0.15
#: Seconds between two load measurements of the autoscaling supervisor.
MONITOR_INTERVAL: Final = 0.01
#: Seconds between two metrics log entries; 0 turns the reporter off.
REPORT_INTERVAL: Final = 0.0
#: Seconds of load history behind ``Metrics.avg_load``.
AVG_LOAD_INTERVAL: Final = 60.0
#: Seconds of arrivals and departures behind the rates.
METRICS_COLLECTOR_WINDOW_SIZE: Final = 60.0
#: Smallest allowed ``metrics_collector_window_size``.
MIN_METRICS_COLLECTOR_WINDOW_SIZE: Final = 5.0
#: Completed events behind ``Metrics.service_time`` and ``Metrics.wait_time``.
EVENT_SERVICE_DATA_WINDOW_SIZE: Final = 500
#: Seconds after start during which averages read 0.
METRICS_WARMUP_INTERVAL: Final = 3.0


def _to_collectors(collectors: Sequence[Collector]) -> tuple[Collector, ...]:
    checked: object = collectors  # callers may not be type-checked
    if isinstance(checked, Collector) or not isinstance(checked, Sequence):
        raise TypeError("collectors must be a list of Collector instances")
    for collector in checked:
        if isinstance(collector, type):
            raise TypeError(
                f"collectors must be Collector instances, not classes: got {collector.__name__}"
            )
        if not isinstance(collector, Collector):
            raise TypeError(f"collectors must be Collector instances, got {collector!r}")
    if not collectors:
        raise ValueError("collectors must not be empty")
    seen: set[str] = set()
    for collector in checked:
        if collector.key in seen:
            raise ValueError(f"collector keys must be unique: {collector.key!r} appears twice")
        seen.add(collector.key)
    return tuple(checked)


def _check_router(_: object, __: object, router: object) -> None:
    if not (isinstance(router, type) and issubclass(router, Router)):
        raise TypeError(f"router must be a Router subclass (the class itself), got {router!r}")
    if router.select is Router.select and router.handle_event is Router.handle_event:
        raise TypeError(f"router {router.__name__} must override select() or handle_event()")


def _is_number(value: object) -> bool:
    return type(value) is not bool and isinstance(value, int | float) and not math.isnan(value)


def _positive(name: str, *, allow_zero: bool = False, minimum: float = 0.0) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if not _is_number(value):
            raise TypeError(f"{name} must be a number, got {value!r}")
        assert isinstance(value, int | float)
        if minimum and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")

    return check


def _count(name: str) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not int:
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")

    return check


def _check_max_consumers(queue: CollectorQueue, _: object, value: int) -> None:
    _count("max_consumers")(queue, _, value)
    if value < queue.min_consumers:
        raise ValueError(
            f"max_consumers must be >= min_consumers, got {value} < {queue.min_consumers}"
        )


def _check_queue_size(_: object, __: object, value: object) -> None:
    if value == math.inf:
        return
    if type(value) is not int:
        raise TypeError(f"max_queue_size must be an int or math.inf, got {value!r}")
    if value < 1:
        raise ValueError(f"max_queue_size must be >= 1, got {value!r}")


def _check_margin(_: object, __: object, value: object) -> None:
    if not _is_number(value):
        raise TypeError(f"wip_margin must be a number, got {value!r}")
    assert isinstance(value, int | float)
    if not 0 <= value <= 1:
        raise ValueError(f"wip_margin must be between 0 and 1, got {value!r}")


_bool = attrs.validators.instance_of(bool)


def _unwrapped(
    group: BaseExceptionGroup[BaseException], body_error: BaseException | None
) -> BaseException:
    """
    Return what the queue raises for ``group``, an exception out of its nurseries.

    A group of nothing but ``trio.Cancelled`` is a cancellation: the body's exception
    (itself a Cancelled when the cancellation came from outside), or else one Cancelled.
    Anything else is a failure of the queue's own tasks, a bug, and is raised as it is.
    """
    cancelled, rest = group.split(trio.Cancelled)
    if rest is not None or cancelled is None:
        return group
    if body_error is not None:
        return body_error
    first: BaseException = cancelled
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


@final
@attrs.define(eq=False, repr=False)
class CollectorQueue:
    """
    A queue whose consumer tasks route each sent payload to collectors.

    Run it with ``async with queue:`` (it owns its nursery), or ``await nursery.start(
    queue.run)`` in a nursery of yours. Send with :meth:`get_publisher`. A queue runs once.

    Args:
        collectors: The collectors, as a non-empty list of :class:`Collector` instances
            with unique keys.
        router: A :class:`Router` subclass; the queue builds it as ``router(collectors)``.
        autoscale: Whether a supervisor sizes the pool from measured load (the rule is
            in the "Autoscaling" section of the docs); if False the pool is a fixed
            ``max_consumers``.
        min_consumers: Smallest pool size (>= 1).
        max_consumers: Largest pool size; the fixed size when ``autoscale`` is False.
        wip_margin: Fraction (0 to 1) added to measured demand when sizing the pool.
        monitor_interval: Seconds between two supervisor measurements.
        report_interval: Seconds between two metrics log entries; 0 for none.
        avg_load_interval: Seconds of history behind the average load.
        metrics_collector_window_size: Seconds behind arrival and departure rates (>= 5).
        event_service_data_window_size: Events behind service and wait times.
        metrics_warmup_interval: Seconds after start during which averages read 0.
        queue_type: FIFO, PRIORITY or LIFO.
        default_priority: Priority of payloads whose ``priority`` is None.
        max_queue_size: Queued events beyond which ``send`` waits (an int or ``math.inf``).
        consumer_shutdown_timeout: Seconds a graceful shutdown keeps processing queued
            events before it cancels what is left.
        logging: False silences the queue entirely.

    Raises:
        TypeError: A collector that is not a Collector instance (a class included), a
            router that is not a Router subclass, or an option of the wrong type.
        ValueError: No collectors, duplicate keys, ``min_consumers > max_consumers``, or a
            non-positive interval or size.
    """

    collectors: tuple[Collector, ...] = attrs.field(converter=_to_collectors)
    router: type[Router] = attrs.field(default=SimpleRouter, kw_only=True, validator=_check_router)
    autoscale: bool = attrs.field(default=True, kw_only=True, validator=_bool)
    min_consumers: int = attrs.field(
        default=DEFAULT_MIN_CONSUMERS, kw_only=True, validator=_count("min_consumers")
    )
    max_consumers: int = attrs.field(
        default=DEFAULT_MAX_CONSUMERS, kw_only=True, validator=_check_max_consumers
    )
    wip_margin: float = attrs.field(default=WIP_MARGIN, kw_only=True, validator=_check_margin)
    monitor_interval: float = attrs.field(
        default=MONITOR_INTERVAL, kw_only=True, validator=_positive("monitor_interval")
    )
    report_interval: float = attrs.field(
        default=REPORT_INTERVAL,
        kw_only=True,
        validator=_positive("report_interval", allow_zero=True),
    )
    avg_load_interval: float = attrs.field(
        default=AVG_LOAD_INTERVAL, kw_only=True, validator=_positive("avg_load_interval")
    )
    metrics_collector_window_size: float = attrs.field(
        default=METRICS_COLLECTOR_WINDOW_SIZE,
        kw_only=True,
        validator=_positive(
            "metrics_collector_window_size", minimum=MIN_METRICS_COLLECTOR_WINDOW_SIZE
        ),
    )
    event_service_data_window_size: int = attrs.field(
        default=EVENT_SERVICE_DATA_WINDOW_SIZE,
        kw_only=True,
        validator=_count("event_service_data_window_size"),
    )
    metrics_warmup_interval: float = attrs.field(
        default=METRICS_WARMUP_INTERVAL,
        kw_only=True,
        validator=_positive("metrics_warmup_interval", allow_zero=True),
    )
    queue_type: QueueType = attrs.field(
        default=QueueType.FIFO, kw_only=True, validator=attrs.validators.instance_of(QueueType)
    )
    default_priority: int = attrs.field(default=100, kw_only=True)
    max_queue_size: int | float = attrs.field(
        default=math.inf, kw_only=True, validator=_check_queue_size
    )
    consumer_shutdown_timeout: float = attrs.field(
        default=CONSUMER_SHUTDOWN_TIMEOUT,
        kw_only=True,
        validator=_positive("consumer_shutdown_timeout"),
    )
    logging: bool = attrs.field(default=True, kw_only=True, validator=_bool)

    #: Unique id of this queue, bound to its log entries.
    id: str = attrs.field(init=False, factory=lambda: uuid.uuid4().hex)
    _log: FilteringBoundLogger = attrs.field(init=False)
    _started: bool = attrs.field(default=False, init=False)
    _publisher: EventPublisher | None = attrs.field(default=None, init=False)
    _pool: ConsumerPool | None = attrs.field(default=None, init=False)
    _send_channel: EventSender | None = attrs.field(default=None, init=False)
    _receive_channel: EventReceiver | None = attrs.field(default=None, init=False)
    _consumer_scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _stopped: trio.Event = attrs.field(factory=trio.Event, init=False)
    # shut_down_queue() was called before the queue was ready to shut down.
    _shutdown_requested: bool = attrs.field(default=False, init=False)
    _lifespan_cm: AbstractAsyncContextManager[None] | None = attrs.field(default=None, init=False)
    _bus: MessageBus = attrs.field(factory=MessageBus, init=False)
    _recorder: MetricsRecorder | None = attrs.field(default=None, init=False)
    _backlog: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        if type(self.default_priority) is not int:
            raise TypeError(f"default_priority must be an int, got {self.default_priority!r}")
        self._log = get_logger(self.logging, queue_id=self.id)

    def __repr__(self) -> str:
        return (
            f"<CollectorQueue {self.id} collectors={[c.key for c in self.collectors]} "
            f"consumers={self.consumer_count()}>"
        )

    # -- running -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """
        Start the queue: enter lifecycles in order, then start the consumers.

        Raises:
            RuntimeError: The queue has already run.
            Exception: A lifecycle's setup failed; those entered before it have exited.

        On cancellation the lifecycles entered so far exit and ``trio.Cancelled``
        propagates; no consumer is left running.
        """
        self._lifespan_cm = self._lifespan()
        await self._lifespan_cm.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """
        Stop the queue: gracefully on a normal exit, at once on an exception.

        A normal exit stops sending, keeps processing until the queue is empty or
        ``consumer_shutdown_timeout`` has passed, then cancels what is left. On an
        exception or cancellation nothing more is processed. Either way every event gets
        a result, then lifecycles exit in reverse order, and the body's exception
        propagates as itself.
        """
        assert self._lifespan_cm is not None
        return await self._lifespan_cm.__aexit__(exc_type, exc, tb)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """
        Run the queue until :meth:`shut_down_queue`, for ``await nursery.start(queue.run)``.

        Reports started once lifecycles are entered and consumers are receiving.

        On cancellation the queue stops at once, as when the body of ``async with`` raises.
        """
        async with self._lifespan():
            task_status.started()
            await self._stopped.wait()

    async def shut_down_queue(self) -> None:
        """
        Stop the queue gracefully, from any task, and wait until consumers are done.

        Sending stops at once; queued events are processed until the queue is empty or
        ``consumer_shutdown_timeout`` has passed; what is left then gets
        ``Error(ShutdownError())``. Lifecycles exit when ``async with`` (or :meth:`run`)
        ends. Calling it again, or on a stopped queue, just waits. Called while the queue is
        starting, it takes effect once the queue has started, or returns if starting fails.

        Raises:
            RuntimeError: The queue has not been started.

        On cancellation the shutdown goes on; only the waiting stops.
        """
        if not self._started:
            raise RuntimeError("collector queue has not been started")
        self._begin_shutdown()
        await self._stopped.wait()

    def get_publisher(self) -> EventPublisher:
        """
        Return the publisher that sends payloads to this queue.

        Raises:
            RuntimeError: The queue has not been started.
        """
        if self._publisher is None:
            raise RuntimeError("collector queue has not been started: use 'async with queue'")
        return self._publisher

    def consumer_count(self) -> int:
        """
        Return the number of consumer tasks.
        """
        return 0 if self._pool is None else self._pool.size

    def current_load(self) -> float:
        """
        Return (queued events + busy consumers) / consumers; 0 with no consumers.
        """
        if self._pool is None or not self._pool.size:
            return 0.0
        return (self._qsize() + self._pool.busy()) / self._pool.size

    def get_metrics(self) -> Metrics:
        """
        Return a snapshot of the queue's metrics (see :class:`Metrics`).

        Raises:
            RuntimeError: The queue has not been started.
        """
        if self._recorder is None or self._pool is None:
            raise RuntimeError("collector queue has not been started")
        pool = self._pool
        return self._recorder.snapshot(trio.current_time(), self._qsize(), pool.busy(), pool.size)

    def get_message_bus(self) -> MessageBus:
        """
        Return the queue's message bus, to add handlers for its events (also before start).
        """
        return self._bus

    def _qsize(self) -> int:
        channel = self._receive_channel
        if channel is None or self._stopped.is_set():
            return 0
        return channel.statistics().current_buffer_used

    # -- internals -----------------------------------------------------------------------

    def _open_channel(self) -> tuple[EventSender, EventReceiver]:
        if self.queue_type is QueueType.PRIORITY:
            default = self.default_priority

            def priority(event: CollectorEvent) -> int:
                value = event.payload.priority
                return default if value is None else value

            return open_priority_channel[CollectorEvent](self.max_queue_size, key=priority)
        if self.queue_type is QueueType.LIFO:
            return open_lifo_channel[CollectorEvent](self.max_queue_size)
        return trio.open_memory_channel[CollectorEvent](self.max_queue_size)

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        if self._started:
            raise RuntimeError("a CollectorQueue runs only once")
        self._started = True
        self._log.info("queue_starting", collectors=[c.key for c in self.collectors])
        try:
            entered = await self._enter_lifecycles()
        except BaseException:
            self._finish()  # releases shut_down_queue() waiters
            raise
        body_error: BaseException | None = None
        try:
            now = trio.lowlevel.current_clock().current_time
            recorder = self._recorder = MetricsRecorder(
                start=now(),
                service_window=self.event_service_data_window_size,
                rate_window=self.metrics_collector_window_size,
                load_window=self.avg_load_interval,
                warmup=self.metrics_warmup_interval,
            )
            send_channel, receive_channel = self._open_channel()
            self._send_channel, self._receive_channel = send_channel, receive_channel
            router = self.router(self.collectors)
            async with trio.open_nursery() as services:
                services.start_soon(self._bus._dispatch, self._log)
                async with trio.open_nursery() as consumers:
                    self._consumer_scope = consumers.cancel_scope
                    pool = self._pool = ConsumerPool(
                        consumers,
                        receive_channel,
                        router,
                        self._log,
                        now,
                        on_served=recorder.served,
                        on_empty=self._finish,
                    )
                    pool.grow(self.min_consumers if self.autoscale else self.max_consumers)
                    self._publisher = EventPublisher(
                        send_channel,
                        now,
                        recorder,
                        pool,
                        on_backlog=self._on_backlog if self.autoscale else None,
                    )
                    # Also the schedule point at which the consumers spawned above start to
                    # receive: once started, the queue hands a send straight to one of them.
                    monitors: trio.CancelScope = await services.start(self._run_monitors, pool)
                    self._log.info("queue_started", consumers=pool.size)
                    self._bus._post(InitializedQueue(self))
                    if self._shutdown_requested:  # by shut_down_queue() while starting
                        self._begin_shutdown()
                    try:
                        yield
                    except BaseException as exc:
                        body_error = exc
                        self._abort()
                    else:
                        self._begin_shutdown()
                    pool.seal()
                self._finish()
                monitors.cancel()
                self._bus._post(ShutDownQueue(self))
                self._bus._close()
                services.cancel_scope.deadline = now() + self.consumer_shutdown_timeout
        except BaseExceptionGroup as group:
            # The nurseries are strict, so a cancellation from outside comes out of them as
            # a group of Cancelled: raise the body's exception, or one Cancelled, instead.
            raise _unwrapped(group, body_error) from None
        finally:
            self._finish()  # a no-op unless starting failed or was cancelled
            self._bus._close()
            await self._exit_lifecycles(entered, failing=body_error is not None)
            self._log.info("queue_stopped")
        if body_error is not None:
            raise body_error

    async def _run_monitors(
        self, pool: ConsumerPool, *, task_status: trio.TaskStatus[trio.CancelScope]
    ) -> None:
        """
        Run the load monitor (and supervisor) and the reporter until cancelled.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._monitor, pool)
            if self.report_interval > 0:
                nursery.start_soon(self._report)
            task_status.started(nursery.cancel_scope)

    async def _monitor(self, pool: ConsumerPool) -> None:
        """
        Sample the load every ``monitor_interval`` and, with autoscale, size the pool.

        Between samples it wakes only when a send left an event no consumer is free to
        take, to grow the pool for the burst at once. After a stall (a long garbage
        collection, a host that did not run the process) it samples once, late, instead of
        once per missed interval.
        """
        assert self._recorder is not None
        recorder, interval = self._recorder, self.monitor_interval
        policy = ScalingPolicy(self.min_consumers, self.max_consumers, self.wip_margin, interval)
        start = trio.current_time()
        tick = 0
        while True:
            tick += 1
            next_sample = start + tick * interval
            while trio.current_time() < next_sample:
                with trio.move_on_at(next_sample):
                    await self._backlog.wait()
                if self._backlog.is_set():
                    self._backlog = trio.Event()
                    size = policy.burst(trio.current_time(), self._qsize(), pool.busy(), pool.size)
                    self._resize(pool, size, policy)
            now = trio.current_time()
            qsize, busy, size = self._qsize(), pool.busy(), pool.size
            recorder.sample(now, (qsize + busy) / size if size else 0.0)
            if self.autoscale:
                size = policy.observe(
                    now, qsize, busy, recorder.arrivals, recorder.mean_service_time()
                )
                self._resize(pool, size, policy)
            tick = max(tick, math.floor((now - start) / interval))

    def _on_backlog(self) -> None:
        """
        Wake the supervisor: a send left an event that no consumer is free to take.
        """
        pool = self._pool
        if pool is not None and pool.size < self.max_consumers and not self._backlog.is_set():
            self._backlog.set()

    def _resize(self, pool: ConsumerPool, target: int, policy: ScalingPolicy) -> None:
        """
        Grow the pool to ``target`` at once, or retire idle consumers down to it.
        """
        size = pool.size
        if target == size or (pool.closing and target < size) or self._stopped.is_set():
            return
        if target > size:
            qsize = self._qsize()
            reason = "burst" if qsize and qsize + pool.busy() > policy.steady else "steady"
            self._log.debug("consumers_scaled", old=size, new=target, reason=reason)
            self._bus._post(ConsumersScaled(size, target, reason))
            pool.grow(target - size)
        elif retired := pool.retire(size - target):
            self._log.debug("consumers_scaled", old=size, new=size - retired, reason="idle")
            self._bus._post(ConsumersScaled(size, size - retired, "idle"))

    async def _report(self) -> None:
        """
        Log and publish the metrics every ``report_interval``.
        """
        start = trio.current_time()
        tick = 0
        while True:
            tick += 1
            await trio.sleep_until(start + tick * self.report_interval)
            metrics = self.get_metrics()
            self._log.info("collector queue metrics", **metrics.as_log_fields())
            self._bus._post(ReportedMetrics(metrics))

    def _begin_shutdown(self) -> None:
        """
        Close sending and give consumers ``consumer_shutdown_timeout`` to empty the queue.
        """
        if self._send_channel is None or self._consumer_scope is None or self._pool is None:
            self._shutdown_requested = True  # starting: shut down once started
            return
        if self._pool.closing:
            return
        self._log.info("queue_shutting_down", timeout=self.consumer_shutdown_timeout)
        self._send_channel.close()
        self._consumer_scope.deadline = trio.current_time() + self.consumer_shutdown_timeout
        self._pool.close()

    def _abort(self) -> None:
        """
        Close sending and cancel consumers now.
        """
        assert self._send_channel is not None
        assert self._consumer_scope is not None
        self._log.info("queue_aborting")
        self._send_channel.close()
        self._consumer_scope.cancel()
        if self._pool is not None:
            self._pool.close()

    def _finish(self) -> None:
        """
        Resolve the events still queued once no consumer is left, and mark the queue stopped.
        """
        if self._stopped.is_set():
            return
        if self._send_channel is not None:
            self._send_channel.close()
        channel = self._receive_channel
        left = 0
        while channel is not None:
            try:
                event = channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                channel.close()
                break
            event._resolve(_result_list((Error(ShutdownError()),), (None,)))
            left += 1
        if left:
            self._log.warning("events_cancelled_by_shutdown", count=left)
        self._stopped.set()

    async def _enter_lifecycles(
        self,
    ) -> list[tuple[Collector, AbstractAsyncContextManager[object]]]:
        entered: list[tuple[Collector, AbstractAsyncContextManager[object]]] = []
        try:
            for collector in self.collectors:
                if collector.lifecycle is None:
                    continue
                manager = collector.lifecycle(collector.ctx)
                if not isinstance(manager, AbstractAsyncContextManager):
                    raise TypeError(
                        f"lifecycle of collector {collector.key!r} must return an async "
                        f"context manager, got {type(manager).__name__}"
                    )
                await manager.__aenter__()
                entered.append((collector, manager))
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._log.error("lifecycle_setup_failed", exc_info=exc)
            await self._exit_lifecycles(entered, failing=True)
            raise
        return entered

    async def _exit_lifecycles(
        self,
        entered: list[tuple[Collector, AbstractAsyncContextManager[object]]],
        *,
        failing: bool,
    ) -> None:
        """
        Exit lifecycles in reverse order; a failing teardown does not stop the others.

        Teardowns are shielded from cancellation and together bounded by
        ``consumer_shutdown_timeout``. If nothing else is failing, teardown errors are
        raised: one as itself, several in an ExceptionGroup.
        """
        errors: list[Exception] = []
        deadline = trio.current_time() + self.consumer_shutdown_timeout
        with trio.CancelScope(shield=True):
            for collector, manager in reversed(entered):
                with trio.CancelScope(deadline=deadline) as scope:
                    try:
                        await manager.__aexit__(None, None, None)
                    except Exception as exc:
                        self._log.error(
                            "lifecycle_teardown_failed", collector=collector.key, exc_info=exc
                        )
                        errors.append(exc)
                if scope.cancelled_caught:
                    self._log.error("lifecycle_teardown_timed_out", collector=collector.key)
                    errors.append(trio.TooSlowError(f"teardown of {collector.key!r} timed out"))
        if errors and not failing:
            if len(errors) == 1:
                raise errors[0]
            raise ExceptionGroup("lifecycle teardowns failed", errors)
