"""
The distributed mode as processes: ``event-collector gateway|worker|serve`` and producers.

Gateways and workers run as ``python -m event_collector`` processes (their logs, JSON on
stderr, are what the tests wait on); producers run in the test under Trio. Endpoints are
ephemeral (``tcp://127.0.0.1:0`` read back from the gateway's stdout, or ``ipc://`` in a
short temporary directory), heartbeats short (a silent peer is declared gone after 1 s),
every scenario bounded by ``trio.fail_after``, and every process killed when the test ends
(see ``tests/processes.py``).
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click
import pytest
import structlog
import trio
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector import CollectorQueue, Error, Payload, Result, ResultList
from event_collector import _wire as wire
from event_collector._cli import cli, configure_logging
from event_collector._zmq_trio import ZmqSocket
from event_collector.remote import (
    CurveClient,
    GatewayError,
    Heartbeat,
    Producer,
    RemoteError,
    RemoteEvent,
    open_producer,
)

from . import remote_collectors
from .processes import HEARTBEAT as HEARTBEAT_OPTIONS
from .processes import (
    Gate,
    Proc,
    Processes,
    alive,
    children,
    pids_of,
    rss_kib,
    running_processes,
)
from .strategies import wire_frames

# /proc (RSS, liveness), pgrep, process groups and ipc:// endpoints.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux process tests")

#: The producers' heartbeat: the same 0.2 s x 5 as the processes'.
HEARTBEAT = Heartbeat(0.2, 5)


@pytest.fixture
async def processes() -> AsyncIterator[Processes]:
    async with running_processes() as started:
        yield started


@asynccontextmanager
async def producer(endpoint: str, **options: Any) -> AsyncIterator[Producer[Any]]:
    async with open_producer(endpoint, heartbeat=HEARTBEAT, **options) as opened:
        yield opened


async def connected(producer: Producer[Any], credit: int = 1) -> None:
    """
    Wait until the gateway has welcomed ``producer`` with at least ``credit``.
    """
    while True:
        stats = producer.statistics()
        if stats.connected and stats.credit >= credit:
            return
        await trio.sleep(0.01)


async def wait_all(events: Sequence[RemoteEvent[Any]]) -> list[ResultList[Any]]:
    return [await event.wait() for event in events]


def summary(results: ResultList[Any]) -> list[tuple[str | None, Any]]:
    """
    ``(key, n)`` for each Ok (``n`` None for a route to nobody), ``(key, "error")`` for each
    Error: what routing decides, without the pid and number that say where and when it ran.
    """
    return [
        (key, "error" if type(result) is Error else result.value and result.value[1])
        for key, result in results.items()
    ]


def error_of(result: Result[Any]) -> BaseException:
    assert type(result) is Error, result
    return result.error


class TestRouting:
    """
    Producers, a gateway and two worker processes: routing, priority, whose result is whose.
    """

    @pytest.mark.parametrize("transport", ["tcp", "ipc"])
    async def test_deliveries_priority_and_two_producers(
        self, processes: Processes, transport: str
    ) -> None:
        with trio.fail_after(30):
            if transport == "tcp":
                endpoints = ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
            else:
                endpoints = (processes.ipc("p"), processes.ipc("w"))
            gateway = await processes.gateway(*endpoints)
            assert gateway.producers.startswith(f"{transport}://")
            if transport == "tcp":  # the real ports, not 0
                assert not gateway.producers.endswith(":0")
                assert not gateway.workers.endswith(":0")
            # One consumer and one task at a time per worker: each runs its tasks in the
            # order the gateway dispatches them.
            supervisor = await processes.worker(
                "tests.remote_collectors:ROUTED",
                gateway.workers,
                "--processes",
                "2",
                "--credit",
                "1",
                "--max-consumers",
                "1",
            )
            started = await supervisor.wait_for_log("worker_process_started", 2)
            worker_pids = set(pids_of(started))
            await gateway.proc.wait_for_log("worker_joined", 2)

            await self.check_deliveries(gateway.producers)
            await self.check_priority(gateway.producers, worker_pids)
            await self.check_two_producers(gateway.producers, worker_pids)

    async def check_deliveries(self, endpoint: str) -> None:
        """
        Every delivery mode reaches the collectors it reaches in-process, failures included.
        """
        payloads = [
            Payload([1, 0]),
            Payload([2, 0], keys=["a", "c"]),
            Payload([3, 0], keys=["nobody"]),
            Payload([4, 0], topics=["y"]),
            Payload([5, 0], topics=["x", "y"]),
            Payload([6, 0], topics=["nothing"]),
            Payload([-7, 0], keys=["b"]),
        ]
        async with producer(endpoint) as remote:
            remote_results = await wait_all([await remote.send(p) for p in payloads])
        local: CollectorQueue[Any] = CollectorQueue(remote_collectors.ROUTED, logging=False)
        async with local:
            publisher = local.get_publisher()
            local_results = [await (await publisher.send(p)).wait() for p in payloads]
        assert [summary(r) for r in remote_results] == [summary(r) for r in local_results]
        assert summary(remote_results[0]) == [("a", 1), ("b", 1), ("c", 1)]
        assert summary(remote_results[3]) == [("b", 4), ("c", 4)]
        [(key, failed)] = remote_results[-1].items()
        assert key == "b"
        assert error_of(failed) == RemoteError("builtins.ValueError", "task -7 fails on purpose")

    async def check_priority(self, endpoint: str, worker_pids: set[int]) -> None:
        """
        A by-priority producer's tasks run lowest priority first (stable); others in order.
        """
        priorities = [(i * 7) % 5 for i in range(40)]
        for by_priority in (True, False):
            async with producer(endpoint, by_priority=by_priority) as remote:
                await connected(remote, credit=len(priorities))
                # No checkpoint between the sends: one Submit, queued whole before dispatch.
                events = [
                    remote.send_nowait(Payload([n, 0], keys=["a"], priority=priority))
                    for n, priority in enumerate(priorities)
                ]
                results = await wait_all(events)
            runs = sorted((r[0].unwrap()[3], r[0].unwrap()[2], r[0].unwrap()[1]) for r in results)
            assert {pid for _, pid, _ in runs} <= worker_pids
            expected = sorted(
                range(len(priorities)), key=lambda n: (priorities[n] if by_priority else 0, n)
            )
            ran_by = [[n for _, pid, n in runs if pid == worker] for worker in worker_pids]
            for ran in ran_by:  # each worker ran its share in the gateway's order
                assert ran == [n for n in expected if n in ran], by_priority
            if by_priority:
                # Not vacuous: the longest run in sending order within `expected` is 10
                # tasks long, and one worker ran at least 20.
                busiest = max(ran_by, key=len)
                assert len(busiest) >= 20
                assert busiest != sorted(busiest)

    async def check_two_producers(self, endpoint: str, worker_pids: set[int]) -> None:
        """
        Two producers sending at once each get exactly the results of their own tasks.
        """
        received: dict[str, list[int]] = {}

        async def produce(name: str, first: int) -> None:
            async with producer(endpoint, name=name, window=50) as remote:
                events = [
                    await remote.send(Payload([n, 0], keys=["a"]))
                    for n in range(first, first + 300)
                ]
                results = await wait_all(events)
            assert [r[0].unwrap()[1] for r in results] == list(range(first, first + 300))
            assert {r[0].unwrap()[2] for r in results} <= worker_pids
            assert all(r.delivered and len(r) == 1 for r in results)
            received[name] = [r[0].unwrap()[1] for r in results]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce, "first", 0)
            nursery.start_soon(produce, "second", 10_000)
        assert sorted(received) == ["first", "second"]


def worker_of(pid: int, name: str) -> bool:
    """
    Whether ``name`` is the default name of the worker process ``pid``: HOST-PID-RANDOM.
    """
    return name.startswith(f"{socket.gethostname()}-{pid}-")


class TestWorkerDeath:
    """
    A worker killed with SIGKILL mid-task: its tasks run again elsewhere, it is restarted.
    """

    async def test_kill_9_mid_task(self, processes: Processes) -> None:
        with trio.fail_after(30):
            gateway = await processes.gateway("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
            supervisor = await processes.worker(
                "tests.remote_collectors:one",
                gateway.workers,
                "--processes",
                "2",
                "--max-consumers",
                "4",
                "--credit",
                "4",
            )
            started = await supervisor.wait_for_log("worker_process_started", 2)
            first = pids_of(started)
            await gateway.proc.wait_for_log("worker_joined", 2)
            assert sorted(children(supervisor.pid)) == sorted(first)

            async with producer(gateway.producers) as remote:
                events = [await remote.send(Payload([n, 0.3])) for n in range(40)]
                await events[0].wait()  # 8 tasks in flight, 32 queued: both workers hold 4
                victim = first[0]
                os.kill(victim, signal.SIGKILL)
                results = await wait_all(events)

            # Every task resolved, with its own result, most of them on the first attempt;
            # those the victim held ran again elsewhere. (A worker starved of CPU for a
            # second on a loaded machine is declared gone too: its tasks also run again,
            # unless its own results come first.)
            assert [r[0].unwrap()[1] for r in results] == list(range(40))

            def left(pid: int | None = None) -> list[int]:
                """
                The tasks held by each worker declared gone (of process ``pid`` only).
                """
                return [
                    entry["tasks"]
                    for entry in gateway.proc.entries("worker_left")
                    if pid is None or worker_of(pid, entry["worker"])
                ]

            await gateway.proc.wait_until(lambda: bool(left(victim)))
            [held] = left(victim)
            assert held >= 1
            redelivered = [e for e in events if e.attempts > 1]
            assert held <= len(redelivered) <= sum(left())
            for event, result in zip(events, results, strict=True):
                if event.attempts > 1:  # run again elsewhere
                    assert result[0].unwrap()[2] != victim

            # The supervisor restarted the worker it lost, and the gateway took it back.
            restarted = await supervisor.wait_for_log("worker_process_started", 3)
            replacement = restarted[-1]["pid"]
            assert restarted[-1]["index"] == started[0]["index"]  # the victim's slot
            assert sorted(children(supervisor.pid)) == sorted([first[1], replacement])
            await gateway.proc.wait_for_log("worker_joined", 3)

            # SIGTERM stops the supervisor and its workers cleanly.
            supervisor.process.send_signal(signal.SIGTERM)
            assert await supervisor.wait_exit() == 0
            assert not alive(first[1])
            assert not alive(replacement)
            stopped = supervisor.entries("worker_process_stopped")
            assert sorted((e["pid"], e["returncode"]) for e in stopped) == sorted(
                [(first[1], 0), (replacement, 0)]
            )

    async def test_tasks_skip_a_worker_whose_connection_is_gone(self, processes: Processes) -> None:
        """
        A worker gone without a word keeps its registration until the heartbeat bound, but
        the first dispatch that libzmq cannot route to it drops it, and those tasks go to a
        live worker unchanged: they never reached it, so they cost no attempt.

        (Found by the fuzz test: its fake workers, registered with credit and gone, took
        every task until each had "taken down" max_attempts workers.)
        """
        with trio.fail_after(20):
            gateway = await processes.gateway(  # ghosts declared dead after 5 s, not 1
                processes.ipc("p"), processes.ipc("w"), "--max-attempts", "1", "--liveness", "25"
            )
            await processes.worker("tests.remote_collectors:one", gateway.workers, name="live")
            await gateway.proc.wait_for_log("worker_joined")
            async with producer(gateway.producers) as remote:
                await connected(remote, credit=20)
                context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
                try:
                    for n in range(3):  # registered with room for 100 tasks, then gone
                        with ZmqSocket(context.socket(zmq.DEALER)) as ghost:
                            ghost.socket.connect(gateway.workers)
                            await ghost.send_multipart(wire.encode(wire.Ready(f"ghost{n}", 100)))
                            assert (
                                type(wire.decode(await ghost.receive_multipart())) is wire.Welcome
                            )
                            ghost.close(linger=0)
                finally:
                    context.destroy(linger=0)
                await gateway.proc.wait_for_log("worker_joined", 4)
                await trio.sleep(0.1)  # for the gateway's libzmq to see the connections close
                events = [remote.send_nowait(Payload([n, 0])) for n in range(20)]
                results = await wait_all(events)
            assert [r[0].unwrap()[1] for r in results] == list(range(20))
            assert [e.attempts for e in events] == [1] * 20
            gone = gateway.proc.entries("worker_left", reason="its connection is gone")
            assert gone  # the ghosts were given tasks, and dropped for it


class TestGatewayRestart:
    """
    A gateway stopped and started again: workers re-register, no producer event hangs.
    """

    async def test_stopped_then_killed_then_restarted(self, processes: Processes) -> None:
        with trio.fail_after(40):
            workers = processes.ipc("w")
            gateway = await processes.gateway(
                "tcp://127.0.0.1:0", workers, "--drain-timeout", "0.3"
            )
            endpoint = gateway.producers
            await processes.worker("tests.remote_collectors:one", workers, "--credit", "16")
            await gateway.proc.wait_for_log("worker_joined")

            # A bound of 5 s: the gateways come back well within it, even on a busy machine.
            patient = Heartbeat(0.2, 25)
            async with open_producer(endpoint, heartbeat=patient) as remote:
                # Tasks done before the stop: the first gateway numbered them 1..4.
                done = await wait_all([await remote.send(Payload([n, 0])) for n in range(4)])
                assert [r[0].unwrap()[1] for r in done] == [0, 1, 2, 3]

                # 1. SIGTERM: the gateway drains for 0.3 s, then refuses back the tasks
                # that did not finish; their events resolve with an error, and it exits 0.
                first_gate = Gate(processes)
                held = [await remote.send(Payload([n, str(first_gate)])) for n in range(4, 8)]
                await first_gate.wait_started(4)
                gateway.proc.process.send_signal(signal.SIGTERM)
                assert await gateway.proc.wait_exit() == 0
                for [result] in await wait_all(held):
                    assert isinstance(error_of(result), GatewayError)
                    assert "shut down before the task ran" in str(error_of(result))

                # 2. A new gateway on the same endpoints: the worker registers again (it
                # still runs the four tasks above, for nobody now) and new tasks run.
                gateway = await processes.gateway(endpoint, workers, "--drain-timeout", "0.3")
                assert gateway.producers == endpoint
                await gateway.proc.wait_for_log("worker_joined")
                fast = [await remote.send(Payload([n, 0])) for n in range(8, 12)]
                assert [r[0].unwrap()[1] for r in await wait_all(fast)] == list(range(8, 12))
                second_gate = Gate(processes)
                gated = [await remote.send(Payload([n, str(second_gate)])) for n in range(12, 16)]
                await second_gate.wait_started(4)
                # The first gateway's tasks finish first: their results reach the second
                # gateway, which must not take them for its own tasks (which the first
                # numbered alike), and drop them.
                first_gate.open()
                await first_gate.wait_finished(4)
                await trio.sleep(0.1)
                second_gate.open()
                assert [r[0].unwrap()[1] for r in await wait_all(gated)] == list(range(12, 16))

                # 3. SIGKILL while tasks are held: the producer's events stay pending, and
                # succeed once it has sent them again to the gateway started after.
                third_gate = Gate(processes)
                pending = [await remote.send(Payload([n, str(third_gate)])) for n in range(16, 20)]
                await third_gate.wait_started(4)
                os.killpg(gateway.proc.pid, signal.SIGKILL)
                assert await gateway.proc.wait_exit() == -signal.SIGKILL
                gateway = await processes.gateway(endpoint, workers)
                await gateway.proc.wait_for_log("worker_joined")
                await gateway.proc.wait_for_log("producer_joined")
                third_gate.open()
                results = await wait_all(pending)
                assert [r[0].unwrap()[1] for r in results] == list(range(16, 20))
                assert remote.statistics().pending == 0


class TestHeartbeats:
    """
    Liveness: peers that are alive are not declared gone.
    """

    async def test_producer_that_only_waits_for_results_is_not_forgotten(
        self, processes: Processes
    ) -> None:
        """
        A producer that has sent its tasks and hears results more often than its heartbeat
        interval has no reason to ping; it must still tell the gateway, which forgets a
        producer it has not heard from for the bound, that it is there.

        It used to be forgotten after 1 s: its queued tasks dropped, its results
        undeliverable, until it said Hello again and sent all its tasks once more.
        """
        with trio.fail_after(30):
            gateway = await processes.gateway(processes.ipc("p"), processes.ipc("w"))
            await processes.worker(  # one task at a time: a result every 0.05 s, for 2 s
                "tests.remote_collectors:one", gateway.workers, "--credit", "1"
            )
            await gateway.proc.wait_for_log("worker_joined")
            async with producer(gateway.producers) as remote:
                await connected(remote, credit=40)
                events = [remote.send_nowait(Payload([n, 0.05])) for n in range(40)]
                results = await wait_all(events)
                assert [r[0].unwrap()[1] for r in results] == list(range(40))
                assert not gateway.proc.entries("producer_left")
            # Each task ran once: the worker numbers the tasks it starts.
            assert sorted(r[0].unwrap()[3] for r in results) == list(range(40))
            assert len(gateway.proc.entries("producer_joined")) == 1


class TestStartOrder:
    """
    Producers started before the gateway: they wait for it, or fail after the bound.
    """

    async def test_producer_before_gateway(self, processes: Processes) -> None:
        with trio.fail_after(30):
            endpoints = (processes.ipc("p"), processes.ipc("w"))
            patient = open_producer(endpoints[0], heartbeat=Heartbeat(0.2, 50), name="patient")
            async with patient as waiting, producer(endpoints[0], name="hasty") as hasty:
                early = [await waiting.send(Payload([n, 0])) for n in range(5)]
                failing = [await hasty.send(Payload([n, 0])) for n in range(5)]
                # Nobody answers for the hasty producer's bound: its events fail, and so
                # does a send, but none hangs.
                for [result] in await wait_all(failing):
                    assert "no answer from the gateway" in str(error_of(result))
                with pytest.raises(GatewayError, match="no answer from the gateway"):
                    await hasty.send(Payload([5, 0]))
                assert not waiting.statistics().connected
                assert not any(event.done for event in early)

                gateway = await processes.gateway(*endpoints)
                await processes.worker("tests.remote_collectors:one", gateway.workers)
                # The patient producer's events run once the gateway is there...
                results = await wait_all(early)
                assert [r[0].unwrap()[1] for r in results] == list(range(5))
                # ...and the hasty one is back in business.
                await connected(hasty)
                back = await (await hasty.send(Payload([6, 0]))).wait()
                assert back[0].unwrap()[1] == 6
            # Each said hello (a producer waiting for an answer may say it more than once).
            joined = gateway.proc.entries("producer_joined")
            assert {entry["producer"] for entry in joined} == {"hasty", "patient"}

    async def test_gateway_slow_to_answer(self, processes: Processes) -> None:
        """
        A producer whose gateway answers later than its heartbeat interval says Hello again
        meanwhile, and gets a Welcome for each: all its tasks still run, none is refused.

        The gateway restarts the session on each Hello (before any task of the producer
        arrives, since Hellos stop once a Welcome is in); the producer used to treat each
        later Welcome as a new session too and send its pending tasks again, and the
        gateway refused those copies as beyond the credit, failing their events.
        """
        with trio.fail_after(30):
            gateway = await processes.gateway("tcp://127.0.0.1:0", processes.ipc("w"))
            await processes.worker("tests.remote_collectors:one", gateway.workers)
            async with trio.open_nursery() as nursery:
                # Everything the gateway sends reaches the producer 0.5 s late.
                endpoint = await nursery.start(delaying_proxy, gateway.producers, 0.5)
                patient = Heartbeat(0.2, 25)
                async with open_producer(endpoint, heartbeat=patient, window=20) as remote:
                    # Tasks of 0.5 s: the refusals come back before the results.
                    events = [await remote.send(Payload([n, 0.5])) for n in range(20)]
                    results = await wait_all(events)
                nursery.cancel_scope.cancel()
            assert [r[0].unwrap()[1] for r in results] == list(range(20))
            assert len(gateway.proc.entries("producer_joined")) > 1  # it did say Hello again


async def delaying_proxy(
    target: str, delay: float, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """
    Forward TCP connections to ``target``, what comes back ``delay`` seconds late.

    Reports the ``tcp://`` endpoint to connect to.
    """
    host, port = target.removeprefix("tcp://").rsplit(":", 1)

    async def late(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        send_chunk, receive_chunk = trio.open_memory_channel[tuple[float, bytes | bytearray]](
            math.inf
        )

        async def forward() -> None:
            async for due, chunk in receive_chunk:
                await trio.sleep_until(due)
                await sink.send_all(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward)
            async for chunk in source:
                send_chunk.send_nowait((trio.current_time() + delay, chunk))

    async def soon(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        async for chunk in source:
            await sink.send_all(chunk)

    async def handle(client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream(host, int(port))
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(soon, client, server)
            nursery.start_soon(late, server, client)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(f"tcp://127.0.0.1:{listeners[0].socket.getsockname()[1]}")
    await trio.serve_listeners(handle, listeners)


class TestCurve:
    """
    CURVE: clients with an allowed key work; one with an unknown key never gets in.
    """

    async def test_known_and_unknown_keys(self, processes: Processes) -> None:
        with trio.fail_after(30):
            keys = Path(processes.short_dir())
            allowed = keys / "allowed"
            allowed.mkdir()
            for name in ("gateway", "worker", "producer", "stranger"):
                keygen = await processes.start(
                    f"keygen {name}", "keygen", str(keys), "--name", name
                )
                assert await keygen.wait_exit() == 0
                assert keygen.stdout == [
                    f"public: {keys / name}.key",
                    f"secret: {keys / name}.key_secret",
                ]
            assert (keys / "gateway.key_secret").stat().st_mode & 0o077 == 0
            for name in ("worker", "producer"):
                (allowed / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())

            gateway = await processes.gateway(
                "tcp://127.0.0.1:0",
                "tcp://127.0.0.1:0",
                "--curve-secret",
                str(keys / "gateway.key_secret"),
                "--curve-clients",
                str(allowed),
            )
            server = keys / "gateway.key"
            workers = {}
            for name, secret in (("known", "worker"), ("stranger", "stranger")):
                workers[name] = await processes.worker(
                    "tests.remote_collectors:one",
                    gateway.workers,
                    "--name",
                    name,
                    "--curve-secret",
                    str(keys / f"{secret}.key_secret"),
                    "--curve-server",
                    str(server),
                    name=f"worker {name}",
                )
            await gateway.proc.wait_for_log("worker_joined", worker="known")

            known = CurveClient(keys / "producer.key_secret", server)
            async with producer(gateway.producers, curve=known, name="known") as remote:
                results = await wait_all([await remote.send(Payload([n, 0])) for n in range(20)])
            assert [r[0].unwrap()[1] for r in results] == list(range(20))

            stranger = CurveClient(keys / "stranger.key_secret", server)
            async with producer(gateway.producers, curve=stranger, name="stranger") as remote:
                [[result]] = await wait_all([await remote.send(Payload([0, 0]))])
                assert "no answer from the gateway" in str(error_of(result))
                assert not remote.statistics().connected

            # Neither stranger got in, though each kept knocking for a second.
            assert [e["producer"] for e in gateway.proc.entries("producer_joined")] == ["known"]
            assert [e["worker"] for e in gateway.proc.entries("worker_joined")] == ["known"]
            stranger_worker = workers["stranger"]
            assert stranger_worker.entries("worker_started")  # it runs, and is not let in
            assert not stranger_worker.entries("worker_registered")
            assert stranger_worker.process.returncode is None


class TestFuzz:
    """
    Random frames at both of a live gateway's sockets: it drops them and goes on serving.
    """

    async def test_random_frames_then_good_traffic(self, processes: Processes) -> None:
        with trio.fail_after(60):
            gateway = await processes.gateway(
                "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", log_level="warning"
            )
            await processes.worker("tests.remote_collectors:FAST", gateway.workers)
            context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            try:
                sent = await trio.to_thread.run_sync(
                    throw_frames, context, gateway.producers, gateway.workers
                )
            finally:
                context.destroy(linger=0)
            assert gateway.proc.process.returncode is None
            # The frames did arrive: the gateway counted what it dropped (and logged it, at
            # most once a second).
            await gateway.proc.wait_until(lambda: any("dropped" in e for e in gateway.proc.log))

            # Good traffic flows: the fuzz's producers and workers are forgotten after the
            # heartbeat bound (1 s), with whatever credit and tasks they held.
            async with producer(gateway.producers, window=100) as remote:
                results = await wait_all([await remote.send(n) for n in range(300)])
            assert [r[0].unwrap() for r in results] == list(range(300))
            gateway.proc.process.send_signal(signal.SIGTERM)
            assert await gateway.proc.wait_exit() == 0
            assert gateway.proc.stderr == []  # no traceback: every line was a log entry
            assert sent["messages"] > 0


def throw_frames(
    context: zmq.Context[zmq.Socket[bytes]], producers: str, workers: str
) -> dict[str, int]:
    """
    Send Hypothesis's random frames to both endpoints, each example from new connections.
    """
    sent = {"messages": 0}

    @settings(max_examples=150, deadline=None)
    @given(st.lists(wire_frames, max_size=6), st.lists(wire_frames, max_size=6))
    def throw(at_producers: list[list[bytes]], at_workers: list[list[bytes]]) -> None:
        for endpoint, messages in ((producers, at_producers), (workers, at_workers)):
            with context.socket(zmq.DEALER) as socket:
                socket.setsockopt(zmq.LINGER, 1000)
                socket.connect(endpoint)
                for frames in messages:
                    socket.send_multipart(frames)
                    sent["messages"] += 1

    throw()
    return sent


class TestMemory:
    """
    200 000 tasks through one slow worker: the processes' memory stays flat.
    """

    async def test_rss_flat_over_200k_tasks(self, processes: Processes) -> None:
        """
        The worker runs one task at a time and holds 64 (its credit), and stalls for half a
        second on tasks 49 999, 99 999...; the producer keeps 2000 pending (its window),
        so in each stall they pile up in the gateway's queue. RSS after 200 000 tasks may
        exceed RSS after 50 000 (each sampled right after a stall) by 4 MiB at most, in
        the gateway, the worker and this process (the producer): state that grows with the
        tasks sent, by as little as 28 bytes (one small Python object) a task over the
        150 000 between the samples, would exceed it; growth measured here is below 0.3 MiB.
        """
        with trio.fail_after(60):
            gateway = await processes.gateway(processes.ipc("p"), processes.ipc("w"))
            worker = await processes.worker(
                "tests.remote_collectors:STALLING",
                gateway.workers,
                "--max-consumers",
                "1",
                "--credit",
                "64",
            )
            await gateway.proc.wait_for_log("worker_joined")
            total, sample_at = 200_000, remote_collectors.STALL_EVERY
            rss: dict[str, list[int]] = {"gateway": [], "worker": [], "producer": []}
            pending: collections.deque[RemoteEvent[Any]] = collections.deque()
            backlog: list[int] = []  # tasks sent and not done, at each sample
            checked = 0

            def check_done() -> None:
                nonlocal checked
                while pending and pending[0].done:
                    result = pending.popleft().get_result()
                    assert result is not None
                    assert result[0].unwrap() == checked
                    checked += 1
                    if checked in (sample_at, total):
                        backlog.append(len(pending))
                        rss["gateway"].append(rss_kib(gateway.proc.pid))
                        rss["worker"].append(rss_kib(worker.pid))
                        rss["producer"].append(rss_kib(os.getpid()))

            async with producer(gateway.producers, window=2000) as remote:
                for n in range(total):
                    pending.append(await remote.send(n))
                    check_done()
                    assert len(pending) <= 2000 + 1
                while pending:
                    await pending[0].wait()
                    check_done()
            assert checked == total
            print("RSS KiB", rss, "backlog", backlog)
            # The worker was the bottleneck: far more tasks were pending than it can hold.
            assert backlog[0] > 1000
            for name, (at_sample, at_total) in rss.items():
                assert at_total - at_sample < 4096, (name, rss)


class TestGracefulStop:
    """
    SIGTERM or SIGINT: a command stops taking tasks, finishes and delivers those it took.
    """

    async def test_worker_delivers_its_results_before_exiting(self, processes: Processes) -> None:
        """
        Results still queued in the worker's socket when it is done go out before it exits.

        The gateway is stopped (SIGSTOP) while the worker drains, so 8 MB of results cannot
        leave before the worker's process would end: it must wait for them, up to its
        --drain-timeout, instead of exiting with them unsent.
        """
        with trio.fail_after(30):
            gateway = await processes.gateway(processes.ipc("p"), processes.ipc("w"))
            worker = await processes.worker(
                "tests.remote_collectors:one", gateway.workers, "--drain-timeout", "20"
            )
            await gateway.proc.wait_for_log("worker_joined")
            gate = Gate(processes)
            # The gateway is stopped for a second or so: a bound of 5 s, not 1.
            patient = Heartbeat(0.2, 25)
            async with open_producer(gateway.producers, heartbeat=patient) as remote:
                events = [await remote.send(Payload([n, str(gate), 2**21])) for n in range(4)]
                await gate.wait_started(4)
                os.kill(gateway.proc.pid, signal.SIGSTOP)
                worker.process.send_signal(signal.SIGTERM)
                await worker.wait_for_log("signal_received")
                gate.open()
                await worker.wait_for_log("worker_stopped")  # its socket is closed
                with trio.move_on_after(0.5):  # a worker that does not wait exits here
                    await worker.process.wait()
                os.kill(gateway.proc.pid, signal.SIGCONT)
                with trio.move_on_after(5):
                    results = await wait_all(events)
                assert all(event.done for event in events), "the worker's results were lost"
            assert [r[0].unwrap()[1] for r in results] == [0, 1, 2, 3]
            assert [e.attempts for e in events] == [1, 1, 1, 1]  # not run again
            assert await worker.wait_exit() == 0

    async def test_gateway_keeps_its_last_messages_for_a_busy_producer(
        self, processes: Processes
    ) -> None:
        """
        A producer that reads its socket a little late still gets the gateway's last words.

        Producers connect with ``IMMEDIATE``, so libzmq drops the messages they have not read
        when the connection closes: the gateway stays connected for a heartbeat interval
        (0.5 s here) after its drain, while this producer does not read for 0.2 s.
        """
        with trio.fail_after(30):
            gateway = await processes.gateway(
                processes.ipc("p"), processes.ipc("w"), "--drain-timeout", "0", "--heartbeat", "0.5"
            )
            await processes.worker("tests.remote_collectors:one", gateway.workers)
            await gateway.proc.wait_for_log("worker_joined")
            gate = Gate(processes)
            async with producer(gateway.producers) as remote:
                held = [await remote.send(Payload([n, str(gate)])) for n in range(2)]
                await gate.wait_started(2)
                gateway.proc.process.send_signal(signal.SIGTERM)
                time.sleep(0.2)  # noqa: ASYNC251  (a producer busy with something else)
                for [result] in await wait_all(held):
                    assert "refused by the gateway: the gateway shut down" in str(error_of(result))
            assert await gateway.proc.wait_exit() == 0

    async def test_gateway_sigint_finishes_held_tasks(self, processes: Processes) -> None:
        """
        ``gateway``: the tasks it holds (queued and running) finish, their results come.
        """
        with trio.fail_after(30):
            gateway = await processes.gateway(processes.ipc("p"), processes.ipc("w"))
            await processes.worker("tests.remote_collectors:one", gateway.workers, "--credit", "4")
            await gateway.proc.wait_for_log("worker_joined")
            async with producer(gateway.producers) as remote:
                await connected(remote, credit=20)
                held = [remote.send_nowait(Payload([n, 0.05])) for n in range(20)]
                await held[0].wait()
                gateway.proc.process.send_signal(signal.SIGINT)
                results = await wait_all(held)
            assert [r[0].unwrap()[1] for r in results] == list(range(20))
            assert await gateway.proc.wait_exit() == 0
            assert gateway.proc.entries("gateway_draining")[0]["tasks"] > 0
            assert gateway.proc.stderr == []

    async def test_serve_sigint_mid_load_drains_and_exits_0(self, processes: Processes) -> None:
        """
        ``serve``: every task taken runs once, later ones are refused, the workers stop.
        """
        with trio.fail_after(30):
            serve = await processes.start(
                "serve",
                "serve",
                "tests.remote_collectors:one",
                "--producers",
                "tcp://127.0.0.1:0",
                "--processes",
                "2",
                "--max-consumers",
                "4",
                "--credit",
                "4",
                *HEARTBEAT_OPTIONS,
            )
            line = await serve.wait_for_line("gateway ready: ")
            endpoint = line.split()[2].removeprefix("producers=")
            assert not endpoint.endswith(":0")
            workers = pids_of(await serve.wait_for_log("worker_process_started", 2))
            await serve.wait_for_log("worker_joined", 2)
            async with producer(endpoint) as remote:
                await connected(remote, credit=60)
                # One Submit: once a result is back, the gateway holds all 60.
                accepted = [remote.send_nowait(Payload([n, 0.1])) for n in range(60)]
                await accepted[0].wait()
                serve.process.send_signal(signal.SIGINT)
                await serve.wait_for_log("gateway_draining")
                late = [await remote.send(Payload([n, 0])) for n in range(60, 65)]
                results = await wait_all(accepted)
                late_results = await wait_all(late)
            # Every task taken before the signal ran once and its result came back...
            assert [r[0].unwrap()[1] for r in results] == list(range(60))
            assert all(event.attempts == 1 for event in accepted)
            # ...and those sent after it were refused, not dropped.
            for [result] in late_results:
                assert "the gateway shut down" in str(error_of(result))
            assert await serve.wait_exit() == 0
            [draining] = serve.entries("gateway_draining")
            assert draining["tasks"] > 0  # mid-load
            stopped = serve.entries("worker_process_stopped")
            assert sorted((e["pid"], e["returncode"]) for e in stopped) == [
                (pid, 0) for pid in sorted(workers)
            ]
            assert not any(alive(pid) for pid in workers)
            assert serve.stderr == []


def option_help(text: str, flag: str) -> str:
    """
    Return the help of option ``flag`` in ``--help`` output ``text``, on one line.
    """
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(flag))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if line.startswith("  -") or not line.strip():  # the next option, or the end
            break
        block.append(line)
    return " ".join(" ".join(block).split())


class TestCommandLine:
    """
    The commands' help, exit codes and one-line errors.
    """

    async def test_help_says_what_each_option_does_and_its_default(
        self, processes: Processes
    ) -> None:
        names = ["gateway", "worker", "serve", "keygen"]
        with trio.fail_after(20):
            helps = [await processes.start(f"{name} --help", name, "--help") for name in names]
            helps.append(await processes.start("--help", "--help"))
            commands = [cli.commands[name] for name in names] + [cli]
            for command, proc in zip(commands, helps, strict=True):
                assert await proc.wait_exit() == 0
                text = "\n".join(proc.stdout)
                options = [p for p in command.params if isinstance(p, click.Option)]
                assert options
                for option in options:
                    described = option_help(text, option.opts[0])
                    assert option.help, (command.name, option.name)
                    assert " ".join(option.help.split()[:3]) in described
                    assert "[default:" in described or "[required]" in described, described

    async def test_mistakes_are_one_line_and_status_2(self, processes: Processes) -> None:
        any_port = "tcp://127.0.0.1:0"
        gateway_ = ("gateway", "--producers", any_port, "--workers", any_port)
        worker_ = ("worker", "tests.remote_collectors:one", "--connect", "tcp://127.0.0.1:1")
        mistakes = [
            (("gateway",), "Missing option '--producers'"),
            ((*gateway_, "--capacity", "0"), "Invalid value for '--capacity'"),
            (("gateway", "--producers", "nonsense", "--workers", any_port), "ZeroMQ: Invalid"),
            (("worker", "tests.nothing_here:ROUTED", *worker_[2:]), "cannot import 'tests.noth"),
            (("worker", "tests.remote_collectors:NOTHING", *worker_[2:]), "has no attribute"),
            (("worker", "tests.remote_collectors", *worker_[2:]), "package.module:attribute"),
            (("worker", "tests.remote_collectors:os", *worker_[2:]), "a list of Collector"),
            ((*worker_[:3], "nonsense"), "ZeroMQ: Invalid argument"),
            ((*worker_, "--min-consumers", "3", "--max-consumers", "2"), "must be >= --min-"),
            ((*worker_, "--curve-secret", __file__), "CURVE needs both"),
            (("serve", "tests.nothing_here:ROUTED", "--producers", any_port), "cannot import"),
            (("no-such-command",), "No such command"),
        ]
        with trio.fail_after(30):
            gateway = await processes.gateway("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
            in_use = ("gateway", "--producers", gateway.producers, "--workers", any_port)
            mistakes.append((in_use, "Address already in use"))
            started = [
                (await processes.start(" ".join(args), *args), message)
                for args, message in mistakes
            ]
            for proc, message in started:
                assert await proc.wait_exit() == 2, proc.describe()
                [line] = proc.stderr
                assert line.startswith("event-collector: error: ")
                assert message in line
                assert proc.stdout == []
                assert proc.log == []
            # The gateway whose endpoint the last one wanted still serves, and stops cleanly.
            await processes.worker("tests.remote_collectors:one", gateway.workers)
            async with producer(gateway.producers) as remote:
                assert (await (await remote.send(Payload([1, 0]))).wait())[0].unwrap()[1] == 1
            gateway.proc.process.send_signal(signal.SIGTERM)
            assert await gateway.proc.wait_exit() == 0

    async def test_signal_right_after_the_ready_line_is_a_clean_stop(
        self, processes: Processes
    ) -> None:
        """
        Once a gateway has printed its ready line, SIGINT and SIGTERM stop it cleanly.

        The line used to come before the signal handlers: a signal sent on reading it killed
        the gateway (SIGTERM) or made it exit 130 (SIGINT) about one time in three.
        """
        with trio.fail_after(20):
            command = (
                "gateway",
                "--producers",
                "tcp://127.0.0.1:0",
                "--workers",
                "tcp://127.0.0.1:0",
            )
            gateways = [await processes.start(f"gateway {n}", *command) for n in range(8)]

            async def stop_when_ready(gateway: Proc, signum: int) -> None:
                await gateway.wait_for_line("gateway ready: ")
                gateway.process.send_signal(signum)

            async with trio.open_nursery() as nursery:
                for n, gateway in enumerate(gateways):
                    nursery.start_soon(
                        stop_when_ready, gateway, (signal.SIGINT, signal.SIGTERM)[n % 2]
                    )
            codes = [await gateway.wait_exit() for gateway in gateways]
            assert codes == [0] * 8
            assert all(gateway.entries("gateway_stopped") for gateway in gateways)

    def test_each_log_entry_is_one_write(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """
        An entry goes to stderr in one write, so those of several processes sharing it
        (worker processes and their supervisor) cannot split each other's lines.

        ``print()`` writes the text, then the newline: with Python unbuffered
        (``PYTHONUNBUFFERED``, common in containers) each is a write(2) of its own, and the
        ``serve`` test saw two workers' entries glued on one line.
        """
        writes: list[str] = []

        class Stderr(io.StringIO):
            def write(self, text: str) -> int:
                writes.append(text)
                return len(text)

        monkeypatch.setattr(sys, "stderr", Stderr())
        try:
            configure_logging("info", "json")
            structlog.get_logger("event_collector").info("signal_received", signal="SIGTERM")
        finally:
            structlog.reset_defaults()
        [entry] = writes
        assert entry.endswith("}\n")
        assert json.loads(entry)["event"] == "signal_received"
