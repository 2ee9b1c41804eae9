"""
The demo's distributed mode: a gateway in the demo's process, worker processes on loopback.

:func:`distributed_target` binds a gateway on two ``ipc://`` endpoints in a temporary
directory, starts the worker processes (``python -m event_collector._demo_remote``), each an
:func:`~event_collector.remote.open_worker` over the demo's collector, and connects a producer.
Each worker writes its queue's statistics and metrics as one JSON line on stdout every tick,
which is how the demo shows the pools of other processes.

The demo owns its workers: they run in sessions of their own (a Ctrl-C reaches the demo
only), and whatever way the demo ends, a normal end, an error or a Ctrl-C, it closes their
standard input, on which they leave (drain and exit), waits up to
:data:`STOP_TIMEOUT` seconds and kills any still running. A worker whose demo died without
cleaning up (``kill -9``) sees its standard input close too, and leaves.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, final

import attrs
import trio
import zmq

from ._demo_load import DemoConfig, PoolState, Target, demo_collectors
from ._event import SentEvent
from ._gateway import Gateway, open_gateway
from ._messagebus import ConsumersScaled, MessageBus
from ._producer import Producer, open_producer
from ._worker import open_worker

__all__ = ["STOP_TIMEOUT", "distributed_target"]

#: Seconds the workers get to start and register with the gateway.
START_TIMEOUT: Final = 20.0
#: Seconds a worker gets to leave once told to, before it is killed.
STOP_TIMEOUT: Final = 5.0


@final
class _Workers:
    """
    The worker processes and the last report of each.
    """

    def __init__(self, count: int) -> None:
        self.processes: list[trio.Process] = []
        self.reports: list[dict[str, Any] | None] = [None] * count
        self.changed = trio.Event()
        #: Reports asked for on the workers' standard input.
        self.asked = 0

    def ready(self) -> bool:
        return all(report is not None and report["registered"] for report in self.reports)

    async def wait(self, done: Callable[[], bool]) -> None:
        """
        Wait until ``done()`` holds, checked after every report.
        """
        while not done():
            await self.changed.wait()

    async def fresh_reports(self) -> list[dict[str, Any]]:
        """
        Ask every worker for a report now; return them once they came.
        """
        self.asked += 1
        for process in self.processes:
            assert process.stdin is not None
            await process.stdin.send_all(b"\n")
        with trio.fail_after(STOP_TIMEOUT):
            await self.wait(
                lambda: all(r is not None and r["answered"] >= self.asked for r in self.reports)
            )
        return [report for report in self.reports if report is not None]


def _worker_command(endpoint: str, config: DemoConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        __name__,
        endpoint,
        str(config.min_consumers),
        str(config.max_consumers),
        str(config.tick),
    ]


async def _read_reports(stream: trio.abc.ReceiveStream, workers: _Workers, index: int) -> None:
    buffer = b""
    with contextlib.suppress(trio.ClosedResourceError):  # _stop closed it: the worker ended
        while chunk := await stream.receive_some():
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                try:
                    workers.reports[index] = json.loads(line)
                except ValueError:
                    continue  # not a report (something the collectors printed): skip it
            workers.changed.set()
            workers.changed = trio.Event()


async def _stop(process: trio.Process) -> None:
    """
    Close the worker's standard input, wait up to STOP_TIMEOUT, then kill it.
    """
    if process.stdin is not None:
        await process.stdin.aclose()
    with trio.move_on_after(STOP_TIMEOUT):
        await process.wait()
    if process.returncode is None:
        process.kill()
    await process.wait()
    if process.stdout is not None:
        await process.stdout.aclose()


async def _run_workers(
    endpoint: str,
    config: DemoConfig,
    count: int,
    *,
    task_status: trio.TaskStatus[_Workers],
) -> None:
    """
    Run ``count`` workers until cancelled; report started once all have registered.
    """
    workers = _Workers(count)
    try:
        async with trio.open_nursery() as nursery:
            for index in range(count):
                process = await trio.lowlevel.open_process(
                    _worker_command(endpoint, config),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    start_new_session=True,
                )
                workers.processes.append(process)
                assert process.stdout is not None
                nursery.start_soon(_read_reports, process.stdout, workers, index)
            with trio.fail_after(START_TIMEOUT):
                while not workers.ready():
                    if any(process.returncode is not None for process in workers.processes):
                        raise RuntimeError("a demo worker process exited while starting")
                    with trio.move_on_after(0.1):
                        await workers.changed.wait()
            task_status.started(workers)
    finally:
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as stopping:
                for process in workers.processes:
                    stopping.start_soon(_stop, process)


@final
class _RemoteTarget:
    def __init__(self, producer: Producer[int], gateway: Gateway, workers: _Workers) -> None:
        self._producer = producer
        self._gateway = gateway
        self._workers = workers

    async def send(self, payload: Any) -> SentEvent[Any]:
        return await self._producer.send(payload)

    def _reports(self) -> list[dict[str, Any]]:
        return [report for report in self._workers.reports if report is not None]

    def pool(self) -> PoolState:
        reports = self._reports()
        completed: int = sum(report["completed"] for report in reports)

        def mean(field: str) -> float:
            if not completed:
                return 0.0
            total: float = sum(r["metrics"][field] * r["completed"] for r in reports)
            return total / completed

        return PoolState(
            pools=tuple(report["consumers"] for report in reports),
            busy=sum(report["busy"] for report in reports),
            queued=self._gateway.statistics().queued + sum(r["queued"] for r in reports),
            service_time=mean("service_time"),
            wait_time=mean("wait_time"),
            resizes=sum(report["resizes"] for report in reports),
        )

    async def final_metrics(self) -> dict[str, Any]:
        reports = await self._workers.fresh_reports()
        return {
            "gateway": attrs.asdict(self._gateway.statistics()),
            "workers": [{"pid": r["pid"], **r["metrics"]} for r in reports],
        }


@asynccontextmanager
async def distributed_target(config: DemoConfig, processes: int) -> AsyncIterator[Target]:
    """
    Run a gateway, ``processes`` workers and a producer for ``async with``.

    ``config.min_consumers`` and ``config.max_consumers`` are each worker's.

    Raises:
        TooSlowError: The workers did not register within :data:`START_TIMEOUT` seconds.
        RuntimeError: A worker process exited while starting.
    """
    with tempfile.TemporaryDirectory(prefix="ec-demo-") as directory:
        async with (
            open_gateway(
                f"ipc://{directory}/producers", f"ipc://{directory}/workers", logging=False
            ) as gateway,
            trio.open_nursery() as nursery,
        ):
            workers = await nursery.start(_run_workers, gateway.workers_endpoint, config, processes)
            async with open_producer(gateway.producers_endpoint, logging=False) as producer:
                yield _RemoteTarget(producer, gateway, workers)
            nursery.cancel_scope.cancel()


# -- the worker process ---------------------------------------------------------------------


async def _follow_stdin(scope: trio.CancelScope, report: Callable[[], None]) -> None:
    """
    Report at once for every line on standard input; cancel ``scope`` when it closes.
    """
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        while data := await stdin.receive_some():
            for _ in range(data.count(b"\n")):
                report()
    scope.cancel()


async def serve_worker(endpoint: str, min_consumers: int, max_consumers: int, tick: float) -> None:
    """
    Run one demo worker until its standard input closes, reporting every ``tick`` seconds.
    """
    resizes = 0
    answered = 0

    async def scaled(message: ConsumersScaled, bus: MessageBus) -> None:
        nonlocal resizes
        resizes += 1

    def report(*, answer: bool = False) -> None:
        nonlocal answered
        answered += answer
        stats = worker.queue.statistics()
        line = {
            "pid": os.getpid(),
            "answered": answered,
            "registered": worker.statistics().registered,
            "consumers": stats.consumers,
            "busy": stats.busy,
            "queued": stats.queued,
            "completed": stats.completed,
            "resizes": resizes,
            "metrics": worker.queue.get_metrics().as_log_fields(),
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    async with open_worker(
        demo_collectors(),
        endpoint,
        logging=False,
        min_consumers=min_consumers,
        max_consumers=max_consumers,
        metrics_warmup_interval=0,
    ) as worker:
        worker.queue.get_message_bus().add_msg_handler(ConsumersScaled, scaled)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_follow_stdin, nursery.cancel_scope, lambda: report(answer=True))
            while True:
                report()
                await trio.sleep(tick)


def main(argv: list[str]) -> None:
    """
    ``python -m event_collector._demo_remote ENDPOINT MIN MAX TICK``: one demo worker.
    """
    endpoint, min_consumers, max_consumers, tick = argv
    try:
        trio.run(serve_worker, endpoint, int(min_consumers), int(max_consumers), float(tick))
    finally:
        zmq.Context.instance().term()


if __name__ == "__main__":
    main(sys.argv[1:])
