"""
The Redis Streams mode against a real Redis server the tests own (a Unix socket, the
append-only file on): the same producers, workers and results as the ZeroMQ mode, and
what Redis adds (tasks that survive restarts, reclaiming from dead workers, dead letters).

Real time; short visibility timeouts; every test bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import coredis
import pytest
import trio

from event_collector import Collector, Context, Error, Ok, Payload, Result
from event_collector._redis_streams import GROUP, Keys
from event_collector.remote import (
    GatewayError,
    Producer,
    RedisProducer,
    RemoteError,
    Worker,
    open_producer,
    open_worker,
    redis_queue_statistics,
)

from .conftest import eventually
from .redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as running:
        yield running


@pytest.fixture
def queue_name() -> str:
    return f"q{uuid.uuid4().hex[:10]}"


async def double(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(payload.value * 2)


async def reject(payload: Payload[Any], ctx: Context) -> Result[Any]:
    raise ValueError(f"no {payload.value}")


def sleeper(seconds: float, calls: list[Any] | None = None) -> Any:
    async def sleep(payload: Payload[Any], ctx: Context) -> Result[Any]:
        if calls is not None:
            calls.append(payload.value)
        await trio.sleep(seconds)
        return Ok(payload.value)

    return sleep


@asynccontextmanager
async def worker(
    url: str, queue: str, collectors: list[Collector[Any]] | None = None, **options: Any
) -> AsyncIterator[Worker]:
    options = {"logging": False, "drain_timeout": 1.0, "visibility_timeout": 0.4, **options}
    collectors = collectors or [Collector("double", double), Collector("reject", reject)]
    async with open_worker(collectors, url, queue=queue, **options) as running:
        yield running


@asynccontextmanager
async def producer(url: str, queue: str, **options: Any) -> AsyncIterator[Producer[Any]]:
    options = {"logging": False, "close_timeout": 2.0, **options}
    async with open_producer(url, queue=queue, **options) as running:
        yield running


class TestRoundTrip:
    """The same results as in-process: ResultList with keys, RemoteError for failures."""

    async def test_results_and_failures(self, server: RedisServer, queue_name: str) -> None:
        with trio.fail_after(10):
            async with worker(server.url, queue_name), producer(server.url, queue_name) as p:
                keyed = await p.send(Payload(21, keys=["double"]))
                everyone = await p.send(Payload(2))
                assert (await keyed.wait()).by_key() == {"double": Ok(42)}
                results = await everyone.wait()
        assert results.keys == ("double", "reject")
        assert results[0] == Ok(4)
        failure = results[1]
        assert isinstance(failure, Error)
        assert isinstance(failure.error, RemoteError)
        assert (failure.error.type_name, failure.error.message) == ("builtins.ValueError", "no 2")
        assert keyed.attempts == 1
        assert isinstance(keyed.task_id, str)

    async def test_many_tasks_two_workers(self, server: RedisServer, queue_name: str) -> None:
        with trio.fail_after(20):
            async with worker(server.url, queue_name), worker(server.url, queue_name):
                async with producer(server.url, queue_name) as p:
                    events = [await p.send(Payload(i, keys=["double"])) for i in range(2000)]
                    results = [(await e.wait()).first() for e in events]
        assert results == [Ok(2 * i) for i in range(2000)]

    async def test_a_payload_that_cannot_be_encoded(
        self, server: RedisServer, queue_name: str
    ) -> None:
        with trio.fail_after(10):
            async with producer(server.url, queue_name) as p:
                with pytest.raises(TypeError, match="type object is unsupported"):
                    await p.send(Payload(object()))
                assert p.statistics().pending == 0

    async def test_options_of_the_other_transport(self, server: RedisServer) -> None:
        with pytest.raises(TypeError, match="heartbeat: an option of the ZeroMQ transport"):
            async with open_producer(server.url, heartbeat=object()):  # type: ignore[arg-type]
                pass  # pragma: no cover


class TestPriority:
    """A producer asking for it gets its tasks taken by priority level, lower first."""

    async def test_levels(self, server: RedisServer, queue_name: str) -> None:
        order: list[str] = []

        async def record(payload: Payload[Any], ctx: Context) -> Result[Any]:
            order.append(payload.value)
            return Ok(None)

        with trio.fail_after(10):
            async with producer(server.url, queue_name, by_priority=True) as p:
                sent = [("c", 9), ("a", 0), ("d", None), ("b", 1), ("e", 42)]
                events = [await p.send(Payload(n, priority=prio)) for n, prio in sent]
                await eventually(lambda: p.statistics().unsent == 0)
                collectors = [Collector("r", record)]
                async with worker(server.url, queue_name, collectors, max_consumers=1, credit=1):
                    for event in events:
                        await event.wait()
        assert order == ["a", "b", "d", "c", "e"]  # None is level 5; 42 is clamped to 9


class TestSubsetsOfCollectors:
    """A worker serves only its collectors; a task for a key nobody serves waits."""

    async def test_a_task_waits_for_a_worker_serving_its_key(
        self, server: RedisServer, queue_name: str
    ) -> None:
        with trio.fail_after(10):
            async with producer(server.url, queue_name) as p:
                only_double = [Collector("double", double)]
                async with worker(server.url, queue_name, only_double):
                    waiting = await p.send(Payload(5, keys=["triple"]))
                    served = await p.send(Payload(5, keys=["double"]))
                    assert (await served.wait()).first() == Ok(10)
                    await trio.sleep(0.2)
                    assert not waiting.done
                    stats = await redis_queue_statistics(server.url, queue=queue_name)
                    assert stats.waiting == {"triple": 1}
                    assert (stats.size, stats.taken, stats.dead_letters) == (1, 0, 0)

                    async def triple(payload: Payload[Any], ctx: Context) -> Result[Any]:
                        return Ok(payload.value * 3)

                    async with worker(server.url, queue_name, [Collector("triple", triple)]):
                        assert (await waiting.wait()).first() == Ok(15)


class TestQueueStatistics:
    """redis_queue_statistics sees one queue's tasks, whatever its name."""

    async def test_names_with_glob_characters(self, server: RedisServer) -> None:
        tricky, plain = f"a*[b\\{uuid.uuid4().hex[:6]}", "aXb"
        with trio.fail_after(10):
            for name, count in ((tricky, 2), (plain, 3)):
                async with producer(server.url, name, close_timeout=0) as p:
                    for i in range(count):
                        await p.send(Payload(i, keys=["k"] if i else ["k", "j"]))
                    await eventually(lambda p=p: p.statistics().unsent == 0)  # type: ignore[misc]
            stats = await redis_queue_statistics(server.url, queue=tricky)
            other = await redis_queue_statistics(server.url, queue=plain)
        assert (stats.queue, stats.size, stats.waiting) == (tricky, 2, {None: 1, "k": 1})
        assert (other.size, other.waiting) == (3, {None: 1, "k": 2})

    @pytest.mark.parametrize("name", ["", "a{b", "}"])
    async def test_a_queue_name_redis_cannot_hash_tag(self, name: str) -> None:
        with pytest.raises(ValueError, match="without braces"):
            await redis_queue_statistics("redis://127.0.0.1:1", queue=name)
        with pytest.raises(ValueError, match="without braces"):
            async with producer("redis://127.0.0.1:1", name):
                pass


class TestAtLeastOnce:
    """A dead worker's tasks are reclaimed; each event still resolves exactly once."""

    async def test_a_dead_workers_tasks_run_elsewhere(
        self, server: RedisServer, queue_name: str
    ) -> None:
        calls: list[Any] = []
        slow = [Collector("s", sleeper(0.2, calls))]
        with trio.fail_after(20):
            async with producer(server.url, queue_name) as p:
                with trio.CancelScope() as doomed:
                    async with worker(server.url, queue_name, slow):
                        events = [await p.send(Payload(i, keys=["s"])) for i in range(5)]
                        await eventually(lambda: len(calls) == 5)
                        doomed.cancel()  # dies holding all five, without a word
                async with worker(server.url, queue_name, slow):
                    results = [(await e.wait()).first() for e in events]
        assert results == [Ok(i) for i in range(5)]
        assert [e.attempts for e in events] == [2] * 5
        assert p.statistics().duplicates == 0

    async def test_a_slow_task_is_not_stolen(self, server: RedisServer, queue_name: str) -> None:
        calls: list[Any] = []
        slow = [Collector("s", sleeper(1.5, calls))]
        with trio.fail_after(20):
            async with worker(server.url, queue_name, slow), worker(server.url, queue_name, slow):
                async with producer(server.url, queue_name) as p:
                    event = await p.send(Payload(1, keys=["s"]))  # 1.5 s, visibility 0.4 s
                    assert (await event.wait()).first() == Ok(1)
        assert calls == [1]  # the lease was renewed: nobody else took it
        assert event.attempts == 1

    async def test_a_task_that_kills_every_worker_is_dead_lettered(
        self, server: RedisServer, queue_name: str
    ) -> None:
        calls: list[Any] = []
        stuck = [Collector("s", sleeper(100, calls))]
        with trio.fail_after(20):
            async with producer(server.url, queue_name) as p:
                event = await p.send(Payload(1, keys=["s"]))
                for attempt in range(1, 3):
                    with trio.CancelScope() as doomed:
                        async with worker(server.url, queue_name, stuck, max_attempts=2):
                            await eventually(lambda n=attempt: len(calls) == n)  # type: ignore[misc]
                            doomed.cancel()
                async with worker(server.url, queue_name, stuck, max_attempts=2):
                    result = (await event.wait()).first()
            client = coredis.Redis.from_url(server.url)
            async with client:
                dead = await client.xrange(Keys(queue_name).dead)
        assert isinstance(result, Error)
        assert isinstance(result.error, GatewayError)
        assert "2 workers died with the task" in str(result.error)
        assert len(dead) == 1
        assert b"max_attempts 2" in dead[0].field_values[b"reason"]


class TestBadEntries:
    """An entry someone else wrote into a task stream goes to the dead letters."""

    async def test_a_malformed_entry(self, server: RedisServer, queue_name: str) -> None:
        keys = Keys(queue_name)
        with trio.fail_after(10):
            client = coredis.Redis.from_url(server.url)
            async with client, worker(server.url, queue_name) as running:
                await client.xadd(keys.tasks(5), {"t": b"\xff\xff", "junk": b"1"})
                await eventually(lambda: running.statistics().malformed == 1)
                async with producer(server.url, queue_name) as p:
                    sent = await p.send(Payload(2, keys=["double"]))
                    assert (await sent.wait()).first() == Ok(4)
                await eventually(lambda: running.statistics().in_flight == 0)
                dead = await client.xrange(keys.dead)
                pending: Any = await client.xpending(keys.tasks(5), GROUP)
        assert len(dead) == 1
        assert b"malformed entry" in dead[0].field_values[b"reason"]
        assert pending.pending == 0


class TestBackpressure:
    """The queue is bounded: send waits for room, nothing unprocessed is trimmed."""

    async def test_max_queue(self, server: RedisServer, queue_name: str) -> None:
        sizes: list[int] = []
        keys = Keys(queue_name)
        with trio.fail_after(20):
            client = coredis.Redis.from_url(server.url)
            async with client, producer(server.url, queue_name, max_queue=10, window=200) as p:
                events = [await p.send(Payload(i, keys=["s"])) for i in range(50)]
                await trio.sleep(0.2)
                assert int(await client.get(keys.size) or 0) == 10
                assert p.statistics().unsent == 40
                slow = [Collector("s", sleeper(0.01))]
                async with worker(server.url, queue_name, slow, max_consumers=2, credit=2):
                    async with trio.open_nursery() as watch:

                        async def sample() -> None:
                            while True:
                                sizes.append(int(await client.get(keys.size) or 0))
                                await trio.sleep(0.01)

                        watch.start_soon(sample)
                        results = [(await e.wait()).first() for e in events]
                        watch.cancel_scope.cancel()
                assert int(await client.get(keys.size) or 0) == 0
        assert results == [Ok(i) for i in range(50)]
        assert max(sizes) <= 10

    async def test_memory_is_flat_under_a_producer_faster_than_the_workers(
        self, server: RedisServer, queue_name: str
    ) -> None:
        keys = Keys(queue_name)
        tasks_stream = keys.tasks(5, "s")
        samples: list[tuple[int, int, int, int, int]] = []
        total = 4000
        with trio.fail_after(60):
            client = coredis.Redis.from_url(server.url)
            slow = [Collector("s", sleeper(0.001))]
            async with (
                client,
                worker(server.url, queue_name, slow, max_consumers=4, credit=8) as running,
                producer(server.url, queue_name, max_queue=50, window=200) as p,
                trio.open_nursery() as nursery,
            ):
                results_stream = keys.results(p.name)
                done: list[int] = []
                sender, receiver = trio.open_memory_channel[Any](math.inf)

                async def resolve() -> None:
                    async for event in receiver:
                        done.append((await event.wait()).first().unwrap())

                async def sample() -> None:
                    while True:
                        memory: Any = await client.info("memory")
                        samples.append(
                            (
                                p.statistics().pending,
                                running.statistics().in_flight,
                                await client.xlen(tasks_stream),
                                await client.xlen(results_stream),
                                int(memory["used_memory"]),
                            )
                        )
                        await trio.sleep(0.02)

                for _ in range(4):
                    nursery.start_soon(resolve)
                nursery.start_soon(sample)
                async with sender:
                    for i in range(total):
                        sender.send_nowait(await p.send(Payload(i, keys=["s"])))
                await eventually(lambda: len(done) == total)
                nursery.cancel_scope.cancel()
        assert sorted(done) == list(range(total))
        pending, in_flight, queued, unread, memory = zip(*samples, strict=True)
        assert max(pending) <= 200
        assert max(in_flight) <= 8
        assert max(queued) <= 50
        assert max(unread) <= 200
        half = len(memory) // 2
        assert max(memory[half:]) - max(memory[:half]) < 256 * 1024, memory


class TestUnreachable:
    """Redis unreachable: a clear error after connect_timeout, not a hang."""

    async def test_send_fails_after_the_timeout(self, short_tmp: str) -> None:
        url = f"unix://{short_tmp}/nobody.sock"
        with trio.fail_after(10):
            async with producer(url, "q", connect_timeout=0.3, close_timeout=0) as p:
                first = await p.send(1)
                result = (await first.wait()).first()
                assert isinstance(result, Error)
                assert isinstance(result.error, GatewayError)
                assert "unreachable for 0.3 s" in str(result.error)
                with pytest.raises(GatewayError, match="unreachable"):
                    await p.send(2)
                assert not p.statistics().connected


@pytest.fixture
def short_tmp() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ecu")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class TestRestarts:
    """Redis restarted from its append-only file: nothing acknowledged is lost."""

    async def test_redis_restart_mid_load(self, queue_name: str) -> None:
        with redis_server() as own, trio.fail_after(30):
            slow = [Collector("s", sleeper(0.05))]
            async with worker(own.url, queue_name, slow, max_consumers=5):
                async with producer(own.url, queue_name) as p:
                    events = [await p.send(Payload(i, keys=["s"])) for i in range(100)]
                    await eventually(lambda: sum(e.done for e in events) >= 10)
                    own.restart()  # kill -9, then start from the append-only file
                    more = [await p.send(Payload(i, keys=["s"])) for i in range(100, 120)]
                    results = [(await e.wait()).first() for e in events + more]
        assert results == [Ok(i) for i in range(120)]

    async def test_a_producer_restarted_with_its_name_recovers_results(
        self, server: RedisServer, queue_name: str
    ) -> None:
        with trio.fail_after(20):
            slow = [Collector("s", sleeper(0.3))]
            async with worker(server.url, queue_name, slow):
                async with producer(server.url, queue_name, name="orders", close_timeout=0) as p:
                    sent = [await p.send(Payload(i, keys=["s"])) for i in range(3)]
                    await eventually(lambda: p.statistics().unsent == 0)
                # gone before the results came; the worker still finishes the tasks
                assert all(isinstance(e.get_result().first(), Error) for e in sent)  # type: ignore[union-attr]
                await trio.sleep(0.5)
                async with producer(server.url, queue_name, name="orders") as again:
                    assert isinstance(again, RedisProducer)
                    recovered = await again.recovered()
        assert {task: r.first() for task, r in recovered.items()} == {
            e.task_id: Ok(i) for i, e in enumerate(sent)
        }


#: The rights docs/redis.rst lists: a producer's, then what a worker adds.
PRODUCER_RIGHTS = "+evalsha +script|load +xread +xdel +xadd +get +incrby"
WORKER_RIGHTS = "+xgroup|create +xreadgroup +xautoclaim +xclaim +xpending +xack +expire +decrby"


class TestSecurity:
    """Passwords, ACL users and TLS URLs go through to the client."""

    async def round_trip(self, url: str, queue_name: str) -> Result[Any]:
        with trio.fail_after(10):
            async with worker(url, queue_name), producer(url, queue_name) as p:
                return (await (await p.send(Payload(3, keys=["double"]))).wait()).first()

    async def test_a_password(self, queue_name: str) -> None:
        with redis_server(password="s3cret") as own:
            assert await self.round_trip(own.url, queue_name) == Ok(6)

    async def test_acl_users_with_the_documented_rights(self, queue_name: str) -> None:
        users = (
            "user default off\n"
            f"user producer on >p1 ~{{{queue_name}}}:* resetchannels -@all {PRODUCER_RIGHTS}\n"
            f"user worker on >w1 ~{{{queue_name}}}:* resetchannels -@all "
            f"{PRODUCER_RIGHTS} {WORKER_RIGHTS}\n"
        )
        with redis_server(acl=users) as own, trio.fail_after(10):
            async with worker(own.url_for("worker", "w1"), queue_name):
                async with producer(own.url_for("producer", "p1"), queue_name) as p:
                    keyed = await p.send(Payload(3, keys=["double"]))
                    broadcast = await p.send(Payload(4))
                    assert (await keyed.wait()).first() == Ok(6)
                    assert (await broadcast.wait()).first() == Ok(8)

    async def test_tls(self, queue_name: str) -> None:
        with redis_server(tls=True) as own:
            assert own.url.startswith("rediss://")
            assert await self.round_trip(own.url, queue_name) == Ok(6)
