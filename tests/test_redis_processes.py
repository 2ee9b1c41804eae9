"""
The Redis Streams mode as processes: ``event-collector worker --connect redis://...``.

What ``test_redis.py`` checks with workers in the test process, here with real ones: worker
processes killed with SIGKILL or stopped with SIGSTOP, Redis killed and started again under
them, a producer process killed and started again under its name, ``--processes`` and its
signals, a worker started before Redis. Workers run ``tests.remote_collectors`` (whose
results carry the pid that ran them) as ``python -m event_collector`` processes, their JSON
logs on stderr being what the tests wait on; producers run in the test under Trio, except
the one that is killed. Every Redis server is the test's own (a Unix socket in a temporary
directory, the append-only file on), every scenario is bounded by ``trio.fail_after``, and
every process is killed when the test ends (see ``tests/processes.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from event_collector import Payload, ResultList
from event_collector.remote import (
    Producer,
    RedisProducer,
    RemoteEvent,
    open_producer,
    redis_queue_statistics,
)

from .processes import Gate, Proc, Processes, alive, pids_of, running_processes
from .redis_server import RedisServer, redis_server

# /proc (liveness), process groups and signals.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux process tests")

#: The collectors every worker process runs: ``a``, answering ``[key, n, pid, seq]``.
COLLECTORS = "tests.remote_collectors:one"
#: Seconds before a dead worker's task is taken by another (it is checked every half).
VISIBILITY = "2"


@pytest.fixture
async def processes() -> AsyncIterator[Processes]:
    async with running_processes() as started:
        yield started


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as running:
        yield running


@pytest.fixture
def queue_name() -> str:
    return f"q{uuid.uuid4().hex[:10]}"


async def start_worker(
    processes: Processes, url: str, queue: str, *args: str, name: str = "worker"
) -> Proc:
    """
    Start ``event-collector worker`` for ``COLLECTORS`` on the Redis queue ``queue``.
    """
    return await processes.start(
        name,
        *("worker", COLLECTORS, "--connect", url, "--queue", queue),
        *("--visibility-timeout", VISIBILITY, "--drain-timeout", "5", *args),
    )


@asynccontextmanager
async def producer(url: str, queue: str, **options: Any) -> AsyncIterator[Producer[Any]]:
    options = {"logging": False, "close_timeout": 2.0, **options}
    async with open_producer(url, queue=queue, **options) as running:
        yield running


async def send(p: Producer[Any], numbers: Sequence[int], wait: float | Gate) -> list[Any]:
    """
    Send ``[n, wait]`` for the collector ``a`` for each of ``numbers``.
    """
    value = str(wait) if isinstance(wait, Gate) else wait
    return [await p.send(Payload([n, value], keys=["a"])) for n in numbers]


async def wait_all(events: Sequence[RemoteEvent[Any]]) -> list[ResultList[Any]]:
    return [await event.wait() for event in events]


def ran(results: Sequence[ResultList[Any]]) -> list[tuple[int, int]]:
    """
    ``(n, pid)`` of each task's one result: which task it is, and which process ran it.
    """
    ran = []
    for result in results:
        [(key, outcome)] = result.items()
        assert key == "a"
        _, n, pid, _ = outcome.unwrap()
        ran.append((n, pid))
    return ran


async def settled(url: str, queue: str, waiting: dict[str | None, int] | None = None) -> None:
    """
    Assert that the queue holds nothing but ``waiting``: no task taken, none dead.
    """
    stats = await redis_queue_statistics(url, queue=queue)
    expected = waiting or {}
    assert (stats.size, stats.waiting, stats.taken, stats.dead_letters) == (
        sum(expected.values()),
        expected,
        0,
        0,
    )


class TestWorkerDeath:
    """
    A worker process dies or stalls holding tasks: another completes them, one result each.
    """

    async def test_kill_9_mid_task(
        self, processes: Processes, server: RedisServer, queue_name: str
    ) -> None:
        with trio.fail_after(20):
            gate = Gate(processes)
            options = ("--credit", "4", "--max-consumers", "4")
            victim = await start_worker(processes, server.url, queue_name, *options, name="victim")
            await victim.wait_for_log("worker_started")
            async with producer(server.url, queue_name) as p:
                held = await send(p, range(4), gate)
                await gate.wait_started(4)  # the victim holds all four
                rescuer = await start_worker(processes, server.url, queue_name, *options)
                await rescuer.wait_for_log("worker_started")
                os.killpg(victim.pid, signal.SIGKILL)
                assert await victim.wait_exit() == -signal.SIGKILL
                gate.open()
                later = await send(p, range(4, 8), 0)
                results = await wait_all(held + later)
                assert p.statistics().duplicates == 0
            assert ran(results) == [(n, rescuer.pid) for n in range(8)]
            assert [e.attempts for e in held + later] == [2] * 4 + [1] * 4
            reclaimed = rescuer.entries("task_reclaimed")
            assert [entry["attempt"] for entry in reclaimed] == [2] * 4
            assert sorted(gate.started()) == sorted([*range(4), *range(4)])
            assert sorted(gate.finished()) == list(range(4))  # the victim finished none
            await settled(server.url, queue_name)

    async def test_a_stalled_worker_that_comes_back_adds_no_result(
        self, processes: Processes, server: RedisServer, queue_name: str
    ) -> None:
        """
        SIGSTOP past the visibility timeout: another worker completes the tasks; on SIGCONT
        the first completes them too, and its late results are dropped (its acknowledgement
        finds them acknowledged), so the producer sees one result a task.
        """
        with trio.fail_after(20):
            gate = Gate(processes)
            options = ("--credit", "3", "--max-consumers", "3")
            stalled = await start_worker(processes, server.url, queue_name, *options, name="late")
            await stalled.wait_for_log("worker_started")
            async with producer(server.url, queue_name) as p:
                held = await send(p, range(3), gate)
                await gate.wait_started(3)
                rescuer = await start_worker(processes, server.url, queue_name, *options)
                await rescuer.wait_for_log("worker_started")
                os.killpg(stalled.pid, signal.SIGSTOP)
                await rescuer.wait_for_log("task_reclaimed", 3)
                await gate.wait_started(6)
                gate.open()
                results = await wait_all(held)
                assert ran(results) == [(n, rescuer.pid) for n in range(3)]
                os.killpg(stalled.pid, signal.SIGCONT)
                await gate.wait_finished(6)  # the stalled worker ran its three to the end
                stalled.process.send_signal(signal.SIGTERM)  # and stored what it could
                assert await stalled.wait_exit() == 0
                # The producer reads its stream in order: once this result is in, so is
                # anything the stalled worker stored.
                [last] = await send(p, [99], 0)
                assert ran([await last.wait()]) == [(99, rescuer.pid)]
                assert p.statistics().duplicates == 0
                assert isinstance(p, RedisProducer)
                assert await p.recovered() == {}
            assert [e.attempts for e in held] == [2, 2, 2]
            await settled(server.url, queue_name)


class TestRedisRestart:
    """
    Redis killed with SIGKILL and started again from its append-only file, under load.
    """

    async def test_workers_and_producer_reconnect(
        self, processes: Processes, queue_name: str
    ) -> None:
        with redis_server() as own, trio.fail_after(30):
            supervisor = await start_worker(
                processes,
                own.url,
                queue_name,
                *("--processes", "2", "--credit", "10", "--max-consumers", "10"),
            )
            await supervisor.wait_for_log("worker_started", 2)
            worker_pids = set(pids_of(supervisor.entries("worker_process_started")))
            async with producer(own.url, queue_name, connect_timeout=20) as p:
                before = await send(p, range(150), 0.02)
                while sum(event.done for event in before) < 30:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                own.kill()
                while p.statistics().connected:  # noqa: ASYNC110  (no event says so)
                    await trio.sleep(0.01)
                during = await send(p, range(150, 170), 0.02)  # kept until Redis is back
                await trio.sleep(0.3)
                await trio.to_thread.run_sync(own.start)
                after = await send(p, range(170, 190), 0.02)
                results = await wait_all(before + during + after)
                assert p.statistics().connected
            assert [n for n, _ in ran(results)] == list(range(190))
            assert {pid for _, pid in ran(results)} == worker_pids  # both served
            # Both workers lost Redis and found it again; neither died of it.
            assert len(supervisor.entries("redis_unreachable")) >= 2
            names = {entry["worker"] for entry in supervisor.entries("worker_started")}
            assert {entry["worker"] for entry in supervisor.entries("redis_reachable")} == names
            assert supervisor.entries("worker_process_exited") == []
            await settled(own.url, queue_name)

    async def test_redis_restarted_without_its_data(
        self, processes: Processes, queue_name: str
    ) -> None:
        """
        Redis back empty (no persistence, or a new server): the worker makes its consumer
        group again and serves the tasks sent since.

        The worker process used to crash: it took the missing group for a ResponseError,
        which coredis raises as StreamConsumerGroupError.
        """
        with redis_server() as own, trio.fail_after(20):
            options = ("--credit", "2", "--max-consumers", "2")
            worker = await start_worker(processes, own.url, queue_name, *options)
            await worker.wait_for_log("worker_started")
            async with producer(own.url, queue_name, connect_timeout=20, close_timeout=0) as p:
                assert ran(await wait_all(await send(p, [1], 0))) == [(1, worker.pid)]
                gate = Gate(processes)
                [lost] = await send(p, [0], gate)
                await gate.wait_started(1)  # running while Redis restarts
                own.kill()
                shutil.rmtree(own.directory / "appendonlydir")
                await trio.to_thread.run_sync(own.start)
                await trio.sleep(1.5)  # the reclaimer looks every 1 s, the lease keeper 0.67
                gate.open()
                await gate.wait_finished(1)
                held = await send(p, [2, 3], 0.8)  # 0.8 s: past a lease renewal
                assert ran(await wait_all(held)) == [(2, worker.pid), (3, worker.pid)]
                # Its result went nowhere: Redis forgot the task (so the lease and the
                # acknowledgement found nothing); what Redis lost is lost.
                assert not lost.done
            assert worker.process.returncode is None, worker.describe()
            await settled(own.url, queue_name)


class TestProducerRestart:
    """
    A producer process killed with SIGKILL, then started again under its name.
    """

    async def test_results_that_came_meanwhile_are_recovered(
        self, processes: Processes, server: RedisServer, queue_name: str
    ) -> None:
        with trio.fail_after(20):
            gate = Gate(processes)
            worker = await start_worker(processes, server.url, queue_name)
            await worker.wait_for_log("worker_started")
            helper = [sys.executable, "-m", "tests.redis_producer", server.url, queue_name]
            first = await processes.start_command(
                "producer", [*helper, "orders", "send", "3", str(gate)]
            )
            await first.wait_for_line("all sent")
            sent = {line.split()[2]: int(line.split()[1]) for line in first.stdout[:3]}
            await gate.wait_started(3)
            os.killpg(first.pid, signal.SIGKILL)  # gone before any result
            assert await first.wait_exit() == -signal.SIGKILL
            gate.open()
            await gate.wait_finished(3)
            # The worker stores the three results (Redis announces nothing).
            while (await redis_queue_statistics(server.url, queue=queue_name)).size:  # noqa: ASYNC110
                await trio.sleep(0.01)
            again = await processes.start_command("producer again", [*helper, "orders", "recover"])
            assert await again.wait_exit() == 0
            [line] = again.stdout
            recovered = json.loads(line.removeprefix("recovered "))
            assert {task: value[1:3] for task, value in recovered.items()} == {
                task: [n, worker.pid] for task, n in sent.items()
            }
            # Read once, then deleted: a third run under the name finds nothing.
            third = await processes.start_command("third", [*helper, "orders", "recover"])
            assert await third.wait_exit() == 0
            assert third.stdout == ["recovered {}"]


class TestSupervisor:
    """
    ``--processes 2``: tasks spread over both; a signal to the supervisor drains both.
    """

    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    async def test_spread_then_drain(
        self, processes: Processes, server: RedisServer, queue_name: str, signum: int
    ) -> None:
        with trio.fail_after(20):
            gate = Gate(processes)
            supervisor = await start_worker(
                processes,
                server.url,
                queue_name,
                *("--processes", "2", "--credit", "2", "--max-consumers", "2"),
            )
            await supervisor.wait_for_log("worker_started", 2)
            worker_pids = pids_of(supervisor.entries("worker_process_started"))
            async with producer(server.url, queue_name) as p:
                held = await send(p, range(4), gate)
                await gate.wait_started(4)  # two each: neither takes more than its credit
                supervisor.process.send_signal(signum)
                # The supervisor, then each worker (sent SIGTERM by it), got the signal.
                await supervisor.wait_for_log("signal_received", 3)
                late = await send(p, range(4, 6), 0)  # nobody takes these: both stop
                gate.open()
                assert await supervisor.wait_exit() == 0
                results = await wait_all(held)
                assert [n for n, _ in ran(results)] == list(range(4))
                assert {pid for _, pid in ran(results)} == set(worker_pids)
                stopped = supervisor.entries("worker_process_stopped")
                assert sorted((e["pid"], e["returncode"]) for e in stopped) == sorted(
                    (pid, 0) for pid in worker_pids
                )
                assert not any(alive(pid) for pid in [supervisor.pid, *worker_pids])
                # Every task taken was completed and acknowledged; the others wait in Redis
                assert not any(event.done for event in late)
                await settled(server.url, queue_name, {"a": 2})
                # ... for the next worker.
                await start_worker(processes, server.url, queue_name)
                assert [n for n, _ in ran(await wait_all(late))] == [4, 5]
            await settled(server.url, queue_name)

    async def test_a_signal_while_it_starts_leaves_no_orphan(
        self, processes: Processes, server: RedisServer, queue_name: str
    ) -> None:
        """
        SIGTERM as soon as the supervisor has started its first worker: it stops that one
        (and any other it started) and exits 0.

        Its signal handlers used to come after all its workers had started: the signal
        killed it there and left its workers running, in sessions of their own.
        """
        with trio.fail_after(20):
            supervisor = await start_worker(processes, server.url, queue_name, "--processes", "2")
            await supervisor.wait_for_log("worker_process_started")
            supervisor.process.send_signal(signal.SIGTERM)
            assert await supervisor.wait_exit() == 0
            started = pids_of(supervisor.entries("worker_process_started"))
            stopped = pids_of(supervisor.entries("worker_process_stopped"))
            assert sorted(stopped) == sorted(started)
            assert not any(alive(pid) for pid in started)


class TestStartOrder:
    """
    A worker started before Redis waits for it; a wrong URL or password is a one-line exit.
    """

    async def test_worker_and_producer_before_redis(
        self, processes: Processes, queue_name: str
    ) -> None:
        """
        Both wait, retrying with a backoff behind one warning, and serve once Redis is up.

        The worker used to exit at once with a traceback (status 1): its first call to
        Redis, which makes the consumer groups, was not retried.
        """
        directory = Path(processes.short_dir())
        own = RedisServer(directory)  # not started yet
        try:
            with trio.fail_after(20):
                worker = await start_worker(processes, own.url, queue_name)
                impatient = await start_worker(processes, own.url, queue_name, name="impatient")
                await impatient.wait_for_log("redis_unreachable")
                impatient.process.send_signal(signal.SIGTERM)  # stopped while it waits
                assert await impatient.wait_exit() == 0
                [unreachable] = await worker.wait_for_log("redis_unreachable")
                assert unreachable["url"] == own.url
                assert unreachable["level"] == "warning"
                async with producer(own.url, queue_name, connect_timeout=20) as p:
                    early = await send(p, [1], 0)
                    await trio.sleep(1)  # several attempts, one line
                    assert len(worker.entries("redis_unreachable")) == 1
                    assert worker.process.returncode is None
                    assert not early[0].done
                    await trio.to_thread.run_sync(own.start)
                    await worker.wait_for_log("redis_reachable")
                    assert ran(await wait_all(early)) == [(1, worker.pid)]
                worker.process.send_signal(signal.SIGTERM)
                assert await worker.wait_exit() == 0
                await settled(own.url, queue_name)
        finally:
            own.kill()

    async def test_mistakes_are_one_line_and_status_2(
        self, processes: Processes, queue_name: str
    ) -> None:
        """
        A wrong password, none, a URL coredis cannot read, a queue name Redis cannot
        hash-tag: one line, status 2.

        They used to end in a traceback and status 1: coredis wraps what leaves its client
        in an exception group, and a bad URL is a ValueError, neither of which the command
        took for the user's mistake.
        """
        with redis_server(password="s3cret") as own, trio.fail_after(20):
            mistakes = [
                (own.url_for(None, "wrong"), "Redis: invalid username-password pair"),
                (own.url_for(None, None), "Redis: HELLO must be called with the client"),
                ("redis://:s3cret@localhost:port/0", "Redis: bad URL"),
            ]
            started = [
                (await start_worker(processes, url, queue_name, name=url), message)
                for url, message in mistakes
            ]
            # With --processes, the supervisor says so before starting workers it would
            # restart for ever.
            supervisor = await start_worker(
                processes, own.url_for(None, "wrong"), queue_name, "--processes", "2"
            )
            started.append((supervisor, "Redis: invalid username-password pair"))
            braces = await start_worker(processes, own.url, "a{b}", name="braces")
            started.append((braces, "--queue: queue must be a non-empty name without braces"))
            for proc, message in started:
                assert await proc.wait_exit() == 2, proc.describe()
                [line] = proc.stderr
                assert line.startswith("event-collector: error: ")
                assert message in line
                assert "s3cret" not in line
                assert proc.entries("worker_process_started") == []
