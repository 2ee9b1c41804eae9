"""
The distributed mode's semantics, with gateway, workers and producers in one process.

Real time (ZeroMQ does real I/O), short heartbeats (50 ms x 4), ``inproc://`` endpoints with
unique names; every test is bounded by ``trio.fail_after``. The multi-process behaviour
(kill -9, restarts, signals) is in ``test_remote_processes.py``.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import zmq
import zmq.auth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_collector import Collector, Context, Delivery, Error, Ok, Payload, Result
from event_collector._tasks import to_payload, to_task
from event_collector._wire import (
    SIGNATURE,
    Dispatch,
    Hello,
    Outcome,
    Ready,
    Refused,
    Results,
    Submit,
    Task,
    TaskResult,
    Welcome,
    decode,
    encode,
)
from event_collector._zmq_trio import ZmqSocket
from event_collector.remote import (
    CurveClient,
    CurveServer,
    Gateway,
    GatewayError,
    Heartbeat,
    MsgpackSerializer,
    Producer,
    RemoteError,
    RemoteEvent,
    open_gateway,
    open_producer,
    open_worker,
)

from .conftest import eventually

# A peer is gone after 0.5 s of silence: quick, yet past the stalls of a busy 2-core machine.
FAST = Heartbeat(interval=0.05, liveness=10)


def endpoint() -> str:
    return f"inproc://ec-{uuid.uuid4().hex}"


async def double(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(payload.value * 2)


async def tag(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(f"tagged {payload.value}")


async def reject(payload: Payload[Any], ctx: Context) -> Result[Any]:
    raise ValueError(f"no {payload.value}")


def sleeper(seconds: float) -> Callable[[Payload[Any], Context], Awaitable[Result[Any]]]:
    async def sleep(payload: Payload[Any], ctx: Context) -> Result[Any]:
        await trio.sleep(seconds)
        return Ok(payload.value)

    return sleep


COLLECTORS = [
    Collector("double", double, topics=["math"]),
    Collector("tag", tag, topics=["text"]),
    Collector("reject", reject),
]


@asynccontextmanager
async def gateway(**options: Any) -> AsyncIterator[Gateway]:
    options = {"heartbeat": FAST, "logging": False, "drain_timeout": 1.0, **options}
    async with open_gateway(endpoint(), endpoint(), **options) as running:
        yield running


@asynccontextmanager
async def worker(
    gw: Gateway, collectors: list[Collector[Any]] | None = None, **options: Any
) -> AsyncIterator[Any]:
    options = {"heartbeat": FAST, "logging": False, "drain_timeout": 1.0, **options}
    async with open_worker(collectors or COLLECTORS, gw.workers_endpoint, **options) as running:
        yield running


@asynccontextmanager
async def producer(gw: Gateway | str, **options: Any) -> AsyncIterator[Producer[Any]]:
    options = {"heartbeat": FAST, "logging": False, "close_timeout": 1.0, **options}
    where = gw if isinstance(gw, str) else gw.producers_endpoint
    async with open_producer(where, **options) as running:
        yield running


@asynccontextmanager
async def cluster(
    workers: int = 1, collectors: list[Collector[Any]] | None = None, **gateway_options: Any
) -> AsyncIterator[tuple[Gateway, Producer[Any]]]:
    async with AsyncExitStack() as stack:
        gw = await stack.enter_async_context(gateway(**gateway_options))
        for _ in range(workers):
            await stack.enter_async_context(worker(gw, collectors))
        sender = await stack.enter_async_context(producer(gw))
        yield gw, sender


class TestRoundTrip:
    """Results come back as the in-process queue gives them: ResultList with keys."""

    async def test_every_delivery_mode(self) -> None:
        with trio.fail_after(10):
            async with cluster() as (_, sender):
                by_key = await (await sender.send(Payload(21, keys=["double"]))).wait()
                by_topic = await (await sender.send(Payload("x", topics=["text"]))).wait()
                everyone = await (await sender.send(Payload(2))).wait()
                nobody = await (await sender.send(Payload(1, keys=["missing"]))).wait()
        assert by_key.by_key() == {"double": Ok(42)}
        assert by_topic.by_key() == {"tag": Ok("tagged x")}
        assert everyone.keys == ("double", "tag", "reject")
        assert everyone[:2] == type(everyone)([Ok(4), Ok("tagged 2")], ["double", "tag"])
        assert not nobody.delivered
        assert nobody.first() == Ok(None)

    async def test_a_failure_is_a_remote_error(self) -> None:
        with trio.fail_after(10):
            async with cluster() as (_, sender):
                event = await sender.send(Payload(7, keys=["reject"]))
                result = (await event.wait()).first()
        assert isinstance(result, Error)
        error = result.error
        assert isinstance(error, RemoteError)
        assert (error.type_name, error.message) == ("builtins.ValueError", "no 7")
        assert "in reject" in error.traceback
        assert str(error) == "builtins.ValueError: no 7"
        assert event.attempts == 1
        assert isinstance(event, RemoteEvent)

    async def test_a_payload_that_cannot_be_encoded(self) -> None:
        class Opaque:
            pass

        with trio.fail_after(10):
            async with cluster() as (_, sender):
                with pytest.raises(TypeError, match="type Opaque is unsupported"):
                    await sender.send(Payload(Opaque()))
                assert sender.statistics().pending == 0
                assert (await (await sender.send(1)).wait()).first() == Ok(2)

    async def test_a_result_that_cannot_be_encoded(self) -> None:
        async def opaque(payload: Payload[Any], ctx: Context) -> Result[Any]:
            return Ok(object())

        with trio.fail_after(10):
            async with cluster(collectors=[Collector("o", opaque)]) as (_, sender):
                result = (await (await sender.send(1)).wait()).first()
        assert isinstance(result, Error)
        assert isinstance(result.error, RemoteError)
        assert "result cannot be sent" in result.error.message

    async def test_a_custom_serializer(self) -> None:
        class Json:
            def encode(self, value: object) -> bytes:
                return json.dumps(value).encode()

            def decode(self, data: bytes) -> object:
                return json.loads(data)

        with trio.fail_after(10):
            async with gateway() as gw, worker(gw, serializer=Json()):
                async with producer(gw, serializer=Json()) as sender:
                    event = await sender.send(Payload({"n": 1}, keys=["tag"]))
                    assert (await event.wait()).first() == Ok("tagged {'n': 1}")


class TestFlowControl:
    """Memory is bounded: the producer's window and the gateway's capacity hold."""

    async def test_the_window_bounds_pending_events(self) -> None:
        with trio.fail_after(10):
            async with gateway() as gw, worker(gw, [Collector("s", sleeper(0.2))]):
                async with producer(gw, window=3) as sender:
                    events = [sender.send_nowait(i) for i in range(3)]
                    with pytest.raises(trio.WouldBlock):
                        sender.send_nowait(3)
                    started = trio.current_time()
                    events.append(await sender.send(3))  # waits for a result
                    assert trio.current_time() - started >= 0.15
                    assert [(await e.wait()).first() for e in events] == [Ok(i) for i in range(4)]

    async def test_a_full_window_refills_an_eighth_at_a_time(self) -> None:
        # A send waiting for the window resumes once 2 of 16 slots are free, not 1: a
        # producer that outpaces its workers then sends its tasks in batches.
        gates = [trio.Event() for _ in range(17)]

        async def gated(payload: Payload[Any], ctx: Context) -> Result[Any]:
            await gates[payload.value].wait()
            return Ok(payload.value)

        resumed = trio.Event()
        with trio.fail_after(10):
            async with gateway() as gw, worker(gw, [Collector("g", gated)], credit=16):
                async with producer(gw, window=16) as sender, trio.open_nursery() as nursery:
                    events = [sender.send_nowait(i) for i in range(16)]

                    async def send_one_more() -> None:
                        events.append(await sender.send(16))
                        resumed.set()

                    nursery.start_soon(send_one_more)
                    gates[0].set()
                    await events[0].wait()
                    await trio.testing.wait_all_tasks_blocked()
                    assert not resumed.is_set()  # one slot free: still waiting
                    assert sender.statistics().pending == 15
                    gates[1].set()
                    await resumed.wait()  # two free: it goes
                    assert sender.statistics().pending == 15
                    for gate in gates[2:]:
                        gate.set()
                    results = [(await e.wait()).first() for e in events]
        assert results == [Ok(i) for i in range(17)]

    async def test_a_new_send_waits_behind_those_waiting_for_room(self) -> None:
        # While a send waits for the window to refill, a later send (or send_nowait) does
        # not take the slots that free: it would starve the first for as long as load lasts.
        gates = [trio.Event() for _ in range(18)]

        async def gated(payload: Payload[Any], ctx: Context) -> Result[Any]:
            await gates[payload.value].wait()
            return Ok(payload.value)

        order: list[int] = []
        with trio.fail_after(10):
            async with gateway() as gw, worker(gw, [Collector("g", gated)], credit=18):
                async with producer(gw, window=16) as sender, trio.open_nursery() as nursery:
                    events = [sender.send_nowait(i) for i in range(16)]

                    async def send(value: int) -> None:
                        events.append(await sender.send(value))
                        order.append(value)

                    nursery.start_soon(send, 16)
                    await trio.testing.wait_all_tasks_blocked()  # 16 waits for room
                    gates[0].set()
                    await events[0].wait()  # one slot free: 16 still waits
                    with pytest.raises(trio.WouldBlock):
                        sender.send_nowait(99)  # not past the one waiting
                    nursery.start_soon(send, 17)
                    await trio.testing.wait_all_tasks_blocked()
                    assert order == []  # 17 waits behind 16, though a slot is free
                    gates[1].set()
                    await events[1].wait()
                    await trio.testing.wait_all_tasks_blocked()
                    assert sorted(order) == [16, 17]  # two free: both go (woken together)
                    for gate in gates[2:]:
                        gate.set()
                    results = [(await e.wait()).first() for e in events]
        assert sorted(result.unwrap() for result in results) == list(range(18))

    async def test_the_gateway_never_holds_more_than_its_capacity(self) -> None:
        held: list[int] = []
        with trio.fail_after(20):
            async with gateway(capacity=5) as gw:
                async with worker(gw, [Collector("s", sleeper(0.01))], credit=2, max_consumers=2):
                    async with producer(gw, window=50) as sender, trio.open_nursery() as watch:

                        async def sample() -> None:
                            while True:
                                stats = gw.statistics()
                                held.append(stats.queued + stats.in_flight)
                                await trio.sleep(0.005)

                        watch.start_soon(sample)
                        events = [await sender.send(i) for i in range(40)]
                        results = [(await e.wait()).first() for e in events]
                        watch.cancel_scope.cancel()
        assert results == [Ok(i) for i in range(40)]
        assert max(held) <= 5
        assert max(held) > 0


class TestPriority:
    """A producer that asks for it gets its tasks dispatched by priority, lower first."""

    async def test_lower_priority_first_and_stable(self) -> None:
        order: list[str] = []
        gate = trio.Event()

        async def record(payload: Payload[Any], ctx: Context) -> Result[Any]:
            if payload.value == "first":
                await gate.wait()
            order.append(payload.value)
            return Ok(None)

        with trio.fail_after(10):
            async with gateway() as gw:
                collector = [Collector("r", record)]
                async with worker(gw, collector, credit=1, min_consumers=1, max_consumers=1):
                    async with producer(gw, by_priority=True) as sender:
                        events = [await sender.send(Payload("first", priority=0))]
                        await trio.sleep(0.1)  # the worker holds it: the rest queue
                        for name, priority in [("c", 5), ("a", 1), ("d", 5), ("b", 2)]:
                            events.append(await sender.send(Payload(name, priority=priority)))
                        await trio.sleep(0.1)
                        gate.set()
                        for event in events:
                            await event.wait()
        assert order == ["first", "a", "b", "c", "d"]


class TestIsolation:
    """Each producer gets exactly its own results."""

    async def test_two_producers(self) -> None:
        with trio.fail_after(20):
            async with gateway() as gw, worker(gw), worker(gw):
                async with producer(gw) as one, producer(gw) as two:
                    firsts = [await one.send(Payload(f"1-{i}", keys=["tag"])) for i in range(300)]
                    seconds = [await two.send(Payload(f"2-{i}", keys=["tag"])) for i in range(300)]
                    got_one = [(await e.wait()).first() for e in firsts]
                    got_two = [(await e.wait()).first() for e in seconds]
        assert got_one == [Ok(f"tagged 1-{i}") for i in range(300)]
        assert got_two == [Ok(f"tagged 2-{i}") for i in range(300)]


class TestWorkerDeath:
    """At least once: a dead worker's tasks run elsewhere; each event resolves once."""

    async def test_tasks_of_a_dead_worker_are_redelivered(self) -> None:
        with trio.fail_after(20):
            async with gateway() as gw, producer(gw) as sender:
                slow = [Collector("s", sleeper(0.3))]
                async with worker(gw, slow, credit=50) as survivor:
                    with trio.CancelScope() as doomed:
                        async with worker(gw, slow, credit=50):
                            await eventually(lambda: gw.statistics().workers == 2)
                            events = [await sender.send(i) for i in range(20)]
                            await trio.sleep(0.1)  # both workers hold tasks
                            doomed.cancel()  # dies without a word: no Leaving, no Bye
                    results = [(await e.wait()) for e in events]
                    stats = gw.statistics()
                    assert survivor.statistics().completed >= 1
        assert [r.first() for r in results] == [Ok(i) for i in range(20)]
        assert {e.attempts for e in events} == {1, 2}
        assert stats.redelivered == sum(e.attempts == 2 for e in events)

    async def test_a_late_result_is_dropped(self) -> None:
        with trio.fail_after(20):
            async with gateway() as gw, producer(gw) as sender:
                async with fake_peer(gw.workers_endpoint) as fake:
                    await fake.send(Ready("fake", 1))
                    assert isinstance(await fake.receive(), Welcome)
                    event = await sender.send(Payload(5, keys=["double"]))
                    dispatch = await fake.receive()
                    assert isinstance(dispatch, Dispatch)
                    await eventually(lambda: gw.statistics().workers == 0)  # silent: dead
                    async with worker(gw):
                        assert (await event.wait()).first() == Ok(10)
                        late = dispatch.tasks[0]
                        await fake.send(Results((fake_result(late.id, late.attempt),), 1))
                        await eventually(lambda: gw.statistics().late_results == 1)
                assert event.attempts == 2
                assert sender.statistics().duplicates == 0

    async def test_a_task_that_kills_every_worker_fails(self) -> None:
        with trio.fail_after(20):
            async with gateway(max_attempts=2) as gw, producer(gw) as sender:
                event = await sender.send(1)
                for _ in range(2):
                    async with fake_peer(gw.workers_endpoint) as fake:
                        await fake.send(Ready("fake", 1))
                        assert isinstance(await fake.receive(), Welcome)
                        assert isinstance(await fake.receive(), Dispatch)
                    await eventually(lambda: gw.statistics().workers == 0)  # dead, with it
                result = (await event.wait()).first()
        assert isinstance(result, Error)
        assert isinstance(result.error, GatewayError)
        assert "2 workers died with it" in str(result.error)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """
    A temporary directory with a short path: ipc:// paths are limited to about 100 bytes.
    """
    path = Path(tempfile.mkdtemp(prefix="ec"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class TestGatewayAvailability:
    """A producer never hangs: it waits for a gateway, and gives up after the bound."""

    async def test_producer_started_before_the_gateway(self) -> None:
        where_producers, where_workers = endpoint(), endpoint()
        with trio.fail_after(10):
            async with producer(where_producers, heartbeat=Heartbeat(0.1, 20)) as sender:
                event = await sender.send(Payload(4, keys=["double"]))
                await trio.sleep(0.3)
                async with open_gateway(
                    where_producers, where_workers, heartbeat=FAST, logging=False
                ) as gw:
                    async with worker(gw):
                        assert (await event.wait()).first() == Ok(8)

    async def test_pending_events_fail_when_the_gateway_goes(self) -> None:
        with trio.fail_after(10):
            async with producer(endpoint()) as sender:
                event = await sender.send(1)
                started = trio.current_time()
                result = (await event.wait()).first()
                waited = trio.current_time() - started
                assert isinstance(result, Error)
                assert isinstance(result.error, GatewayError)
                assert "no answer from the gateway" in str(result.error)
                assert waited <= FAST.bound + 2 * FAST.interval
                with pytest.raises(GatewayError):
                    await sender.send(2)
                assert not sender.statistics().connected

    async def test_a_restarted_gateway_gets_everything_again(self, short_dir: Path) -> None:
        # ipc, not inproc: inproc connections do not come back when their peer rebinds
        where_producers, where_workers = f"ipc://{short_dir}/p", f"ipc://{short_dir}/w"
        options: dict[str, Any] = {"heartbeat": FAST, "logging": False, "drain_timeout": 0.1}
        patient = Heartbeat(0.05, 40)  # the producer waits 2 s for a gateway
        with trio.fail_after(20):
            async with producer(where_producers, heartbeat=patient) as sender:
                async with worker_at(where_workers, [Collector("s", sleeper(0.2))]):
                    with trio.CancelScope() as crash:
                        async with open_gateway(where_producers, where_workers, **options):
                            events = [await sender.send(i) for i in range(10)]
                            await trio.sleep(0.05)
                            crash.cancel()  # gone mid-task, without a drain
                    # A new gateway on the same endpoints: the worker registers again, the
                    # producer sends its pending tasks again.
                    async with open_gateway(where_producers, where_workers, **options) as gw2:
                        results = [(await e.wait()).first() for e in events]
                        stats = gw2.statistics()
        assert results == [Ok(i) for i in range(10)]
        assert stats.workers == 1
        assert {e.attempts for e in events} == {1}  # a new gateway counts afresh


@asynccontextmanager
async def worker_at(where: str, collectors: list[Collector[Any]]) -> AsyncIterator[Any]:
    options: dict[str, Any] = {"heartbeat": FAST, "logging": False, "drain_timeout": 0.5}
    async with open_worker(collectors, where, **options) as running:
        yield running


class TestProducerClose:
    """Leaving the producer's block waits for results, up to its close timeout."""

    async def test_waits_then_fails_the_rest(self) -> None:
        with trio.fail_after(10):
            async with gateway() as gw, worker(gw, [Collector("s", sleeper(0.1))]):
                async with producer(gw, close_timeout=0.5) as sender:
                    quick = await sender.send(1)
                    async with worker(gw, [Collector("s", sleeper(5))], credit=1):
                        pass
                started = trio.current_time()
            assert (await quick.wait()).first() == Ok(1)
            assert trio.current_time() - started < 1

    async def test_a_slow_result_times_out(self) -> None:
        with trio.fail_after(10):
            async with gateway() as gw, worker(gw, [Collector("s", sleeper(5))]):
                async with producer(gw, close_timeout=0.3) as sender:
                    event = await sender.send(1)
                result = (await event.wait()).first()
        assert isinstance(result, Error)
        assert str(result.error) == "the producer closed before the result arrived"

    async def test_sending_after_close_is_refused(self) -> None:
        with trio.fail_after(10):
            async with gateway() as gw, worker(gw):
                async with producer(gw) as sender:
                    pass
                with pytest.raises(trio.ClosedResourceError, match="closing"):
                    await sender.send(1)


class TestWorkerDrain:
    """A worker leaving normally finishes its tasks and delivers their results."""

    async def test_results_of_a_leaving_worker_arrive(self) -> None:
        with trio.fail_after(10):
            async with gateway() as gw, producer(gw) as sender:
                async with worker(gw, [Collector("s", sleeper(0.2))]):
                    events = [await sender.send(i) for i in range(5)]
                    await trio.sleep(0.05)
                # the block ended with five tasks running: they finished first
                assert all(event.done for event in events)
                assert [e.get_result().first() for e in events] == [Ok(i) for i in range(5)]  # type: ignore[union-attr]
                await trio.sleep(0.05)
                assert gw.statistics().workers == 0


class TestGatewayDrain:
    """A gateway leaving normally gives its tasks the drain timeout, refuses the rest."""

    async def test_new_tasks_refused_held_tasks_finish(self) -> None:
        with trio.fail_after(10):
            async with gateway(drain_timeout=2) as gw, worker(gw, [Collector("s", sleeper(0.2))]):
                async with producer(gw) as sender:
                    held = await sender.send(1)
                    await trio.sleep(0.05)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(gw.drain)
                        await trio.sleep(0.02)
                        late = await sender.send(2)
                    assert (await held.wait()).first() == Ok(1)
                    refused = (await late.wait()).first()
        assert isinstance(refused, Error)
        assert "shut down" in str(refused.error) or "shutting down" in str(refused.error)


class FakePeer:
    """A raw DEALER speaking (or mangling) the protocol."""

    def __init__(self, socket: ZmqSocket) -> None:
        self.socket = socket

    async def send(self, message: Any) -> None:
        await self.socket.send_multipart(encode(message))

    async def send_frames(self, frames: list[bytes]) -> None:
        await self.socket.send_multipart(frames)

    async def receive(self) -> Any:
        return decode(await self.socket.receive_multipart())


@asynccontextmanager
async def fake_peer(where: str) -> AsyncIterator[FakePeer]:
    raw: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(where)
    with ZmqSocket(raw) as socket:
        yield FakePeer(socket)


def fake_result(task_id: int, attempt: int) -> Any:
    return TaskResult(task_id, attempt, (Outcome("double", b"\x01"),))


class TestBadInput:
    """What is not the protocol is counted and dropped; the gateway goes on."""

    async def test_malformed_messages(self) -> None:
        bad = [
            [b"nonsense"],
            [b"EC/0", b"\x90"],
            [SIGNATURE, b"\xff\xfe"],
            [SIGNATURE, b"\x92\x63\x90"],  # an unknown kind
            [SIGNATURE, encode(Welcome("x"))[1]],  # a kind a producer never sends
            [SIGNATURE, b"\x92\x03"],  # truncated Submit
        ]
        with trio.fail_after(10):
            async with cluster() as (gw, sender):
                for where in (gw.producers_endpoint, gw.workers_endpoint):
                    async with fake_peer(where) as fake:
                        for frames in bad:
                            await fake.send_frames(frames)
                        await trio.sleep(0.05)
                assert gw.statistics().malformed >= 2 * len(bad) - 2
                assert (await (await sender.send(3)).wait()).first() == Ok(6)

    async def test_an_invalid_task_is_refused_back(self) -> None:
        with trio.fail_after(10):
            async with gateway() as gw, fake_peer(gw.producers_endpoint) as fake:
                await fake.send(Hello("raw", 10))
                welcome = await fake.receive()
                assert isinstance(welcome, Welcome)
                assert welcome.credit == 10
                await fake.send(Submit((Task(1, b"\x01", delivery=9), Task(2, b"\x01", 1))))
                refused = await fake.receive()
                while isinstance(refused, Results):  # the spent credit, given back
                    refused = await fake.receive()
                assert isinstance(refused, Refused)
                assert refused.ids == (1, 2)  # unknown delivery; KEY without keys
                assert gw.statistics().refused == 2

    async def test_tasks_beyond_credit_are_refused(self) -> None:
        with trio.fail_after(10):
            async with gateway() as gw, fake_peer(gw.producers_endpoint) as fake:
                await fake.send(Hello("raw", 1))
                assert await fake.receive() == Welcome(gw.id, 1)
                await fake.send(Submit((Task(1, b"\x01"), Task(2, b"\x01"))))
                refused = await fake.receive()
                while isinstance(refused, Results):
                    refused = await fake.receive()
                assert isinstance(refused, Refused)
                assert refused.ids == (2,)


class TestFuzz:
    """Random frames at both sockets of a live gateway: then good traffic still flows."""

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        messages=st.lists(
            st.lists(st.one_of(st.binary(max_size=64), st.just(SIGNATURE)), min_size=0, max_size=4),
            max_size=20,
        )
    )
    def test_random_frames(self, messages: list[list[bytes]]) -> None:
        async def main() -> None:
            with trio.fail_after(10):
                async with cluster() as (gw, sender):
                    for where in (gw.producers_endpoint, gw.workers_endpoint):
                        async with fake_peer(where) as fake:
                            for frames in messages:
                                if frames:
                                    await fake.send_frames(frames)
                    await trio.sleep(0.02)
                    assert (
                        await (await sender.send(Payload(4, keys=["double"]))).wait()
                    ).first() == Ok(8)
                    assert gw.statistics().workers == 1

        trio.run(main)


class TestCurve:
    """CURVE: clients with an allowed key get in, any other is refused."""

    @pytest.fixture
    def keys(self, tmp_path: Path) -> dict[str, Path]:
        clients = tmp_path / "clients"
        clients.mkdir()
        server_public, server_secret = zmq.auth.create_certificates(tmp_path, "gateway")
        _, producer_secret = zmq.auth.create_certificates(tmp_path, "producer")
        _, worker_secret = zmq.auth.create_certificates(tmp_path, "worker")
        _, stranger_secret = zmq.auth.create_certificates(tmp_path, "stranger")
        for name in ("producer", "worker"):
            (clients / f"{name}.key").write_bytes((tmp_path / f"{name}.key").read_bytes())
        return {
            "server_public": Path(server_public),
            "server_secret": Path(server_secret),
            "clients": clients,
            "producer": Path(producer_secret),
            "worker": Path(worker_secret),
            "stranger": Path(stranger_secret),
        }

    async def test_known_keys_work_an_unknown_key_is_refused(self, keys: dict[str, Path]) -> None:
        where_producers = "tcp://127.0.0.1:0"
        server = CurveServer(keys["server_secret"], keys["clients"])
        with trio.fail_after(15):
            async with open_gateway(
                where_producers, "tcp://127.0.0.1:0", curve=server, heartbeat=FAST, logging=False
            ) as gw:
                worker_keys = CurveClient(keys["worker"], keys["server_public"])
                async with worker(gw, curve=worker_keys):
                    allowed = CurveClient(keys["producer"], keys["server_public"])
                    async with producer(gw, curve=allowed) as sender:
                        assert (
                            await (await sender.send(Payload(1, keys=["tag"]))).wait()
                        ).first() == Ok("tagged 1")
                    stranger = CurveClient(keys["stranger"], keys["server_public"])
                    async with producer(gw, curve=stranger) as intruder:
                        result = (await (await intruder.send(1)).wait()).first()
                    assert isinstance(result, Error)
                    assert isinstance(result.error, GatewayError)
                    assert gw.statistics().producers == 1 or gw.statistics().producers == 0

    def test_a_key_file_without_a_secret(self, keys: dict[str, Path]) -> None:
        socket: zmq.Socket[bytes]
        with zmq.Context.instance().socket(zmq.DEALER) as socket:
            with pytest.raises(ValueError, match="no secret key"):
                CurveClient(keys["server_public"], keys["server_public"]).configure(socket)


def test_heartbeat_bound() -> None:
    assert Heartbeat().bound == 10.0
    assert Heartbeat(0.5, 3).bound == 1.5
    with pytest.raises(ValueError, match="interval must be > 0"):
        Heartbeat(0, 3)
    with pytest.raises(ValueError, match="liveness must be an int >= 1"):
        Heartbeat(1, 0)
    assert math.isclose(FAST.bound, 0.5)


def test_deliveries_travel_as_codes() -> None:
    serializer = MsgpackSerializer()
    for payload in (Payload(1), Payload(1, keys=["a", "b"]), Payload(1, topics=["t"], priority=3)):
        back = to_payload(to_task(9, payload, serializer), serializer)
        assert back == payload
    assert (
        Delivery.KEY
        is to_payload(to_task(1, Payload(1, keys=["k"]), serializer), serializer).delivery
    )
