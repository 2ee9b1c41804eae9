"""
The shutdown contract under a plain trio.run as well as pytest-trio: the queue never cancels
the user's code, a processor may stop its own queue, a queue runs once, and a BaseException
from a processor comes out as itself with every event resolved.

pytest-trio's runner can swallow a stray ``trio.Cancelled`` that escapes a test, so the
contract is checked with ``trio.run`` directly too: there a stray Cancelled fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from event_collector import (
    Collector,
    CollectorEvent,
    CollectorQueue,
    Context,
    Error,
    Ok,
    Payload,
    Result,
    ShutdownError,
)

from .conftest import echo, fixed, sleeper


def run_on_mock_clock(main: Callable[[], Awaitable[None]]) -> None:
    """
    Run ``main`` under a plain ``trio.run`` on a MockClock that jumps when all tasks block.
    """
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def is_shutdown(result: object) -> bool:
    return isinstance(result, Error) and isinstance(result.error, ShutdownError)


class TestBodyIsNeverCancelled:
    """A graceful shutdown bounds the consumers only: the body and its siblings go on."""

    def test_shutdown_from_a_task_then_the_body_sleeps(self) -> None:
        """The repro from the issue: a shutdown deadline of 1 s, the body sleeping 5 s."""
        done: list[float] = []

        async def main() -> None:
            queue = CollectorQueue([Collector("a", sleeper(3))], consumer_shutdown_timeout=1)
            async with queue as q:
                event = await q.get_publisher().send(1)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(q.shut_down_queue)
                    await trio.sleep(5)
                done.append(trio.current_time())
                assert is_shutdown(event.get_result().first())  # type: ignore[union-attr]
                with pytest.raises(trio.ClosedResourceError, match="takes no more events"):
                    await q.get_publisher().send(2)
                await trio.sleep(1)
                done.append(trio.current_time())

        run_on_mock_clock(main)
        assert done == [5, 6]

    async def test_same_under_pytest_trio(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(3))], consumer_shutdown_timeout=1)
        async with queue:
            event = await queue.get_publisher().send(1)  # in service past the deadline
            async with trio.open_nursery() as nursery:
                nursery.start_soon(queue.shut_down_queue)
                await trio.sleep(5)
            assert trio.current_time() == 5
        assert trio.current_time() == 5  # nothing left to wait for
        assert is_shutdown((await event.wait()).first())

    def test_run_form_leaves_its_siblings_alone(self) -> None:
        """A processor slower than the timeout, then shut_down_queue(): run just returns."""
        log: list[tuple[str, float]] = []

        async def sibling() -> None:
            await trio.sleep(10)
            log.append(("sibling done", trio.current_time()))

        async def main() -> None:
            queue = CollectorQueue([Collector("a", sleeper(30))], consumer_shutdown_timeout=2)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sibling)
                await nursery.start(queue.run)
                event = await queue.get_publisher().send(1)
                await trio.sleep(1)
                await queue.shut_down_queue()
                log.append(("shut down", trio.current_time()))
                assert is_shutdown((await event.wait()).first())

        run_on_mock_clock(main)
        assert log == [("shut down", 3), ("sibling done", 10)]

    def test_shutdown_before_the_body_ends_then_a_clean_exit(self) -> None:
        async def main() -> None:
            async with fixed([Collector("a", echo)], consumers=2) as queue:
                results = [await queue.get_publisher().send(i) for i in range(3)]
                await queue.shut_down_queue()
                assert [r.get_result() for r in results] == [(await r.wait()) for r in results]
                await trio.sleep(1)

        run_on_mock_clock(main)


class TestShutdownFromAProcessor:
    """A processor may call shut_down_queue(): it starts the shutdown and does not wait."""

    async def test_the_event_gets_the_processor_result(
        self, autojump_clock: trio.abc.Clock
    ) -> None:
        queue: CollectorQueue[str]
        seen: list[object] = []

        async def stop(payload: Payload[Any], ctx: Context) -> Result[str]:
            await queue.shut_down_queue()
            return Ok("stopped")

        queue = fixed([Collector("a", stop)], consumer_shutdown_timeout=30)
        async with queue:
            event = await queue.get_publisher().send(1)
            seen.append((await event.wait()).first())
            seen.append(trio.current_time())
            seen.append(queue.statistics().closed)
        # Checked out here: a body cancelled by the queue would skip the appends silently.
        assert seen == [Ok("stopped"), 0, True]  # no wait for the timeout

    def test_under_plain_trio_run(self) -> None:
        seen: list[object] = []

        async def main() -> None:
            queue: CollectorQueue[str]

            async def stop(payload: Payload[Any], ctx: Context) -> Result[str]:
                async with trio.open_nursery() as nursery:  # from a task it started, too
                    nursery.start_soon(queue.shut_down_queue)
                return Ok("stopped")

            queue = fixed([Collector("a", stop)], consumer_shutdown_timeout=30)
            async with queue:
                event = await queue.get_publisher().send(1)
                seen.append((await event.wait()).first())
            seen.append(trio.current_time())

        run_on_mock_clock(main)
        assert seen == [Ok("stopped"), 0]

    async def test_other_events_still_drain(self, autojump_clock: trio.abc.Clock) -> None:
        queue: CollectorQueue[int]

        async def maybe_stop(payload: Payload[int], ctx: Context) -> Result[int]:
            await trio.sleep(1)
            if payload.value == 0:
                await queue.shut_down_queue()
            return Ok(payload.value)

        queue = fixed([Collector("a", maybe_stop)], consumers=2)
        async with queue:
            events = [await queue.get_publisher().send(i) for i in range(4)]
        assert [e.get_result().first() for e in events] == [Ok(i) for i in range(4)]  # type: ignore[union-attr]
        assert trio.current_time() == 2

    async def test_another_queue_waits_as_usual(self, autojump_clock: trio.abc.Clock) -> None:
        """Called from a processor of queue A, B's shut_down_queue waits for B's consumers."""
        inner = fixed([Collector("b", sleeper(2))])
        seen: list[object] = []

        async def stop_inner(payload: Payload[Any], ctx: Context) -> Result[float]:
            await inner.shut_down_queue()
            return Ok(trio.current_time())

        async with inner, fixed([Collector("a", stop_inner)]) as outer:
            await inner.get_publisher().send(1)
            event = await outer.get_publisher().send(1)
            seen.append((await event.wait()).first())
        assert seen == [Ok(2.0)]


class TestRunsOnce:
    """A second entry of a running queue is refused, and the running queue goes on."""

    async def test_nested_async_with(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(1))])
        seen: list[object] = []
        async with queue:
            event = await queue.get_publisher().send(1)
            with pytest.raises(RuntimeError, match="a queue runs once"):
                async with queue:
                    pass  # pragma: no cover
            seen.append((await event.wait()).first())
            seen.append((await (await queue.get_publisher().send(2)).wait()).first())
        assert seen == [Ok(1), Ok(2)]
        assert queue.consumer_count() == 0

    def test_from_a_second_task_under_plain_trio_run(self) -> None:
        async def main() -> None:
            queue = fixed([Collector("a", sleeper(1))])
            errors: list[str] = []

            async def enter_again() -> None:
                try:
                    async with queue:
                        pass  # pragma: no cover
                except RuntimeError as exc:
                    errors.append(str(exc))
                try:
                    await queue.run()
                except RuntimeError as exc:
                    errors.append(str(exc))

            async with queue:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(enter_again)
                event = await queue.get_publisher().send(1)
                assert (await event.wait()).first() == Ok(1)
            assert len(errors) == 2
            assert all("a queue runs once" in error for error in errors)

        run_on_mock_clock(main)

    async def test_run_after_async_with(self) -> None:
        queue = fixed([Collector("a", echo)])
        async with queue:
            pass
        async with trio.open_nursery() as nursery:
            with pytest.raises(RuntimeError, match="a queue runs once"):
                await nursery.start(queue.run)


class _Fatal(BaseException):
    """A BaseException that is not KeyboardInterrupt or SystemExit."""


class TestBaseExceptionFromAProcessor:
    """KeyboardInterrupt, SystemExit or another BaseException comes out as itself."""

    @pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, _Fatal])
    def test_propagates_as_itself_with_every_event_resolved(
        self, kind: type[BaseException]
    ) -> None:
        events: list[CollectorEvent[Any]] = []
        body: list[float] = []

        async def explode(payload: Payload[int], ctx: Context) -> Result[int]:
            await trio.sleep(1)
            if payload.value == 0:
                raise kind
            await trio.sleep(5)
            return Ok(payload.value)  # pragma: no cover

        async def main() -> None:
            async with fixed([Collector("a", explode)], consumers=2) as queue:
                publisher = queue.get_publisher()
                events.extend([await publisher.send(i) for i in range(5)])
                try:
                    await trio.sleep(100)
                finally:
                    body.append(trio.current_time())

        with pytest.raises(kind) as info:
            run_on_mock_clock(main)
        assert type(info.value) is kind  # not inside an exception group
        assert body == [1]  # the body was cancelled at once
        assert all(event.done for event in events)
        assert all(is_shutdown(event.get_result().first()) for event in events)  # type: ignore[union-attr]

    def test_sys_exit_in_a_processor_sets_the_exit_status(self, tmp_path: Any) -> None:
        script = tmp_path / "exit3.py"
        script.write_text(
            textwrap.dedent(
                """
                import sys
                import trio
                from event_collector import Collector, CollectorQueue

                async def bye(payload, ctx):
                    sys.exit(3)

                async def main():
                    async with CollectorQueue([Collector("a", bye)], logging=False) as queue:
                        await queue.get_publisher().send(1)
                        await trio.sleep(10)

                trio.run(main)
                """
            )
        )
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 3, done.stderr


class TestProcessorFailingWhileCancelled:
    """A processor whose own tasks fail as shutdown cancels them: that is its Error."""

    def test_is_the_event_result_and_nothing_escapes(self) -> None:
        results: list[Result[Any]] = []

        async def child() -> None:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                raise ValueError("failed on the way out") from None

        async def with_a_nursery(payload: Payload[Any], ctx: Context) -> Result[Any]:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)
                await trio.sleep_forever()

        async def main() -> None:
            queue = fixed([Collector("a", with_a_nursery)], consumer_shutdown_timeout=1)
            async with queue:
                event = await queue.get_publisher().send(1)
            results.append((await event.wait()).first())
            assert trio.current_time() == 1

        run_on_mock_clock(main)
        [result] = results
        assert isinstance(result, Error)
        assert isinstance(result.error, ExceptionGroup)
        assert [str(e) for e in result.error.exceptions] == ["failed on the way out"]


class TestPortingFromAsyncio:
    """The asyncio library's init_queue() has a Trio form and a clear error."""

    async def test_init_queue_takes_a_nursery(self, autojump_clock: trio.abc.Clock) -> None:
        queue = fixed([Collector("a", sleeper(1))])
        async with trio.open_nursery() as nursery:
            await queue.init_queue(nursery)
            event = await queue.get_publisher().send(1)
            assert (await event.wait()).first() == Ok(1)
            await queue.shut_down_queue()

    async def test_init_queue_without_a_nursery_says_what_to_write(self) -> None:
        queue = fixed([Collector("a", echo)])
        with pytest.raises(TypeError, match=r"nursery\.start\(queue\.run\)"):
            await queue.init_queue()
        async with queue:  # nothing was started
            pass
