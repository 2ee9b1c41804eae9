"""
A/B: this working tree's event-collector against another revision, side by side in one run.

``python benchmarks/compare.py REV`` checks REV out into a temporary git worktree and runs the
same benchmark code (``benchmarks/run.py``'s row functions, from this tree) against both
libraries, alternating, in fresh processes. Only ratios measured in the same run compare on
a shared machine.

Metrics:

- ``ir``: instructions per event under ``valgrind --tool=callgrind`` (``callgrind.py``: two
  run sizes, ``PYTHONHASHSEED=0``, a frozen clock). Repeatable to about 0.2 %.
- ``cpu``: events per second of process CPU time, median of alternating rounds.
- ``latency``: p50 and p99 send-to-result at a fixed offered rate, median of rounds.
- ``memory``: bytes per pending event (tracemalloc; deterministic).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import callgrind

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Throughput cases, by name: a call of run.py's functions giving events per CPU second.
CALLS = {
    "fifo": "run.project_throughput(N, run.queue_for(10), run.Delivery.KEY)",
    "broadcast": (
        "run.project_throughput(N, run.queue_for(10, collectors=3), run.Delivery.BROADCAST)"
    ),
    "autoscale": "run.project_throughput(N, run.queue_for(10, autoscale=True), run.Delivery.KEY)",
    "batch": "run.project_batch(N, run.queue_for(10))",  # the batch API: not in old revisions
}

#: What one measurement runs, by name: a Python expression over run.py's functions, printing
#: one number (or two, space-separated).
CASES = {
    **{name: f"print(trio.run(lambda: {call}))" for name, call in CALLS.items()},
    "latency": (
        "lat = trio.run(run.project_latency, N, RATE); "
        "print(run.percentile(lat, 0.5), run.percentile(lat, 0.99))"
    ),
    "memory": "print(trio.run(run.project_memory, N))",
}


def measure(src: Path, case: str, n: int, rate: float) -> list[float]:
    """
    Run ``case`` with ``n`` events against the library in ``src``; return what it printed.
    """
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import run, trio; N = {n}; "
    code += f"RATE = {rate}; " + CASES[case]
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return [float(value) for value in done.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="the revision to compare against (e.g. HEAD, main~3)")
    parser.add_argument(
        "--metrics",
        default="ir,cpu,latency,memory",
        help="comma-separated: ir, cpu, latency, memory (default: all)",
    )
    parser.add_argument(
        "--cases",
        default="fifo",
        help="throughput cases: fifo, broadcast, autoscale, batch (the batch API: new)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (cpu, latency)")
    parser.add_argument("--events", type=int, default=100_000, help="events per throughput run")
    parser.add_argument("--rate", type=float, default=20_000, help="offered rate for latency")
    args = parser.parse_args()
    metrics = args.metrics.split(",")

    tmp = Path(tempfile.mkdtemp(prefix="ec-base-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp), args.base],
        check=True,
        capture_output=True,
    )
    trees = {"this tree": ROOT / "src", args.base: tmp / "src"}
    try:
        print(f"{'':<34} {'this tree':>14} {args.base:>14} {'ratio':>8}")
        for case in args.cases.split(","):
            if "ir" in metrics:
                ours, theirs = (
                    callgrind.per_event(CALLS[case], pythonpath=src) for src in trees.values()
                )
                label = f"{case}: instructions per event"
                print(f"{label:<34} {ours:>14,.0f} {theirs:>14,.0f} {ours / theirs:>8.3f}")
            if "cpu" in metrics:
                runs: dict[str, list[float]] = {name: [] for name in trees}
                for _ in range(args.rounds):
                    for name, src in trees.items():
                        runs[name].append(measure(src, case, args.events, 0)[0])
                ours, theirs = (statistics.median(values) for values in runs.values())
                label = f"{case}: events per CPU second"
                print(f"{label:<34} {ours:>14,.0f} {theirs:>14,.0f} {ours / theirs:>8.3f}")
        if "latency" in metrics:
            p50s: dict[str, list[float]] = {name: [] for name in trees}
            p99s: dict[str, list[float]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, src in trees.items():
                    p50, p99 = measure(src, "latency", 20_000, args.rate)
                    p50s[name].append(p50 * 1e3)
                    p99s[name].append(p99 * 1e3)
            for label, table in ((f"p50 ms at {args.rate:,.0f} ev/s", p50s), ("p99 ms", p99s)):
                ours, theirs = (statistics.median(values) for values in table.values())
                print(f"{label:<34} {ours:>14.3f} {theirs:>14.3f} {ours / theirs:>8.3f}")
        if "memory" in metrics:
            ours, theirs = (measure(src, "memory", 100_000, 0)[0] for src in trees.values())
            label = "bytes per pending event"
            print(f"{label:<34} {ours:>14.0f} {theirs:>14.0f} {ours / theirs:>8.3f}")
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp)],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
