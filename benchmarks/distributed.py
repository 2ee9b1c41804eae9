"""
Benchmark: the distributed mode next to raw blocking pyzmq doing the same round trip.

Run ``python benchmarks/distributed.py`` (``--quick`` for a smaller pass). Each round runs
the project and the raw baseline alternately, with the same number of processes; the table
gives medians over the rounds and the project's rate as a fraction of raw's. Not part of
the test suite.

The project: this script starts a gateway (``python -m event_collector gateway``, both
endpoints ``tcp://127.0.0.1:0``, read back from its ``gateway ready:`` line) and 1 or 2
worker processes (``python -m event_collector worker``, default options: an autoscaled
CollectorQueue of 1-100 consumers, credit 200), all with ``--log-level warning``. The
producer runs in this process under ``trio.run``: it sends 100 000 tasks, each
``Payload({"id": i}, Delivery.KEY, ("noop",))`` to a no-op processor returning
``Ok(payload.value)``, with ``await producer.send()`` (the default window of 1000 pending),
then awaits every result. A second collector, reached only by key, returns its worker's pid:
before the timed part the producer sends it tasks until every worker has answered.

The baseline (``raw``), blocking pyzmq with the same shape and process count:

* producer (this process): a DEALER sends ``{"id": i}`` packed by msgspec (the same small
  body as the project's payload value), one ``send`` a task, and keeps ``--window`` (1000,
  the producer's default window) tasks out: one more sent for each reply taken with a
  blocking ``recv``;
* broker (a process): ``zmq.proxy(frontend, backend)``, libzmq's own forwarding loop in C,
  between a ROUTER bound for producers and a DEALER bound for workers (which hands requests
  to the workers round-robin; the replies find their producer by the ROUTER's identity
  frame). It waits for every worker's handshake (a socket monitor) before it forwards;
* workers (1 or 2 processes): a DEALER that echoes every request as it is, blocking
  ``recv_multipart`` / ``send_multipart``, no decoding.

``raw loop`` is the same with the broker written in Python, as a user would with no C proxy
to hand: two ROUTERs in a ``zmq.Poller`` loop that forwards every message waiting on a ready
socket (``NOBLOCK`` until ``zmq.Again``), requests to the workers round-robin (they
register with ``READY``), replies back by identity. It is shown for scale; ratios are to
``raw``. Neither broker has a queue, credit, heartbeats or a task table: a request goes to
a worker at once, and a worker that dies loses its requests.

What the ratio prices: msgpack envelopes and payload values, credit both ways, the gateway's
task table (exactly once, redelivery), the worker's CollectorQueue, results as ResultList
objects, and Trio; and what it buys back, batching (many tasks a message).

All processes share the machine's cores (2 here, and the machine is shared with other
work: the table shows how many cores were busy outside this benchmark's processes over each
run), so throughput is wall-clock tasks per second of the whole system. Each process's CPU
time over the timed part (``/proc/<pid>/stat`` utime + stime; for this process
``time.process_time``, libzmq's I/O thread included) is printed per task: it says where the
cores went.

Other rows:

* latency: right after each throughput run, on the same processes, tasks sent paced at
  half the rate that run measured (half of what the machine gave that side just then);
  p50 and p99 from each task's send to its result (project: one task awaits the events in
  send order, which can only overstate a latency; raw: the time its reply is taken);
* CURVE: the same round trip with CURVE on, keys from ``event-collector keygen`` in a
  temporary directory; the raw baseline then uses CURVE too (same keys, no ZAP handler);
* CPU-bound: a processor burning about 1 ms of CPU (a loop calibrated once in this
  process), through 1 and 2 worker processes against the in-process CollectorQueue (same
  options as a worker's queue) running the same processor in this process. Two workers
  can only double the rate with two cores free: read it with the cores busy elsewhere.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import trio
import zmq
import zmq.auth
import zmq.utils.monitor

from event_collector import Collector, CollectorQueue, Context, Delivery, Ok, Payload, Result
from event_collector.remote import CurveClient, open_producer
from processes import cpu_seconds, machine_cpu_seconds, read_line, spawn, stop

HERE = Path(__file__).resolve().parent
#: The environment variable telling worker processes how many loop turns burn 1 ms.
SPIN_VARIABLE = "EC_BENCH_SPIN"
ZmqContext = zmq.Context[zmq.Socket[bytes]]
#: Extra options for every ``event_collector worker`` command (``--worker-options``).
WORKER_OPTIONS: list[str] = []


# -- the collectors the worker processes load (distributed:noop_collectors, ...) ------------


async def noop(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(payload.value)


async def whoami(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(os.getpid())


def spin(turns: int) -> int:
    total = 0
    for i in range(turns):
        total += i
    return total


async def burn(payload: Payload[Any], ctx: Context) -> Result[Any]:
    spin(int(os.environ[SPIN_VARIABLE]))
    return Ok(payload.value)


def noop_collectors() -> list[Collector[Any]]:
    return [Collector("noop", noop), Collector("pid", whoami)]


def cpu_collectors() -> list[Collector[Any]]:
    return [Collector("cpu", burn), Collector("pid", whoami)]


def calibrate() -> int:
    """
    Return the loop turns of :func:`spin` that take about 1 ms of CPU here.
    """
    turns = 200_000
    best = math.inf
    for _ in range(7):
        start = time.process_time()
        spin(turns)
        best = min(best, time.process_time() - start)
    return round(turns * 1e-3 / best)


# -- processes ----------------------------------------------------------------------------


def busy_elsewhere(elapsed: float, before: dict[str, float], after: dict[str, float]) -> float:
    """
    Return the cores busy outside the benchmark's processes over ``elapsed`` seconds.

    ``before`` and ``after`` are :meth:`Cluster.cpu` readings: the machine is shared.
    """
    ours = sum(after[role] - before[role] for role in before if role != "machine")
    return max(after["machine"] - before["machine"] - ours, 0.0) / elapsed


@dataclass
class Cluster:
    """
    The processes of one side: the endpoint the producer connects to, the processes by role.
    """

    endpoint: str
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def cpu(self) -> dict[str, float]:
        """
        Return each role's CPU seconds so far ("producer": this process; "machine": all).
        """
        used = {role: cpu_seconds(p.pid) for role, p in self.processes.items()}
        used["producer"] = time.process_time()
        used["machine"] = machine_cpu_seconds()
        return used


@dataclass
class Keys:
    """
    Throwaway CURVE keys in ``directory``: the server's pair, and one pair for the clients.
    """

    directory: Path

    def __post_init__(self) -> None:
        self.server_secret = self.directory / "server" / "gateway.key_secret"
        self.server_public = self.directory / "server" / "gateway.key"
        self.clients = self.directory / "clients"  # the gateway's allow-list
        self.client_secret = self.clients / "client.key_secret"


def make_keys(directory: Path) -> Keys:
    cli = [sys.executable, "-m", "event_collector", "keygen"]
    for where, name in (("server", "gateway"), ("clients", "client")):
        subprocess.run(
            [*cli, str(directory / where), "--name", name], check=True, capture_output=True
        )
    return Keys(directory)


@contextlib.contextmanager
def project_cluster(workers: int, collectors: str, keys: Keys | None = None) -> Iterator[Cluster]:
    """
    Start a gateway and ``workers`` worker processes (the project's CLI); stop them after.
    """
    cli = [sys.executable, "-m", "event_collector", "--log-level", "warning"]
    gateway_curve, worker_curve = [], []
    if keys is not None:
        gateway_curve = ["--curve-secret", str(keys.server_secret)]
        gateway_curve += ["--curve-clients", str(keys.clients)]
        worker_curve = ["--curve-secret", str(keys.client_secret)]
        worker_curve += ["--curve-server", str(keys.server_public)]
    started: list[subprocess.Popen[str]] = []
    try:
        gateway = spawn(
            [
                *cli,
                "gateway",
                "--producers",
                "tcp://127.0.0.1:0",
                "--workers",
                "tcp://127.0.0.1:0",
                *gateway_curve,
            ],
            read=True,
        )
        started.append(gateway)
        line = read_line(gateway, "gateway ready: ")
        endpoints = dict(part.split("=", 1) for part in line.split()[2:])
        cluster = Cluster(endpoints["producers"], {"gateway": gateway})
        path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
        for index in range(workers):
            command = [*cli, "worker", f"distributed:{collectors}"]
            command += ["--connect", endpoints["workers"], *worker_curve, *WORKER_OPTIONS]
            worker = spawn(command, {"PYTHONPATH": path})
            started.append(worker)
            cluster.processes[f"worker {index + 1}"] = worker
        yield cluster
    finally:
        stop(started)


@contextlib.contextmanager
def raw_cluster(workers: int, kind: str, keys: Keys | None = None) -> Iterator[Cluster]:
    """
    Start the raw broker and ``workers`` raw echo workers (this script); stop them after.
    """
    script = [sys.executable, str(Path(__file__).resolve())]
    curve = ["--broker", kind]
    if keys is not None:
        curve += ["--curve", str(keys.directory)]
    started: list[subprocess.Popen[str]] = []
    try:
        broker = spawn([*script, "--role", "broker", "--workers", str(workers), *curve], read=True)
        started.append(broker)
        line = read_line(broker, "broker ready: ")
        endpoints = dict(part.split("=", 1) for part in line.split()[2:])
        cluster = Cluster(endpoints["frontend"], {"broker": broker})
        for index in range(workers):
            command = [*script, "--role", "worker", "--connect", endpoints["backend"], *curve]
            worker = spawn(command)
            started.append(worker)
            cluster.processes[f"worker {index + 1}"] = worker
        read_line(broker, "workers ready")
        yield cluster
    finally:
        stop(started)


# -- the raw baseline's processes ---------------------------------------------------------


def curve_server(socket: zmq.Socket[bytes], keys: Keys | None) -> None:
    if keys is not None:
        public, secret = zmq.auth.load_certificate(keys.server_secret)
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_server = True


def curve_client(socket: zmq.Socket[bytes], keys: Keys | None) -> None:
    if keys is not None:
        public, secret = zmq.auth.load_certificate(keys.client_secret)
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_serverkey = zmq.auth.load_certificate(keys.server_public)[0]


def wait_for_workers(backend: zmq.Socket[bytes], workers: int) -> None:
    """
    Return once ``workers`` peers have completed their handshake with ``backend``.
    """
    monitor = backend.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    for _ in range(workers):
        zmq.utils.monitor.recv_monitor_message(monitor)
    backend.disable_monitor()
    monitor.close()


def raw_broker(kind: str, workers: int, keys: Keys | None) -> None:
    """
    Forward requests to the workers round-robin and replies back, until killed.

    ``proxy``: libzmq's ``zmq.proxy`` between a ROUTER (producers) and a DEALER (workers),
    in C. ``loop``: a Python ``zmq.Poller`` loop between two ROUTERs.
    """
    ctx: ZmqContext = zmq.Context()
    frontend = ctx.socket(zmq.ROUTER)
    backend = ctx.socket(zmq.DEALER if kind == "proxy" else zmq.ROUTER)
    for socket in (frontend, backend):
        socket.sndhwm = socket.rcvhwm = 0
        curve_server(socket, keys)
    front_port = frontend.bind_to_random_port("tcp://127.0.0.1")
    back_port = backend.bind_to_random_port("tcp://127.0.0.1")
    print(
        f"broker ready: frontend=tcp://127.0.0.1:{front_port} backend=tcp://127.0.0.1:{back_port}",
        flush=True,
    )
    if kind == "proxy":
        wait_for_workers(backend, workers)
        print("workers ready", flush=True)
        zmq.proxy(frontend, backend)
        return
    ready: list[bytes] = []
    while len(ready) < workers:
        identity, _ = backend.recv_multipart()
        ready.append(identity)
    print("workers ready", flush=True)
    poller = zmq.Poller()
    poller.register(frontend, zmq.POLLIN)
    poller.register(backend, zmq.POLLIN)
    turn = 0
    while True:
        for socket, _ in poller.poll():
            with contextlib.suppress(zmq.Again):
                if socket is backend:
                    while True:  # [worker, producer, body] -> [producer, body]
                        frontend.send_multipart(backend.recv_multipart(zmq.NOBLOCK)[1:])
                else:
                    while True:  # [producer, body] -> [worker, producer, body]
                        frames = frontend.recv_multipart(zmq.NOBLOCK)
                        backend.send_multipart([ready[turn % workers], *frames])
                        turn += 1


def raw_worker(kind: str, endpoint: str, keys: Keys | None) -> None:
    """
    Echo every request as it is ([producer, body]), until killed.
    """
    ctx: ZmqContext = zmq.Context()
    socket = ctx.socket(zmq.DEALER)
    socket.sndhwm = socket.rcvhwm = 0
    curve_client(socket, keys)
    socket.connect(endpoint)
    if kind == "loop":
        socket.send(b"READY")  # the loop broker's ROUTER learns the worker's identity
    while True:
        socket.send_multipart(socket.recv_multipart())


# -- one measurement ----------------------------------------------------------------------


@dataclass
class Sample:
    """
    One timed run: its rate, each process's CPU seconds per task, the cores busy elsewhere.
    """

    rate: float
    cpu: dict[str, float]
    elsewhere: float
    #: Latencies of a paced run on the same processes right after, at half ``rate``.
    latencies: list[float] = field(default_factory=list)


def sample(n: int, elapsed: float, before: dict[str, float], after: dict[str, float]) -> Sample:
    cpu = {role: (after[role] - before[role]) / n for role in before if role != "machine"}
    return Sample(n / elapsed, cpu, busy_elsewhere(elapsed, before, after))


async def warm_up(producer: Any, workers: int) -> None:
    """
    Send the pid collector tasks until every worker has answered; then some no-op tasks.
    """
    pids: set[object] = set()
    with trio.fail_after(60):
        while len(pids) < workers:
            events = [await producer.send(Payload(i, Delivery.KEY, ("pid",))) for i in range(50)]
            for event in events:
                pids.add((await event.wait())[0].unwrap())


def check(results: Sequence[Any]) -> None:
    failed = [r for r in results if not r[0].is_ok()]
    if failed:
        raise RuntimeError(f"{len(failed)} tasks failed, the first: {failed[0]!r}")


def project_throughput(cluster: Cluster, workers: int, n: int, keys: Keys | None) -> Sample:
    async def run() -> Sample:
        curve = CurveClient(keys.client_secret, keys.server_public) if keys else None
        async with open_producer(cluster.endpoint, logging=False, curve=curve) as producer:
            await warm_up(producer, workers)
            before, start = cluster.cpu(), time.perf_counter()
            events = [
                await producer.send(Payload({"id": i}, Delivery.KEY, ("noop",))) for i in range(n)
            ]
            results = [await event.wait() for event in events]
            elapsed, after = time.perf_counter() - start, cluster.cpu()
        check(results)
        return sample(n, elapsed, before, after)

    return trio.run(run)


def raw_socket(ctx: ZmqContext, cluster: Cluster, keys: Keys | None) -> zmq.Socket[bytes]:
    socket = ctx.socket(zmq.DEALER)
    socket.sndhwm = socket.rcvhwm = 0
    socket.linger = 0
    curve_client(socket, keys)
    socket.connect(cluster.endpoint)
    for _ in range(1000):  # warm-up, through every worker
        socket.send(b"warm-up")
    for _ in range(1000):
        socket.recv()
    return socket


def raw_throughput(cluster: Cluster, n: int, window: int, keys: Keys | None) -> Sample:
    ctx: ZmqContext = zmq.Context()
    encode = msgspec.msgpack.encode
    try:
        socket = raw_socket(ctx, cluster, keys)
        before, start = cluster.cpu(), time.perf_counter()
        sent = min(window, n)
        for i in range(sent):
            socket.send(encode({"id": i}))
        for _ in range(n):
            socket.recv()
            if sent < n:
                socket.send(encode({"id": sent}))
                sent += 1
        elapsed, after = time.perf_counter() - start, cluster.cpu()
        socket.close()
    finally:
        ctx.term()
    return sample(n, elapsed, before, after)


# -- latency at a paced rate ----------------------------------------------------------------


def project_latency(cluster: Cluster, workers: int, n: int, rate: float) -> list[float]:
    """
    Send ``n`` tasks at ``rate``; return each one's send-to-result latency.

    One task waits for the events in the order they were sent (a task per event would cost
    this process a spawn per task, which raw does not pay): an event that resolved before
    an earlier one is counted when that one has resolved, which can only add to latency.
    It takes them from a deque, not a memory channel: a channel's ``receive`` is a schedule
    point, one scheduler pass per task that raw's loop does not pay either.
    """

    async def run() -> list[float]:
        latencies: list[float] = []
        sent: collections.deque[tuple[float, Any]] = collections.deque()
        more = trio.Event()

        async def watch() -> None:
            nonlocal more
            for _ in range(n):
                while not sent:
                    await more.wait()
                    more = trio.Event()
                sent_at, event = sent.popleft()
                await event.wait()
                latencies.append(time.perf_counter() - sent_at)

        async with open_producer(cluster.endpoint, logging=False) as producer:
            await warm_up(producer, workers)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                start = trio.current_time()
                for i in range(n):
                    due = start + i / rate
                    if trio.current_time() < due:
                        await trio.sleep_until(due)
                    sent_at = time.perf_counter()
                    event = await producer.send(Payload({"id": i}, Delivery.KEY, ("noop",)))
                    sent.append((sent_at, event))
                    more.set()
        return latencies

    return trio.run(run)


def raw_latency(cluster: Cluster, n: int, rate: float) -> list[float]:
    """
    Send ``n`` tasks at ``rate``, each as it falls due; take replies while waiting.

    The wait is a poll with a whole-millisecond timeout, as Trio's sleep is: tasks that fall
    due meanwhile go out together.
    """
    ctx: ZmqContext = zmq.Context()
    encode = msgspec.msgpack.encode
    now = time.perf_counter
    sent_at = [0.0] * n
    latencies: list[float] = []
    try:
        socket = raw_socket(ctx, cluster, None)
        start = now()
        sent = 0
        while len(latencies) < n:
            while sent < n and now() >= start + sent / rate:
                sent_at[sent] = now()
                socket.send(encode({"id": sent}))
                sent += 1
            wait = (start + sent / rate - now()) if sent < n else 1.0
            if socket.poll(max(math.ceil(wait * 1e3), 1), zmq.POLLIN):
                with contextlib.suppress(zmq.Again):
                    while True:
                        task_id = msgspec.msgpack.decode(socket.recv(zmq.NOBLOCK))["id"]
                        latencies.append(now() - sent_at[task_id])
        socket.close()
    finally:
        ctx.term()
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- CPU-bound ------------------------------------------------------------------------------


def in_process_cpu_bound(n: int) -> Sample:
    cluster = Cluster("")  # no processes: this one only

    async def run() -> Sample:
        async with CollectorQueue(cpu_collectors(), logging=False) as queue:
            publisher = queue.get_publisher()
            before, start = cluster.cpu(), time.perf_counter()
            events = [await publisher.send(Payload(i, Delivery.KEY, ("cpu",))) for i in range(n)]
            results = [await event.wait() for event in events]
            elapsed, after = time.perf_counter() - start, cluster.cpu()
        check(results)
        return sample(n, elapsed, before, after)

    return trio.run(run)


def distributed_cpu_bound(cluster: Cluster, workers: int, n: int) -> Sample:
    async def run() -> Sample:
        async with open_producer(cluster.endpoint, logging=False) as producer:
            await warm_up(producer, workers)
            before, start = cluster.cpu(), time.perf_counter()
            events = [await producer.send(Payload(i, Delivery.KEY, ("cpu",))) for i in range(n)]
            results = [await event.wait() for event in events]
            elapsed, after = time.perf_counter() - start, cluster.cpu()
        check(results)
        return sample(n, elapsed, before, after)

    return trio.run(run)


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


def median_cpu(samples: list[Sample]) -> dict[str, float]:
    return {role: statistics.median(s.cpu[role] for s in samples) for role in samples[0].cpu}


HEADER = (
    f"{'case':<24} {'tasks/s':>8} {'x raw':>6} {'per CPU-s':>10} {'x raw':>6}   CPU us/task:"
    f" {'producer':>8} {'gateway':>8} {'workers':>8}   {'busy elsewhere':>14}"
)


def throughput_lines(label: str, runs: dict[str, list[Sample]]) -> tuple[float, float, float]:
    """
    Print a row per side (the first the project).

    Returns:
        The project's rate, raw's rate, and the project's tasks per CPU second.

    ``per CPU-s``: tasks per second of CPU time of all the side's processes together, the
    rate with every process on a core of its own and nothing else on the machine; it moves
    less with the machine's other load than the wall-clock rate does.
    """
    rates = {name: statistics.median(s.rate for s in samples) for name, samples in runs.items()}
    efficiency = {
        name: statistics.median(1 / sum(s.cpu.values()) for s in samples)
        for name, samples in runs.items()
    }
    print(label)
    for name, samples in runs.items():
        cpu = median_cpu(samples)
        workers = sum(value for role, value in cpu.items() if role.startswith("worker"))
        broker = cpu.get("gateway", cpu.get("broker", 0.0))
        print(
            f"{'  ' + name:<24} {rates[name]:>8,.0f} {rates[name] / rates['raw']:>6.3f}"
            f" {efficiency[name]:>10,.0f} {efficiency[name] / efficiency['raw']:>6.3f}   {'':>11}"
            f" {cpu['producer'] * 1e6:>8.1f} {broker * 1e6:>8.1f} {workers * 1e6:>8.1f}"
            f"   {statistics.median(s.elsewhere for s in samples):>8.2f} cores"
        )
    return rates["project"], rates["raw"], efficiency["project"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer tasks and rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--window", type=int, default=1000, help="raw producer's tasks out")
    parser.add_argument(
        "--only", default="throughput,latency,curve,cpu", help="sections to run (default: all)"
    )
    parser.add_argument(
        "--worker-options",
        default="",
        help="extra options of the project's worker command, e.g. '--max-consumers 10'",
    )
    parser.add_argument("--role", choices=["broker", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--broker", choices=["proxy", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--connect", help=argparse.SUPPRESS)
    parser.add_argument("--curve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role is not None:  # a process of the raw baseline
        keys = Keys(args.curve) if args.curve else None
        with contextlib.suppress(KeyboardInterrupt):
            if args.role == "broker":
                raw_broker(args.broker, args.workers, keys)
            else:
                raw_worker(args.broker, args.connect, keys)
        return

    WORKER_OPTIONS.extend(args.worker_options.split())
    rounds = args.rounds or (3 if args.quick else 5)
    n = 20_000 if args.quick else 100_000
    window = args.window
    sections = args.only.split(",")
    print(
        f"distributed benchmark: python {sys.version.split()[0]}, trio {trio.__version__}, "
        f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, msgspec {msgspec.__version__}"
    )
    print(
        f"{os.cpu_count()} cores, shared by the producer (this process), the gateway (or "
        "broker) and the workers;"
    )
    print(
        f"tcp loopback; median of {rounds} alternating rounds; tasks/s is wall clock, "
        "CPU us/task per process"
    )
    if WORKER_OPTIONS:
        print(f"project workers run with {' '.join(WORKER_OPTIONS)}")
    print(
        "raw: blocking pyzmq, zmq.proxy broker (ROUTER/DEALER, in C), echo workers; "
        "raw loop: the same with a Python poll-loop broker (ROUTER/ROUTER)"
    )

    rates: dict[int, tuple[float, float, float]] = {}
    if "throughput" in sections or "latency" in sections:
        latency = "latency" in sections
        count = n // 5
        print(f"\nround trip: {n:,} no-op tasks, every result awaited; {window} in flight")
        print(HEADER)
        paced: dict[int, dict[str, list[Sample]]] = {}
        for workers in (1, 2):

            def ours(workers: int = workers) -> Sample:
                with project_cluster(workers, "noop_collectors") as cluster:
                    result = project_throughput(cluster, workers, n, None)
                    if latency:
                        rate = result.rate / 2
                        result.latencies = project_latency(cluster, workers, count, rate)
                    return result

            def raw(workers: int = workers, kind: str = "proxy") -> Sample:
                with raw_cluster(workers, kind) as cluster:
                    result = raw_throughput(cluster, n, window, None)
                    if latency and kind == "proxy":
                        result.latencies = raw_latency(cluster, count, result.rate / 2)
                    return result

            runs = alternate(
                rounds, {"project": ours, "raw": raw, "raw loop": lambda: raw(kind="loop")}
            )
            label = f"{workers} worker process{'es' if workers > 1 else ''}"
            rates[workers] = throughput_lines(label, runs)
            paced[workers] = runs

        if latency:
            print(
                f"\nlatency: {count:,} tasks paced at half the maximum rate each side has just "
                "measured (above) on the same processes, send to result"
            )
            print(f"{'case':<24} {'project ms':>10} {'raw ms':>9} {'ratio':>6}")
            for workers, runs in paced.items():
                print(
                    f"{workers} worker process{'es' if workers > 1 else ''}: project at "
                    f"{rates[workers][0] / 2:,.0f}/s, raw at {rates[workers][1] / 2:,.0f}/s "
                    "(medians)"
                )
                for name, fraction in (("p50", 0.5), ("p99", 0.99)):
                    a, b = (
                        statistics.median(percentile(s.latencies, fraction) for s in runs[side])
                        * 1e3
                        for side in ("project", "raw")
                    )
                    print(f"{'  ' + name:<24} {a:>10.3f} {b:>9.3f} {a / b:>6.2f}")

    if "curve" in sections:
        print(f"\nCURVE on, both sides (throwaway keys): {n:,} no-op tasks")
        print(HEADER)
        with tempfile.TemporaryDirectory(prefix="ec-bench-keys-") as tmp:
            keys = make_keys(Path(tmp))

            def ours_curve() -> Sample:
                with project_cluster(2, "noop_collectors", keys) as cluster:
                    return project_throughput(cluster, 2, n, keys)

            def raw_curve() -> Sample:
                with raw_cluster(2, "proxy", keys) as cluster:
                    return raw_throughput(cluster, n, window, keys)

            runs = alternate(rounds, {"project": ours_curve, "raw": raw_curve})
        curve_rate, _, curve_efficiency = throughput_lines("2 worker processes, CURVE", runs)
        if 2 in rates:
            print(
                f"{'  project CURVE / plain':<24} {curve_rate / rates[2][0]:>8.3f} {'':>6}"
                f" {curve_efficiency / rates[2][2]:>10.3f}"
            )

    if "cpu" in sections:
        turns = calibrate()
        os.environ[SPIN_VARIABLE] = str(turns)  # inherited by the worker processes
        tasks = 1_000 if args.quick else 4_000
        print(
            f"\nCPU-bound: {tasks:,} tasks burning ~1 ms of CPU each ({turns:,} loop turns, "
            "calibrated here); at most 1 000/s a core"
        )
        print(
            f"{'case':<26} {'tasks/s':>8} {'x in-process':>13}   CPU ms/task:"
            f" {'producer':>8} {'gateway':>8} {'workers':>8}   {'busy elsewhere':>14}"
        )

        def cluster_run(workers: int) -> Callable[[], Sample]:
            def run() -> Sample:
                with project_cluster(workers, "cpu_collectors") as cluster:
                    return distributed_cpu_bound(cluster, workers, tasks)

            return run

        cpu_runs = alternate(
            rounds,
            {
                "in-process CollectorQueue": lambda: in_process_cpu_bound(tasks),
                "1 worker process": cluster_run(1),
                "2 worker processes": cluster_run(2),
            },
        )
        base = statistics.median(s.rate for s in cpu_runs["in-process CollectorQueue"])
        for name, samples in cpu_runs.items():
            rate = statistics.median(s.rate for s in samples)
            cpu = median_cpu(samples)
            in_workers = sum(value for role, value in cpu.items() if role.startswith("worker"))
            print(
                f"{name:<26} {rate:>8,.0f} {rate / base:>13.2f}   {'':>12}"
                f" {cpu['producer'] * 1e3:>8.2f} {cpu.get('gateway', 0.0) * 1e3:>8.2f}"
                f" {in_workers * 1e3:>8.2f}"
                f"   {statistics.median(s.elsewhere for s in samples):>8.2f} cores"
            )


if __name__ == "__main__":
    main()
