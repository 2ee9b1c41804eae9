"""
The demo's plot: arrival rate, pool size and load over a run, as a PNG (the ``plot`` extra).

Drawn on matplotlib's Agg canvas directly, without ``pyplot``: no backend is chosen for the
process and no window can open, on a desktop or a server alike.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._demo_load import RATE_WINDOW, DemoReport

__all__ = ["write_plot"]


def write_plot(report: DemoReport, path: Path, title: str) -> None:
    """
    Write three stacked panels over the run's time to ``path`` (PNG).

    Arrivals (measured and the schedule's rate) and completions; the pool size next to the
    demand (arrival rate x service time, the consumers Little's law says the flow keeps
    busy) and the busy consumers; the load, with 1 (every consumer busy) marked. A measured
    rate (and the demand made of it) is drawn at the middle of the window it counts, the
    last :data:`RATE_WINDOW` seconds, so that it lines up with the schedule's.
    """
    samples = report.samples
    times = [sample.time for sample in samples]
    middles = [sample.time - min(RATE_WINDOW, sample.time) / 2 for sample in samples]
    figure = Figure(figsize=(9, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    rates, pool, load = figure.subplots(3, 1, sharex=True, height_ratios=[3, 3, 2])
    figure.suptitle(title)

    rates.plot(times, [s.intended_rate for s in samples], "--", color="grey", label="schedule")
    rates.plot(middles, [s.arrival_rate for s in samples], color="tab:green", label="arrivals")
    rates.plot(middles, [s.completion_rate for s in samples], color="tab:blue", label="completions")
    rates.set_ylabel("events/s")
    rates.legend(loc="upper right")

    pool.step(
        times,
        [s.pool.consumers for s in samples],
        where="post",
        color="tab:purple",
        label="pool size",
    )
    pool.plot(times, [s.pool.busy for s in samples], color="tab:orange", alpha=0.7, label="busy")
    pool.plot(middles, [s.demand for s in samples], "--", color="black", label="demand")
    pool.set_ylabel("consumers")
    pool.legend(loc="upper right")

    load.plot(times, [s.pool.load for s in samples], color="tab:red", label="load")
    load.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    load.set_ylabel("load")
    load.set_xlabel("seconds")
    load.set_ylim(bottom=0)

    for axes in (rates, pool, load):
        axes.grid(alpha=0.3)
    figure.savefig(path, format="png", dpi=100)
