"""
Priority and LIFO channels: trio memory channel semantics, plus their own ordering.
"""

from __future__ import annotations

import enum
import math
import signal
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from event_collector._channels import EMPTY, QueueChannel, fifo_state, priority_state
from event_collector.channels import (
    OrderedReceiveChannel,
    OrderedSendChannel,
    open_lifo_channel,
    open_priority_channel,
)

Opener = Callable[[float], tuple[OrderedSendChannel[Any], OrderedReceiveChannel[Any]]]


def lifo(size: float) -> tuple[OrderedSendChannel[Any], OrderedReceiveChannel[Any]]:
    return open_lifo_channel[Any](size)


def priority(size: float) -> tuple[OrderedSendChannel[Any], OrderedReceiveChannel[Any]]:
    return open_priority_channel[Any](size)


both = pytest.mark.parametrize("opener", [lifo, priority], ids=["lifo", "priority"])


class TestOrder:
    """Each discipline releases buffered items in its own order."""

    def test_priority_lowest_first_and_stable(self) -> None:
        send, receive = open_priority_channel[tuple[int, str]](math.inf)
        for item in [(5, "a"), (1, "b"), (5, "c"), (0, "d"), (1, "e")]:
            send.send_nowait(item)
        got = [receive.receive_nowait() for _ in range(5)]
        assert got == [(0, "d"), (1, "b"), (1, "e"), (5, "a"), (5, "c")]

    def test_priority_never_compares_items(self) -> None:
        class Opaque:
            def __lt__(self, other: object) -> bool:
                raise AssertionError("compared")

        send, receive = open_priority_channel[tuple[int, Opaque]](math.inf)
        items = [(1, Opaque()), (1, Opaque()), (0, Opaque())]
        for item in items:
            send.send_nowait(item)
        assert [receive.receive_nowait() for _ in range(3)] == [items[2], items[0], items[1]]

    def test_priority_key(self) -> None:
        send, receive = open_priority_channel[dict[str, int]](math.inf, key=lambda d: d["p"])
        for p in (3, 1, 2):
            send.send_nowait({"p": p})
        assert [receive.receive_nowait()["p"] for _ in range(3)] == [1, 2, 3]

    @pytest.mark.parametrize("bad", ["high", 1.5, True, None])
    async def test_bad_priority_inserts_nothing(self, bad: object) -> None:
        send, receive = open_priority_channel[Any](1, key=lambda item: item)
        with pytest.raises(TypeError, match="priority must be an int"):
            send.send_nowait(bad)
        with pytest.raises(TypeError, match="priority must be an int"):
            await send.send(bad)
        assert receive.statistics().current_buffer_used == 0

    async def test_bad_priority_is_refused_on_hand_off_too(self) -> None:
        send, receive = open_priority_channel[Any](0, key=lambda item: item)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive.receive)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(TypeError):
                send.send_nowait("not an int")
            assert receive.statistics().tasks_waiting_receive == 1
            send.send_nowait(7)

    def test_lifo(self) -> None:
        send, receive = open_lifo_channel[int](math.inf)
        for i in range(4):
            send.send_nowait(i)
        assert [receive.receive_nowait() for _ in range(4)] == [3, 2, 1, 0]


class TestLikeTrio:
    """Everything else behaves as trio's memory channels do."""

    @both
    async def test_backpressure(self, opener: Opener, autojump_clock: trio.abc.Clock) -> None:
        send, receive = opener(1)
        send.send_nowait((0, "a"))
        with pytest.raises(trio.WouldBlock):
            send.send_nowait((0, "b"))

        got: list[object] = []

        async def later() -> None:
            await trio.sleep(1)
            got.append(await receive.receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            await send.send((0, "b"))  # waits for room
            assert trio.current_time() == 1
        got.append(receive.receive_nowait())
        # The blocked item is admitted before the pop: LIFO hands out the newest first.
        assert got == ([(0, "b"), (0, "a")] if opener is lifo else [(0, "a"), (0, "b")])

    @both
    async def test_rendezvous_and_blocked_sender_order(self, opener: Opener) -> None:
        send, receive = opener(0)
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(send.send, (0, i))
                await trio.testing.wait_all_tasks_blocked()
            assert send.statistics().tasks_waiting_send == 3
            # With no buffer, each receive admits the longest-blocked sender.
            assert [await receive.receive() for _ in range(3)] == [(0, 0), (0, 1), (0, 2)]

    @both
    async def test_waiting_receiver_gets_item_directly(self, opener: Opener) -> None:
        send, receive = opener(0)
        got: list[object] = []

        async def receiver() -> None:
            got.append(await receive.receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            send.send_nowait((0, "x"))
        assert got == [(0, "x")]

    @both
    async def test_end_of_channel(self, opener: Opener) -> None:
        send, receive = opener(5)
        send.send_nowait((0, 1))
        clone = send.clone()
        send.close()
        assert receive.receive_nowait() == (0, 1)
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()  # a clone is still open
        clone.close()
        with pytest.raises(trio.EndOfChannel):
            receive.receive_nowait()
        with pytest.raises(trio.EndOfChannel):
            await receive.receive()

    @both
    async def test_waiting_receivers_see_end_of_channel(self, opener: Opener) -> None:
        send, receive = opener(5)
        outcomes: list[str] = []

        async def receiver() -> None:
            try:
                await receive.receive()
            except trio.EndOfChannel:
                outcomes.append("end")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            await send.aclose()
        assert outcomes == ["end"]

    @both
    async def test_closed_ends(self, opener: Opener) -> None:
        send, receive = opener(5)
        with send:
            pass
        with pytest.raises(trio.ClosedResourceError):
            send.send_nowait((0, 1))
        with pytest.raises(trio.ClosedResourceError):
            await send.send((0, 1))
        with pytest.raises(trio.ClosedResourceError):
            send.clone()
        send.close()  # again: nothing happens
        receive.close()
        with pytest.raises(trio.ClosedResourceError):
            receive.receive_nowait()
        with pytest.raises(trio.ClosedResourceError):
            await receive.receive()
        with pytest.raises(trio.ClosedResourceError):
            receive.clone()

    @both
    async def test_closing_wakes_blocked_tasks_on_that_end(self, opener: Opener) -> None:
        send, receive = opener(0)
        outcomes: list[str] = []

        async def blocked_send() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await send.send((0, 1))
            outcomes.append("send closed")

        async def blocked_receive() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await receive.receive()
            outcomes.append("receive closed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_send)
            await trio.testing.wait_all_tasks_blocked()
            send.close()
        send2, receive2 = opener(0)
        receive = receive2
        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_receive)
            await trio.testing.wait_all_tasks_blocked()
            receive2.close()
        assert outcomes == ["send closed", "receive closed"]
        send2.close()

    @both
    async def test_broken_when_every_receiver_closed(self, opener: Opener) -> None:
        send, receive = opener(0)
        outcomes: list[str] = []

        async def blocked_send() -> None:
            with pytest.raises(trio.BrokenResourceError):
                await send.send((0, 1))
            outcomes.append("broken")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_send)
            await trio.testing.wait_all_tasks_blocked()
            await receive.aclose()
        assert outcomes == ["broken"]
        with pytest.raises(trio.BrokenResourceError):
            send.send_nowait((0, 2))

    @both
    def test_closing_last_receiver_empties_the_buffer(self, opener: Opener) -> None:
        send, receive = opener(5)
        send.send_nowait((0, 1))
        receive.close()
        assert send.statistics().current_buffer_used == 0

    @both
    def test_statistics(self, opener: Opener) -> None:
        send, receive = opener(4)
        send2 = send.clone()
        send.send_nowait((0, 1))
        send.send_nowait((0, 2))
        receive.receive_nowait()
        stats = receive.statistics()
        assert stats == send2.statistics()
        assert stats.current_buffer_used == 1
        assert stats.max_buffer_size == 4
        assert stats.open_send_channels == 2
        assert stats.open_receive_channels == 1
        assert stats.tasks_waiting_send == 0
        assert stats.tasks_waiting_receive == 0
        assert stats.peak_buffer_used == 2

    @both
    async def test_async_for(self, opener: Opener) -> None:
        send, receive = opener(10)
        for i in range(3):
            await send.send((0, i))
        await send.aclose()
        got = [item async for item in receive]
        assert sorted(got) == [(0, 0), (0, 1), (0, 2)]

    @both
    async def test_every_async_method_checkpoints(self, opener: Opener) -> None:
        send, receive = opener(1)
        with trio.testing.assert_checkpoints():
            await send.send((0, 1))  # fast path
        with trio.testing.assert_checkpoints():
            await receive.receive()  # fast path
        with trio.testing.assert_checkpoints():
            await send.aclose()
        with trio.testing.assert_checkpoints():
            await receive.aclose()

    @both
    async def test_cancelled_receive_loses_nothing(
        self, opener: Opener, autojump_clock: trio.abc.Clock
    ) -> None:
        send, receive = opener(1)
        with trio.move_on_after(1):
            await receive.receive()
        assert receive.statistics().tasks_waiting_receive == 0
        send.send_nowait((0, "kept"))
        assert receive.receive_nowait() == (0, "kept")

    @both
    async def test_cancelled_send_inserts_nothing(
        self, opener: Opener, autojump_clock: trio.abc.Clock
    ) -> None:
        send, receive = opener(1)
        send.send_nowait((0, "first"))
        with trio.move_on_after(1):
            await send.send((0, "never"))
        assert send.statistics().tasks_waiting_send == 0
        assert receive.receive_nowait() == (0, "first")
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()

    @both
    def test_repr(self, opener: Opener) -> None:
        send, receive = opener(1)
        assert "send channel" in repr(send)
        assert "receive channel" in repr(receive)

    @pytest.mark.parametrize("opener", [open_lifo_channel, open_priority_channel])
    def test_bad_sizes(self, opener: Callable[[Any], object]) -> None:
        with pytest.raises(TypeError, match="max_buffer_size"):
            opener(1.5)
        with pytest.raises(ValueError, match="max_buffer_size"):
            opener(-1)


class Level(enum.IntEnum):
    HIGH = 0
    LOW = 5


class TestPriorities:
    """Priorities are ints, IntEnum members included, and each item's is computed once."""

    def test_int_enum_priorities(self) -> None:
        send, receive = open_priority_channel[tuple[Level, str]](math.inf)
        send.send_nowait((Level.LOW, "a"))
        send.send_nowait((Level.HIGH, "b"))
        send.send_nowait((1, "c"))  # type: ignore[arg-type]  # plain ints mix with members
        assert [receive.receive_nowait()[1] for _ in range(3)] == ["b", "c", "a"]

    async def test_key_computed_once_per_item(self) -> None:
        calls: list[str] = []

        def key(item: str) -> int:
            calls.append(item)
            return 0

        send, receive = open_priority_channel[str](1, key=key)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive.receive)  # the first send is handed over
            await trio.testing.wait_all_tasks_blocked()
            send.send_nowait("handed")
            await trio.testing.wait_all_tasks_blocked()
            send.send_nowait("buffered")
            nursery.start_soon(send.send, "blocked")  # waits for room
            await trio.testing.wait_all_tasks_blocked()
            assert receive.receive_nowait() == "buffered"  # moves "blocked" in
            assert receive.receive_nowait() == "blocked"
        assert calls == ["handed", "buffered", "blocked"]


class TestPeak:
    """peak_buffer_used counts the buffer only, as trio's memory channel does."""

    @staticmethod
    async def blocked_sender_then_two_receives(send: Any, receive: Any, size: int) -> None:
        for i in range(size):
            send.send_nowait((0, i))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send.send, (0, size))
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(size + 1):
                await receive.receive()

    @pytest.mark.parametrize("size", [0, 2])
    @pytest.mark.parametrize("opener", [lifo, priority], ids=["lifo", "priority"])
    async def test_same_as_trio(self, opener: Opener, size: int) -> None:
        ours = opener(size)
        theirs = trio.open_memory_channel[Any](size)
        for send, receive in (ours, theirs):
            await self.blocked_sender_then_two_receives(send, receive, size)
        assert ours[0].statistics().peak_buffer_used == size
        if hasattr(theirs[0].statistics(), "peak_buffer_used"):  # trio >= 0.35
            assert theirs[0].statistics().peak_buffer_used == size


class TestKeyboardInterrupt:
    """A Ctrl-C never lands inside a hand-over: the item arrives, then the interrupt."""

    def test_key_runs_protected(self) -> None:
        protected: list[bool] = []

        def key(item: int) -> int:
            protected.append(trio.lowlevel.currently_ki_protected())
            return item

        async def main() -> None:
            send, receive = open_priority_channel[int](1, key=key)
            send.send_nowait(1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send.send, 2)
                await trio.testing.wait_all_tasks_blocked()
                receive.receive_nowait()
                receive.receive_nowait()

        trio.run(main)
        assert protected == [True, True]

    @pytest.mark.parametrize("opener", [lifo, priority], ids=["lifo", "priority"])
    def test_interrupt_during_a_hand_off(
        self, opener: Opener, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SIGINT as the sender reschedules the waiting receiver: the item still arrives."""
        received: list[object] = []
        reschedule = trio.lowlevel.reschedule
        armed = [False]

        def interrupted(task: trio.lowlevel.Task, *args: Any) -> None:
            if armed[0]:
                armed[0] = False
                signal.raise_signal(signal.SIGINT)  # the handler runs here, mid-hand-off
            reschedule(task, *args)

        async def main() -> None:
            send, receive = opener(0)

            async def receiver() -> None:
                received.append(await receive.receive())

            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receiver)
                    await trio.testing.wait_all_tasks_blocked()
                    monkeypatch.setattr(trio.lowlevel, "reschedule", interrupted)
                    armed[0] = True
                    send.send_nowait((0, "item"))
                    await trio.sleep_forever()

        with pytest.raises(BaseException) as info:  # noqa: PT011  (checked just below)
            trio.run(main)
        assert (
            info.group_contains(KeyboardInterrupt)
            if isinstance(info.value, BaseExceptionGroup)
            else isinstance(info.value, KeyboardInterrupt)
        )
        assert received == [(0, "item")]


class TestQueueChannel:
    """The queue's own channel says whether a send woke a receiver, and who is parked."""

    async def test_one_receiver_woken_at_a_time(self) -> None:
        channel: QueueChannel[int] = fifo_state(math.inf, QueueChannel)
        got: dict[str, list[int]] = {"a": [], "b": []}

        async def consume(name: str) -> None:
            while True:
                item = channel.receive_nowait()
                got[name].append(item if item is not EMPTY else await channel.park())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, "a")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(consume, "b")
            await trio.testing.wait_all_tasks_blocked()
            assert channel.parked == 2
            parked = channel.parked_receivers()
            assert channel.send_nowait(1) is True  # woke the longest-waiting receiver
            assert channel.parked_receivers() == parked[:1]  # the newest is left
            assert channel.send_nowait(2) is False  # one is on its way: buffered for it
            assert channel.send_nowait(3) is False
            assert (channel.queued, channel.parked, channel.sent) == (2, 1, 3)
            await trio.testing.wait_all_tasks_blocked()
            # a woke with 1 to a backlog: it handed 2 to b, the next in line, and took 3
            assert got == {"a": [1, 3], "b": [2]}
            assert channel.parked == 2
            nursery.cancel_scope.cancel()

    async def test_a_lone_item_wakes_one_receiver(self) -> None:
        channel: QueueChannel[int] = fifo_state(math.inf, QueueChannel)
        got: list[int] = []

        async def consume() -> None:
            while True:
                item = channel.receive_nowait()
                got.append(item if item is not EMPTY else await channel.park())

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            for value in range(4):
                channel.send_nowait(value)
                await trio.testing.wait_all_tasks_blocked()
                assert channel.parked == 3  # done, and back: nobody else was disturbed
            nursery.cancel_scope.cancel()
        assert got == [0, 1, 2, 3]

    async def test_drain_returns_what_is_left_in_order(self) -> None:
        channel: QueueChannel[tuple[int, str]] = priority_state(
            math.inf, lambda item: item[0], QueueChannel
        )
        for item in [(2, "a"), (1, "b"), (2, "c")]:
            channel.send_nowait(item)
        assert channel.drain() == [(1, "b"), (2, "a"), (2, "c")]
        assert channel.drain() == []
        with pytest.raises(trio.ClosedResourceError):
            channel.send_nowait((0, "late"))


class ChannelModel(RuleBasedStateMachine):
    """
    A channel next to a plain model: a stable sort by priority, or a stack.

    Blocking operations run in a short trio.run each and are cancelled before they
    complete, to check that cancellation loses and inserts nothing.
    """

    discipline = "priority"

    def __init__(self) -> None:
        super().__init__()
        self.size = 3
        if self.discipline == "priority":
            self.send, self.receive = open_priority_channel[tuple[int, int]](self.size)
        else:
            self.send, self.receive = open_lifo_channel[tuple[int, int]](self.size)
        self.model: list[tuple[int, int]] = []
        self.counter = 0
        self.peak = 0

    def expected_next(self) -> tuple[int, int]:
        if self.discipline == "priority":
            return min(self.model, key=lambda item: item[0])  # first of the lowest: stable
        return self.model[-1]

    @rule(priority=st.integers(0, 3))
    def send_nowait(self, priority: int) -> None:
        item = (priority, self.counter)
        self.counter += 1
        if len(self.model) < self.size:
            self.send.send_nowait(item)
            self.model.append(item)
            self.peak = max(self.peak, len(self.model))
        else:
            with pytest.raises(trio.WouldBlock):
                self.send.send_nowait(item)

    @precondition(lambda self: self.model)
    @rule()
    def receive_nowait(self) -> None:
        expected = self.expected_next()
        assert self.receive.receive_nowait() == expected
        self.model.remove(expected)

    @precondition(lambda self: not self.model)
    @rule()
    def receive_empty(self) -> None:
        with pytest.raises(trio.WouldBlock):
            self.receive.receive_nowait()

    @precondition(lambda self: not self.model)
    @rule()
    def cancelled_receive(self) -> None:
        async def attempt() -> None:
            with trio.CancelScope() as scope:
                scope.deadline = trio.current_time() + 1
                await self.receive.receive()
            assert scope.cancelled_caught

        trio.run(attempt, clock=trio.testing.MockClock(autojump_threshold=0))

    @precondition(lambda self: len(self.model) == self.size)
    @rule(priority=st.integers(0, 3))
    def cancelled_send(self, priority: int) -> None:
        async def attempt() -> None:
            with trio.CancelScope() as scope:
                scope.deadline = trio.current_time() + 1
                await self.send.send((priority, -1))
            assert scope.cancelled_caught

        trio.run(attempt, clock=trio.testing.MockClock(autojump_threshold=0))

    @invariant()
    def sizes_agree(self) -> None:
        stats = self.send.statistics()
        assert stats.current_buffer_used == len(self.model)
        assert stats.tasks_waiting_send == stats.tasks_waiting_receive == 0
        assert stats.peak_buffer_used == self.peak <= self.size


class PriorityChannelModel(ChannelModel):
    discipline = "priority"


class LifoChannelModel(ChannelModel):
    discipline = "lifo"


TestPriorityModel = PriorityChannelModel.TestCase
TestLifoModel = LifoChannelModel.TestCase
TestPriorityModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLifoModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
