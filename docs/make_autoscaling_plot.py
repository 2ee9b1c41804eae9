"""
Make ``docs/_static/autoscaling.png``, the plot of the demo page, from a real demo run.

Run from the repository root, with the ``plot`` extra installed::

    python docs/make_autoscaling_plot.py

It runs ``event-collector demo --seed 0 --plot docs/_static/autoscaling.png`` (the demo's
defaults: 2000 events over 7 s, service time 100 ms) on the real clock, so the numbers differ
a little from run to run; commit the PNG it writes. ``--output FILE`` writes elsewhere, and
any further options go to the demo (the tests run it with a short load).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "_static" / "autoscaling.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the PNG to write")
    args, demo_options = parser.parse_known_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "event_collector", "demo", "--seed", "0"]
    command += ["--plot", str(args.output), *demo_options]
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
