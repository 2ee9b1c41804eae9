"""
Memory channels with a FIFO, LIFO or priority buffer, behaving like trio's memory channels.

One :class:`_State` per channel owns the buffer and the sets of blocked tasks: it is the only
writer of either. The public ends (:class:`OrderedSendChannel`, :class:`OrderedReceiveChannel`)
add what trio's ends have (closing, cloning, ``async for``); :class:`QueueChannel` is the
collector queue's own view of a channel, both sides in one, which also says whether a send
went straight to a waiting receiver and which receivers are parked.

The queue's channel wakes one receiver at a time. trio's channels hand every item to a
waiting receiver, so a burst of sends wakes every idle consumer, each of which takes one or
two items and parks again: a task switch per item. Here an item goes to a waiting receiver
only if no other receiver is already on its way (woken and not yet running); otherwise it
waits in the buffer, and the receiver on its way drains it. A receiver that takes an item
and leaves a backlog behind wakes the next one (handing it the next item), so a backlog
still spreads over every idle receiver when processing blocks, one wake at a time.

Every step that moves an item between owners runs under trio's KeyboardInterrupt protection,
as trio's own channels do: a Ctrl-C lands before or after the hand-over, never inside it.
"""

from __future__ import annotations

import collections
import heapq
import math
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Final, Generic, Protocol, Self, TypeVar, final

import attrs
import outcome
import trio
from trio.lowlevel import Task, enable_ki_protection

from ._data import _is_priority

__all__ = [
    "ChannelStatistics",
    "OrderedReceiveChannel",
    "OrderedSendChannel",
    "PriorityBuffer",
    "QueueChannel",
    "open_lifo_channel",
    "open_priority_channel",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
S = TypeVar("S", bound="_State[Any]")


@final
@attrs.frozen
class ChannelStatistics:
    """
    A snapshot of a channel's state; the fields of ``trio.MemoryChannelStatistics``.
    """

    #: Items in the buffer now.
    current_buffer_used: int
    #: The largest number of items the buffer has held at once (never above its size).
    peak_buffer_used: int
    #: The buffer's size, as passed when the channel was opened.
    max_buffer_size: int | float
    #: Open send ends (1, plus one per ``clone()`` not yet closed).
    open_send_channels: int
    #: Open receive ends.
    open_receive_channels: int
    #: Tasks blocked in ``send``.
    tasks_waiting_send: int
    #: Tasks blocked in ``receive``.
    tasks_waiting_receive: int


class _Buffer(Protocol[T_co]):
    def pop(self) -> T_co: ...
    def __len__(self) -> int: ...


@final
class PriorityBuffer(Generic[T]):
    """
    Items by priority, lowest first, arrival order within a priority; items never compared.

    The priority channel's buffer, and the gateway's queue.
    """

    __slots__ = ("_buckets", "_priorities", "_size")

    def __init__(self) -> None:
        self._buckets: dict[int, collections.deque[T]] = {}
        self._priorities: list[int] = []  # heap of the priorities that have items
        self._size = 0

    def push(self, priority: int, item: T) -> None:
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._buckets[priority] = collections.deque()
            heapq.heappush(self._priorities, priority)
        bucket.append(item)
        self._size += 1

    def pop(self) -> T:
        priority = self._priorities[0]
        bucket = self._buckets[priority]
        item = bucket.popleft()
        if not bucket:
            del self._buckets[priority]
            heapq.heappop(self._priorities)
        self._size -= 1
        return item

    def __len__(self) -> int:
        return self._size


#: What :meth:`_State.take` returns when nothing can be received now.
_EMPTY: Final[Any] = object()


def _priority(key: Callable[[Any], int], item: object) -> int:
    priority = key(item)
    if not _is_priority(priority):
        raise TypeError(f"priority must be an int, got {type(priority).__name__}")
    return priority


class _State(Generic[T]):
    """
    A channel's buffer and blocked tasks; the one writer of both.

    Blocked tasks are kept longest-waiting first. Each blocked task is also in the ``tasks``
    set of the end it blocked on, so that closing that end can wake exactly its own tasks.
    """

    __slots__ = (
        "_key",
        "_pop",
        "_push",
        "buffer",
        "max_buffer_size",
        "open_receive_channels",
        "open_send_channels",
        "peak_buffer_used",
        "receive_tasks",
        "send_tasks",
        "sent",
        "wake_one",
        "wakes",
        "waking",
    )

    def __init__(
        self,
        max_buffer_size: int | float,
        buffer: _Buffer[T],
        push: Callable[[T], None] | None,
        pop: Callable[[], T],
        key: Callable[[T], int] | None,
    ) -> None:
        #: Whether receivers are woken one at a time (the queue's channel, see above).
        self.wake_one = False
        #: Receivers handed an item and not yet running again (at most one with wake_one).
        self.waking = 0
        #: Receivers woken so far (with wake_one): tells one wait for a receiver from the next.
        self.wakes = 0
        self.max_buffer_size = max_buffer_size
        self.buffer = buffer
        # The buffer's append, or None for the priority buffer, which takes the priority too.
        self._push = push
        self._pop = pop
        self._key = key
        self.open_send_channels = 0
        self.open_receive_channels = 0
        # Blocked senders with the item each sends (and its priority), and blocked receivers
        # with the set of the end each blocked on; longest-waiting first.
        self.send_tasks: collections.OrderedDict[Task, tuple[T, int, set[Task]]] = (
            collections.OrderedDict()
        )
        self.receive_tasks: collections.OrderedDict[Task, set[Task]] = collections.OrderedDict()
        self.peak_buffer_used = 0
        #: Items the channel has accepted since it was opened.
        self.sent = 0

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            current_buffer_used=len(self.buffer),
            peak_buffer_used=self.peak_buffer_used,
            max_buffer_size=self.max_buffer_size,
            open_send_channels=self.open_send_channels,
            open_receive_channels=self.open_receive_channels,
            tasks_waiting_send=len(self.send_tasks),
            tasks_waiting_receive=len(self.receive_tasks),
        )

    def _push_item(self, item: T, priority: int) -> None:
        if self._push is None:
            self.buffer.push(priority, item)  # type: ignore[attr-defined]  # priority buffer
        else:
            self._push(item)

    def priority(self, item: T) -> int:
        """
        Return the priority of ``item`` (0 unless this is a priority channel).

        Raises:
            TypeError: The key gave no int.
        """
        return 0 if self._key is None else _priority(self._key, item)

    def offer(self, item: T) -> bool:
        """
        Hand ``item`` to the longest-waiting receiver, or buffer it if there is room.

        Returns:
            True if a waiting receiver took it, False if it was buffered.

        Raises:
            trio.WouldBlock: The buffer is full.
            trio.BrokenResourceError: Every receive end is closed.
            TypeError: (priority channel) the key gave no int.
        """
        return self._offer(item, 0 if self._key is None else _priority(self._key, item))

    def offerer(self) -> Callable[[T], bool]:
        """
        Return :meth:`offer`, or where no priority is computed the method behind it.

        For a loop of offers: one call per item instead of two.
        """
        return self.offer if self._key is not None else self._offer

    @enable_ki_protection
    def _offer(self, item: T, priority: int = 0) -> bool:
        if self.open_receive_channels == 0:
            raise trio.BrokenResourceError
        if self.receive_tasks and not self.waking:
            self._hand(item)
            self.sent += 1
            return True
        buffer = self.buffer
        used = len(buffer)
        if used < self.max_buffer_size:
            push = self._push
            if push is None:
                buffer.push(priority, item)  # type: ignore[attr-defined]  # priority buffer
            else:
                push(item)
            self.sent += 1
            if used >= self.peak_buffer_used:
                self.peak_buffer_used = used + 1
            return False
        raise trio.WouldBlock

    def _hand(self, item: T) -> None:
        """
        Give ``item`` to the longest-waiting receiver and wake it.
        """
        task, tasks = self.receive_tasks.popitem(last=False)
        tasks.remove(task)
        trio.lowlevel.reschedule(task, outcome.Value(item))
        if self.wake_one:
            self.waking = 1
            self.wakes += 1

    def _hand_next(self) -> None:
        """
        Give the next buffered item to the longest-waiting receiver; let a blocked sender in.
        """
        self._hand(self._pop())
        if self.send_tasks:
            task, (item, priority, tasks) = self.send_tasks.popitem(last=False)
            tasks.remove(task)
            trio.lowlevel.reschedule(task)
            self.sent += 1
            self._push_item(item, priority)

    @enable_ki_protection
    def take(self) -> T:
        """
        Return the next item by the buffer's order, or ``_EMPTY`` if there is none now.

        If senders are blocked, the longest-blocked one's item enters the buffer first (so a
        higher-priority item waiting for room still comes out first).

        Raises:
            trio.EndOfChannel: Every send end is closed and the buffer is empty.
        """
        if self.send_tasks:
            task, (item, priority, tasks) = self.send_tasks.popitem(last=False)
            tasks.remove(task)
            trio.lowlevel.reschedule(task)
            self.sent += 1
            if not self.buffer:
                return item  # nothing buffered to come first: straight across
            # Through the buffer, so that its order decides; the buffer is back to its size
            # before this call returns, so the peak does not count it.
            self._push_item(item, priority)
        if self.buffer:
            item = self._pop()
            if self.wake_one and self.buffer and self.receive_tasks and not self.waking:
                self._hand_next()  # a backlog: the next receiver takes part in it
            return item
        if not self.open_send_channels:
            raise trio.EndOfChannel
        return _EMPTY  # type: ignore[no-any-return]

    async def send_item(self, item: T, tasks: set[Task]) -> None:
        """
        Send ``item``, blocking while the buffer is full; ``tasks`` is the end's set.

        The caller has checked that its end is open.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        priority = self.priority(item)
        try:
            self._offer(item, priority)
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        task = trio.lowlevel.current_task()
        tasks.add(task)
        self.send_tasks[task] = (item, priority, tasks)

        def abort(_: Any) -> trio.lowlevel.Abort:
            tasks.remove(task)
            del self.send_tasks[task]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def receive_item(self, tasks: set[Task]) -> T:
        """
        Take the next item, blocking while there is none; ``tasks`` is the end's set.

        The caller has checked that its end is open.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        item = self.take()
        if item is not _EMPTY:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        return await self.park_receiver(tasks)

    async def park_receiver(self, tasks: set[Task]) -> T:
        """
        Wait for a sender to hand an item over; the caller found the buffer empty.
        """
        task = trio.lowlevel.current_task()
        tasks.add(task)
        self.receive_tasks[task] = tasks

        def abort(_: Any) -> trio.lowlevel.Abort:
            tasks.remove(task)
            del self.receive_tasks[task]
            return trio.lowlevel.Abort.SUCCEEDED

        item: T = await trio.lowlevel.wait_task_rescheduled(abort)
        # Running again (a receiver woken by closing raised instead). Sends meanwhile left
        # a backlog for this receiver: the next one takes part in it.
        self.waking = 0
        if self.buffer and self.receive_tasks and self.wake_one:
            self._hand_next()
        return item

    @enable_ki_protection
    def close_send_end(self, tasks: set[Task]) -> None:
        """
        Close one send end: its blocked senders fail; the last one ends the receivers' wait.
        """
        for task in tasks:
            del self.send_tasks[task]
            trio.lowlevel.reschedule(task, outcome.Error(trio.ClosedResourceError()))
        tasks.clear()
        self.open_send_channels -= 1
        if self.open_send_channels == 0:
            assert not self.send_tasks
            # Waking one at a time leaves receivers parked beside a backlog: they drain it.
            while self.buffer and self.receive_tasks:
                self._hand(self._pop())
            for task, receiver_tasks in self.receive_tasks.items():
                receiver_tasks.remove(task)
                trio.lowlevel.reschedule(task, outcome.Error(trio.EndOfChannel()))
            self.receive_tasks.clear()

    @enable_ki_protection
    def close_receive_end(self, tasks: set[Task]) -> list[T]:
        """
        Close one receive end: its blocked receivers fail; the last one breaks the channel.

        Returns:
            The items the channel held when its last receive end closed (buffered or being
            sent by blocked senders), which no one can receive any more; else nothing.
        """
        for task in tasks:
            del self.receive_tasks[task]
            trio.lowlevel.reschedule(task, outcome.Error(trio.ClosedResourceError()))
        tasks.clear()
        self.open_receive_channels -= 1
        if self.open_receive_channels:
            return []
        assert not self.receive_tasks
        dropped: list[T] = []
        while self.buffer:
            dropped.append(self._pop())
        for task, (item, _, sender_tasks) in self.send_tasks.items():
            sender_tasks.remove(task)
            trio.lowlevel.reschedule(task, outcome.Error(trio.BrokenResourceError()))
            dropped.append(item)
        self.send_tasks.clear()
        return dropped


class _ChannelEnd(Generic[T]):
    """
    What the two public ends share: the state, closing as a context manager, cloning.
    """

    _side: ClassVar[str]

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._closed = False
        self._tasks: set[Task] = set()  # tasks blocked on this end

    def __repr__(self) -> str:
        return f"<{self._side} channel at {id(self):#x}, using buffer at {id(self._state):#x}>"

    def statistics(self) -> ChannelStatistics:
        """
        Return a snapshot of the channel's state.
        """
        return self._state.statistics()

    def clone(self) -> Self:
        """
        Return another end of the same channel, on the same side.

        Raises:
            trio.ClosedResourceError: This end was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError
        return type(self)(self._state)

    def close(self) -> None:
        raise NotImplementedError  # pragma: no cover

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def aclose(self) -> None:
        """
        Close this end (see ``close``). Always a checkpoint.

        On cancellation the end is closed all the same.
        """
        self.close()
        await trio.lowlevel.checkpoint()


@final
class OrderedSendChannel(_ChannelEnd[T], trio.abc.SendChannel[T]):
    """
    The send side of a priority or LIFO channel; behaves like ``trio.MemorySendChannel``.
    """

    _side = "send"

    def __init__(self, state: _State[T]) -> None:
        super().__init__(state)
        state.open_send_channels += 1

    @enable_ki_protection
    def send_nowait(self, value: T) -> None:
        """
        Send ``value`` if there is room; a waiting receiver gets it directly.

        Raises:
            trio.WouldBlock: The buffer is full.
            trio.ClosedResourceError: This end was closed.
            trio.BrokenResourceError: Every receive end was closed.
            TypeError: (priority channel) the key gave no int.
        """
        if self._closed:
            raise trio.ClosedResourceError
        self._state.offer(value)

    @enable_ki_protection
    async def send(self, value: T) -> None:
        """
        Send ``value``, waiting for room if the buffer is full.

        Raises as :meth:`send_nowait` does, except ``trio.WouldBlock``. Always a
        checkpoint. On cancellation nothing is sent.
        """
        if self._closed:
            raise trio.ClosedResourceError
        await self._state.send_item(value, self._tasks)

    @enable_ki_protection
    def close(self) -> None:
        """
        Close this end; blocked senders on it get ``trio.ClosedResourceError``.

        When the last send end closes, waiting receivers get ``trio.EndOfChannel``.
        """
        if self._closed:
            return
        self._closed = True
        self._state.close_send_end(self._tasks)


@final
class OrderedReceiveChannel(_ChannelEnd[T], trio.abc.ReceiveChannel[T]):
    """
    The receive side of a priority or LIFO channel; behaves like ``trio.MemoryReceiveChannel``.
    """

    _side = "receive"

    def __init__(self, state: _State[T]) -> None:
        super().__init__(state)
        state.open_receive_channels += 1

    @enable_ki_protection
    def receive_nowait(self) -> T:
        """
        Take the next item by the buffer's order, if there is one.

        If senders are blocked, the longest-blocked one's item enters the buffer first.

        Raises:
            trio.WouldBlock: Nothing to receive now.
            trio.EndOfChannel: Every send end is closed and the buffer is empty.
            trio.ClosedResourceError: This end was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError
        item = self._state.take()
        if item is _EMPTY:
            raise trio.WouldBlock
        return item

    @enable_ki_protection
    async def receive(self) -> T:
        """
        Take the next item, waiting for one if needed.

        Raises as :meth:`receive_nowait` does, except ``trio.WouldBlock``. Always a
        checkpoint. On cancellation no item is lost.
        """
        if self._closed:
            raise trio.ClosedResourceError
        return await self._state.receive_item(self._tasks)

    @enable_ki_protection
    def close(self) -> None:
        """
        Close this end; blocked receivers on it get ``trio.ClosedResourceError``.

        When the last receive end closes, blocked senders get ``trio.BrokenResourceError``
        and the buffer is emptied.
        """
        if self._closed:
            return
        self._closed = True
        self._state.close_receive_end(self._tasks)


@final
class QueueChannel(_State[T]):
    """
    The collector queue's channel: both sides in one, waking receivers one at a time.

    A channel state (see the module's docstring) with what the queue needs to know.

    One send side (the publisher) and one receive side (the consumers). Build it with
    :func:`fifo_state`, :func:`lifo_state` or :func:`priority_state`, passing this class.
    """

    __slots__ = ("_drained", "_receivers", "_senders", "closed")

    def __init__(
        self,
        max_buffer_size: int | float,
        buffer: _Buffer[T],
        push: Callable[[T], None] | None,
        pop: Callable[[], T],
        key: Callable[[T], int] | None,
    ) -> None:
        super().__init__(max_buffer_size, buffer, push, pop, key)
        self.open_send_channels = 1
        self.open_receive_channels = 1
        self.wake_one = True
        #: Whether :meth:`close` was called.
        self.closed = False
        self._drained = False
        self._senders: set[Task] = set()
        self._receivers: set[Task] = set()

    @property
    def queued(self) -> int:
        """
        Items in the buffer, waiting for a receiver.
        """
        return len(self.buffer)

    @property
    def parked(self) -> int:
        """
        Receivers blocked waiting for an item.
        """
        return len(self.receive_tasks)

    def parked_receivers(self) -> list[Task]:
        """
        Return the receivers blocked now, the most recently parked first.
        """
        return list(reversed(self.receive_tasks))

    def send_nowait(self, item: T) -> bool:
        """
        Send ``item`` if there is room.

        Returns:
            True if it woke a parked receiver (handing it the item), False if it was
            buffered (for the receiver on its way, if :attr:`waking`, or a busy one).

        Raises:
            trio.WouldBlock: The buffer is full.
            trio.ClosedResourceError: The channel is closed.
        """
        if self.closed:
            raise trio.ClosedResourceError
        return self._offer(item, 0 if self._key is None else _priority(self._key, item))

    @enable_ki_protection
    async def send(self, item: T) -> None:
        """
        Send ``item``, waiting for room. Always a checkpoint; on cancellation nothing is sent.

        Raises:
            trio.ClosedResourceError: The channel is (or becomes) closed.
        """
        if self.closed:
            raise trio.ClosedResourceError
        await self.send_item(item, self._senders)

    #: Return the next item, or ``EMPTY`` (compare with ``is``) if there is none now.
    #: Raises ``trio.EndOfChannel`` once the channel is closed and empty.
    receive_nowait = _State.take

    async def park(self) -> T:
        """
        Wait for the next item; call only after :meth:`receive_nowait` gave ``EMPTY``.

        A schedule point. On cancellation nothing is taken.

        Raises:
            trio.EndOfChannel: The channel was closed while waiting.
        """
        return await self.park_receiver(self._receivers)

    @enable_ki_protection
    def close(self) -> None:
        """
        Stop sending: blocked senders fail, parked receivers end once the buffer is empty.
        """
        if self.closed:
            return
        self.closed = True
        self.close_send_end(self._senders)

    @enable_ki_protection
    def drain(self) -> list[T]:
        """
        Close both sides and return every item still in the channel, in its order.

        Parked receivers get ``trio.ClosedResourceError``; a second call returns nothing.
        """
        self.close()
        if self._drained:
            return []
        self._drained = True
        return self.close_receive_end(self._receivers)


#: What :meth:`QueueChannel.receive_nowait` returns when nothing is waiting.
EMPTY: Final[Any] = _EMPTY


def _check_size(max_buffer_size: int | float) -> None:
    if max_buffer_size != math.inf and not isinstance(max_buffer_size, int):
        raise TypeError(f"max_buffer_size must be an int or math.inf, got {max_buffer_size!r}")
    if max_buffer_size < 0:
        raise ValueError(f"max_buffer_size must be >= 0, got {max_buffer_size!r}")


def _first(item: Any) -> int:
    priority: int = item[0]
    return priority


def fifo_state(max_buffer_size: int | float, kind: type[S]) -> S:
    """
    Return the state of a FIFO channel (a deque, as fast as trio's memory channel).

    ``kind`` is ``_State`` for a public channel, or :class:`QueueChannel`.
    """
    _check_size(max_buffer_size)
    items: collections.deque[Any] = collections.deque()
    return kind(max_buffer_size, items, items.append, items.popleft, None)


def lifo_state(max_buffer_size: int | float, kind: type[S]) -> S:
    """
    Return the state of a LIFO channel.
    """
    _check_size(max_buffer_size)
    items: list[Any] = []
    return kind(max_buffer_size, items, items.append, items.pop, None)


def priority_state(max_buffer_size: int | float, key: Callable[[Any], int], kind: type[S]) -> S:
    """
    Return the state of a priority channel whose items' priorities ``key`` gives.
    """
    _check_size(max_buffer_size)
    buffer: PriorityBuffer[Any] = PriorityBuffer()
    return kind(max_buffer_size, buffer, None, buffer.pop, key)


@final
class open_priority_channel(tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]):
    """
    Open a channel whose receivers get the lowest-priority-number item first.

    Equal priorities come out in the order they were sent; items are never compared.
    Written as a class, like ``trio.open_memory_channel``, so that
    ``open_priority_channel[ItemType](...)`` works.

    Args:
        max_buffer_size: Items the channel holds before ``send`` blocks (an int >= 0 or
            ``math.inf``).
        key: Gives an item's priority (an int, ``IntEnum`` members included). By default
            items are ``(priority, value)`` pairs and come out as sent.

    Returns:
        The send and receive ends, which behave like trio's memory channels.

    Raises:
        TypeError: ``max_buffer_size`` is neither an int nor ``math.inf``.
        ValueError: ``max_buffer_size`` is negative.
    """

    def __new__(  # type: ignore[misc]  # returns the pair, as trio's open_memory_channel
        cls, max_buffer_size: int | float, *, key: Callable[[T], int] | None = None
    ) -> tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]:
        state: _State[T] = priority_state(max_buffer_size, _first if key is None else key, _State)
        return OrderedSendChannel(state), OrderedReceiveChannel(state)

    def __init__(
        self, max_buffer_size: int | float, *, key: Callable[[T], int] | None = None
    ) -> None: ...


@final
class open_lifo_channel(tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]):
    """
    Open a channel whose receivers get the most recently buffered item first.

    Written as a class, like ``trio.open_memory_channel``, so that
    ``open_lifo_channel[ItemType](...)`` works.

    Args:
        max_buffer_size: Items the channel holds before ``send`` blocks (an int >= 0 or
            ``math.inf``).

    Returns:
        The send and receive ends, which behave like trio's memory channels.

    Raises:
        TypeError: ``max_buffer_size`` is neither an int nor ``math.inf``.
        ValueError: ``max_buffer_size`` is negative.
    """

    def __new__(  # type: ignore[misc]  # returns the pair, as trio's open_memory_channel
        cls, max_buffer_size: int | float
    ) -> tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]:
        state: _State[T] = lifo_state(max_buffer_size, _State)
        return OrderedSendChannel(state), OrderedReceiveChannel(state)

    def __init__(self, max_buffer_size: int | float) -> None: ...
