"""
Priority and LIFO memory channels that behave like trio's memory channels.
"""

from __future__ import annotations

import collections
import heapq
import math
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar, final

import attrs
import outcome
import trio
from trio.lowlevel import Task

__all__ = [
    "OrderedReceiveChannel",
    "OrderedSendChannel",
    "open_lifo_channel",
    "open_priority_channel",
]

T = TypeVar("T")


class _Buffer(Protocol[T]):
    def push(self, item: T) -> None: ...
    def pop(self) -> T: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...


@final
class _LifoBuffer(Generic[T]):
    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[T] = []

    def push(self, item: T) -> None:
        self._items.append(item)

    def pop(self) -> T:
        return self._items.pop()

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@final
class _PriorityBuffer(Generic[T]):
    """
    Items by priority, lowest first, arrival order within a priority; items never compared.
    """

    __slots__ = ("_buckets", "_key", "_priorities", "_size")

    def __init__(self, key: Callable[[T], int]) -> None:
        self._key = key
        self._buckets: dict[int, collections.deque[T]] = {}
        self._priorities: list[int] = []  # heap of the priorities that have items
        self._size = 0

    def priority(self, item: T) -> int:
        priority = self._key(item)
        if type(priority) is not int:
            raise TypeError(f"priority must be an int, got {type(priority).__name__}")
        return priority

    def push(self, item: T) -> None:
        priority = self._key(item)  # checked by priority() before the item was sent
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

    def clear(self) -> None:
        self._buckets.clear()
        self._priorities.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size


@attrs.define(eq=False)
class _State(Generic[T]):
    max_buffer_size: int | float
    buffer: _Buffer[T]
    #: Validates an item before it is sent (the priority key), or None.
    check: Callable[[T], object] | None
    open_send_channels: int = 0
    open_receive_channels: int = 0
    # Tasks blocked in send, with the value each is sending, longest-waiting first.
    send_tasks: collections.OrderedDict[Task, T] = attrs.Factory(collections.OrderedDict)
    # Tasks blocked in receive, longest-waiting first.
    receive_tasks: collections.OrderedDict[Task, None] = attrs.Factory(collections.OrderedDict)
    peak_buffer_used: int = 0

    def push(self, item: T) -> None:
        self.buffer.push(item)
        self.peak_buffer_used = max(self.peak_buffer_used, len(self.buffer))

    def statistics(self) -> trio.MemoryChannelStatistics:
        fields: dict[str, Any] = {
            "current_buffer_used": len(self.buffer),
            "max_buffer_size": self.max_buffer_size,
            "open_send_channels": self.open_send_channels,
            "open_receive_channels": self.open_receive_channels,
            "tasks_waiting_send": len(self.send_tasks),
            "tasks_waiting_receive": len(self.receive_tasks),
        }
        if _HAS_PEAK:  # trio >= 0.35
            fields["peak_buffer_used"] = self.peak_buffer_used
        return trio.MemoryChannelStatistics(**fields)


_HAS_PEAK = "peak_buffer_used" in attrs.fields_dict(trio.MemoryChannelStatistics)


class _ChannelEnd(Generic[T]):
    """
    What the two ends share: the state, closing as a context manager, cloning.
    """

    _side: ClassVar[str]

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._closed = False
        self._tasks: set[Task] = set()  # tasks blocked on this end

    def __repr__(self) -> str:
        return f"<{self._side} channel at {id(self):#x}, using buffer at {id(self._state):#x}>"

    def statistics(self) -> trio.MemoryChannelStatistics:
        """
        Return statistics about the channel state (see ``trio.MemoryChannelStatistics``).
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

    def send_nowait(self, value: T) -> None:
        """
        Send ``value`` if there is room; a waiting receiver gets it directly.

        Raises:
            trio.WouldBlock: The buffer is full.
            trio.ClosedResourceError: This end was closed.
            trio.BrokenResourceError: Every receive end was closed.
            TypeError: (priority channel) the key gave a non-int priority.
        """
        state = self._state
        if self._closed:
            raise trio.ClosedResourceError
        if state.open_receive_channels == 0:
            raise trio.BrokenResourceError
        if state.check is not None:
            state.check(value)
        if state.receive_tasks:
            assert not state.buffer
            task, _ = state.receive_tasks.popitem(last=False)
            task.custom_sleep_data._tasks.remove(task)
            trio.lowlevel.reschedule(task, outcome.Value(value))
        elif len(state.buffer) < state.max_buffer_size:
            state.push(value)
        else:
            raise trio.WouldBlock

    async def send(self, value: T) -> None:
        """
        Send ``value``, waiting for room if the buffer is full.

        Raises as :meth:`send_nowait` does, except ``trio.WouldBlock``. Always a
        checkpoint. On cancellation nothing is sent.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.send_nowait(value)
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        task = trio.lowlevel.current_task()
        self._tasks.add(task)
        self._state.send_tasks[task] = value
        task.custom_sleep_data = self

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._tasks.remove(task)
            del self._state.send_tasks[task]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def close(self) -> None:
        """
        Close this end; blocked senders on it get ``trio.ClosedResourceError``.

        When the last send end closes, waiting receivers get ``trio.EndOfChannel``.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        for task in self._tasks:
            trio.lowlevel.reschedule(task, outcome.Error(trio.ClosedResourceError()))
            del state.send_tasks[task]
        self._tasks.clear()
        state.open_send_channels -= 1
        if state.open_send_channels == 0:
            assert not state.send_tasks
            for task in state.receive_tasks:
                task.custom_sleep_data._tasks.remove(task)
                trio.lowlevel.reschedule(task, outcome.Error(trio.EndOfChannel()))
            state.receive_tasks.clear()


@final
class OrderedReceiveChannel(_ChannelEnd[T], trio.abc.ReceiveChannel[T]):
    """
    The receive side of a priority or LIFO channel; behaves like ``trio.MemoryReceiveChannel``.
    """

    _side = "receive"

    def __init__(self, state: _State[T]) -> None:
        super().__init__(state)
        state.open_receive_channels += 1

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
        state = self._state
        if state.send_tasks:
            task, value = state.send_tasks.popitem(last=False)
            task.custom_sleep_data._tasks.remove(task)
            trio.lowlevel.reschedule(task)
            state.push(value)
        if state.buffer:
            return state.buffer.pop()
        if not state.open_send_channels:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> T:
        """
        Take the next item, waiting for one if needed.

        Raises as :meth:`receive_nowait` does, except ``trio.WouldBlock``. Always a
        checkpoint. On cancellation no item is lost.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            value = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return value
        task = trio.lowlevel.current_task()
        self._tasks.add(task)
        self._state.receive_tasks[task] = None
        task.custom_sleep_data = self

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._tasks.remove(task)
            del self._state.receive_tasks[task]
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    def close(self) -> None:
        """
        Close this end; blocked receivers on it get ``trio.ClosedResourceError``.

        When the last receive end closes, blocked senders get ``trio.BrokenResourceError``
        and the buffer is emptied.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        for task in self._tasks:
            trio.lowlevel.reschedule(task, outcome.Error(trio.ClosedResourceError()))
            del state.receive_tasks[task]
        self._tasks.clear()
        state.open_receive_channels -= 1
        if state.open_receive_channels == 0:
            assert not state.receive_tasks
            for task in state.send_tasks:
                task.custom_sleep_data._tasks.remove(task)
                trio.lowlevel.reschedule(task, outcome.Error(trio.BrokenResourceError()))
            state.send_tasks.clear()
            state.buffer.clear()


def _check_size(max_buffer_size: int | float) -> None:
    if max_buffer_size != math.inf and not isinstance(max_buffer_size, int):
        raise TypeError("max_buffer_size must be an integer or math.inf")
    if max_buffer_size < 0:
        raise ValueError("max_buffer_size must be >= 0")


def _open(
    max_buffer_size: int | float, buffer: _Buffer[T], check: Callable[[T], object] | None
) -> tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]:
    state = _State(max_buffer_size, buffer, check)
    return OrderedSendChannel(state), OrderedReceiveChannel(state)


def _first(item: Any) -> int:
    priority: int = item[0]
    return priority


def _open_priority_channel(
    max_buffer_size: int | float, *, key: Callable[[T], int] | None = None
) -> tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]:
    """
    Open a channel whose receivers get the lowest-priority-number item first.

    Equal priorities come out in the order they were sent; items are never compared.

    Args:
        max_buffer_size: Items the channel holds before ``send`` blocks (an int >= 0 or
            ``math.inf``).
        key: Gives an item's priority (an int). By default items are ``(priority, value)``
            pairs and come out as sent.

    Returns:
        The send and receive ends, which behave like trio's memory channels.

    Raises:
        TypeError: ``max_buffer_size`` is neither an int nor ``math.inf``.
        ValueError: ``max_buffer_size`` is negative.
    """
    _check_size(max_buffer_size)
    buffer = _PriorityBuffer(_first if key is None else key)
    return _open(max_buffer_size, buffer, buffer.priority)


def _open_lifo_channel(
    max_buffer_size: int | float,
) -> tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]:
    """
    Open a channel whose receivers get the most recently buffered item first.

    Args:
        max_buffer_size: Items the channel holds before ``send`` blocks (an int >= 0 or
            ``math.inf``).

    Returns:
        The send and receive ends, which behave like trio's memory channels.

    Raises:
        TypeError: ``max_buffer_size`` is neither an int nor ``math.inf``.
        ValueError: ``max_buffer_size`` is negative.
    """
    _check_size(max_buffer_size)
    return _open(max_buffer_size, _LifoBuffer[T](), None)


class _Subscriptable(Generic[T]):
    """
    Lets a function be written ``fn[ItemType](...)``, as trio's ``open_memory_channel``.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = self.__qualname__ = fn.__name__.lstrip("_")
        self.__module__ = "event_collector.channels"
        self.__wrapped__ = fn

    def __getitem__(self, _: object) -> _Subscriptable[T]:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


if TYPE_CHECKING:

    class open_priority_channel(tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]):
        def __new__(  # type: ignore[misc]  # typed like trio's open_memory_channel
            cls, max_buffer_size: int | float, *, key: Callable[[T], int] | None = None
        ) -> tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]:
            return _open_priority_channel(max_buffer_size, key=key)

        def __init__(
            self, max_buffer_size: int | float, *, key: Callable[[T], int] | None = None
        ) -> None: ...

    class open_lifo_channel(tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]):
        def __new__(  # type: ignore[misc]  # typed like trio's open_memory_channel
            cls, max_buffer_size: int | float
        ) -> tuple[OrderedSendChannel[T], OrderedReceiveChannel[T]]:
            return _open_lifo_channel(max_buffer_size)

        def __init__(self, max_buffer_size: int | float) -> None: ...

else:
    open_priority_channel = _Subscriptable(_open_priority_channel)
    open_lifo_channel = _Subscriptable(_open_lifo_channel)
