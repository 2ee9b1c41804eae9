"""
A race fuzzer: random sends, processors, scaling and endings, under a plain trio.run.

Each example (a :class:`~tests.strategies.Scenario`) builds a queue whose collectors'
processors do what each payload says (return, sleep, raise, return a wrong type, time out,
shut the queue down, fail while cancelled, raise a BaseException), has producers send at
random times (``send``, ``send_nowait`` into a full queue, sends given up), waiters wait
(some give up and wait again), and ends the queue in one of the ways the contract names: a
graceful exit, ``shut_down_queue()`` from another task, the body raising, a cancellation
from outside; in the ``async with`` form or the ``nursery.start(queue.run)`` form.

It runs on a MockClock under ``trio.run`` (a stray ``trio.Cancelled`` fails the example) and
Hypothesis seeds trio's scheduler, so a failing example replays and shrinks. An instrument
checks ``queue.statistics()`` after every task step, and more whenever every task is
blocked; afterwards every event must have resolved exactly once with results its
processors allow, lifecycles must have exited once in reverse order, no queue task may be
left and ``async with`` must have raised what the contract says.

The normal suite runs a fixed set of examples; ``EVENT_COLLECTOR_FUZZ_EXAMPLES=5000 pytest
tests/test_races.py`` runs that many random ones (``--hypothesis-seed=N`` replays a run).
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import attrs
import structlog
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    ConsumersScaled,
    Context,
    Error,
    InitializedQueue,
    MessageBus,
    Ok,
    Payload,
    Result,
    ResultList,
    Router,
    ShutdownError,
    ShutDownQueue,
    SimpleRouter,
)

from .conftest import supervisor_of
from .strategies import CollectorSpec, Scenario, Send, Step, race_scenarios

#: Examples asked for on the command line; the normal suite runs a fixed set.
EXAMPLES = int(os.environ.get("EVENT_COLLECTOR_FUZZ_EXAMPLES", "0"))
#: Virtual seconds after which a run counts as hung.
HORIZON = 100.0
#: Task steps after which a run counts as spinning.
MAX_STEPS = 200_000
#: The Metrics fields that must be finite and >= 0.
METRIC_NUMBERS = (
    "qsize",
    "busy",
    "consumers",
    "load",
    "avg_load",
    "service_time",
    "wait_time",
    "arrival_rate",
    "departure_rate",
    "wip",
    "event_count",
)
#: Error-level log entries that only a failing lifecycle or bus handler may cause.
ERROR_EVENTS = {
    "lifecycle_setup_failed",
    "lifecycle_teardown_failed",
    "lifecycle_teardown_timed_out",
    "message_handler_failed",
}


class Fatal(BaseException):
    """What a "fatal" processor raises: a BaseException that is not an Exception."""


class Abort(Exception):
    """What the body raises to abort the queue, from ABORT_CAUSE."""


#: The cause the body's Abort is raised from: it must come out of async with untouched.
ABORT_CAUSE = OSError("the cause of the abort")


@attrs.define(eq=False)
class Run:
    """What one run did and saw, checked once trio.run has returned."""

    scenario: Scenario
    queue: CollectorQueue[Any] | None = None
    #: Events sent (send or send_nowait returned them), with their payload's step.
    accepted: list[tuple[CollectorEvent[Any], Step]] = attrs.field(factory=list)
    #: id(event) -> (event, times resolved), for every event the queue resolved.
    resolved: dict[int, tuple[CollectorEvent[Any], int]] = attrs.field(factory=dict)
    violations: list[str] = attrs.field(factory=list)
    #: "before", "entering" (lifecycles), "body", "exiting" (__aexit__ / leaving) or "out".
    phase: str = "before"
    #: When a graceful shutdown was asked for: body exit, shut_down_queue() calls.
    shutdown_at: list[float] = attrs.field(factory=list)
    #: When ShutDownQueue was handled (every event has its result).
    stopped_at: float | None = None
    bus_events: list[str] = attrs.field(factory=list)
    #: The phase the outside cancellation came in (None: none came).
    cancelled_in: str | None = None
    abort: Abort | None = None
    #: What the body of ``async with`` raised (its own nursery may group a cancellation).
    body_raised: BaseException | None = None
    fatal: list[Fatal] = attrs.field(factory=list)
    setup_error: OSError | None = None
    teardown_errors: list[OSError] = attrs.field(factory=list)
    lifecycle_log: list[str] = attrs.field(factory=list)
    #: Out of ``async with queue`` (run form: out of the nursery running the queue).
    raised: BaseException | None = None
    #: Run form: out of ``queue.run``.
    run_raised: BaseException | None = None
    processors_running: int = 0
    #: Producers inside ``await publisher.send()``.
    sending: set[int] = attrs.field(factory=set)
    body_done: bool = False
    main_done: bool = False
    leaked: list[str] = attrs.field(factory=list)
    #: The scope around the queue that the "cancel" ending cancels.
    around: trio.CancelScope | None = None
    #: Ids for payloads that processors send.
    next_id: int = 100_000
    logs: list[MutableMapping[str, Any]] = attrs.field(factory=list)

    @property
    def stop_asked(self) -> bool:
        """Whether anything closed the queue (a send may then find it closed)."""
        return bool(self.shutdown_at or self.cancelled_in or self.abort or self.fatal)

    def violation(self, text: str) -> None:
        self.violations.append(f"t={trio.current_time():.4f} {text}")

    @property
    def resolved_total(self) -> int:
        return sum(count for _, count in self.resolved.values())

    @property
    def cancelled_consumers(self) -> bool:
        """Whether consumers may have been cancelled mid-event (results may be shutdowns)."""
        if self.abort or self.fatal or self.cancelled_in in ("entering", "body", "exiting"):
            return True
        if not self.shutdown_at:
            return False
        deadline = min(self.shutdown_at) + self.scenario.shutdown_timeout
        return self.stopped_at is None or self.stopped_at >= deadline


@contextmanager
def counting_resolutions(run: Run) -> Iterator[None]:
    """
    Count every ``CollectorEvent._resolve`` (the second one of an event raises already).
    """
    original = CollectorEvent._resolve

    def resolve(self: CollectorEvent[Any], outcome: Any, key: tuple[str | None, ...] = ()) -> None:
        if id(self) in run.resolved:
            run.violation(f"event {self!r} resolved a second time")
        original(self, outcome, key)
        run.resolved[id(self)] = (self, run.resolved.get(id(self), (self, 0))[1] + 1)

    CollectorEvent._resolve = resolve  # type: ignore[method-assign,assignment]  # a test's spy
    try:
        yield
    finally:
        CollectorEvent._resolve = original  # type: ignore[method-assign]


class Watch(trio.abc.Instrument):
    """
    Checks the queue's statistics after every task step, and more when all tasks block.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.sent = 0
        self.completed = 0
        self.closed = False
        self.steps = 0
        self.hatch: trio.CancelScope | None = None  # cancelled if the run spins

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1
        if self.steps == MAX_STEPS and self.hatch is not None:
            self.run.violation(f"{MAX_STEPS} task steps: the run spins")
            self.hatch.cancel()
        self.check(quiescent=False)

    def before_io_wait(self, timeout: float) -> None:
        if trio.lowlevel.current_statistics().tasks_runnable == 0:
            self.check(quiescent=True)

    def check(self, *, quiescent: bool) -> None:
        run, queue = self.run, self.run.queue
        if queue is None:
            return
        s = queue.statistics()
        scenario = run.scenario
        where = "with every task blocked" if quiescent else "after a step"

        def bad(text: str) -> None:
            run.violation(f"{where}: {text}: {s}")

        if min(s.consumers, s.idle, s.busy, s.queued, s.in_flight, s.sent, s.completed) < 0:
            bad("a negative count")
        if s.idle + s.busy != s.consumers:
            bad("idle + busy != consumers")
        if s.in_flight != s.queued + s.busy:
            bad("in_flight != queued + busy")
        if s.consumers > scenario.max_consumers:
            bad("more consumers than max_consumers")
        if s.queued > scenario.max_queue_size:
            bad("more queued than max_queue_size")
        if s.sent < self.sent or s.completed < self.completed or (self.closed and not s.closed):
            bad("sent, completed or closed went back")
        self.sent, self.completed, self.closed = s.sent, s.completed, s.closed
        resolved = run.resolved_total
        if s.completed > resolved:
            bad(f"more completed than resolved ({resolved})")
        held = s.sent - resolved - s.queued  # events a consumer has in hand
        if not 0 <= held <= s.busy:
            bad(f"{held} events held by consumers")
        if not quiescent:
            return
        # Every task is blocked: no consumer is starting, leaving or between two events.
        if held != s.busy:
            bad(f"{s.busy} busy consumers, {held} events in hand")
        if s.idle and s.queued:
            bad("a consumer waits while events are queued")
        if run.sending and (s.queued < scenario.max_queue_size or s.idle):
            bad("a send blocks while there is room")
        try:
            metrics = queue.get_metrics()
        except RuntimeError:  # not started
            return
        numbers = [getattr(metrics, field) for field in METRIC_NUMBERS]
        if not all(math.isfinite(n) and n >= 0 for n in numbers):
            bad(f"metrics out of range: {metrics}")
        if (metrics.qsize, metrics.busy, metrics.consumers) != (s.queued, s.busy, s.consumers):
            bad(f"metrics disagree with statistics: {metrics}")
        if metrics.event_count != s.completed:
            bad(f"metrics count {metrics.event_count} events completed")
        if not s.closed and s.sent:  # running (the pool starts before the first send)
            if not scenario.autoscale and s.consumers != scenario.max_consumers:
                bad("a fixed pool changed size")
            if scenario.autoscale and s.consumers < scenario.min_consumers:
                bad("fewer consumers than min_consumers")
            # "A send that leaves more events queued than the policy's wake_backlog (the
            # noise of the current load), or a send into a full queue, wakes the supervisor
            # while the pool is below max_consumers, so a burst is met without waiting for
            # the next sample."
            threshold = supervisor_of(queue).wake_above
            if (
                scenario.autoscale
                and s.queued > max(threshold, 0)
                and s.consumers < scenario.max_consumers
            ):
                bad(f"a backlog waits for the next sample to grow the pool (above {threshold})")


def make_processor(index: int, run: Run) -> Any:
    async def process(payload: Payload[Step], ctx: Context) -> Result[int]:
        step = payload.value
        kind, seconds = step.behaviours[index]
        run.processors_running += 1
        try:
            return await behave(kind, seconds, step, run)
        finally:
            run.processors_running -= 1

    return process


async def shut_down_from_inside(run: Run) -> None:
    """
    Call shut_down_queue() as a processor or a lifecycle's setup does: it must not wait.
    """
    assert run.queue is not None
    before = trio.current_time()
    run.shutdown_at.append(before)
    await run.queue.shut_down_queue()
    if trio.current_time() != before:
        run.violation("shut_down_queue() from inside the queue waited")


async def fail_when_cancelled(seconds: float) -> None:
    try:
        await trio.sleep(seconds)
    except trio.Cancelled:
        raise ValueError("failed on the way out") from None


async def behave(kind: str, seconds: float, step: Step, run: Run) -> Result[int]:
    if kind == "error":
        return Error("refused")
    if kind == "raise":
        raise ValueError(step.id)
    if kind == "wrong":
        return "not a result"  # type: ignore[return-value]  # a processor's mistake
    if kind == "sleep":
        await trio.sleep(seconds)
    elif kind == "hang":
        await trio.sleep_forever()
    elif kind == "shutdown":
        await shut_down_from_inside(run)
    elif kind == "shutdown_child":
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shut_down_from_inside, run)
    elif kind == "nursery_fail":
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail_when_cancelled, seconds)
    elif kind == "resend":
        return resend(run, step)
    elif kind == "fatal":
        run.fatal.append(Fatal(step.id))
        raise run.fatal[-1]
    return Ok(step.id)


def resend(run: Run, step: Step) -> Result[int]:
    """
    Send a new payload (that every collector takes at once) from inside a processor.
    """
    assert run.queue is not None
    run.next_id += 1
    new = Step(run.next_id, tuple(("ok", 0.0) for _ in run.scenario.collectors), False)
    try:
        event = run.queue.get_publisher().send_nowait(Payload(new))
    except trio.WouldBlock:
        return Error("full")
    except trio.ClosedResourceError:
        if not run.stop_asked:
            run.violation("a processor's send found the queue closed before anything closed it")
        return Error("closed")
    run.accepted.append((event, new))
    return Ok(step.id)


def make_lifecycle(
    spec: CollectorSpec, run: Run
) -> Callable[[Context], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifecycle(ctx: Context) -> AsyncIterator[None]:
        if spec.lifecycle == "fail_setup":
            run.setup_error = OSError(f"setup {spec.key}")
            raise run.setup_error
        if spec.lifecycle == "slow":
            await trio.sleep(0.01)
        if spec.lifecycle == "shutdown":
            await shut_down_from_inside(run)
        run.lifecycle_log.append(f"enter {spec.key}")
        try:
            yield
        finally:
            assert run.queue is not None
            if run.queue.statistics().consumers or run.processors_running:
                run.violation(f"lifecycle {spec.key} exits while consumers run")
            run.lifecycle_log.append(f"exit {spec.key}")
            if spec.lifecycle == "slow":
                await trio.sleep(0.01)  # the queue shields teardowns
            if spec.lifecycle == "fail_teardown":
                run.teardown_errors.append(OSError(f"teardown {spec.key}"))
                raise run.teardown_errors[-1]

    return lifecycle


class SelectingRouter(Router[Any]):
    """SimpleRouter's choice through ``select``; raises for payloads that say so."""

    def __init__(self, collectors: Any) -> None:
        super().__init__(collectors)
        self._simple = SimpleRouter(collectors)

    def select(self, payload: Payload[Any]) -> Any:
        if payload.value.router_fails:
            raise LookupError("router failed")
        return self._simple.select(payload)


class HandlingRouter(Router[Any]):
    """SimpleRouter's choice through ``handle_event`` and ``deliver``."""

    def __init__(self, collectors: Any) -> None:
        super().__init__(collectors)
        self._simple = SimpleRouter(collectors)

    async def handle_event(self, payload: Payload[Any]) -> ResultList[Any]:
        if payload.value.router_fails:
            raise LookupError("router failed")
        return await self.deliver(payload, self._simple.select(payload))


ROUTERS: dict[str, type[Router[Any]]] = {
    "simple": SimpleRouter,
    "select": SelectingRouter,
    "handle": HandlingRouter,
}


def build_queue(run: Run) -> CollectorQueue[Any]:
    s = run.scenario
    collectors = [
        Collector(
            spec.key,
            make_processor(index, run),
            topics=spec.topics,
            timeout=spec.timeout,
            lifecycle=None if spec.lifecycle is None else make_lifecycle(spec, run),
        )
        for index, spec in enumerate(s.collectors)
    ]
    return CollectorQueue(
        collectors,
        router=ROUTERS[s.router],
        queue_type=s.queue_type,
        autoscale=s.autoscale,
        min_consumers=s.min_consumers,
        max_consumers=s.max_consumers,
        monitor_interval=s.monitor_interval,
        max_queue_size=s.max_queue_size,
        consumer_shutdown_timeout=s.shutdown_timeout,
        report_interval=s.report_interval,
    )


async def wait_for(run: Run, event: CollectorEvent[Any], give_up: float) -> None:
    with trio.move_on_after(give_up):
        results = await event.wait()
        if results != event.get_result():
            run.violation("wait() and get_result() differ")
        return
    results = await event.wait()  # gave up once: waiting again works
    if not event.done or results != event.get_result():
        run.violation("a second wait() saw no result")


async def produce(run: Run, index: int, sends: tuple[Send, ...], waiters: trio.Nursery) -> None:
    queue = run.queue
    assert queue is not None
    publisher = queue.get_publisher()
    for number, send in enumerate(sends):
        if number:
            await end_if_triggered(run, (index, number - 1))
        await trio.sleep(send.delay)
        event: CollectorEvent[Any] | None = None
        try:
            if send.nowait:
                event = publisher.send_nowait(send.payload)
            else:
                run.sending.add(index)
                try:
                    # "Never" is 10 s: a processor that hangs without a timeout in a full
                    # queue would block the body, and so the shutdown, for good.
                    with trio.move_on_after(10.0 if send.give_up is None else send.give_up):
                        event = await publisher.send(send.payload)
                finally:
                    run.sending.discard(index)
        except trio.WouldBlock:
            if queue.statistics().queued < run.scenario.max_queue_size:
                run.violation("send_nowait raised WouldBlock with room in the queue")
            continue
        except trio.ClosedResourceError as exc:
            if not run.stop_asked:
                run.violation("a send found the queue closed before anything closed it")
            if "takes no more events" not in str(exc):
                run.violation(f"ClosedResourceError says {exc}")
            continue
        if event is None:  # given up: nothing was sent
            if send.give_up is None:
                return  # blocked for good behind a processor that hangs: stop sending
            continue
        run.accepted.append((event, send.payload.value))
        if send.wait is not None:
            waiters.start_soon(wait_for, run, event, send.wait)
    if sends:
        await end_if_triggered(run, (index, len(sends) - 1))


async def end_if_triggered(run: Run, where: tuple[int, int]) -> None:
    """
    End the queue right after a send (no checkpoint between), if the scenario says so here.
    """
    s = run.scenario
    if s.ending_at is not None or s.trigger != where:
        return
    if s.ending == "cancel":
        cancel_now(run)
    elif s.ending == "shutdown_task":
        await shut_down_now(run)
    elif s.ending == "abort":
        run.abort = Abort("a producer failed")
        raise run.abort from ABORT_CAUSE


async def shut_down_later(run: Run, delay: float) -> None:
    """
    Shut the queue down from a task outside it (maybe while it starts).
    """
    assert run.queue is not None
    await trio.sleep(delay)
    while True:
        try:
            await shut_down_now(run)
        except RuntimeError as exc:  # queue.run's task has not run yet
            if "has not been started" not in str(exc):
                raise
            await trio.lowlevel.checkpoint()
        else:
            return


async def shut_down_now(run: Run) -> None:
    assert run.queue is not None
    run.shutdown_at.append(trio.current_time())
    await run.queue.shut_down_queue()
    stats = run.queue.statistics()
    if stats.consumers or stats.queued or run.resolved_total != stats.sent:
        run.violation(f"shut_down_queue() returned before every event had its result: {stats}")


async def cancel_later(run: Run, delay: float) -> None:
    await trio.sleep(delay)
    cancel_now(run)


def cancel_now(run: Run) -> None:
    assert run.around is not None
    if run.phase != "out" and run.cancelled_in is None:
        run.cancelled_in = run.phase
        run.around.cancel()


async def enter_again(run: Run) -> None:
    """
    Enter the running queue again, both ways: refused, and the queue goes on.
    """
    assert run.queue is not None
    try:
        async with run.queue:
            run.violation("a second async with entered the queue")
    except RuntimeError as exc:
        if "a queue runs once" not in str(exc):
            run.violation(f"a second entry raised {exc!r}")
    try:
        await run.queue.run()
        run.violation("a second run() ran the queue")
    except RuntimeError as exc:
        if "a queue runs once" not in str(exc):
            run.violation(f"a second run() raised {exc!r}")


async def body(run: Run, waiters: trio.Nursery) -> None:
    """
    The user's code: producers, maybe a task that shuts the queue down, maybe an abort.
    """
    s = run.scenario
    async with trio.open_nursery() as producers:
        for index, sends in enumerate(s.producers):
            producers.start_soon(produce, run, index, sends, waiters)
        if s.reenter:
            producers.start_soon(enter_again, run)
        if s.ending == "abort" and s.ending_at is not None:
            await trio.sleep(s.ending_at)
            producers.cancel_scope.cancel()
    await trio.sleep(s.linger)  # after a shutdown the body goes on as long as it likes
    if s.ending == "abort":  # at the end of the body if no producer did
        run.abort = Abort("the body failed")
        if s.cancel_with_abort:
            cancel_now(run)
        raise run.abort from ABORT_CAUSE
    run.body_done = True


async def run_queue(run: Run, *, task_status: trio.TaskStatus[None]) -> None:
    assert run.queue is not None
    try:
        await run.queue.run(task_status=task_status)
    except BaseException as exc:
        run.run_raised = exc
        raise


def only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


async def in_async_with(run: Run, waiters: trio.Nursery) -> None:
    queue = run.queue
    assert queue is not None
    run.phase = "entering"
    try:
        async with queue:
            run.phase = "body"
            try:
                await body(run, waiters)
            except BaseException as exc:
                run.body_raised = exc
                raise
            run.phase = "exiting"
            run.shutdown_at.append(trio.current_time())
    except BaseException as exc:
        run.raised = exc
        if isinstance(exc, trio.Cancelled):
            raise  # to the scope cancelled from outside (a stray one fails the run)
    finally:
        run.phase = "out"


async def in_run_form(run: Run, waiters: trio.Nursery) -> None:
    queue = run.queue
    assert queue is not None
    run.phase = "entering"
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_queue, run)
            run.phase = "body"
            await body(run, waiters)
            if not run.stop_asked:  # graceful, or an ending that never came
                run.shutdown_at.append(trio.current_time())
                await queue.shut_down_queue()
            run.phase = "exiting"
    except BaseException as exc:
        run.raised = exc
        if only_cancelled(exc):
            raise
    finally:
        run.phase = "out"


def task_tree() -> list[str]:
    """
    Every task and where it waits, for the report of a run that hangs.
    """
    lines: list[str] = []
    root = trio.lowlevel.current_root_task()
    assert root is not None
    todo = [(0, root)]
    while todo:
        depth, task = todo.pop()
        frames = [f"{f.f_code.co_name}:{line}" for f, line in task.iter_await_frames()]
        lines.append(f"{'  ' * depth}{task.name} @ {' > '.join(frames)}")
        todo.extend(
            (depth + 1, child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )
    return lines


async def watchdog(run: Run) -> None:
    await trio.sleep(HORIZON - 1)
    run.violation("the run hangs; tasks:\n" + "\n".join(task_tree()))


def leftover_queue_tasks() -> list[str]:
    found: list[str] = []
    root = trio.lowlevel.current_root_task()
    assert root is not None
    todo = [root]
    while todo:
        task = todo.pop()
        if task.name.startswith("event_collector"):
            found.append(task.name)
        todo.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return found


async def main(run: Run, watch: Watch) -> None:
    queue = run.queue = build_queue(run)

    async def on_bus(msg: Any, bus: MessageBus) -> None:
        run.bus_events.append(type(msg).__name__)
        if isinstance(msg, ShutDownQueue):
            run.stopped_at = trio.current_time()

    async def never_returns(msg: ShutDownQueue, bus: MessageBus) -> None:
        await trio.sleep_forever()

    async def fails(msg: ConsumersScaled, bus: MessageBus) -> None:
        raise ValueError("a bus handler failed")

    bus = queue.get_message_bus()
    bus.add_msg_handler(InitializedQueue, on_bus)
    bus.add_msg_handler(ShutDownQueue, on_bus)
    if run.scenario.bad_handlers:
        bus.add_msg_handler(ShutDownQueue, never_returns)
        bus.add_msg_handler(ConsumersScaled, fails)
    s = run.scenario
    with trio.fail_after(HORIZON) as hatch:
        watch.hatch = hatch
        async with trio.open_nursery() as watching:
            watching.start_soon(watchdog, run)
            async with trio.open_nursery() as waiters:  # outside the queue: they outlive it
                with trio.CancelScope() as run.around:
                    if s.ending_at is not None and s.ending == "cancel":
                        waiters.start_soon(cancel_later, run, s.ending_at)
                    if s.ending_at is not None and s.ending == "shutdown_task":
                        waiters.start_soon(shut_down_later, run, s.ending_at)
                    if s.form == "run":
                        await in_run_form(run, waiters)
                    else:
                        await in_async_with(run, waiters)
                run.leaked = leftover_queue_tasks()
            watching.cancel_scope.cancel()
    run.main_done = True


def fuzz(scenario: Scenario) -> Run:
    """
    Run ``scenario`` under a plain ``trio.run`` on a MockClock and return what it saw.
    """
    run = Run(scenario)
    watch = Watch(run)
    with structlog.testing.capture_logs() as run.logs, counting_resolutions(run):
        try:
            trio.run(
                main,
                run,
                watch,
                clock=trio.testing.MockClock(autojump_threshold=0),
                instruments=[watch],
            )
        except trio.TooSlowError:
            raise AssertionError("\n".join(run.violations)) from None
    return run


# -- what the contract says ----------------------------------------------------------------


def is_shutdown(result: Result[Any]) -> bool:
    return isinstance(result, Error) and type(result.error) is ShutdownError


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def result_problem(
    result: Result[Any], behaviour: tuple[str, float], spec: CollectorSpec, step: Step, run: Run
) -> str | None:
    """
    Return what is wrong with one collector's result, or None.
    """
    kind, seconds = behaviour
    cancelled = run.cancelled_consumers and is_shutdown(result)
    error = result.error if isinstance(result, Error) else None
    timed_out = (
        spec.timeout is not None and type(error) is trio.TooSlowError and seconds >= spec.timeout
    )
    failed_while_cancelled = isinstance(error, ExceptionGroup) and all(
        isinstance(leaf, ValueError) for leaf in leaves(error)
    )
    fine = {
        "ok": result == Ok(step.id),
        "error": result == Error("refused"),
        "raise": type(error) is ValueError and error.args == (step.id,),
        "wrong": type(error) is TypeError and "must return Ok or Error" in str(error),
        "sleep": result == Ok(step.id) or timed_out or cancelled,
        "hang": (spec.timeout is not None and type(error) is trio.TooSlowError) or cancelled,
        "shutdown": result == Ok(step.id) or cancelled,
        "shutdown_child": result == Ok(step.id) or cancelled,
        "nursery_fail": result == Ok(step.id)
        or (failed_while_cancelled and (run.cancelled_consumers or seconds >= spec.timeout))
        if spec.timeout is not None
        else result == Ok(step.id) or (failed_while_cancelled and run.cancelled_consumers),
        "resend": result == Ok(step.id)
        or (result == Error("full") and run.scenario.max_queue_size < math.inf)
        or (result == Error("closed") and run.stop_asked),
        "fatal": is_shutdown(result),
    }[kind]
    return None if fine else f"{spec.key} ({kind} {seconds}) gave {result!r}"


def event_problems(run: Run, simple: SimpleRouter[Any]) -> list[str]:
    problems: list[str] = []
    specs = run.scenario.collectors
    index_of = {spec.key: index for index, spec in enumerate(specs)}
    router_fails = run.scenario.router != "simple"
    for event, step in run.accepted:
        results = event.get_result()
        where = f"event {step.id}"
        if results is None or not event.done:
            problems.append(f"{where} never resolved")
            continue
        if run.resolved.get(id(event), (event, 0))[1] != 1:
            problems.append(f"{where} resolved {run.resolved.get(id(event))} times")
        expected = tuple(c.key for c in simple.select(event.payload))
        if results.keys == (None,):
            [result] = results
            if run.cancelled_consumers and is_shutdown(result):
                fine = True  # still queued when the consumers were cancelled
            elif step.router_fails and router_fails:
                fine = isinstance(result, Error) and type(result.error) is LookupError
            else:
                fine = result == Ok(None) and not expected
            if not fine:
                problems.append(f"{where} (for {expected}) undelivered with {result!r}")
            continue
        if step.router_fails and router_fails:
            problems.append(f"{where}: the router should have failed, got {results!r}")
            continue
        if results.keys != expected:
            problems.append(f"{where}: keys {results.keys}, expected {expected}")
            continue
        for key, result in results.items():
            assert key is not None
            index = index_of[key]
            problem = result_problem(result, step.behaviours[index], specs[index], step, run)
            if problem is not None:
                problems.append(f"{where}: {problem}")
    return problems


def teardown_raised(raised: BaseException | None, errors: list[OSError]) -> bool:
    """
    Whether ``raised`` is what failing teardowns raise: none, the one, or a group of all.
    """
    if len(errors) <= 1:
        return raised is (errors[0] if errors else None)
    return isinstance(raised, ExceptionGroup) and leaves(raised) == list(errors)


def outcome_problems(run: Run) -> list[str]:
    """
    What came out of ``async with`` (or the run form's nursery and ``queue.run``).
    """
    raised, s = run.raised, run.scenario
    if s.form == "async_with":
        if run.setup_error is not None:
            fine = raised is run.setup_error
        elif run.fatal:
            fine = type(raised) is Fatal and raised in run.fatal
        elif run.body_raised is not None:  # the abort, or the cancellation as the body saw it
            fine = raised is run.body_raised
            if isinstance(raised, Abort):  # with its cause, as the body raised it
                fine = fine and raised.__cause__ is ABORT_CAUSE and raised.__suppress_context__
        elif run.cancelled_in == "entering":
            fine = type(raised) is trio.Cancelled
        else:
            fine = teardown_raised(raised, run.teardown_errors)
            if run.cancelled_in:  # as the body ended: seen as a Cancelled, or not at all
                fine = fine or raised is None or type(raised) is trio.Cancelled
        return [] if fine else [f"async with raised {raised!r}"]
    # The run form: the user's nursery raises as trio's nurseries do.
    got = [] if raised is None else [x for x in leaves(raised) if type(x) is not trio.Cancelled]
    if run.setup_error is not None:
        fine = got == [run.setup_error]
    elif run.fatal:  # with the body's abort too if both came at once (the user's nursery)
        fine = type(run.run_raised) is Fatal and run.run_raised in got
        fine = fine and all(x is run.run_raised or x is run.abort for x in got)
    elif run.abort is not None:
        fine = got == [run.abort] and type(run.run_raised) in (trio.Cancelled, type(None))
    elif run.cancelled_in:  # queue.run may still be waiting after the body is done
        fine = not got and type(run.run_raised) in (trio.Cancelled, type(None))
    else:
        fine = not got and run.run_raised is None
    return [] if fine else [f"run form raised {raised!r}, queue.run raised {run.run_raised!r}"]


def lifecycle_problems(run: Run) -> list[str]:
    with_lifecycle = [c.key for c in run.scenario.collectors if c.lifecycle is not None]
    enters = [line.split()[1] for line in run.lifecycle_log if line.startswith("enter")]
    exits = [line.split()[1] for line in run.lifecycle_log if line.startswith("exit")]
    problems = []
    if enters != with_lifecycle[: len(enters)]:
        problems.append(f"lifecycles entered out of order: {run.lifecycle_log}")
    if exits != enters[::-1]:
        problems.append(f"lifecycles not exited once each in reverse: {run.lifecycle_log}")
    return problems


def log_problems(run: Run) -> list[str]:
    events = [entry["event"] for entry in run.logs]
    problems = []
    if "queue_started" in events and events.count("queue_stopped") != 1:
        problems.append(f"queue_stopped logged {events.count('queue_stopped')} times")
    if events.count("queue_starting") != 1:
        problems.append(f"queue_starting logged {events.count('queue_starting')} times")
    errors = {entry["event"] for entry in run.logs if entry["log_level"] == "error"}
    if errors - ERROR_EVENTS:
        problems.append(f"unexpected error entries: {errors - ERROR_EVENTS}")
    logged = sum(e["count"] for e in run.logs if e["event"] == "events_cancelled_by_shutdown")
    never_taken = sum(
        1
        for event, _ in run.accepted
        if (results := event.get_result()) is not None
        and results.keys == (None,)
        and is_shutdown(results[0])
    )
    if logged > never_taken:  # a consumer can hold one it took, cancelled before routing it
        problems.append(f"{logged} events logged as cancelled while queued, {never_taken} were")
    return problems


def check(run: Run) -> None:
    queue = run.queue
    assert queue is not None
    problems = list(run.violations)
    if not run.main_done:
        problems.append("main did not finish")
    if run.leaked:
        problems.append(f"queue tasks left running: {run.leaked}")
    ended_early = run.abort or run.fatal or run.setup_error or run.cancelled_in
    if not ended_early and not run.body_done:
        problems.append("the body did not finish (a stray cancellation?)")
    problems += outcome_problems(run)
    problems += lifecycle_problems(run)
    stats = queue.statistics()
    started = run.setup_error is None and "InitializedQueue" in run.bus_events
    if stats.consumers or stats.busy or stats.queued or (started and not stats.closed):
        problems.append(f"the queue did not stop cleanly: {stats}")
    if stats.sent != len(run.accepted) or run.resolved_total != len(run.accepted):
        problems.append(
            f"{stats.sent} events sent, {len(run.accepted)} returned to producers, "
            f"{run.resolved_total} resolved"
        )
    if run.bus_events.count("ShutDownQueue") > 1 or run.bus_events.count("InitializedQueue") > 1:
        problems.append(f"bus events: {run.bus_events}")
    problems += event_problems(run, SimpleRouter(queue.collectors))
    problems += log_problems(run)
    assert not problems, "\n".join(problems[:20])


class TestRaces:
    """Random sends, processors, scaling and endings keep every promise of the contract."""

    @settings(
        max_examples=EXAMPLES or 100,
        derandomize=not EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(scenario=race_scenarios())
    def test_every_run_keeps_the_contract(self, scenario: Scenario) -> None:
        check(fuzz(scenario))
