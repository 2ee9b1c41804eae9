"""
The Trio adapter for pyzmq sockets: whole messages, no loss on cancellation, no stall.
"""

from __future__ import annotations

import errno
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import zmq
import zmq.asyncio
from hypothesis import given, settings

from event_collector._zmq_trio import ZmqSocket

from .strategies import zmq_steps

Context = zmq.Context[zmq.Socket[bytes]]
#: open(bind_type, connect_type, transport="inproc") -> (bound, connected) wrappers
Opener = Callable[..., tuple[ZmqSocket, ZmqSocket]]


@pytest.fixture
def ctx() -> Iterator[Context]:
    context: Context = zmq.Context()
    yield context
    context.destroy(linger=0)  # whatever a failing test left open


@pytest.fixture
def open_pair(ctx: Context, tmp_path: Path) -> Iterator[Opener]:
    opened: list[ZmqSocket] = []

    def open_(
        bind_type: int,
        connect_type: int,
        transport: str = "inproc",
        *,
        hwm: int | None = None,
        router_mandatory: bool = False,
    ) -> tuple[ZmqSocket, ZmqSocket]:
        bound = ctx.socket(bind_type)
        connected = ctx.socket(connect_type)
        for socket in (bound, connected):
            socket.linger = 0
            if hwm is not None:
                socket.sndhwm = socket.rcvhwm = hwm
            if router_mandatory and socket.type == zmq.ROUTER:
                socket.router_mandatory = 1
        if transport == "tcp":
            port = bound.bind_to_random_port("tcp://127.0.0.1")
            endpoint = f"tcp://127.0.0.1:{port}"
        else:
            endpoint = {
                "inproc": f"inproc://pair-{len(opened)}",
                "ipc": f"ipc://{tmp_path}/pair-{len(opened)}",
            }[transport]
            bound.bind(endpoint)
        connected.connect(endpoint)
        pair = ZmqSocket(bound), ZmqSocket(connected)
        opened.extend(pair)
        return pair

    yield open_
    for wrapper in opened:
        wrapper.close(linger=0)


@pytest.fixture
def lonely_push(ctx: Context) -> Iterator[ZmqSocket]:
    """
    A PUSH socket with no peer: every send would block.
    """
    socket = ctx.socket(zmq.PUSH)
    socket.bind("inproc://lonely")
    with ZmqSocket(socket) as wrapper:
        yield wrapper


async def receive_exactly(socket: ZmqSocket, count: int) -> list[list[bytes]]:
    got: list[list[bytes]] = []
    while len(got) < count:
        got.extend(await socket.receive_batch(count - len(got)))
    return got


def fill(socket: ZmqSocket, message: Callable[[int], list[bytes]]) -> int:
    """
    Send ``message(0)``, ``message(1)``... until the socket takes no more; return the count.

    Reading EVENTS processes the commands that could still make room (no task waits on the
    socket here); with inproc peers that do not read, nothing makes room after that.
    """
    sent = 0
    while True:
        try:
            socket.send_multipart_nowait(message(sent))
        except trio.WouldBlock:
            socket.socket.get(zmq.EVENTS)
            try:
                socket.send_multipart_nowait(message(sent))
            except trio.WouldBlock:
                return sent
        sent += 1


async def echo(router: ZmqSocket) -> None:
    while True:
        for message in await router.receive_batch(64):
            await router.send_multipart(message)


transports = pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])


class TestRoundTrip:
    """Messages arrive whole, in order, as bytes."""

    @transports
    async def test_dealer_router(self, open_pair: Opener, transport: str) -> None:
        router, dealer = open_pair(zmq.ROUTER, zmq.DEALER, transport)
        with trio.fail_after(5):
            await dealer.send_multipart([b"a", b"", b"c" * 1000])
            identity, *frames = await router.receive_multipart()
            assert frames == [b"a", b"", b"c" * 1000]
            await router.send_multipart([identity, b"reply", b"x"])
            assert await dealer.receive_multipart() == [b"reply", b"x"]

    @transports
    async def test_push_pull_in_order(self, open_pair: Opener, transport: str) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH, transport)
        with trio.fail_after(5):
            for i in range(500):
                await push.send_multipart([b"%d" % i, b"tail"])
            got = await receive_exactly(pull, 500)
        assert got == [[b"%d" % i, b"tail"] for i in range(500)]
        assert push.statistics().messages_sent == pull.statistics().messages_received == 500

    async def test_accepts_bytes_like_frames(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        await push.send_multipart([bytearray(b"a"), memoryview(b"b"), zmq.Frame(b"c")])  # type: ignore[list-item]  # bytes-like frames are accepted at run time
        with trio.fail_after(5):
            frames = await pull.receive_multipart()
        assert frames == [b"a", b"b", b"c"]
        assert all(type(frame) is bytes for frame in frames)

    @pytest.mark.parametrize(
        ("frames", "message"),
        [
            ([], "frames must hold at least one frame"),
            ([b"a", "text"], "frames must be bytes-like, not str: encode it"),
            ([b"a", 1], "frames must be bytes-like, not int"),
        ],
    )
    async def test_bad_frames_send_nothing(
        self, open_pair: Opener, frames: list[Any], message: str
    ) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        error = ValueError if not frames else TypeError
        with pytest.raises(error, match=f"^{message}$"):
            await push.send_multipart(frames)
        with pytest.raises(error, match=f"^{message}$"):
            push.send_multipart_nowait(frames)
        await push.send_multipart([b"after"])
        with trio.fail_after(5):
            assert await pull.receive_multipart() == [b"after"]
        with pytest.raises(trio.WouldBlock):
            pull.receive_multipart_nowait()


class TestBatch:
    """A batch receive takes every message already there, up to max_messages."""

    async def test_takes_several_in_one_call(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        for i in range(10):
            push.send_multipart_nowait([b"%d" % i, b"more"])
        with trio.fail_after(5):
            batch = await pull.receive_batch(100)
        assert batch == [[b"%d" % i, b"more"] for i in range(10)]

    async def test_respects_max_messages(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        for i in range(10):
            push.send_multipart_nowait([b"%d" % i])
        with trio.fail_after(5):
            sizes = [len(await pull.receive_batch(4)) for _ in range(3)]
        assert sizes == [4, 4, 2]
        with pytest.raises(trio.WouldBlock):
            pull.receive_batch_nowait(4)

    async def test_waits_for_the_first_message(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        got: list[list[list[bytes]]] = []
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:

                async def receive() -> None:
                    got.append(await pull.receive_batch(100))

                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()
                assert pull.statistics().tasks_waiting_receive == 1
                push.send_multipart_nowait([b"one"])
        assert got == [[[b"one"]]]

    @pytest.mark.parametrize("bad", [0, -1])
    async def test_max_messages_must_be_positive(self, open_pair: Opener, bad: int) -> None:
        pull, _ = open_pair(zmq.PULL, zmq.PUSH)
        with pytest.raises(ValueError, match="max_messages must be >= 1"):
            await pull.receive_batch(bad)
        with pytest.raises(ValueError, match="max_messages must be >= 1"):
            pull.receive_batch_nowait(bad)


class TestNowaitAndCheckpoints:
    """The nowait forms raise WouldBlock; the async forms are always checkpoints."""

    async def test_nowait_would_block(self, open_pair: Opener, lonely_push: ZmqSocket) -> None:
        pull, _ = open_pair(zmq.PULL, zmq.PUSH)
        with pytest.raises(trio.WouldBlock):
            pull.receive_multipart_nowait()
        with pytest.raises(trio.WouldBlock):
            pull.receive_batch_nowait(10)
        with pytest.raises(trio.WouldBlock):
            lonely_push.send_multipart_nowait([b"x"])

    async def test_fast_paths_are_checkpoints(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        for _ in range(3):
            with trio.testing.assert_checkpoints():
                await push.send_multipart([b"x"])
        with trio.testing.assert_checkpoints():
            await pull.receive_multipart()
        with trio.testing.assert_checkpoints():
            assert len(await pull.receive_batch(10)) == 2
        with trio.testing.assert_checkpoints():
            await push.aclose()

    async def test_cancelled_before_start_takes_nothing(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        push.send_multipart_nowait([b"kept"])
        with trio.CancelScope() as scope:
            scope.cancel()
            await pull.receive_multipart()
        with trio.CancelScope() as scope:
            scope.cancel()
            await pull.receive_batch(10)
        with trio.CancelScope() as scope:
            scope.cancel()
            await push.send_multipart([b"never"])
        assert pull.receive_batch_nowait(10) == [[b"kept"]]


class TestCancelledReceive:
    """A receive cancelled at any point loses no message and duplicates none."""

    async def test_thousands_of_random_cancellations(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH, "tcp")
        count = 4000
        rng = random.Random(1234)
        got: list[int] = []
        cancelled = 0

        async def send_all() -> None:
            for i in range(count):
                await push.send_multipart([b"%d" % i])
                if rng.random() < 0.2:  # let the receiver find nothing and wait
                    await trio.sleep(rng.random() * 1e-4)

        async def receive_one_or_batch() -> None:
            if rng.random() < 0.5:
                got.append(int((await pull.receive_multipart())[0]))
            else:
                got.extend(int(m[0]) for m in await pull.receive_batch(rng.randint(1, 20)))

        async def cancel_soon(scope: trio.CancelScope) -> None:
            for _ in range(rng.randint(0, 3)):
                await trio.lowlevel.checkpoint()
            scope.cancel()

        async def receive_all() -> None:
            nonlocal cancelled
            while len(got) < count:
                done = False
                if rng.random() < 0.5:  # cancelled by a deadline
                    with trio.move_on_after(rng.random() * 1e-4):
                        await receive_one_or_batch()
                        done = True
                else:  # cancelled by another task after a few checkpoints
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(cancel_soon, nursery.cancel_scope)
                        await receive_one_or_batch()
                        done = True
                        await trio.sleep_forever()  # until cancel_soon cancels
                cancelled += not done

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_all)
                await receive_all()
        assert got == list(range(count))
        assert cancelled >= 100  # cancellations did land on waiting receives (about 300)

    async def test_message_and_cancellation_in_the_same_turn(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        got: list[list[bytes]] = []

        async def receive() -> None:
            got.append(await pull.receive_multipart())

        for i in range(200):
            got.clear()
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    await trio.testing.wait_all_tasks_blocked()
                    push.send_multipart_nowait([b"%d" % i])
                    nursery.cancel_scope.cancel()
                if not got:  # cancelled first: the message waits for the next receive
                    got.append(pull.receive_multipart_nowait())
            assert got == [[b"%d" % i]]


class TestCancelledSend:
    """A cancelled send sends nothing."""

    async def test_push_without_peer(self, ctx: Context) -> None:
        push = ZmqSocket(ctx.socket(zmq.PUSH))
        pull = ZmqSocket(ctx.socket(zmq.PULL))
        try:
            push.socket.linger = 0
            push.socket.bind("inproc://lonely")
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(push.send_multipart, [b"cancelled"])
                    await trio.testing.wait_all_tasks_blocked()
                    assert push.statistics().tasks_waiting_send == 1
                    nursery.cancel_scope.cancel()
                pull.socket.connect("inproc://lonely")
                await push.send_multipart([b"after"])
                assert await pull.receive_multipart() == [b"after"]
            with pytest.raises(trio.WouldBlock):
                pull.receive_multipart_nowait()
            assert push.statistics().messages_sent == 1
        finally:
            push.close(linger=0)
            pull.close(linger=0)

    async def test_push_at_high_water_mark(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH, hwm=1)
        with trio.fail_after(5):
            sent = fill(push, lambda i: [b"%d" % (i + 1)])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(push.send_multipart, [b"cancelled"])
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(push.send_multipart, [b"after"])  # waits for room
                got = await receive_exactly(pull, sent + 1)
        assert got == [[b"%d" % i] for i in range(1, sent + 1)] + [[b"after"]]
        with pytest.raises(trio.WouldBlock):
            pull.receive_multipart_nowait()

    async def test_router_mandatory_unknown_peer(self, open_pair: Opener) -> None:
        router, _ = open_pair(zmq.ROUTER, zmq.DEALER, router_mandatory=True)
        with pytest.raises(zmq.ZMQError) as info:
            await router.send_multipart([b"nobody", b"x"])
        assert info.value.errno == errno.EHOSTUNREACH

    @pytest.mark.parametrize("peers", [1, 2])
    async def test_router_mandatory_full_peer(self, ctx: Context, peers: int) -> None:
        # With a second peer that has room, libzmq reports the ROUTER writable although a
        # send to the full peer fails: the send must wait, not spin.
        router = ZmqSocket(ctx.socket(zmq.ROUTER))
        dealers = [ZmqSocket(ctx.socket(zmq.DEALER)) for _ in range(peers)]
        try:
            router.socket.router_mandatory = 1
            router.socket.bind("inproc://router")
            for index, dealer in enumerate(dealers):
                dealer.socket.identity = b"peer-%d" % index
                dealer.socket.sndhwm = dealer.socket.rcvhwm = 1
                dealer.socket.connect("inproc://router")
            with trio.fail_after(5):
                full, full_identity = dealers[0], b"peer-0"
                sent = fill(router, lambda i: [full_identity, b"%d" % i])
                events = router.socket.get(zmq.EVENTS)
                assert isinstance(events, int)
                assert bool(events & zmq.POLLOUT) == (peers == 2)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(router.send_multipart, [full_identity, b"last"])
                    await trio.testing.wait_all_tasks_blocked()  # blocked, not spinning
                    assert router.statistics().tasks_waiting_send == 1
                    got = await receive_exactly(full, sent + 1)
            assert got == [[b"%d" % i] for i in range(sent)] + [[b"last"]]
        finally:
            router.close(linger=0)
            for dealer in dealers:
                dealer.close(linger=0)


class TestSharedSocket:
    """Several tasks share one socket: no stall, no message twice, watching handed over."""

    async def test_send_that_drains_the_edge_wakes_the_receiver(self, open_pair: Opener) -> None:
        router, dealer = open_pair(zmq.ROUTER, zmq.DEALER)
        await dealer.send_multipart([b"hello"])
        with trio.fail_after(5):
            identity, _ = await router.receive_multipart()
            async with trio.open_nursery() as nursery:
                got: list[list[bytes]] = []

                async def receive() -> None:
                    got.append(await dealer.receive_multipart())

                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()  # waiting on the descriptor
                # In one scheduler turn: the reply makes the dealer's descriptor readable,
                # then a send on the dealer drains it. libzmq's send processes pending
                # commands at most about once a millisecond: wait that long first.
                router.send_multipart_nowait([identity, b"reply"])
                time.sleep(0.005)  # noqa: ASYNC251  # blocking on purpose: no I/O poll here
                dealer.send_multipart_nowait([b"request"])
        assert got == [[b"reply"]]

    @pytest.mark.parametrize("window", [1, 8])
    @pytest.mark.parametrize("transport", ["inproc", "tcp"])
    async def test_sender_and_receiver_tasks_ping_pong(
        self, open_pair: Opener, transport: str, window: int
    ) -> None:
        # A sender task and a receiver task on one DEALER, up to `window` requests out:
        # replies arrive while the sender's sends can drain the receiver's edge.
        router, dealer = open_pair(zmq.ROUTER, zmq.DEALER, transport)
        rounds = 3000 if window > 1 else 1000
        credit_send, credit_receive = trio.open_memory_channel[None](window)
        for _ in range(window):
            credit_send.send_nowait(None)

        async def sender() -> None:
            for i in range(rounds):
                await credit_receive.receive()
                await dealer.send_multipart([b"%d" % i])

        async def receiver() -> None:
            for i in range(rounds):
                assert await dealer.receive_multipart() == [b"%d" % i]
                credit_send.send_nowait(None)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo, router)
                async with trio.open_nursery() as pair:
                    pair.start_soon(receiver)
                    pair.start_soon(sender)
                nursery.cancel_scope.cancel()

    async def test_sender_and_receiver_pipelined(self, open_pair: Opener) -> None:
        router, dealer = open_pair(zmq.ROUTER, zmq.DEALER, "tcp", hwm=10, router_mandatory=True)
        count = 5000

        async def sender() -> None:
            for i in range(count):
                await dealer.send_multipart([b"%d" % i])

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo, router)
                nursery.start_soon(sender)
                got = await receive_exactly(dealer, count)
                nursery.cancel_scope.cancel()
        assert got == [[b"%d" % i] for i in range(count)]

    async def test_two_receivers_share_the_messages(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH, "tcp")
        count = 2000
        got: dict[str, list[int]] = {"a": [], "b": []}
        all_received = trio.Event()

        async def receiver(name: str) -> None:
            while True:
                got[name].append(int((await pull.receive_multipart())[0]))
                if len(got["a"]) + len(got["b"]) == count:
                    all_received.set()

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver, "a")
                nursery.start_soon(receiver, "b")
                for i in range(count):
                    await push.send_multipart([b"%d" % i])
                    if i % 10 == 0:
                        await trio.sleep(0.0001)
                await all_received.wait()
                nursery.cancel_scope.cancel()
        assert sorted(got["a"] + got["b"]) == list(range(count))
        assert got["a"] == sorted(got["a"])
        assert got["b"] == sorted(got["b"])
        assert got["a"]
        assert got["b"]

    async def test_cancelled_watcher_hands_over(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        got: list[list[bytes]] = []
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                first = trio.CancelScope()

                async def first_receiver() -> None:
                    with first:
                        await pull.receive_multipart()

                async def second_receiver() -> None:
                    got.append(await pull.receive_multipart())

                nursery.start_soon(first_receiver)
                await trio.testing.wait_all_tasks_blocked()  # the first one watches
                nursery.start_soon(second_receiver)
                await trio.testing.wait_all_tasks_blocked()  # the second one parks
                assert pull.statistics().tasks_waiting_receive == 2
                first.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert pull.statistics().tasks_waiting_receive == 1
                push.send_multipart_nowait([b"for the second"])
        assert got == [[b"for the second"]]

    async def test_blocked_sender_and_receiver_on_one_socket(self, open_pair: Opener) -> None:
        router, dealer = open_pair(zmq.ROUTER, zmq.DEALER, hwm=1)
        with trio.fail_after(5):
            await dealer.send_multipart([b"hello"])
            identity, _ = await router.receive_multipart()
            sent = fill(dealer, lambda i: [b"%d" % i])
            async with trio.open_nursery() as nursery:
                got: list[list[bytes]] = []

                async def receive() -> None:
                    got.append(await dealer.receive_multipart())

                nursery.start_soon(dealer.send_multipart, [b"blocked"])
                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()
                stats = dealer.statistics()
                assert (stats.tasks_waiting_send, stats.tasks_waiting_receive) == (1, 1)
                await router.send_multipart([identity, b"reply"])
                requests = await receive_exactly(router, sent + 1)
        assert got == [[b"reply"]]
        assert [frames[1:] for frames in requests] == [[b"%d" % i] for i in range(sent)] + [
            [b"blocked"]
        ]


class TestClose:
    """Closing wakes blocked tasks with ClosedResourceError and refuses later operations."""

    async def test_blocked_tasks_get_closed_resource_error(
        self, open_pair: Opener, lonely_push: ZmqSocket
    ) -> None:
        pull, _ = open_pair(zmq.PULL, zmq.PUSH)
        errors: list[type[BaseException]] = []

        async def expect_closed(operation: Callable[[], Any]) -> None:
            with pytest.raises(trio.ClosedResourceError):
                await operation()
            errors.append(trio.ClosedResourceError)

        with trio.fail_after(1):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(expect_closed, pull.receive_multipart)  # the watcher
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(expect_closed, lambda: pull.receive_batch(5))  # parked
                nursery.start_soon(expect_closed, lambda: lonely_push.send_multipart([b"x"]))
                await trio.testing.wait_all_tasks_blocked()
                pull.close()
                lonely_push.close()
        assert len(errors) == 3
        assert pull.socket.closed

    async def test_operations_after_close(self, open_pair: Opener) -> None:
        pull, push = open_pair(zmq.PULL, zmq.PUSH)
        pull.close()
        push.close()
        pull.close()  # twice is fine
        assert pull.statistics().closed
        with pytest.raises(trio.ClosedResourceError):
            await pull.receive_multipart()
        with pytest.raises(trio.ClosedResourceError):
            pull.receive_multipart_nowait()
        with pytest.raises(trio.ClosedResourceError):
            await pull.receive_batch(3)
        with pytest.raises(trio.ClosedResourceError):
            pull.receive_batch_nowait(3)
        with pytest.raises(trio.ClosedResourceError):
            await push.send_multipart([b"x"])
        with pytest.raises(trio.ClosedResourceError):
            push.send_multipart_nowait([b"x"])

    async def test_context_managers_close(self, ctx: Context) -> None:
        with ZmqSocket(ctx.socket(zmq.PAIR)) as plain:
            pass
        async with ZmqSocket(ctx.socket(zmq.PAIR)) as asynchronous:
            pass
        assert plain.socket.closed
        assert asynchronous.socket.closed
        assert "closed" in repr(plain)

    def test_close_outside_trio(self, ctx: Context) -> None:
        wrapper = ZmqSocket(ctx.socket(zmq.PAIR))
        wrapper.close(linger=0)
        assert wrapper.socket.closed

    async def test_refuses_closed_and_asyncio_sockets(self, ctx: Context) -> None:
        closed = ctx.socket(zmq.PAIR)
        closed.close()
        with pytest.raises(trio.ClosedResourceError):
            ZmqSocket(closed)
        async_ctx = zmq.asyncio.Context()
        async_socket = async_ctx.socket(zmq.PAIR)
        try:
            with pytest.raises(TypeError, match=r"synchronous zmq\.Socket"):
                ZmqSocket(async_socket)  # type: ignore[arg-type]  # the point of the test
        finally:
            async_socket.close()
            async_ctx.term()
        with pytest.raises(TypeError, match=r"synchronous zmq\.Socket, not str"):
            ZmqSocket("tcp://127.0.0.1:5555")  # type: ignore[arg-type]  # likewise


class TestInterleavings:
    """Random interleavings of sends, receives and cancellations lose and duplicate nothing."""

    @settings(max_examples=60, deadline=None)
    @given(steps=zmq_steps)
    def test_nothing_lost_or_duplicated(self, steps: list[tuple[Any, ...]]) -> None:
        trio.run(run_steps, steps)


async def run_steps(steps: list[tuple[Any, ...]]) -> None:
    context: Context = zmq.Context()
    pull = ZmqSocket(context.socket(zmq.PULL))
    push = ZmqSocket(context.socket(zmq.PUSH))
    pull.socket.bind("inproc://steps")
    push.socket.connect("inproc://steps")
    sent = 0
    got: list[int] = []

    async def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            await push.send_multipart([b"%d" % sent])
            sent += 1

    try:
        with trio.fail_after(5):
            for step in steps:
                if step[0] == "send":
                    await send(step[1])
                    continue
                cancel = step[-1]
                if cancel is None and sent == len(got):
                    continue  # it would wait forever
                async with trio.open_nursery() as nursery:

                    async def receive(step: tuple[Any, ...] = step) -> None:
                        if step[0] == "receive":
                            got.append(int((await pull.receive_multipart())[0]))
                        else:
                            got.extend(int(m[0]) for m in await pull.receive_batch(step[1]))

                    nursery.start_soon(receive)
                    if cancel is not None:
                        checkpoints, send_first = cancel
                        for _ in range(checkpoints):
                            await trio.lowlevel.checkpoint()
                        if send_first:
                            await send(1)
                        nursery.cancel_scope.cancel()
            while len(got) < sent:
                got.extend(int(m[0]) for m in await pull.receive_batch(100))
        assert got == list(range(sent))
        with pytest.raises(trio.WouldBlock):
            pull.receive_multipart_nowait()
    finally:
        pull.close(linger=0)
        push.close(linger=0)
        context.term()
