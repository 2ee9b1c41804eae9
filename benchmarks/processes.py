"""
The child processes of the multi-process benchmarks, and the CPU time they use.

Shared by ``distributed.py`` and ``redis_streams.py``: each side of a comparison runs as a
few processes (a broker, workers), started and stopped here, and read from ``/proc`` for
their CPU time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence

__all__ = ["TICKS", "cpu_seconds", "machine_cpu_seconds", "read_line", "spawn", "stop"]

#: Clock ticks per second of ``/proc``'s CPU times.
TICKS = os.sysconf("SC_CLK_TCK")


def spawn(
    command: Sequence[str],
    env: dict[str, str] | None = None,
    *,
    read: bool = False,
    session: bool = False,
) -> subprocess.Popen[str]:
    """
    Start ``command``; with ``session``, in a session (and process group) of its own.

    Its standard output is a pipe to :func:`read_line` from when ``read``, else discarded.
    A session of its own is stopped as a whole (for commands that start processes of their
    own), but Linux schedules each session as a group of its own (autogroup), which changes
    how the two cores are shared: compare only runs started the same way.
    """
    return subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE if read else subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=session,
    )


def read_line(process: subprocess.Popen[str], prefix: str) -> str:
    """
    Return the next line ``process`` writes, which must start with ``prefix``.
    """
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(prefix):
        raise RuntimeError(f"expected {prefix!r} from {process.args!r}, got {line!r}")
    return line


def stop(processes: Sequence[subprocess.Popen[str]]) -> None:
    """
    SIGTERM each process, then SIGKILL what still runs after 5 s (a group leader: its group).
    """
    for process in processes:
        if process.poll() is None:
            _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _signal(process: subprocess.Popen[str], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)


def cpu_seconds(pid: int) -> float:
    """
    Return the CPU time (user + system) process ``pid`` has used.
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_cpu_seconds() -> float:
    """
    Return the CPU time every core of the machine has spent busy (not idle, not iowait).
    """
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS
