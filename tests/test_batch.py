"""
The batch API (send_many, as_completed) and the rules that decide when sending yields.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector import Collector, CollectorEvent, Context, Ok, Payload, QueueType, Result
from event_collector.queue import SCHEDULE_EVERY, SCHEDULE_SLICE, SEND_PAUSE, YIELD_AFTER

from .conftest import echo, fixed, schedule_points, sleeper


def values(events: list[CollectorEvent[Any]]) -> list[Any]:
    results = []
    for event in events:
        result = event.get_result()
        assert result is not None, f"{event} is not done"
        results.append(result.first().unwrap())
    return results


class TestWhenSendYields:
    """A woken consumer waits for the sender at most YIELD_AFTER; a busy one SCHEDULE_SLICE."""

    async def test_a_woken_consumer_waits_at_most_yield_after(
        self, mock_clock: trio.testing.MockClock
    ) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            publisher = queue.get_publisher()
            await trio.testing.wait_all_tasks_blocked()
            with schedule_points() as points:
                await publisher.send(0)  # the first send after a pause: yields at once
            assert points.count == 1
            await trio.testing.wait_all_tasks_blocked()
            with schedule_points() as points:
                first = await publisher.send(1)  # wakes the consumer; sends just yielded
                second = await publisher.send(2)  # behind it
            assert points.count == 0
            assert not first.done
            mock_clock.jump(YIELD_AFTER)  # the consumer has waited that long
            with schedule_points() as points:
                third = await publisher.send(3)
            assert points.count == 1
            await trio.testing.wait_all_tasks_blocked()
            assert values([first, second, third]) == [1, 2, 3]

    async def test_a_send_after_a_pause_yields_to_the_consumer_it_wakes(
        self, mock_clock: trio.testing.MockClock
    ) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            publisher = queue.get_publisher()
            await (await publisher.send(0)).wait()
            await trio.testing.wait_all_tasks_blocked()
            for pause, yields in ((0.0, 0), (SEND_PAUSE / 2, 0), (SEND_PAUSE, 1)):
                await trio.testing.wait_all_tasks_blocked()  # the consumer is parked
                mock_clock.jump(pause)  # the task did something else for that long
                with schedule_points() as points:
                    await publisher.send(1)  # wakes the consumer
                assert points.count == yields, pause

    async def test_a_consumer_yields_after_schedule_slice(
        self, mock_clock: trio.testing.MockClock
    ) -> None:
        consumers: list[trio.lowlevel.Task] = []

        async def busy(payload: Payload[int], ctx: Context) -> Result[int]:
            consumers.append(trio.lowlevel.current_task())
            mock_clock.jump(SCHEDULE_SLICE / 2)  # works that long without a checkpoint
            return Ok(payload.value)

        async with fixed([Collector("a", busy)]) as queue:
            publisher = queue.get_publisher()
            await (await publisher.send(0)).wait()
            consumer = consumers[0]
            with schedule_points(consumer) as points:
                events = [publisher.send_nowait(i) for i in range(1, 9)]
                await trio.testing.wait_all_tasks_blocked()
            # Woken for event 1, then a yield every two events (a slice), the last pair
            # followed by parking, not yielding: far fewer than SCHEDULE_EVERY in a row.
            assert points.count == 4
            assert values(events) == list(range(1, 9))
        assert set(consumers) == {consumer}


class TestSendMany:
    """send_many queues a batch in order, waits for room, and yields once."""

    async def test_results_in_order(self) -> None:
        async with fixed([Collector("a", echo)], consumers=4) as queue:
            events = await queue.get_publisher().send_many([Payload(1), 2, Payload(3)])
            assert [(await e.wait()).first() for e in events] == [Ok(1), Ok(2), Ok(3)]

    async def test_waits_for_room(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(1))], max_queue_size=2) as queue:
            events = await queue.get_publisher().send_many(range(5))
            # One in service, two queued: the last two waited for a consumer to take one.
            assert trio.current_time() == 2
            assert [(await e.wait()).first() for e in events] == [Ok(i) for i in range(5)]

    async def test_a_batch_wakes_and_yields_once(self) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            await trio.testing.wait_all_tasks_blocked()
            with schedule_points() as points:
                events = await queue.get_publisher().send_many(range(3 * SCHEDULE_EVERY))
            assert points.count == 1
            await trio.testing.wait_all_tasks_blocked()
            assert values(events) == list(range(3 * SCHEDULE_EVERY))

    async def test_cancelled_while_waiting_for_room(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(1))], max_queue_size=1) as queue:
            with trio.move_on_after(0.5) as scope:
                await queue.get_publisher().send_many(range(5))
            assert scope.cancelled_caught
            stats = queue.statistics()
            assert (stats.sent, stats.queued) == (2, 1)  # the ones before the wait stay
        assert queue.statistics().completed == 2

    async def test_after_shutdown(self) -> None:
        queue = fixed([Collector("a", echo)])
        async with queue:
            await queue.shut_down_queue()
            with pytest.raises(trio.ClosedResourceError, match="shut"):
                await queue.get_publisher().send_many([1])


class TestAsCompleted:
    """as_completed sends lazily within a window and gives each event as it completes."""

    async def test_completion_order(self, autojump_clock: trio.abc.Clock) -> None:
        async def wait_value(payload: Payload[float], ctx: Context) -> Result[float]:
            await trio.sleep(payload.value)
            return Ok(payload.value)

        async with fixed([Collector("a", wait_value)], consumers=3) as queue:
            got = [
                event.payload.value async for event in queue.get_publisher().as_completed([3, 1, 2])
            ]
            assert got == [1, 2, 3]
            assert trio.current_time() == 3

    async def test_window_bounds_what_is_in_flight(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(1))], consumers=10) as queue:
            in_flight = []
            async for _ in queue.get_publisher().as_completed(range(20), window=4):
                stats = queue.statistics()
                in_flight.append(stats.sent - stats.completed)
            assert max(in_flight) <= 4
            assert len(in_flight) == 20
            assert trio.current_time() == 5  # four at a time

    async def test_an_endless_iterable(self) -> None:
        def forever() -> Any:
            n = 0
            while True:
                yield n
                n += 1

        async with fixed([Collector("a", echo)], consumers=2) as queue:
            seen = []
            async for event in queue.get_publisher().as_completed(forever(), window=8):
                seen.append(event.payload.value)
                if len(seen) == 100:
                    break
            assert len(set(seen)) == 100
            await trio.testing.wait_all_tasks_blocked()
            stats = queue.statistics()
            assert stats.sent == stats.completed <= 100 + 8

    async def test_full_queue_of_others(self, autojump_clock: trio.abc.Clock) -> None:
        async with fixed([Collector("a", sleeper(1))], max_queue_size=1) as queue:
            publisher = queue.get_publisher()
            others = [await publisher.send("x"), await publisher.send("y")]  # busy, full
            got = [e.payload.value async for e in publisher.as_completed(["a", "b"])]
            assert got == ["a", "b"]
            assert all(e.done for e in others)
            assert trio.current_time() == 4

    async def test_stop_midway_gives_what_was_sent_first(self) -> None:
        gate = trio.Event()

        async def gated(payload: Payload[int], ctx: Context) -> Result[int]:
            await gate.wait()
            return Ok(payload.value)

        queue = fixed([Collector("a", gated)], consumers=2, max_queue_size=2)
        got: list[Any] = []
        async with queue:
            completions = queue.get_publisher().as_completed(range(10))
            async with trio.open_nursery() as nursery:

                async def stop() -> None:
                    await trio.testing.wait_all_tasks_blocked()
                    nursery.start_soon(queue.shut_down_queue)
                    await trio.testing.wait_all_tasks_blocked()
                    gate.set()

                nursery.start_soon(stop)
                with pytest.raises(trio.ClosedResourceError, match="shut"):
                    async for event in completions:
                        got.append((event.payload.value, event.get_result()))
        # What was sent before the queue stopped (in service or queued) got its result.
        sent = queue.statistics().sent
        assert sent >= 3
        assert sorted(value for value, _ in got) == list(range(sent))
        assert all(result is not None for _, result in got)

    @pytest.mark.parametrize("queue_type", list(QueueType))
    async def test_every_queue_type(self, queue_type: QueueType) -> None:
        gate = trio.Event()

        async def gated(payload: Payload[int], ctx: Context) -> Result[int]:
            await gate.wait()
            return Ok(payload.value)

        payloads = [Payload(i, priority=-i) for i in range(6)]
        async with fixed([Collector("a", gated)], queue_type=queue_type) as queue:
            completions = queue.get_publisher().as_completed(payloads)

            async def open_gate() -> None:
                await trio.testing.wait_all_tasks_blocked()  # all six sent
                gate.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(open_gate)
                got = [event.payload.value async for event in completions]
        # One consumer: the first in service at once, the other five in the queue's order.
        rest = {
            QueueType.FIFO: [1, 2, 3, 4, 5],
            QueueType.LIFO: [5, 4, 3, 2, 1],
            QueueType.PRIORITY: [5, 4, 3, 2, 1],
        }[queue_type]
        assert got == [0, *rest]

    async def test_a_failing_iterable(self) -> None:
        def payloads() -> Any:
            yield from range(5)
            raise ValueError("bad input")

        async with fixed([Collector("a", echo)]) as queue:
            got = []
            with pytest.raises(ValueError, match="bad input"):
                async for event in queue.get_publisher().as_completed(payloads(), window=3):
                    got.append(event.payload.value)
            await trio.testing.wait_all_tasks_blocked()
            stats = queue.statistics()
            # Everything sent before the failure was processed, nothing was lost or doubled;
            # two were handed over before the refill (at half the window) met the failure.
            assert stats.sent == stats.completed == 5
            assert got == [0, 1]

    @pytest.mark.parametrize("window", [0, -1, 1.5, "8"])
    async def test_bad_window(self, window: Any) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            with pytest.raises(ValueError, match="window must be a positive int"):
                queue.get_publisher().as_completed([1], window=window)
            assert queue.statistics().sent == 0

    async def test_each_step_is_a_cancel_point(self) -> None:
        async with fixed([Collector("a", echo)]) as queue:
            completions = queue.get_publisher().as_completed(range(3))
            with trio.CancelScope() as scope:
                scope.cancel()
                await completions.__anext__()
            assert scope.cancelled_caught
            assert queue.statistics().sent == 0
            assert [e.payload.value async for e in completions] == [0, 1, 2]


@settings(deadline=None)  # each example is a whole trio.run; the machine is shared
@given(
    st.lists(st.integers(0, 5), max_size=40),
    st.integers(1, 8),
    st.integers(1, 4),
    st.one_of(st.none(), st.integers(1, 6)),
)
def test_every_payload_completes_exactly_once(
    delays: list[int], window: int, consumers: int, room: int | None
) -> None:
    async def wait_value(payload: Payload[tuple[int, int]], ctx: Context) -> Result[int]:
        await trio.sleep(payload.value[1])
        return Ok(payload.value[0])

    async def main() -> list[int]:
        options: dict[str, Any] = {} if room is None else {"max_queue_size": room}
        async with fixed([Collector("a", wait_value)], consumers, **options) as queue:
            got = []
            payloads = list(enumerate(delays))
            async for event in queue.get_publisher().as_completed(payloads, window=window):
                result = event.get_result()
                assert result is not None
                got.append(result.first().unwrap())
                stats = queue.statistics()
                assert stats.sent - stats.completed <= window
            return got

    got = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert sorted(got) == list(range(len(delays)))


def test_the_batch_example_runs() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "batch.py"
    done = subprocess.run(
        [sys.executable, "-W", "error", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == ["[0, 1, 4, 9, 16]", str(sum(i * i for i in range(1000)))]


async def test_as_completed_reads_nothing_before_the_first_step() -> None:
    read: list[int] = []

    def payloads() -> Any:
        for i in range(3):
            read.append(i)
            yield i

    async with fixed([Collector("a", echo)]) as queue:
        completions = queue.get_publisher().as_completed(payloads())
        assert read == []
        assert sorted([e.payload.value async for e in completions]) == [0, 1, 2]
        assert read == [0, 1, 2]
