"""
Benchmark: the Redis Streams mode next to the ZeroMQ mode and streaQ, in the same run.

Run ``python benchmarks/redis_streams.py`` (``--quick`` for a short pass). It needs the
``bench`` extra (``pip install -e '.[bench]'``: both modes' extras and ``streaq>=7,<8``)
and a Redis server, by default ``redis://127.0.0.1:6379/13`` (``--redis URL``). Each run
uses a fresh queue name and deletes its keys afterwards; ``FUNCTION DELETE streaq`` drops
the function library streaQ loads into the server. Not part of the test suite.

Each round runs every side once, alternately, with the same number of worker processes (1,
then 2); the table gives medians over the rounds. What each side does:

* **redis**: this project's Redis Streams mode. Workers are processes of the project's CLI,
  ``python -m event_collector --log-level warning worker redis_streams:noop_collectors
  --connect URL --queue Q`` (default options: an autoscaled CollectorQueue of 1-100
  consumers, credit 200). The producer runs in this process under ``trio.run``:
  ``open_producer(URL, queue=Q)`` sends 20 000 tasks, each ``Payload({"id": i},
  Delivery.KEY, ("noop",))`` to a no-op processor returning ``Ok(payload.value)``, with
  ``await producer.send()`` (the default window of 1000 pending), then awaits every result.
* **zmq**: the ZeroMQ mode, the same producer code and workers, through a gateway process
  (``python -m event_collector gateway``, both endpoints ``tcp://127.0.0.1:0``).
* **streaQ** (7.x): its own CLI workers, ``streaq run redis_streams:streaq_worker``, each a
  ``Worker(redis_url=URL, queue_name=Q, concurrency=32, anyio_backend="trio")`` with a
  no-op task returning its argument (streaQ's defaults otherwise: pickle, results kept 5
  minutes). The producer, in this process under ``trio.run``, uses the same Worker object
  as its client, as streaQ's documentation shows: ``await worker.enqueue_many(tasks)`` for
  the 20 000 ``noop.enqueue({"id": i})`` tasks (its batch path, one pipeline), then ``await
  task.result()`` for every task. Each ``result()`` opens a Pub/Sub subscription and waits
  out coredis's 0.1 s unsubscription timeout when it closes, so the results are awaited
  ``--streaq-waiters`` (default 64) at a time, and its client's pool gets a connection for
  each and some spare (a ``result()`` holds a connection for its subscription and needs
  another for a GET: with the default pool of 64, 64 waiters deadlock). 64 was streaQ's
  fastest here: 16 and 32 leave its workers idle, 128 and 256 cost its producer more CPU
  than they gain.

Before the timed part, every side's producer sends tasks to a second collector (or streaQ
task) returning the worker's pid until every worker process has answered: all are up.

All processes share the machine's cores (2 here; the machine is shared with other work,
and the table shows how many cores were busy outside this benchmark's processes over each
run), so throughput is wall-clock tasks per second of the whole system. Each process's CPU
time over the timed part (``/proc/<pid>/stat`` utime + stime, and this process's
``time.process_time``) is printed per task, Redis's own (``redis-server``, from ``INFO``)
included: it says where the cores went. ``per CPU-s`` is tasks per second of CPU time of all
the side's processes together, the rate with a core for every process; it moves less with
the machine's other load than the wall-clock rate does.

Latency: tasks sent paced at half each side's measured maximum rate (above); p50 and p99
from each task's send to its result, with one Trio task per event awaiting ``wait()`` (for
streaQ, ``result()``; a paced streaQ send is ``await noop.enqueue(...)``, one round trip).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coredis
import msgspec
import trio
import zmq

from event_collector import Collector, Context, Delivery, Ok, Payload, Result
from event_collector.remote import open_producer
from processes import cpu_seconds, machine_cpu_seconds, read_line, spawn, stop

HERE = Path(__file__).resolve().parent
#: The environment of streaQ's worker processes: the Redis URL and the queue name.
STREAQ_URL = "EC_BENCH_STREAQ_URL"
STREAQ_QUEUE = "EC_BENCH_STREAQ_QUEUE"
#: streaQ's worker concurrency, as the issue sets it.
STREAQ_CONCURRENCY = 32
SIDES = ("redis", "zmq", "streaQ")
#: Connections in streaQ's client pool beyond one per result awaited: each ``result()``
#: holds one for its subscription and needs another, briefly, for its GET (with no spare
#: connection, the waiters deadlock).
WAITERS_SPARE = 16


# -- what the worker processes load ----------------------------------------------------


async def noop(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(payload.value)


async def whoami(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(os.getpid())


def noop_collectors() -> list[Collector[Any]]:
    return [Collector("noop", noop), Collector("pid", whoami)]


@dataclass
class Streaq:
    """
    A streaQ Worker with its two tasks: the no-op, and the one returning the worker's pid.
    """

    worker: Any
    noop: Any
    pid: Any


def make_streaq(url: str, queue: str, connections: int | None = None) -> Streaq:
    """
    Return streaQ's worker (also the producer's client: ``connections`` is its pool size).
    """
    from streaq import Worker  # noqa: PLC0415  (the bench extra only)

    worker: Any = Worker(
        redis_url=url,
        queue_name=queue,
        concurrency=STREAQ_CONCURRENCY,
        anyio_backend="trio",
        redis_kwargs={"max_connections": connections} if connections else None,
    )

    return Streaq(
        worker,
        worker.task(name="noop", silent=True)(streaq_noop),
        worker.task(name="pid", silent=True)(streaq_pid),
    )


async def streaq_noop(value: Any) -> Any:
    return value


async def streaq_pid() -> int:
    return os.getpid()


def __getattr__(name: str) -> Any:
    """
    ``streaq_worker``: the Worker that ``streaq run redis_streams:streaq_worker`` runs.
    """
    if name == "streaq_worker":
        return make_streaq(os.environ[STREAQ_URL], os.environ[STREAQ_QUEUE]).worker
    raise AttributeError(name)


# -- processes ----------------------------------------------------------------------------


@dataclass
class Cluster:
    """
    One side's processes by role, and what its producer needs to reach them.
    """

    endpoint: str
    redis_pid: int | None
    queue: str = ""
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def cpu(self) -> dict[str, float]:
        """
        Return each role's CPU seconds so far ("producer": this process; "machine": all).
        """
        used = {role: cpu_seconds(p.pid) for role, p in self.processes.items()}
        if self.redis_pid is not None and "gateway" not in self.processes:
            used["redis"] = cpu_seconds(self.redis_pid)
        used["producer"] = time.process_time()
        used["machine"] = machine_cpu_seconds()
        return used


def python_path() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def redis_pid(url: str) -> int | None:
    """
    Return the pid of the Redis server at ``url`` if it runs on this machine, else None.
    """

    async def ask() -> int:
        async with coredis.Redis.from_url(url) as client:
            info: Any = await client.info("server")
            return int(info["process_id"])

    pid = trio.run(ask)
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def delete_keys(url: str, pattern: str) -> None:
    """
    Delete the keys matching ``pattern`` (a run's queue name is in all of its keys).
    """

    async def delete() -> None:
        async with coredis.Redis.from_url(url) as client:
            batch: list[Any] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await client.unlink(batch)
                    batch = []
            if batch:
                await client.unlink(batch)

    trio.run(delete)


def fresh_queue() -> str:
    return f"ecbench-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def redis_cluster(url: str, workers: int) -> Iterator[Cluster]:
    """
    Start ``workers`` worker processes of the project on a fresh queue; stop them after.
    """
    queue = fresh_queue()
    cli = [sys.executable, "-m", "event_collector", "--log-level", "warning"]
    cluster = Cluster(url, redis_pid(url), queue)
    started: list[subprocess.Popen[str]] = []
    try:
        for index in range(workers):
            command = [*cli, "worker", "redis_streams:noop_collectors"]
            command += ["--connect", url, "--queue", queue]
            worker = spawn(command, python_path(), session=True)
            started.append(worker)
            cluster.processes[f"worker {index + 1}"] = worker
        yield cluster
    finally:
        stop(started)
        delete_keys(url, f"*{queue}*")


@contextlib.contextmanager
def zmq_cluster(workers: int) -> Iterator[Cluster]:
    """
    Start a gateway and ``workers`` worker processes (the project's CLI); stop them after.
    """
    cli = [sys.executable, "-m", "event_collector", "--log-level", "warning"]
    started: list[subprocess.Popen[str]] = []
    try:
        gateway = spawn(
            [*cli, "gateway", "--producers", "tcp://127.0.0.1:0", "--workers", "tcp://127.0.0.1:0"],
            read=True,
            session=True,
        )
        started.append(gateway)
        line = read_line(gateway, "gateway ready: ")
        endpoints = dict(part.split("=", 1) for part in line.split()[2:])
        cluster = Cluster(endpoints["producers"], None, processes={"gateway": gateway})
        for index in range(workers):
            command = [*cli, "worker", "redis_streams:noop_collectors"]
            command += ["--connect", endpoints["workers"]]
            worker = spawn(command, python_path(), session=True)
            started.append(worker)
            cluster.processes[f"worker {index + 1}"] = worker
        yield cluster
    finally:
        stop(started)


@contextlib.contextmanager
def streaq_cluster(url: str, workers: int) -> Iterator[Cluster]:
    """
    Start ``workers`` streaQ CLI workers on a fresh queue; stop them after.
    """
    queue = fresh_queue()
    cluster = Cluster(url, redis_pid(url), queue)
    command = [str(Path(sys.executable).with_name("streaq")), "run", "redis_streams:streaq_worker"]
    env = {**python_path(), STREAQ_URL: url, STREAQ_QUEUE: queue}
    started: list[subprocess.Popen[str]] = []
    try:
        for index in range(workers):
            worker = spawn(command, env, session=True)
            started.append(worker)
            cluster.processes[f"worker {index + 1}"] = worker
        yield cluster
    finally:
        stop(started)
        delete_keys(url, f"*{queue}*")


def drop_streaq_library(url: str) -> None:
    """
    Remove the function library streaQ loaded into the server.
    """

    async def drop() -> None:
        async with coredis.Redis.from_url(url) as client:
            with contextlib.suppress(coredis.exceptions.ResponseError):
                await client.function_delete("streaq")

    trio.run(drop)


# -- one measurement ----------------------------------------------------------------------


@dataclass
class Sample:
    """
    One timed run: its rate, each process's CPU seconds per task, the cores busy elsewhere.
    """

    rate: float
    cpu: dict[str, float]
    elsewhere: float


def sample(n: int, elapsed: float, before: dict[str, float], after: dict[str, float]) -> Sample:
    cpu = {role: (after[role] - before[role]) / n for role in before if role != "machine"}
    ours = sum(after[role] - before[role] for role in before if role != "machine")
    elsewhere = max(after["machine"] - before["machine"] - ours, 0.0) / elapsed
    return Sample(n / elapsed, cpu, elsewhere)


def check(failures: int, first: object) -> None:
    if failures:
        raise RuntimeError(f"{failures} tasks failed, the first: {first!r}")


def producer_options(cluster: Cluster) -> dict[str, Any]:
    return {"queue": cluster.queue} if cluster.queue else {}


async def warm_up(producer: Any, workers: int) -> None:
    """
    Send the pid collector tasks until every worker has answered.
    """
    pids: set[object] = set()
    with trio.fail_after(60):
        while len(pids) < workers:
            events = [await producer.send(Payload(i, Delivery.KEY, ("pid",))) for i in range(50)]
            for event in events:
                pids.add((await event.wait())[0].unwrap())


def project_throughput(cluster: Cluster, workers: int, n: int) -> Sample:
    async def run() -> Sample:
        options = producer_options(cluster)
        async with open_producer(cluster.endpoint, logging=False, **options) as producer:
            await warm_up(producer, workers)
            before, start = cluster.cpu(), time.perf_counter()
            events = [
                await producer.send(Payload({"id": i}, Delivery.KEY, ("noop",))) for i in range(n)
            ]
            results = [await event.wait() for event in events]
            elapsed, after = time.perf_counter() - start, cluster.cpu()
        failed = [r for r in results if not r[0].is_ok()]
        check(len(failed), failed[:1])
        return sample(n, elapsed, before, after)

    return trio.run(run)


async def streaq_results(tasks: Sequence[Any], waiters: int) -> list[Any]:
    """
    Return the result of every streaQ task, ``waiters`` awaited at once.
    """
    results: list[Any] = [None] * len(tasks)
    limit = trio.CapacityLimiter(waiters)

    async def wait(index: int, task: Any) -> None:
        async with limit:
            results[index] = await task.result()

    async with trio.open_nursery() as nursery:
        for index, task in enumerate(tasks):
            nursery.start_soon(wait, index, task)
    return results


async def streaq_warm_up(streaq: Streaq, workers: int, waiters: int) -> None:
    """
    Run the pid task until every streaQ worker has answered.
    """
    pids: set[object] = set()
    with trio.fail_after(60):
        while len(pids) < workers:
            tasks = [streaq.pid.enqueue() for _ in range(100)]
            await streaq.worker.enqueue_many(tasks)
            pids.update(result.result for result in await streaq_results(tasks, waiters))


def streaq_throughput(cluster: Cluster, workers: int, n: int, waiters: int) -> Sample:
    async def run() -> Sample:
        streaq = make_streaq(cluster.endpoint, cluster.queue, waiters + WAITERS_SPARE)
        async with streaq.worker:
            await streaq_warm_up(streaq, workers, waiters)
            before, start = cluster.cpu(), time.perf_counter()
            tasks = [streaq.noop.enqueue({"id": i}) for i in range(n)]
            await streaq.worker.enqueue_many(tasks)
            results = await streaq_results(tasks, waiters)
            elapsed, after = time.perf_counter() - start, cluster.cpu()
        failed = [r for r in results if not r.success]
        check(len(failed), failed[:1])
        return sample(n, elapsed, before, after)

    return trio.run(run)


# -- latency at a paced rate ----------------------------------------------------------------


def project_latency(cluster: Cluster, workers: int, n: int, rate: float) -> list[float]:
    async def run() -> list[float]:
        latencies: list[float] = []

        async def watch(sent_at: float, event: Any) -> None:
            await event.wait()
            latencies.append(time.perf_counter() - sent_at)

        options = producer_options(cluster)
        async with open_producer(cluster.endpoint, logging=False, **options) as producer:
            await warm_up(producer, workers)
            async with trio.open_nursery() as nursery:
                start = trio.current_time()
                for i in range(n):
                    due = start + i / rate
                    if trio.current_time() < due:
                        await trio.sleep_until(due)
                    sent_at = time.perf_counter()
                    event = await producer.send(Payload({"id": i}, Delivery.KEY, ("noop",)))
                    nursery.start_soon(watch, sent_at, event)
        return latencies

    return trio.run(run)


def streaq_latency(
    cluster: Cluster, workers: int, n: int, rate: float, waiters: int
) -> list[float]:
    async def run() -> list[float]:
        latencies: list[float] = []

        async def watch(sent_at: float, task: Any) -> None:
            await task.result()
            latencies.append(time.perf_counter() - sent_at)

        # Tasks in flight at half streaQ's rate, each holding a connection for its result:
        # a few dozen; the pool has room for as many as the throughput run awaits at once.
        streaq = make_streaq(cluster.endpoint, cluster.queue, waiters + WAITERS_SPARE)
        async with streaq.worker:
            await streaq_warm_up(streaq, workers, waiters)
            async with trio.open_nursery() as nursery:
                start = trio.current_time()
                for i in range(n):
                    due = start + i / rate
                    if trio.current_time() < due:
                        await trio.sleep_until(due)
                    sent_at = time.perf_counter()
                    task = await streaq.noop.enqueue({"id": i})
                    nursery.start_soon(watch, sent_at, task)
        return latencies

    return trio.run(run)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- report ---------------------------------------------------------------------------------


def alternate(rounds: int, runs: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """
    Call every run once a round, in order, for ``rounds`` rounds; return the results by name.
    """
    results: dict[str, list[Any]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            gc.collect()
            results[name].append(run())
    return results


HEADER = (
    f"{'case':<22} {'tasks/s':>8} {'per CPU-s':>10}   CPU us/task:"
    f" {'producer':>8} {'broker':>8} {'workers':>8}   {'busy elsewhere':>14}"
)


def throughput_lines(label: str, runs: dict[str, list[Sample]]) -> dict[str, float]:
    """
    Print a row per side and the ratios; return each side's median rate.
    """
    rates = {name: statistics.median(s.rate for s in samples) for name, samples in runs.items()}
    efficiency = {
        name: statistics.median(1 / sum(s.cpu.values()) for s in samples)
        for name, samples in runs.items()
    }
    print(label)
    for name, samples in runs.items():
        cpu = {role: statistics.median(s.cpu[role] for s in samples) for role in samples[0].cpu}
        workers = sum(value for role, value in cpu.items() if role.startswith("worker"))
        broker = cpu.get("gateway", cpu.get("redis", 0.0))
        print(
            f"{'  ' + name:<22} {rates[name]:>8,.0f} {efficiency[name]:>10,.0f}   {'':>11}"
            f" {cpu['producer'] * 1e6:>8.1f} {broker * 1e6:>8.1f} {workers * 1e6:>8.1f}"
            f"   {statistics.median(s.elsewhere for s in samples):>8.2f} cores"
        )
    for a, b in (("redis", "streaQ"), ("redis", "zmq")):
        if a in rates and b in rates:
            print(
                f"{'  ' + a + ' / ' + b:<22} {rates[a] / rates[b]:>7.2f}x"
                f" {efficiency[a] / efficiency[b]:>9.2f}x"
            )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer tasks and one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    parser.add_argument("--tasks", type=int, default=None, help="tasks a run (default 20 000)")
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/13", help="the Redis server and database"
    )
    parser.add_argument("--sides", default=",".join(SIDES), help="sides to run (default: all)")
    parser.add_argument(
        "--only", default="throughput,latency", help="sections to run (default: both)"
    )
    parser.add_argument("--workers", default="1,2", help="worker process counts (default 1,2)")
    parser.add_argument(
        "--streaq-waiters",
        type=int,
        default=64,
        help="streaQ results awaited at once (each result() holds a Pub/Sub for 0.1 s)",
    )
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    n = args.tasks or (5_000 if args.quick else 20_000)
    sides = [side for side in SIDES if side in args.sides.split(",")]
    sections = args.only.split(",")
    counts = [int(count) for count in args.workers.split(",")]
    url = args.redis

    import streaq  # noqa: PLC0415  (the bench extra)

    print(
        f"Redis Streams benchmark: python {sys.version.split()[0]}, trio {trio.__version__}, "
        f"coredis {coredis.__version__}, pyzmq {zmq.__version__}, msgspec {msgspec.__version__},"
        f" streaQ {streaq.VERSION}"
    )
    pid = redis_pid(url)
    print(
        f"{os.cpu_count()} cores, shared by the producer (this process), the broker (Redis, or "
        f"the gateway) and the workers; Redis at {url}"
        + ("" if pid else " (not on this machine: its CPU is not counted)")
    )
    print(
        f"median of {rounds} alternating rounds; tasks/s is wall clock, CPU us/task per process;"
        f" streaQ: concurrency {STREAQ_CONCURRENCY}, {args.streaq_waiters} results awaited"
        " at once"
    )

    rates: dict[int, dict[str, float]] = {}
    try:
        if "throughput" in sections or "latency" in sections:
            print(f"\nround trip: {n:,} no-op tasks, every result awaited")
            print(HEADER)
            for workers in counts:
                runs = alternate(
                    rounds,
                    {
                        side: functools.partial(
                            throughput, url, side, workers, n, args.streaq_waiters
                        )
                        for side in sides
                    },
                )
                rates[workers] = throughput_lines(label_of(workers), runs)

        if "latency" in sections:
            count = n // 5
            print(
                f"\nlatency: {count:,} tasks paced at half each side's maximum rate (above),"
                " send to result"
            )
            print(f"{'case':<22} {'rate/s':>8} {'p50 ms':>9} {'p99 ms':>9}")
            for workers in counts:
                lat = alternate(
                    rounds,
                    {
                        side: functools.partial(
                            latency,
                            url,
                            side,
                            workers,
                            count,
                            rates[workers][side] / 2,
                            args.streaq_waiters,
                        )
                        for side in sides
                    },
                )
                print(label_of(workers))
                for side, of_side in lat.items():
                    p50 = statistics.median(percentile(each, 0.5) for each in of_side) * 1e3
                    p99 = statistics.median(percentile(each, 0.99) for each in of_side) * 1e3
                    print(
                        f"{'  ' + side:<22} {rates[workers][side] / 2:>8,.0f}"
                        f" {p50:>9.2f} {p99:>9.2f}"
                    )
    finally:
        if "streaQ" in sides:
            drop_streaq_library(url)


def label_of(workers: int) -> str:
    return f"{workers} worker process{'es' if workers > 1 else ''}"


def cluster_for(url: str, side: str, workers: int) -> contextlib.AbstractContextManager[Cluster]:
    if side == "redis":
        return redis_cluster(url, workers)
    if side == "zmq":
        return zmq_cluster(workers)
    return streaq_cluster(url, workers)


def throughput(url: str, side: str, workers: int, n: int, waiters: int) -> Sample:
    """
    Start one side's processes, measure its round trip of ``n`` tasks, stop them.
    """
    with cluster_for(url, side, workers) as cluster:
        if side == "streaQ":
            return streaq_throughput(cluster, workers, n, waiters)
        return project_throughput(cluster, workers, n)


def latency(url: str, side: str, workers: int, n: int, rate: float, waiters: int) -> list[float]:
    """
    Start one side's processes, measure the latency of ``n`` tasks at ``rate``, stop them.
    """
    with cluster_for(url, side, workers) as cluster:
        if side == "streaQ":
            return streaq_latency(cluster, workers, n, rate, waiters)
        return project_latency(cluster, workers, n, rate)


if __name__ == "__main__":
    main()
