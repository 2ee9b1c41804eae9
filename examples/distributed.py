"""
The distributed mode as it is deployed: a gateway, two worker processes and a producer.

Run it with ``python examples/distributed.py``. It starts, as separate processes, what you
would run on your hosts (here on one machine, over ``ipc://`` endpoints in a temporary
directory)::

    event-collector gateway --producers ipc://.../producers --workers ipc://.../workers
    event-collector worker distributed:collectors --connect ipc://.../workers --name worker-1
    event-collector worker distributed:collectors --connect ipc://.../workers --name worker-2

then runs a producer in this process: it sends 20 tasks through the gateway, each to the
``thumbnail`` collector, and prints the results, which say which worker process ran each
task. At the end it stops the workers and the gateway with SIGTERM (each drains and exits
0) and kills whatever is left. The workers load ``collectors`` from this file (the module
``distributed``, imported from this directory): only the ``__main__`` part is the producer's.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from event_collector import Collector, Context, Ok, Payload, Result

HERE = Path(__file__).resolve().parent


# -- what the workers run -----------------------------------------------------------------


async def thumbnail(payload: Payload[dict[str, Any]], ctx: Context) -> Result[dict[str, Any]]:
    """
    'Resize' an image: 20 ms of I/O; say which process did it.
    """
    await trio.sleep(0.02)
    width, height = payload.value["size"]
    scale = 128 / max(width, height)
    return Ok(
        {
            "image": payload.value["image"],
            "thumbnail": [round(width * scale), round(height * scale)],
            "pid": os.getpid(),
        }
    )


async def whoami(payload: Payload[Any], ctx: Context) -> Result[int]:
    """
    Return the worker's process id (to see every worker is up).
    """
    return Ok(os.getpid())


#: The collectors a worker runs: ``event-collector worker distributed:collectors``.
collectors = [Collector("thumbnail", thumbnail), Collector("whoami", whoami)]


# -- the deployment: processes you would run on your hosts ----------------------------------


def command(*args: str) -> list[str]:
    """
    ``event-collector ARGS`` (as ``python -m event_collector``), warnings and errors only.
    """
    return [sys.executable, "-m", "event_collector", "--log-level", "warning", *args]


@asynccontextmanager
async def deployment(directory: str) -> AsyncIterator[tuple[str, dict[int, str]]]:
    """
    Start a gateway and two workers; yield the producers' endpoint and the workers' names.

    On the way out, SIGTERM each (workers first: they drain, then the gateway) and kill
    whatever has not exited 10 s later.
    """
    processes: list[tuple[str, trio.Process]] = []
    try:
        gateway = await trio.lowlevel.open_process(
            command(
                "gateway",
                *("--producers", f"ipc://{directory}/producers"),
                *("--workers", f"ipc://{directory}/workers"),
            ),
            stdout=subprocess.PIPE,
        )
        processes.append(("gateway", gateway))
        assert gateway.stdout is not None
        line = await read_line(gateway.stdout)  # gateway ready: producers=EP workers=EP
        endpoints = dict(field.split("=", 1) for field in line.split()[2:])
        names = {}
        for name in ("worker-1", "worker-2"):
            worker = await trio.lowlevel.open_process(
                command(
                    "worker",
                    "distributed:collectors",
                    *("--connect", endpoints["workers"], "--name", name),
                ),
                cwd=HERE,  # where the module distributed is
            )
            processes.append((name, worker))
            names[worker.pid] = name
        yield endpoints["producers"], names
    finally:
        with trio.CancelScope(shield=True):
            for name, process in reversed(processes):  # workers, then the gateway
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(10):
                    code = await process.wait()
                    print(f"{name} exited with status {code}")
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def read_line(stream: trio.abc.ReceiveStream) -> str:
    """
    Read the first line of a process's output.
    """
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            raise RuntimeError(f"the process exited before a line: {data!r}")
        data += chunk
    return data.split(b"\n", 1)[0].decode()


# -- the producer ---------------------------------------------------------------------------


async def produce(endpoint: str, names: dict[int, str]) -> None:
    """
    Wait for both workers, send 20 tasks through the gateway, print where each ran.
    """
    from event_collector.remote import open_producer  # noqa: PLC0415 (the zmq extra)

    async with open_producer(endpoint) as producer:
        # Every worker answers a burst of whoami tasks once it has registered.
        seen: set[int] = set()
        while len(seen) < len(names):
            events = [await producer.send(Payload(i, keys=["whoami"])) for i in range(20)]
            seen.update([(await event.wait()).first().unwrap() for event in events])

        sizes = [(1920, 1080), (1080, 1920), (800, 600), (640, 640)]
        events = [
            await producer.send(
                Payload({"image": f"img-{i:02}.jpg", "size": sizes[i % 4]}, keys=["thumbnail"])
            )
            for i in range(20)
        ]
        ran_on: collections.Counter[str] = collections.Counter()
        for event in events:
            value = (await event.wait()).first().unwrap()  # the same ResultList as in-process
            ran_on[names[value["pid"]]] += 1
            print(f"{value['image']} -> {value['thumbnail']}")
        print(f"tasks per worker: {len(ran_on)} workers ran {sum(ran_on.values())} tasks")


async def main() -> None:
    """
    Deploy, produce, stop.
    """
    with tempfile.TemporaryDirectory(prefix="ec-") as directory:  # ipc paths must be short
        async with deployment(directory) as (endpoint, names):
            with trio.fail_after(60):
                await produce(endpoint, names)


if __name__ == "__main__":
    trio.run(main)
