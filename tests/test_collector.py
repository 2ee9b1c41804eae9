"""
Collector construction rules and Collector.process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
import structlog
import trio
import trio.testing

from event_collector import Collector, Context, Error, Ok, Payload, Result, ResultList

from .conftest import echo, fail, fixed, refuse, sleeper

PROCESSOR_RULE = re.escape("processor must be an async function (async def), got ")


class AsyncCallable:
    """
    An object whose ``__call__`` is async: a valid processor.
    """

    async def __call__(self, payload: Payload[Any], ctx: Context) -> Result[Any]:
        return Ok("called")

    async def method(self, payload: Payload[Any], ctx: Context, *, extra: int = 0) -> Result[Any]:
        return Ok(extra)


class SyncCallable:
    """
    An object whose ``__call__`` is sync: not a processor.
    """

    def __call__(self, payload: Payload[Any], ctx: Context) -> Result[Any]:
        return Ok("called")  # pragma: no cover


async def tagged(payload: Payload[Any], ctx: Context, *, tag: str) -> Result[Any]:
    return Ok((tag, payload.value))


def sync_processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(payload.value)  # pragma: no cover


def returns_coroutine(payload: Payload[Any], ctx: Context) -> Awaitable[Result[Any]]:
    return echo(payload, ctx)  # pragma: no cover


@asynccontextmanager
async def lifecycle(ctx: Context) -> AsyncIterator[None]:
    yield  # pragma: no cover


class TestDefaults:
    """A collector keeps its key and processor and defaults the rest."""

    def test_defaults(self) -> None:
        collector = Collector("a", echo)
        assert collector.key == "a"
        assert collector.processor is echo
        assert collector.lifecycle is None
        assert collector.topics == ()
        assert collector.timeout is None
        assert type(collector.ctx) is Context
        assert vars(collector.ctx) == {}

    def test_options_are_stored(self) -> None:
        collector = Collector("a", echo, lifecycle=lifecycle, topics=["t1", "t2"], timeout=2.5)
        assert collector.lifecycle is lifecycle
        assert collector.topics == ("t1", "t2")
        assert collector.timeout == 2.5

    @pytest.mark.parametrize("timeout", [1, 0.001, math.inf])
    def test_positive_timeouts(self, timeout: float) -> None:
        assert Collector("a", echo, timeout=timeout).timeout == timeout

    def test_frozen(self) -> None:
        collector = Collector("a", echo)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            collector.key = "b"  # type: ignore[misc]  # assigning a frozen field is the test
        assert collector.key == "a"

    def test_identity_equality(self) -> None:
        first, second = Collector("a", echo), Collector("a", echo)
        assert first != second
        assert len({first, second}) == 2


class TestContext:
    """Each collector gets a Context of its own unless it is given one."""

    def test_own_context_each(self) -> None:
        first, second = Collector("a", echo), Collector("b", echo)
        assert first.ctx is not second.ctx
        first.ctx.value = 1
        assert vars(second.ctx) == {}

    def test_explicit_none(self) -> None:
        collector = Collector("a", echo, ctx=None)
        assert type(collector.ctx) is Context
        assert vars(collector.ctx) == {}

    def test_given_context_is_used(self) -> None:
        ctx = Context(table="readings")
        assert Collector("a", echo, ctx=ctx).ctx is ctx

    def test_shared_context(self) -> None:
        ctx = Context()
        assert Collector("a", echo, ctx=ctx).ctx is Collector("b", echo, ctx=ctx).ctx

    @pytest.mark.parametrize(
        ("ctx", "type_name"),
        [({}, "dict"), (SimpleNamespace(), "SimpleNamespace"), ("ctx", "str"), (Context, "type")],
    )
    def test_bad_context(self, ctx: Any, type_name: str) -> None:
        with pytest.raises(TypeError) as info:
            Collector("a", echo, ctx=ctx)
        assert str(info.value) == f"ctx must be a Context or None, got {type_name}"


class TestProcessorCheck:
    """Only async callables are accepted as processors."""

    @pytest.mark.parametrize(
        "processor",
        [
            echo,
            AsyncCallable(),
            AsyncCallable().method,
            functools.partial(tagged, tag="x"),
            functools.partial(AsyncCallable().method, extra=1),
        ],
        ids=["async-def", "async-call-object", "async-method", "partial", "partial-method"],
    )
    def test_async_callables_accepted(self, processor: Any) -> None:
        assert Collector("a", processor).processor is processor

    @pytest.mark.parametrize(
        "processor",
        [
            lambda payload, ctx: Ok(1),
            sync_processor,
            functools.partial(sync_processor),
            SyncCallable(),
            print,
            "echo",
            None,
        ],
        ids=["sync-lambda", "sync-def", "sync-partial", "sync-call", "builtin", "str", "none"],
    )
    def test_non_async_processor(self, processor: Any) -> None:
        with pytest.raises(TypeError, match=f"^{PROCESSOR_RULE}"):
            Collector("a", processor)

    def test_sync_function_returning_a_coroutine(self) -> None:
        with pytest.raises(TypeError, match=f"^{PROCESSOR_RULE}"):
            Collector("a", returns_coroutine)

    def test_class_with_async_call_refused(self) -> None:
        with pytest.raises(TypeError, match=f"^{PROCESSOR_RULE}"):
            Collector("a", AsyncCallable)  # type: ignore[arg-type]  # class, not instance: the slip

    def test_partial_of_async_call_object_accepted(self) -> None:
        processor = functools.partial(AsyncCallable())
        assert Collector("a", processor).processor is processor

    async def test_async_call_object_runs(self) -> None:
        assert await Collector("a", AsyncCallable()).process(Payload(1)) == Ok("called")

    async def test_partial_runs(self) -> None:
        collector = Collector("a", functools.partial(tagged, tag="x"))
        assert await collector.process(Payload(1)) == Ok(("x", 1))


class TestKey:
    """A collector key is a non-empty str."""

    def test_empty(self) -> None:
        with pytest.raises(ValueError, match=r"^collector key must not be empty$"):
            Collector("", echo)

    @pytest.mark.parametrize(
        ("key", "type_name"), [(1, "int"), (None, "NoneType"), (b"a", "bytes"), (["a"], "list")]
    )
    def test_not_a_str(self, key: Any, type_name: str) -> None:
        with pytest.raises(TypeError) as info:
            Collector(key, echo)
        assert str(info.value) == f"collector key must be a str, got {type_name}"


class TestTopics:
    """Topics are a sequence of str, stored as a tuple."""

    def test_iterables_become_tuples(self) -> None:
        assert Collector("a", echo, topics=["t1"]).topics == ("t1",)
        assert Collector("a", echo, topics=(t for t in ["t1", "t2"])).topics == ("t1", "t2")

    def test_bare_str(self) -> None:
        with pytest.raises(TypeError) as info:
            Collector("a", echo, topics="t1")
        assert str(info.value) == "topics must be a sequence of str, not a str: use ['t1']"

    def test_non_str_topic(self) -> None:
        with pytest.raises(TypeError) as info:
            Collector("a", echo, topics=["t1", 2])  # type: ignore[list-item]  # the slip under test
        assert str(info.value) == "topics must hold str, got int"


class TestLifecycle:
    """A lifecycle must be callable."""

    @pytest.mark.parametrize("value", ["setup", 1, object()])
    def test_not_callable(self, value: Any) -> None:
        with pytest.raises(
            TypeError, match=r"^lifecycle must be a callable taking the context, got "
        ):
            Collector("a", echo, lifecycle=value)

    def test_callable_accepted(self) -> None:
        assert Collector("a", echo, lifecycle=lifecycle).lifecycle is lifecycle


class TestTimeoutCheck:
    """A timeout is a positive number of seconds, or None."""

    @pytest.mark.parametrize(
        ("timeout", "shown"),
        [(0, "0"), (0.0, "0.0"), (-1, "-1"), (math.nan, "nan"), (-math.inf, "-inf")],
    )
    def test_not_positive(self, timeout: float, shown: str) -> None:
        with pytest.raises(ValueError, match=f"^timeout must be > 0, got {shown}$"):
            Collector("a", echo, timeout=timeout)

    @pytest.mark.parametrize("timeout", [True, False, "1", [1]])
    def test_not_a_number(self, timeout: Any) -> None:
        with pytest.raises(TypeError) as info:
            Collector("a", echo, timeout=timeout)
        assert str(info.value) == f"timeout must be a number of seconds or None, got {timeout!r}"


class TestProcess:
    """process() hands the payload and context to the processor and returns its result."""

    async def test_ok_passes_through(self) -> None:
        answer = Ok("done")

        async def processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return answer

        assert await Collector("a", processor).process(Payload(1)) is answer

    async def test_returned_error_passes_through_unlogged(self) -> None:
        with structlog.testing.capture_logs() as logs:
            result = await Collector("a", refuse).process(Payload(1))
        assert isinstance(result, Error)
        assert str(result.error) == "refused"
        assert logs == []

    async def test_processor_sees_payload_and_context(self) -> None:
        seen: list[tuple[Payload[Any], Context]] = []

        async def processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
            seen.append((payload, ctx))
            return Ok(None)

        ctx = Context()
        payload = Payload("event")
        await Collector("a", processor, ctx=ctx).process(payload)
        assert len(seen) == 1
        assert seen[0][0] is payload
        assert seen[0][1] is ctx

    async def test_checkpoint_only_when_the_processor_is(self) -> None:
        with trio.testing.assert_no_checkpoints():
            assert await Collector("a", echo).process(Payload(1)) == Ok(1)
        with trio.testing.assert_no_checkpoints():
            assert await Collector("a", echo, timeout=1).process(Payload(1)) == Ok(1)
        with trio.testing.assert_checkpoints():
            assert await Collector("a", sleeper(0)).process(Payload(1)) == Ok(1)


class TestProcessFailure:
    """A raising processor gives Error(exc), logged as processor_failed."""

    async def test_exception_becomes_error(self) -> None:
        exc = ValueError("broken")

        async def processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
            raise exc

        with structlog.testing.capture_logs():
            result = await Collector("a", processor).process(Payload(1))
        assert result == Error(exc)
        assert isinstance(result, Error)
        assert result.error is exc

    async def test_logged_once_at_warning_without_a_traceback(self) -> None:
        with structlog.testing.capture_logs() as logs:
            result = await Collector("boom", fail).process(Payload("v"))
        assert isinstance(result, Error)
        assert logs == [
            {
                "event": "processor_failed",
                "log_level": "warning",
                "collector": "boom",
                "error": "ValueError('v')",
            }
        ]

    async def test_exception_group_is_an_error(self) -> None:
        async def processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fail, payload, ctx)
            return Ok(None)  # pragma: no cover

        with structlog.testing.capture_logs() as logs:
            result = await Collector("a", processor).process(Payload("v"))
        assert isinstance(result, Error)
        assert isinstance(result.error, ExceptionGroup)
        assert [type(e) for e in result.error.exceptions] == [ValueError]
        assert [entry["event"] for entry in logs] == ["processor_failed"]

    async def test_logged_at_the_queue_level_with_its_id(self) -> None:
        queue = fixed([Collector("boom", fail)], failure_log_level=logging.INFO)
        with structlog.testing.capture_logs() as logs:
            async with queue:
                await (await queue.get_publisher().send("v")).wait()
        failures = [entry for entry in logs if entry["event"] == "processor_failed"]
        assert failures == [
            {
                "event": "processor_failed",
                "log_level": "info",
                "queue_id": queue.id,
                "collector": "boom",
                "error": "ValueError('v')",
            }
        ]

    async def test_failure_log_level_none_logs_no_failure(self) -> None:
        queue = fixed([Collector("boom", fail)], failure_log_level=None)
        with structlog.testing.capture_logs() as logs:
            async with queue:
                results = await (await queue.get_publisher().send("v")).wait()
        assert [entry["event"] for entry in logs if "error" in entry] == []
        assert isinstance(results.first(), Error)


class TestProcessWrongType:
    """A processor returning anything but Ok or Error gives Error(TypeError) naming the type."""

    @pytest.mark.parametrize(
        ("returned", "type_name"),
        [
            ({"status": 200}, "dict"),
            (None, "NoneType"),
            ("ok", "str"),
            ((True, 1), "tuple"),
            (ResultList([Ok(1)]), "ResultList"),
        ],
    )
    async def test_wrong_type(self, returned: object, type_name: str) -> None:
        async def processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return returned  # type: ignore[return-value]  # the processor mistake under test

        result = await Collector("w", processor).process(Payload(1))
        assert isinstance(result, Error)
        assert type(result.error) is TypeError
        assert (
            str(result.error)
            == f"processor of collector 'w' must return Ok or Error, got {type_name}"
        )


class TestProcessTimeout:
    """A processor running past its timeout is cancelled and gives Error(TooSlowError)."""

    async def test_times_out_at_exactly_the_timeout(self, autojump_clock: trio.abc.Clock) -> None:
        finished: list[bool] = []

        async def slow(payload: Payload[Any], ctx: Context) -> Result[Any]:
            await trio.sleep(5)
            finished.append(True)  # pragma: no cover
            return Ok(None)  # pragma: no cover

        start = trio.current_time()
        result = await Collector("slow", slow, timeout=2.5).process(Payload(1))
        assert trio.current_time() - start == 2.5
        assert isinstance(result, Error)
        assert type(result.error) is trio.TooSlowError
        assert str(result.error) == "processor exceeded 2.5 s"
        assert finished == []

    async def test_finishes_before_the_timeout(self, autojump_clock: trio.abc.Clock) -> None:
        start = trio.current_time()
        assert await Collector("quick", sleeper(1), timeout=2).process(Payload(1)) == Ok(1)
        assert trio.current_time() - start == 1

    async def test_each_call_has_its_own_timeout(self, autojump_clock: trio.abc.Clock) -> None:
        collector = Collector("a", sleeper(1.5), timeout=2)
        start = trio.current_time()
        assert await collector.process(Payload(1)) == Ok(1)
        assert await collector.process(Payload(2)) == Ok(2)
        assert trio.current_time() - start == 3

    async def test_raising_within_the_timeout(self, autojump_clock: trio.abc.Clock) -> None:
        with structlog.testing.capture_logs() as logs:
            result = await Collector("a", fail, timeout=2).process(Payload("v"))
        assert isinstance(result, Error)
        assert type(result.error) is ValueError
        assert [entry["event"] for entry in logs] == ["processor_failed"]

    async def test_wrong_type_within_the_timeout(self, autojump_clock: trio.abc.Clock) -> None:
        async def processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return 1  # type: ignore[return-value]  # the processor mistake under test

        result = await Collector("w", processor, timeout=2).process(Payload(1))
        assert isinstance(result, Error)
        assert str(result.error) == "processor of collector 'w' must return Ok or Error, got int"


class TestFailureLogging:
    """Each kind of failed event is logged once, by name, with the error and the collector."""

    async def test_wrong_type_is_logged(self) -> None:
        async def processor(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return 1  # type: ignore[return-value]  # the processor mistake under test

        with structlog.testing.capture_logs() as logs:
            await Collector("w", processor).process(Payload(1))
        assert logs == [
            {
                "event": "processor_returned_wrong_type",
                "log_level": "warning",
                "collector": "w",
                "error": "TypeError(\"processor of collector 'w' must return Ok or Error, "
                'got int")',
            }
        ]

    async def test_timeout_is_logged(self, autojump_clock: trio.abc.Clock) -> None:
        with structlog.testing.capture_logs() as logs:
            await Collector("slow", sleeper(5), timeout=1).process(Payload(1))
        assert logs == [
            {
                "event": "processor_timed_out",
                "log_level": "warning",
                "collector": "slow",
                "error": "TooSlowError('processor exceeded 1 s')",
            }
        ]

    async def test_an_error_result_is_not_a_failure(self) -> None:
        with structlog.testing.capture_logs() as logs:
            assert await Collector("r", refuse).process(Payload(1)) == Error("refused")
        assert logs == []


class TestProcessCancellation:
    """Cancellation reaches the processor and propagates; it never becomes an Error."""

    @pytest.mark.parametrize("timeout", [None, 5.0])
    async def test_propagates(self, autojump_clock: trio.abc.Clock, timeout: float | None) -> None:
        cancelled: list[float] = []

        async def slow(payload: Payload[Any], ctx: Context) -> Result[Any]:
            try:
                await trio.sleep(10)
            except trio.Cancelled:
                cancelled.append(trio.current_time())
                raise
            return Ok(None)  # pragma: no cover

        start = trio.current_time()
        returned: list[Result[Any]] = []
        with structlog.testing.capture_logs() as logs, trio.move_on_after(1) as scope:
            returned.append(await Collector("slow", slow, timeout=timeout).process(Payload(1)))
        assert scope.cancelled_caught
        assert returned == []
        assert cancelled == [start + 1]
        assert logs == []

    async def test_outer_cancel_at_the_timeout_wins(self, autojump_clock: trio.abc.Clock) -> None:
        returned: list[Result[Any]] = []
        with trio.move_on_after(2) as scope:
            returned.append(await Collector("slow", sleeper(5), timeout=2).process(Payload(1)))
        assert scope.cancelled_caught
        assert returned == []


class TestLifecycleSlip:
    """Passing lifecycle(ctx) instead of lifecycle is caught at construction."""

    def test_built_context_manager_refused(self) -> None:
        @contextlib.asynccontextmanager
        async def lifecycle(ctx: Context) -> AsyncIterator[None]:
            yield  # pragma: no cover

        with pytest.raises(TypeError, match=r"pass lifecycle, not lifecycle\(ctx\)"):
            Collector("a", echo, lifecycle=lifecycle(Context()))  # type: ignore[arg-type]  # the slip
        assert Collector("a", echo, lifecycle=lifecycle).lifecycle is lifecycle
