"""
Every script in ``examples/`` runs, as a user would run it, and prints what the docs say.

Each runs in a subprocess of the test's interpreter (``-W error``: a warning fails it), in a
session of its own so that it and anything it starts can be killed as a group, bounded by
``trio.fail_after``. Output is checked exactly where the script is deterministic, and by
its shape where it depends on the machine's speed (elapsed times, pool sizes).
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from .redis_server import redis_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def _kill_group(process: trio.Process) -> None:
    """
    Kill a cancelled example and everything it started (its session's process group).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_example(name: str, *args: str, timeout: float = 60) -> list[str]:
    """
    Run ``examples/NAME ARGS``; check it exits 0 and writes nothing on stderr; return stdout.
    """
    with trio.fail_after(timeout):
        done = await trio.run_process(
            [sys.executable, "-W", "error", str(EXAMPLES / name), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            start_new_session=True,
            deliver_cancel=_kill_group,
        )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"exit status {done.returncode}\n{stdout}\n{stderr}"
    assert stderr == ""
    return stdout.splitlines()


class TestGettingStarted:
    """
    getting_started.py: 100 results in send order, then the elapsed time.
    """

    async def test_output(self) -> None:
        lines = await run_example("getting_started.py")
        assert len(lines) == 101
        for i, line in enumerate(lines[:100]):
            value = ast.literal_eval(line)
            assert value["id"] == f"payload-{i}"
            assert datetime.datetime.fromisoformat(value["received_at"]).tzinfo is not None
        assert re.fullmatch(r"elapsed=\d+\.\d{3}", lines[100])


class TestRouting:
    """
    routing.py: each delivery mode reaches the collectors the docs say.
    """

    async def test_output(self) -> None:
        assert await run_example("routing.py") == [
            "key store: store='stored order-1'",
            "keys notify+store: store='stored order-2', notify='notified order-2'",
            "topic orders: store='stored order-3', audit='audited order-3'",
            "topic payments: audit='audited payment-4', notify='notified payment-4'",
            "broadcast: store='stored shutdown-notice', audit='audited shutdown-notice', "
            "notify='notified shutdown-notice'",
            "both, by topic: audit='audited order-5', notify='notified order-5'",
            "key unknown: not delivered, Ok(value=None)",
        ]


class TestPriority:
    """
    priority.py: queued events leave lowest priority first, ties in arrival order.
    """

    async def test_output(self) -> None:
        assert await run_example("priority.py") == [
            "queued behind the busy consumer: 7",
            "processing order: hold urgent page-1 page-2 ticket-1 ticket-2 log-1 log-2",
        ]


class TestSqliteLifecycle:
    """
    sqlite_lifecycle.py: the database opens before the events and closes after them.
    """

    async def test_output(self, tmp_path: Path) -> None:
        path = tmp_path / "readings.db"
        assert await run_example("sqlite_lifecycle.py", str(path)) == [
            "database opened",
            "readings recorded: 5",
            "means: {'a': 3.0, 'b': 15.0}",
            "database closed",
            "rows in the file after the queue stopped: 5",
        ]
        assert path.exists()


class TestMessageBus:
    """
    message_bus.py: started, grown for the burst, shrunk back when idle, stopped.
    """

    async def test_output(self) -> None:
        lines = await run_example("message_bus.py")
        assert lines[0] == "started: 1 consumer(s)"
        assert lines[-1] == "stopped: 200 events completed"
        assert lines.count("burst done") == 1
        scaled = [re.fullmatch(r"scaled: (\d+) -> (\d+) \((\w+)\)", line) for line in lines]
        sizes = [(int(m[1]), int(m[2]), m[3]) for m in scaled if m is not None]
        assert sizes[0][:1] == (1,)
        assert sizes[0][1] > 1
        assert sizes[0][2] == "burst"
        assert sizes[-1][1:] == (1, "idle")
        assert all(1 <= new <= 50 for _, new, _ in sizes)
        for line, match in zip(lines[1:-1], scaled[1:-1], strict=True):
            assert (
                match is not None
                or line == "burst done"
                or re.fullmatch(r"metrics: load \d+\.\d, \d+ consumers", line)
            ), line


class TestResults:
    """
    results.py: exceptions, timeouts and refusals are Error results; reading them.
    """

    async def test_output(self) -> None:
        assert await run_example("results.py") == [
            "'4' -> parse: ok 4, divide: ok 25.0, slow: ok 'in time'",
            "'0' -> parse: ok 0, divide: failed ZeroDivisionError, slow: failed TooSlowError",
            "'four' -> parse: refused (not a number: 'four'), divide: failed ValueError, "
            "slow: ok 'in time'",
            "get_result() before the event is done: None",
            "unwrap_or(0): 0",
            "unwrap() raised: ProcessingError(\"not a number: 'four'\")",
            "by_key: {'parse': 5, 'divide': 20.0}",
            "completed: 6",
        ]


class TestCustomRouter:
    """
    custom_router.py: sharding by select(), fallback by handle_event().
    """

    async def test_output(self) -> None:
        assert await run_example("custom_router.py") == [
            "ada/o1 -> shard-0: shard-0 took o1",
            "bob/o2 -> shard-2: shard-2 took o2",
            "ada/o3 -> shard-0: shard-0 took o3",
            "cyd/o4 -> shard-1: shard-1 took o4",
            "cached: primary=ok -> from cache",
            "other: primary=failed, fallback=ok -> from database",
        ]


class TestShutdown:
    """
    shutdown.py: the four ways a queue ends, every event resolved.
    """

    async def test_output(self) -> None:
        assert await run_example("shutdown.py") == [
            "1. leaving async with: ['ok', 'ok', 'shutdown', 'ok']",
            "   send after shutdown: the collector queue is shut down or shutting down: "
            "it takes no more events",
            "2. shut_down_queue() from another task: ok",
            "3. shut_down_queue() from a processor: 'stopping', later sends refused",
            "4. cancelled from outside: ['ok', 'shutdown'], cancelled_caught=True",
        ]


class TestPorting:
    """
    porting.py: the asyncio library's calls in their Trio form.
    """

    async def test_output(self) -> None:
        assert await run_example("porting.py") == [
            "collector queue initialized",
            "result: HELLO",
            "collector queue has shut down",
            "queue full: send_nowait raised trio.WouldBlock",
            "last result: LAST",
        ]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
class TestRedisQueue:
    """
    redis_queue.py: a task waits in Redis for a worker of its key, then gets its result.
    """

    async def test_output(self) -> None:
        with redis_server() as server:
            lines = await run_example("redis_queue.py", server.url)
        assert lines == [
            "before any worker: size=1 waiting={'store': 1}",
            "result: stored order 1",
            "after: size=0 waiting={} taken=0",
        ]


@pytest.mark.skipif(sys.platform != "linux", reason="ipc:// endpoints and process groups")
class TestDistributed:
    """
    distributed.py: a gateway and two worker processes share a producer's tasks.
    """

    async def test_output(self) -> None:
        lines = await run_example("distributed.py", timeout=90)
        sizes = ["[128, 72]", "[72, 128]", "[128, 96]", "[128, 128]"]
        assert lines == [
            *(f"img-{i:02}.jpg -> {sizes[i % 4]}" for i in range(20)),
            "tasks per worker: 2 workers ran 20 tasks",
            "worker-2 exited with status 0",
            "worker-1 exited with status 0",
            "gateway exited with status 0",
        ]


class Client:
    """
    One connection to the ingest service: send JSON lines, read JSON replies.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.replies: list[dict[str, Any]] = []

    async def send(self, *messages: dict[str, Any] | bytes) -> None:
        for message in messages:
            data = message if isinstance(message, bytes) else json.dumps(message).encode()
            await self.stream.send_all(data + b"\n")

    async def read_until(self, line_id: object) -> None:
        """
        Read replies until the one for ``line_id`` has come.
        """
        while not any(reply["id"] == line_id for reply in self.replies):
            assert await self._read(), f"end of stream before the reply to {line_id}"

    async def read_to_end(self) -> None:
        """
        Read replies until the server closes the connection; then close it too.
        """
        try:
            while await self._read():
                pass
        finally:
            await self.stream.aclose()

    async def _read(self) -> bool:
        data = await self.stream.receive_some()
        if not data:
            assert self.buffer == b"", "an unterminated reply"
            return False
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        self.replies.extend(json.loads(line) for line in lines)
        return True


class TestTcpIngest:
    """
    tcp_ingest.py: SIGTERM during work: every accepted line answered, nothing else, exit 0.
    """

    CONNECTIONS = 3
    SLOW = 4  # lines per connection still working when SIGTERM comes

    async def test_sigterm_drains_every_accepted_line(self) -> None:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-W", "error", str(EXAMPLES / "tcp_ingest.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            with trio.fail_after(60):
                await self.scenario(process)
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        await stream.aclose()

    async def scenario(self, process: trio.Process) -> None:
        assert process.stdout is not None
        assert process.stderr is not None
        out = Client(process.stdout)  # type: ignore[arg-type]  # only receive_some is used
        lines = await self.stdout_lines(out, 1)
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", lines[0])
        assert match, lines
        port = int(match[1])

        clients = [
            Client(await trio.open_tcp_stream("127.0.0.1", port)) for _ in range(self.CONNECTIONS)
        ]
        for c, client in enumerate(clients):
            slow = [{"id": c * 100 + k, "value": k, "work": 2.0} for k in range(self.SLOW)]
            # A bad line, then a quick marker: its reply, ahead of the slow lines', proves
            # the server has read (accepted) every line sent before it on this connection.
            await client.send(*slow, b"not json", {"id": c * 100 + 99, "value": 0.5})
        for client in clients:
            await client.read_until(None)  # the bad line's error
            await client.read_until(clients.index(client) * 100 + 99)
        assert all(len(client.replies) == 2 for client in clients)  # the slow ones still work

        process.send_signal(signal.SIGTERM)
        in_flight = self.CONNECTIONS * self.SLOW
        assert await self.stdout_lines(out, 2) == [
            lines[0],
            f"SIGTERM: draining, {in_flight} in flight",
        ]
        # The drain has begun: a line sent now is not read, a new connection not served.
        for c, client in enumerate(clients):
            await client.send({"id": c * 100 + 50, "value": 1})
        late = None
        try:
            late = Client(await trio.open_tcp_stream("127.0.0.1", port))
        except OSError:
            pass  # the listener is already closed
        else:
            await late.send({"id": 1000, "value": 1})
            with contextlib.suppress(trio.BrokenResourceError):  # or reset, unread
                await late.read_to_end()
            assert late.replies == []

        for client in clients:
            await client.read_to_end()
        for c, client in enumerate(clients):
            expected = [
                {"id": None, "errors": {"line": "Expecting value: line 1 column 1 (char 0)"}},
                {"id": c * 100 + 99, "ok": {"double": 1.0, "store": f"stored {c * 100 + 99}"}},
                *(
                    {"id": c * 100 + k, "ok": {"double": k * 2, "store": f"stored {c * 100 + k}"}}
                    for k in range(self.SLOW)
                ),
            ]
            assert sorted(client.replies, key=str) == sorted(expected, key=str)

        assert await process.wait() == 0
        while data := await process.stdout.receive_some():
            out.buffer += data
        accepted = self.CONNECTIONS * (self.SLOW + 2)
        assert out.buffer.decode().splitlines() == [
            *lines,
            f"SIGTERM: draining, {in_flight} in flight",
            f"drained: {accepted} lines accepted, {accepted} replies",
        ]
        assert await process.stderr.receive_some() == b""

    @staticmethod
    async def stdout_lines(out: Client, count: int) -> list[str]:
        """
        Read the process's stdout until it has written ``count`` lines; return them.
        """
        while out.buffer.count(b"\n") < count:
            data = await out.stream.receive_some()
            assert data, f"the process exited: {out.buffer!r}"
            out.buffer += data
        return out.buffer.decode().splitlines()[:count]


@pytest.mark.skipif(sys.platform != "linux", reason="ipc:// endpoints")
class TestCurve:
    """
    curve.py: a client whose key the gateway holds is served; an unknown one is not.
    """

    async def test_output(self) -> None:
        assert await run_example("curve.py") == [
            "producer-1: hello over CURVE",
            "intruder: no answer from the gateway (GatewayError)",
        ]
