"""
Instructions per event, counted by ``valgrind --tool=callgrind``: the repeatable figure.

Wall and CPU times on a shared machine move by a third from one run to the next; the number
of instructions a run executes does not (to about 0.2 %), whatever else the machine does. A
case runs in a fresh interpreter with ``PYTHONHASHSEED=0`` at two sizes, and the difference
in instructions divided by the difference in events is the cost of one event: start-up,
imports and teardown cancel out.

A case runs on a frozen clock (:class:`FrozenClock`). Callgrind slows a program about fifty
times, so a rule that looks at the clock (the publisher yields to a woken consumer once
``YIELD_AFTER`` has passed; a consumer yields after ``SCHEDULE_SLICE``) would see every
interval as long and count work that a real run does not do; on a frozen clock those rules
never fire, and the count is the cost of the event path itself. The CPU-time rows beside it,
on the real clock, include them. (Not ``trio.testing.MockClock``: reading it costs three
Python calls where trio's own clock costs one, which would charge the library for each
reading the test clock makes.)

Used by ``run.py --ir`` and ``compare.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent

#: Event counts of the two runs whose difference is measured.
SMALL, LARGE = 2_000, 12_000


class FrozenClock(trio.abc.Clock):
    """
    A clock that never moves, read at the cost of trio's own (one Python call).

    For runs that never sleep: a sleep on it would never end.
    """

    def start_clock(self) -> None:
        """
        Nothing to start.
        """

    def current_time(self) -> float:
        """
        Return 0, always.
        """
        return 0.0

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """
        Return a day for a deadline in the future (it never comes), else 0.
        """
        return 86_400.0 if deadline > 0.0 else 0.0


def instructions(call: str, n: int, *, pythonpath: Path | None = None) -> int:
    """
    Instructions a fresh interpreter executes to ``trio.run`` the coroutine ``call``.

    ``call`` is an expression over ``run.py``'s functions with ``N`` the event count, such as
    ``"run.naive_throughput(N, 10)"``; ``pythonpath`` puts another copy of the library first.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import callgrind, run, trio; "
        f"N = {n}; trio.run(lambda: {call}, clock=callgrind.FrozenClock())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                "-c",
                code,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{done.stderr}")
    return int(found.group(1))


def per_event(call: str, *, pythonpath: Path | None = None) -> float:
    """
    Instructions per event of ``call``, from runs of ``SMALL`` and ``LARGE`` events.
    """
    low = instructions(call, SMALL, pythonpath=pythonpath)
    high = instructions(call, LARGE, pythonpath=pythonpath)
    return (high - low) / (LARGE - SMALL)
