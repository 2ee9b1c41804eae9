"""
A harness for tests that run ``event-collector`` commands as processes.

Every process is started in a session of its own (so that it and its process group can be
killed without touching pytest), with the repository root as working directory (so worker
processes import ``tests.remote_collectors``), JSON logs on stderr and a reader task per
pipe. :class:`Processes` kills whatever is left when the test ends, passed or failed: every
process it started, their children (found with ``pgrep -P`` and from the supervisor's
``worker_process_started`` log entries, since workers under ``--processes`` run in
sessions of their own) and the process groups of all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

#: The repository root: the processes' working directory.
ROOT = Path(__file__).resolve().parent.parent
#: Heartbeat options of every process: a peer is declared gone after 1 s of silence.
HEARTBEAT = ("--heartbeat", "0.2", "--liveness", "5")
#: A log entry, as a process's JSON log line.
LogEntry = dict[str, Any]


def command(*args: str) -> list[str]:
    """
    Return the ``python -m event_collector`` command line with ``args``, JSON logs.
    """
    return [sys.executable, "-m", "event_collector", "--log-format", "json", *args]


def rss_kib(pid: int) -> int:
    """
    Return the resident set size of ``pid`` in KiB, from ``/proc/<pid>/status``.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def children(pid: int) -> list[int]:
    """
    Return the pids of the children of ``pid`` (``pgrep -P``).
    """
    found = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False, timeout=10
    )
    return [int(line) for line in found.stdout.split()]


def alive(pid: int) -> bool:
    """
    Return whether ``pid`` is a live process of ours (not a zombie, not another program).
    """
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z" and b"event_collector" in cmdline


@attrs.define(eq=False)
class Proc:
    """
    A running command: its stdout lines and its stderr's log entries, as they come.
    """

    name: str
    process: trio.Process
    stdout: list[str] = attrs.Factory(list)
    #: stderr lines that parse as JSON log entries.
    log: list[LogEntry] = attrs.Factory(list)
    #: Other stderr lines (a traceback would be here).
    stderr: list[str] = attrs.Factory(list)
    #: Whether stdout has been read to its end.
    stdout_done: bool = False
    #: Whether stderr has been read to its end.
    stderr_done: bool = False
    _changed: trio.Event = attrs.Factory(trio.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """
        Wait until ``done()`` holds; checked again after each line of output.

        Raises:
            AssertionError: The process closed its output (it exited) first.
        """
        while not done():
            if self.stdout_done and self.stderr_done:
                raise AssertionError(f"the process exited first\n{self.describe()}")
            await self._changed.wait()

    def entries(self, event: str, **fields: Any) -> list[LogEntry]:
        """
        Return the log entries named ``event`` with ``fields``.
        """
        return [
            entry
            for entry in self.log
            if entry.get("event") == event
            and all(entry.get(key) == value for key, value in fields.items())
        ]

    async def wait_for_log(self, event: str, count: int = 1, **fields: Any) -> list[LogEntry]:
        """
        Wait until ``count`` log entries named ``event`` with ``fields`` came; return them.
        """
        await self.wait_until(lambda: len(self.entries(event, **fields)) >= count)
        return self.entries(event, **fields)

    async def wait_for_line(self, prefix: str) -> str:
        """
        Wait for a line of stdout starting with ``prefix``; return it.
        """
        await self.wait_until(lambda: any(line.startswith(prefix) for line in self.stdout))
        return next(line for line in self.stdout if line.startswith(prefix))

    async def wait_exit(self) -> int:
        """
        Wait until the process has exited and its output has been read; return its status.
        """
        code = await self.process.wait()
        while not (self.stdout_done and self.stderr_done):
            await self._changed.wait()
        return code

    def describe(self) -> str:
        """
        The process's output, for a failing test's report.
        """
        lines = [f"--- {self.name} (pid {self.pid}, returncode {self.process.returncode})"]
        lines += [f"stdout: {line}" for line in self.stdout[-20:]]
        lines += [f"stderr: {line}" for line in self.stderr[-40:]]
        lines += [f"log: {json.dumps(entry)}" for entry in self.log[-40:]]
        return "\n".join(lines)


@attrs.define(eq=False)
class Gateway:
    """
    A gateway process and the endpoints it reported on stdout.
    """

    proc: Proc
    producers: str
    workers: str


@attrs.define(eq=False)
class Processes:
    """
    Starts commands for one test; kills everything left when the test ends.
    """

    nursery: trio.Nursery
    started: list[Proc] = attrs.Factory(list)
    _dirs: list[str] = attrs.Factory(list)

    def short_dir(self) -> str:
        """
        Return a new directory with a short path (for ``ipc://``), removed after the test.
        """
        path = tempfile.mkdtemp(prefix="ec", dir="/tmp")
        self._dirs.append(path)
        return path

    def ipc(self, name: str) -> str:
        """
        Return an ``ipc://`` endpoint in a new short directory.
        """
        return f"ipc://{self.short_dir()}/{name}"

    async def start(self, name: str, *args: str) -> Proc:
        """
        Start ``python -m event_collector --log-format json ARGS``.
        """
        return await self.start_command(name, command(*args))

    async def start_command(self, name: str, argv: Sequence[str]) -> Proc:
        """
        Start the command ``argv`` (a test's own helper program, say) like the others.
        """
        process = await trio.lowlevel.open_process(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        proc = Proc(name, process)
        self.started.append(proc)
        assert process.stdout is not None
        assert process.stderr is not None
        self.nursery.start_soon(_read, proc, process.stdout, False)
        self.nursery.start_soon(_read, proc, process.stderr, True)
        return proc

    async def gateway(
        self, producers: str, workers: str, *args: str, log_level: str = "info"
    ) -> Gateway:
        """
        Start a gateway; return once it has printed its endpoints.
        """
        proc = await self.start(
            "gateway",
            *("--log-level", log_level, "gateway"),
            *("--producers", producers, "--workers", workers, *HEARTBEAT, *args),
        )
        line = await proc.wait_for_line("gateway ready: ")
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        return Gateway(proc, fields["producers"], fields["workers"])

    async def worker(self, collectors: str, connect: str, *args: str, name: str = "worker") -> Proc:
        """
        Start a worker (a supervisor of several, with ``--processes``).
        """
        return await self.start(name, "worker", collectors, "--connect", connect, *HEARTBEAT, *args)

    def all_pids(self) -> set[int]:
        """
        Every process started, their live children and the workers the supervisors logged.
        """
        pids: set[int] = set()
        for proc in self.started:
            pids.add(proc.pid)
            pids.update(entry["pid"] for entry in proc.entries("worker_process_started"))
        for pid in list(pids):
            pids.update(_descendants(pid))
        return pids

    def kill_all(self) -> None:
        """
        SIGKILL every process of the test and their process groups.
        """
        for pid in self.all_pids():
            if not alive(pid):  # gone: its pid may be another program's by now
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each was started as a session leader
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def report(self) -> str:
        return "\n".join(proc.describe() for proc in self.started)

    def remove_dirs(self) -> None:
        for path in self._dirs:
            shutil.rmtree(path, ignore_errors=True)


class Gate:
    """
    A directory the ``remote_collectors`` processors wait on (see there): tasks that have
    started are listed in it, and they all finish once it is opened.
    """

    def __init__(self, processes: Processes) -> None:
        self.path = Path(processes.short_dir())

    def __str__(self) -> str:
        return str(self.path)

    def _read(self, name: str) -> list[int]:
        path = self.path / name
        return [int(n) for n in path.read_text().split()] if path.exists() else []

    def started(self) -> list[int]:
        return self._read("started")

    def finished(self) -> list[int]:
        return self._read("finished")

    async def wait_started(self, count: int) -> list[int]:
        while len(self.started()) < count:  # noqa: ASYNC110  (a file: nothing to wait on)
            await trio.sleep(0.01)
        return self.started()

    async def wait_finished(self, count: int) -> list[int]:
        while len(self.finished()) < count:  # noqa: ASYNC110  (a file: nothing to wait on)
            await trio.sleep(0.01)
        return self.finished()

    def open(self) -> None:
        (self.path / "open").touch()


def _descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found.append(child)
        found.extend(_descendants(child))
    return found


async def _read(proc: Proc, stream: trio.abc.ReceiveStream, is_stderr: bool) -> None:
    buffer = b""
    try:
        while chunk := await stream.receive_some():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                _take_line(proc, raw.decode(errors="replace"), is_stderr)
            proc._note()
        if buffer:
            _take_line(proc, buffer.decode(errors="replace"), is_stderr)
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass
    finally:
        if is_stderr:
            proc.stderr_done = True
        else:
            proc.stdout_done = True
        proc._note()


def _take_line(proc: Proc, line: str, is_stderr: bool) -> None:
    if not is_stderr:
        proc.stdout.append(line)
        return
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    if isinstance(entry, dict):
        proc.log.append(entry)
    else:
        proc.stderr.append(line)


@contextlib.asynccontextmanager
async def running_processes() -> AsyncIterator[Processes]:
    """
    Yield a :class:`Processes`; on the way out, kill and reap every process it started.
    """
    async with trio.open_nursery() as nursery:
        processes = Processes(nursery)
        try:
            yield processes
        finally:
            print(processes.report())  # pytest shows it for a test that failed
            with trio.CancelScope(shield=True):
                processes.kill_all()
                with trio.move_on_after(10):
                    for proc in processes.started:
                        await proc.process.wait()
                for proc in processes.started:
                    for stream in (proc.process.stdout, proc.process.stderr):
                        if stream is not None:
                            await stream.aclose()
                processes.remove_dirs()
            nursery.cancel_scope.cancel()


def pids_of(entries: Sequence[LogEntry]) -> list[int]:
    """
    Return the ``pid`` field of each log entry.
    """
    return [entry["pid"] for entry in entries]
