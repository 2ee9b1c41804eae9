"""
:class:`CollectorQueue`: a channel, a consumer pool, a router and a supervisor in one nursery.

Its lifespan always ends the same way.

The shape of a running queue::

    queue nursery ── _serve: consumers' cancel scope ── consumers' nursery ── consumer tasks
                 ├── the supervisor (and the metrics reporter)
                 └── the message bus dispatcher
    the async with body (or run's wait) runs in the queue nursery, outside every scope the
    queue cancels or puts a deadline on.

Graceful shutdown puts ``consumer_shutdown_timeout`` on the consumers' own scope, so only
consumers (and, later, lifecycle teardowns) are bounded by it; the body and its sibling
tasks never see a cancellation from the queue.
"""

from __future__ import annotations

import logging as _logging
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, final

import attrs
import trio

from ._channels import QueueChannel, fifo_state, lifo_state, priority_state
from ._collector import Collector
from ._data import Error, QueueType, ResultList, _is_priority, _result_list
from ._delivery import in_flight
from ._errors import ShutdownError
from ._event import CollectorEvent, make_pacer
from ._lifecycles import enter_lifecycles, exit_lifecycles
from ._logging import FilteringBoundLogger, get_logger
from ._messagebus import InitializedQueue, MessageBus, ReportedMetrics, ShutDownQueue
from ._metrics import Metrics, MetricsRecorder, QueueStatistics, TimeHistograms
from ._options import (
    AVG_LOAD_INTERVAL,
    CONSUMER_SHUTDOWN_TIMEOUT,
    DEFAULT_MAX_CONSUMERS,
    DEFAULT_MIN_CONSUMERS,
    EVENT_SERVICE_DATA_WINDOW_SIZE,
    METRICS_COLLECTOR_WINDOW_SIZE,
    METRICS_WARMUP_INTERVAL,
    MIN_METRICS_COLLECTOR_WINDOW_SIZE,
    MONITOR_INTERVAL,
    REPORT_INTERVAL,
    WIP_MARGIN,
    check_bool,
    check_count,
    check_level,
    check_margin,
    check_name,
    check_positive,
    check_queue_size,
    check_router,
    to_buckets,
    to_collectors,
)
from ._pool import ConsumerPool
from ._publisher import EventPublisher
from ._router import Router, SimpleRouter
from ._scaling import ScalingPolicy, Supervisor

__all__ = ["CollectorQueue"]

T = TypeVar("T")

#: The queue whose lifecycles the current task (or a task a setup started) is entering.
_entering: ContextVar[CollectorQueue[Any] | None] = ContextVar(
    "event_collector_entering", default=None
)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


def _unwrapped(
    group: BaseExceptionGroup[BaseException], body_error: BaseException | None
) -> BaseException:
    """
    Return what the queue raises for ``group``, an exception out of its nursery.

    - Only ``trio.Cancelled``: a cancellation. The body's exception (itself a Cancelled when
      the cancellation came from outside), or else one Cancelled.
    - A ``KeyboardInterrupt``, ``SystemExit`` or other non-``Exception`` raised in a
      processor: that exception as itself, as trio raises a Ctrl-C, so a plain
      ``except KeyboardInterrupt`` catches it and ``sys.exit(3)`` exits with status 3.
    - Anything else is a failure of the queue's own tasks, a bug: raised as the group of
      those failures.
    """
    cancelled, rest = group.split(trio.Cancelled)
    if rest is None:
        if body_error is not None:
            return body_error
        assert cancelled is not None
        return _leaves(cancelled)[0]
    for leaf in _leaves(rest):
        if not isinstance(leaf, Exception):
            return leaf
    return rest


@final
@attrs.define(eq=False)
class _Running(Generic[T]):
    """
    The parts of a queue that exist while it runs.
    """

    channel: QueueChannel[CollectorEvent[T]]
    pool: ConsumerPool[T]
    supervisor: Supervisor
    publisher: EventPublisher[T]
    recorder: MetricsRecorder
    #: The consumers' own scope: a graceful shutdown sets its deadline, an abort cancels it.
    consumers: trio.CancelScope
    #: The supervisor's and reporter's scope, cancelled once the consumers are gone.
    monitors: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    #: The bus dispatcher's scope: it gets ``consumer_shutdown_timeout`` to finish.
    dispatcher: trio.CancelScope = attrs.field(factory=trio.CancelScope)


@final
class CollectorQueue(Generic[T]):
    """
    A queue whose consumer tasks route each sent payload to collectors.

    Run it with ``async with queue:`` (it owns its nursery), or ``await nursery.start(
    queue.run)`` in a nursery of yours. Send with :meth:`get_publisher`. A queue runs once.

    Generic in the value its collectors' processors return in ``Ok``: a queue of
    ``Collector[int]`` sends events whose ``wait()`` gives ``ResultList[int]``.

    Args:
        collectors: The collectors, as a non-empty list of :class:`Collector` instances
            with unique keys.
        router: A :class:`Router` subclass; the queue builds it as ``router(collectors)``.
        autoscale: Whether a supervisor sizes the pool from measured load (the rule is
            in the "Autoscaling" section of the docs); if False the pool is a fixed
            ``max_consumers``.
        min_consumers: Smallest pool size (>= 1).
        max_consumers: Largest pool size; the fixed size when ``autoscale`` is False.
        wip_margin: Fraction (0 to 1) of the measured demand kept spare when that is more
            than its square root (the margin is the larger of the two).
        monitor_interval: Seconds between two supervisor measurements while the queue is
            busy (an idle queue is not polled).
        report_interval: Seconds between two metrics log entries; 0 for none.
        avg_load_interval: Seconds of history behind the average load.
        metrics_collector_window_size: Seconds behind arrival and departure rates (>= 5).
        event_service_data_window_size: Events behind service and wait times.
        metrics_warmup_interval: Seconds after start during which averages read 0.
        queue_type: FIFO, PRIORITY or LIFO.
        default_priority: Priority of payloads whose ``priority`` is None.
        max_queue_size: Queued events beyond which ``send`` waits (an int or ``math.inf``).
        consumer_shutdown_timeout: Seconds a graceful shutdown keeps processing queued
            events before it cancels what is left; also bounds the lifecycle teardowns.
        logging: False silences the queue entirely.
        failure_log_level: The level (``logging.WARNING`` by default) of the one log entry
            per failed event (a processor that raised, returned no ``Ok``/``Error`` or timed
            out, a router that raised); None logs none. The ``Error`` result always holds
            the exception.
        name: The queue's name, in its ``queue_starting`` log entry and as the ``queue``
            label of its Prometheus series; unlike the queue's ``id`` (in every log entry),
            it may stay the same across runs and processes.
        time_buckets: Upper bounds (seconds, increasing) of the buckets of the service and
            wait time histograms (:meth:`histograms`), such as
            :data:`~event_collector.queue.TIME_BUCKETS`; None (the default) keeps no
            histograms, which saves 2 % of the work per event.

    Raises:
        TypeError: A collector that is not a Collector instance (a class included), a
            router that is not a Router subclass, or an option of the wrong type.
        ValueError: No collectors, duplicate keys, ``min_consumers > max_consumers``, or a
            non-positive interval or size.
    """

    def __init__(
        self,
        collectors: Sequence[Collector[T]],
        *,
        router: type[Router[Any]] = SimpleRouter,
        autoscale: bool = True,
        min_consumers: int = DEFAULT_MIN_CONSUMERS,
        max_consumers: int = DEFAULT_MAX_CONSUMERS,
        wip_margin: float = WIP_MARGIN,
        monitor_interval: float = MONITOR_INTERVAL,
        report_interval: float = REPORT_INTERVAL,
        avg_load_interval: float = AVG_LOAD_INTERVAL,
        metrics_collector_window_size: float = METRICS_COLLECTOR_WINDOW_SIZE,
        event_service_data_window_size: int = EVENT_SERVICE_DATA_WINDOW_SIZE,
        metrics_warmup_interval: float = METRICS_WARMUP_INTERVAL,
        queue_type: QueueType = QueueType.FIFO,
        default_priority: int = 100,
        max_queue_size: int | float = math.inf,
        consumer_shutdown_timeout: float = CONSUMER_SHUTDOWN_TIMEOUT,
        logging: bool = True,
        failure_log_level: int | None = _logging.WARNING,
        name: str = "default",
        time_buckets: Sequence[float] | None = None,
    ) -> None:
        #: The collectors, in registration order.
        self.collectors: tuple[Collector[T], ...] = to_collectors(collectors)
        check_router(router)
        self.router = router
        check_bool("autoscale", autoscale)
        self.autoscale = autoscale
        check_count("min_consumers", min_consumers)
        check_count("max_consumers", max_consumers)
        if max_consumers < min_consumers:
            raise ValueError(
                f"max_consumers must be >= min_consumers, got {max_consumers} < {min_consumers}"
            )
        self.min_consumers = min_consumers
        self.max_consumers = max_consumers
        check_margin(wip_margin)
        self.wip_margin = wip_margin
        check_positive("monitor_interval", monitor_interval)
        self.monitor_interval = monitor_interval
        check_positive("report_interval", report_interval, allow_zero=True)
        self.report_interval = report_interval
        check_positive("avg_load_interval", avg_load_interval)
        self.avg_load_interval = avg_load_interval
        check_positive(
            "metrics_collector_window_size",
            metrics_collector_window_size,
            minimum=MIN_METRICS_COLLECTOR_WINDOW_SIZE,
        )
        self.metrics_collector_window_size = metrics_collector_window_size
        check_count("event_service_data_window_size", event_service_data_window_size)
        self.event_service_data_window_size = event_service_data_window_size
        check_positive("metrics_warmup_interval", metrics_warmup_interval, allow_zero=True)
        self.metrics_warmup_interval = metrics_warmup_interval
        if not isinstance(queue_type, QueueType):
            raise TypeError(f"queue_type must be a QueueType, got {queue_type!r}")
        self.queue_type = queue_type
        if not _is_priority(default_priority):  # an int, IntEnum members too, not a bool
            raise TypeError(f"default_priority must be an int, got {default_priority!r}")
        self.default_priority = default_priority
        check_queue_size(max_queue_size)
        self.max_queue_size = max_queue_size
        check_positive("consumer_shutdown_timeout", consumer_shutdown_timeout)
        self.consumer_shutdown_timeout = consumer_shutdown_timeout
        check_bool("logging", logging)
        self.logging = logging
        check_level(failure_log_level)
        self.failure_log_level = failure_log_level
        check_name(name)
        #: The queue's name (the ``name`` option).
        self.name = name
        #: Upper bounds of the histograms' buckets; None for no histograms.
        self.time_buckets = None if time_buckets is None else to_buckets(time_buckets)
        #: Unique id of this queue, bound to its log entries.
        self.id = uuid.uuid4().hex

        self._log: FilteringBoundLogger = get_logger(False)  # bound when the queue starts
        self._bus = MessageBus()
        self._started = False
        self._running: _Running[T] | None = None
        self._lifespan_cm: AbstractAsyncContextManager[None] | None = None
        # shut_down_queue() was called before the queue was ready to shut down.
        self._shutdown_requested = False
        # Set by a graceful shutdown or an abort: the consumers' nursery may close.
        self._closing = trio.Event()
        # Set once every event has its result.
        self._stopped = trio.Event()

    def __repr__(self) -> str:
        return (
            f"<CollectorQueue {self.name!r} {self.id} "
            f"collectors={[c.key for c in self.collectors]} consumers={self.consumer_count()}>"
        )

    # -- running -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """
        Start the queue: enter lifecycles in order, then start the consumers.

        Raises:
            RuntimeError: The queue is running or has already run (the running queue is
                not affected).
            Exception: A lifecycle's setup failed; those entered before it have exited.

        On cancellation the lifecycles entered so far exit and ``trio.Cancelled``
        propagates; no consumer is left running.
        """
        self._claim()
        lifespan = self._lifespan()
        await lifespan.__aenter__()
        self._lifespan_cm = lifespan
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
        lifespan, self._lifespan_cm = self._lifespan_cm, None
        assert lifespan is not None
        return await lifespan.__aexit__(exc_type, exc, tb)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """
        Run the queue until :meth:`shut_down_queue`, for ``await nursery.start(queue.run)``.

        Reports started once lifecycles are entered and consumers are receiving.

        Raises:
            RuntimeError: The queue is running or has already run.

        On cancellation the queue stops at once, as when the body of ``async with`` raises.
        """
        self._claim()
        async with self._lifespan():
            task_status.started()
            await self._stopped.wait()

    async def init_queue(self, nursery: trio.Nursery | None = None) -> None:
        """
        Start the queue in ``nursery``: ``await nursery.start(queue.run)``.

        For code ported from the asyncio library, whose ``await queue.init_queue()`` takes
        no nursery: Trio runs background tasks in a nursery of yours.

        Raises:
            TypeError: No nursery was given.
            RuntimeError: The queue is running or has already run.

        On cancellation while the queue starts, the lifecycles entered so far exit and no
        task is left running in ``nursery``.
        """
        if nursery is None:
            raise TypeError(
                "a Trio queue runs in a nursery: use 'async with queue:', or "
                "'await queue.init_queue(nursery)' (that is, 'await nursery.start(queue.run)')"
            )
        await nursery.start(self.run)

    async def shut_down_queue(self) -> None:
        """
        Stop the queue gracefully, from any task, and wait until consumers are done.

        Sending stops at once; queued events are processed until the queue is empty or
        ``consumer_shutdown_timeout`` has passed; what is left then gets
        ``Error(ShutdownError())``. Lifecycles exit when ``async with`` (or :meth:`run`)
        ends; the body of ``async with`` goes on. Calling it again, or on a stopped queue,
        just waits. Called while the queue is starting, it takes effect once the queue has
        started, or returns if starting fails. Called from one of the queue's own processors
        (or a task it started), it starts the shutdown and returns without waiting, so that
        the processor can finish and its event gets the processor's result; called from a
        lifecycle's setup, it returns at once too, and the queue stops once started.

        Raises:
            RuntimeError: The queue has not been started.

        Always a checkpoint. On cancellation the shutdown goes on; only the waiting stops.
        """
        if not self._started:
            raise RuntimeError("collector queue has not been started")
        self._begin_shutdown()
        running = self._running
        if running is None:
            inside = _entering.get() is self  # a setup would wait for itself
        else:
            inside = running.pool.serves(in_flight.get(None))  # a processor would, too
        if inside:
            await trio.lowlevel.checkpoint()
            return
        await self._stopped.wait()

    def get_publisher(self) -> EventPublisher[T]:
        """
        Return the publisher that sends payloads to this queue.

        Raises:
            RuntimeError: The queue has not been started.
        """
        if self._running is None:
            raise RuntimeError("collector queue has not been started: use 'async with queue'")
        return self._running.publisher

    def statistics(self) -> QueueStatistics:
        """
        Return a snapshot of the pool and the channel (see :class:`QueueStatistics`).

        Zeros (and not closed) until the queue runs; after it stops, the counts it ended
        with. A queue whose start failed reads closed.
        """
        running = self._running
        if running is None:
            return QueueStatistics(
                consumers=0,
                idle=0,
                busy=0,
                queued=0,
                in_flight=0,
                max_queue_size=self.max_queue_size,
                sent=0,
                completed=0,
                closed=self._stopped.is_set(),
            )
        pool, channel = running.pool, running.channel
        busy, queued = pool.busy, channel.queued
        return QueueStatistics(
            consumers=pool.size,
            idle=pool.idle,
            busy=busy,
            queued=queued,
            in_flight=queued + busy,
            max_queue_size=self.max_queue_size,
            sent=channel.sent,
            completed=running.recorder.departures,
            closed=channel.closed,
        )

    def consumer_count(self) -> int:
        """
        Return the number of consumer tasks.
        """
        return 0 if self._running is None else self._running.pool.size

    def current_load(self) -> float:
        """
        Return (queued events + busy consumers) / consumers; 0 with no consumers.
        """
        stats = self.statistics()
        return stats.in_flight / stats.consumers if stats.consumers else 0.0

    def get_metrics(self) -> Metrics:
        """
        Return a snapshot of the queue's metrics (see :class:`Metrics`).

        Raises:
            RuntimeError: The queue has not been started.
        """
        running = self._running
        if running is None:
            raise RuntimeError("collector queue has not been started")
        stats = self.statistics()
        return running.recorder.snapshot(
            trio.current_time(), stats.sent, stats.queued, stats.busy, stats.consumers
        )

    def histograms(self) -> TimeHistograms | None:
        """
        Return the service and wait times of every event completed since the queue started.

        Counted in buckets up to ``time_buckets`` (see :class:`TimeHistograms`); no
        observation until the queue runs. None if the queue has no ``time_buckets``.
        """
        if self.time_buckets is None:
            return None
        running = self._running
        if running is None:
            return TimeHistograms.empty(self.time_buckets)
        return running.recorder.histograms()

    def get_message_bus(self) -> MessageBus:
        """
        Return the queue's message bus, to add handlers for its events (also before start).
        """
        return self._bus

    # -- the lifespan --------------------------------------------------------------------

    def _claim(self) -> None:
        """
        Mark the queue started, or refuse: a queue runs once. Changes nothing on refusal.
        """
        if self._started:
            raise RuntimeError(
                "this CollectorQueue is running or has run: a queue runs once, "
                "make a new one to run again"
            )
        self._started = True

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        log = self._log = get_logger(self.logging, queue_id=self.id)
        log.info("queue_starting", name=self.name, collectors=[c.key for c in self.collectors])
        timeout = self.consumer_shutdown_timeout
        entering = _entering.set(self)
        try:
            entered = await enter_lifecycles(self.collectors, log, timeout)
        except BaseException:
            self._finish()  # releases shut_down_queue() waiters
            raise
        finally:
            _entering.reset(entering)
        body_error: BaseException | None = None
        clean = False
        try:
            async with trio.open_nursery() as nursery:
                running: _Running[T] = await nursery.start(self._serve)
                nursery.start_soon(self._dispatch, running)
                nursery.start_soon(self._monitor, running)
                log.info("queue_started", consumers=running.pool.size)
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
            clean = body_error is None
        except BaseExceptionGroup as group:
            error = _unwrapped(group, body_error)
            if error is not body_error:
                raise error from None
            # The body's exception is raised below, untouched ("from None" would erase the
            # cause it was raised with).
        finally:
            self._finish()  # a no-op unless a task of the queue failed
            try:
                await exit_lifecycles(entered, log, timeout, failing=not clean)
            finally:
                log.info("queue_stopped")  # a failed teardown raises: stopped all the same
        if body_error is not None:
            raise body_error

    async def _serve(self, *, task_status: trio.TaskStatus[_Running[T]]) -> None:
        """
        Run the consumers under their own cancel scope until they are all done.

        Reports the running parts once every initial consumer is waiting for events.
        """
        now = trio.lowlevel.current_clock().current_time
        recorder = MetricsRecorder(
            start=now(),
            service_window=self.event_service_data_window_size,
            rate_window=self.metrics_collector_window_size,
            load_window=self.avg_load_interval,
            warmup=self.metrics_warmup_interval,
            bounds=self.time_buckets or (),
        )
        channel: QueueChannel[CollectorEvent[T]] = self._channel()
        with trio.CancelScope() as consumers_scope:
            async with trio.open_nursery() as consumers:
                pool = ConsumerPool(
                    consumers,
                    channel,
                    self.router(self.collectors),
                    self._log,
                    self.failure_log_level,
                    now,
                    recorder.on_served,
                )
                policy = (
                    ScalingPolicy(
                        self.min_consumers,
                        self.max_consumers,
                        self.wip_margin,
                        self.monitor_interval,
                    )
                    if self.autoscale
                    else None
                )
                pool.grow(self.min_consumers if self.autoscale else self.max_consumers)
                supervisor = Supervisor(
                    pool,
                    channel,
                    recorder,
                    policy,
                    interval=self.monitor_interval,
                    bus=self._bus,
                    log=self._log,
                    now=now,
                )
                publisher = EventPublisher[T]._new(channel, now, make_pacer(), supervisor)
                running = _Running(channel, pool, supervisor, publisher, recorder, consumers_scope)
                self._running = running
                await pool.wait_started()
                task_status.started(running)
                await self._closing.wait()
        self._finish()

    async def _monitor(self, running: _Running[T]) -> None:
        """
        Run the supervisor, and the metrics reporter if asked for, until the consumers end.
        """
        with running.monitors:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(running.supervisor.run)
                if self.report_interval > 0:
                    nursery.start_soon(self._report)

    async def _dispatch(self, running: _Running[T]) -> None:
        """
        Deliver bus events until the bus closes and has delivered what it holds.
        """
        with running.dispatcher:
            await self._bus._dispatch(self._log)

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

    def _channel(self) -> QueueChannel[CollectorEvent[T]]:
        if self.queue_type is QueueType.PRIORITY:
            default = self.default_priority

            def priority(event: CollectorEvent[T]) -> int:
                value = event.payload.priority
                return default if value is None else value

            return priority_state(self.max_queue_size, priority, QueueChannel)
        if self.queue_type is QueueType.LIFO:
            return lifo_state(self.max_queue_size, QueueChannel)
        return fifo_state(self.max_queue_size, QueueChannel)

    def _begin_shutdown(self) -> None:
        """
        Close sending and give consumers ``consumer_shutdown_timeout`` to empty the queue.
        """
        running = self._running
        if running is None:
            self._shutdown_requested = True  # starting: shut down once started
            return
        if running.channel.closed:
            return
        self._log.info("queue_shutting_down", timeout=self.consumer_shutdown_timeout)
        running.channel.close()
        running.consumers.deadline = trio.current_time() + self.consumer_shutdown_timeout
        self._closing.set()

    def _abort(self) -> None:
        """
        Close sending and cancel consumers now.
        """
        running = self._running
        assert running is not None
        self._log.info("queue_aborting")
        running.channel.close()
        running.consumers.cancel()
        self._closing.set()

    def _finish(self) -> None:
        """
        Once no consumer is left: resolve what is queued, mark the queue stopped, and stop.

        The supervisor stops at once; the bus gets ``consumer_shutdown_timeout`` to finish.
        """
        if self._stopped.is_set():
            return
        running = self._running
        if running is not None:
            left = running.channel.drain()
            cancelled: ResultList[T] = _result_list((Error(ShutdownError()),), (None,))
            for event in left:
                event._resolve(cancelled)
            if left:
                self._log.warning("events_cancelled_by_shutdown", count=len(left))
            running.monitors.cancel()
            running.dispatcher.deadline = trio.current_time() + self.consumer_shutdown_timeout
            self._bus._post(ShutDownQueue(self))
        self._stopped.set()
        self._bus._close()
