"""
What the demo shows: a live view on a terminal, plain lines otherwise, a summary, JSON.

The live view is ``rich``'s ``Live`` with ``auto_refresh=False``, refreshed by the demo's
sampler task each time it takes a sample. rich's default refreshes from a thread of its own,
which would read the samples while the Trio thread writes them and draw at a rate unrelated
to them; driven from the sampler, every frame shows one whole sample, everything runs in the
Trio thread, and nothing is drawn between samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any, Final, final

import attrs
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ._demo_load import DemoReport, Sample

__all__ = ["LineView", "LiveView", "print_summary", "report_json"]

#: Samples in the live view's sparklines, at most; fewer on a narrow terminal.
SPARK_WIDTH: Final = 48
#: Columns the live view's rows take besides their sparkline.
_ROW_WIDTH: Final = 56
_BLOCKS: Final = " ▁▂▃▄▅▆▇█"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.0095 else f"{seconds * 1000:.1f} ms"


def _pools(sample: Sample) -> str:
    pools = sample.pool.pools
    text = f"{sample.pool.consumers}"
    return text + (f" ({' + '.join(map(str, pools))})" if len(pools) > 1 else "")


def sparkline(values: Sequence[float], top: float) -> str:
    """
    Return one block character per value, scaled so that ``top`` is a full block.
    """
    if top <= 0:
        return " " * len(values)
    last = len(_BLOCKS) - 1
    return "".join(_BLOCKS[min(last, math.ceil(value / top * last))] for value in values)


@final
class LiveView:
    """
    The live view: progress bar, rates, pool and load, with sparklines of the run so far.

    A context manager; call it with each sample.
    """

    def __init__(self, console: Console, title: str) -> None:
        self._console = console
        self._title = title
        self._samples: list[Sample] = []
        self._live = Live(
            Text(title),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveView:
        self._live.start(refresh=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._live.stop()

    def __call__(self, sample: Sample) -> None:
        self._samples.append(sample)
        self._live.update(self.render(), refresh=True)

    def render(self) -> RenderableType:
        """
        Return the view of the samples so far.
        """
        sample = self._samples[-1]
        width = max(8, min(SPARK_WIDTH, self._console.width - _ROW_WIDTH))
        recent = self._samples[-width:]
        peak_rate = max(max(s.arrival_rate, s.intended_rate) for s in self._samples)
        peak_pool = max(s.pool.consumers for s in self._samples)
        progress = Table.grid(padding=(0, 1))
        progress.add_row(
            ProgressBar(total=sample.total, completed=sample.done, width=40),
            Text(f"{sample.done:>{len(str(sample.total))}}/{sample.total} events", "bold"),
            Text(f"{sample.time:4.1f} s", "dim"),
        )
        rows = Table.grid(padding=(0, 2))
        rows.add_column(style="bold cyan", justify="right")
        rows.add_column(justify="right", min_width=10)
        rows.add_column(style="dim")
        rows.add_column(no_wrap=True, overflow="crop")
        rows.add_row(
            "arrivals",
            f"{sample.arrival_rate:.0f}/s",
            f"schedule {sample.intended_rate:.0f}/s",
            Text(sparkline([s.arrival_rate for s in recent], peak_rate), "green"),
        )
        rows.add_row("completions", f"{sample.completion_rate:.0f}/s", "", "")
        rows.add_row(
            "pool",
            _pools(sample),
            f"{sample.pool.busy} busy, demand {sample.demand:.1f}",
            Text(sparkline([s.pool.consumers for s in recent], peak_pool), "magenta"),
        )
        load_style = "red" if sample.pool.load > 1 else "green"
        rows.add_row(
            "load",
            Text(f"{sample.pool.load:.2f}", load_style),
            f"{sample.pool.queued} queued",
            Text(sparkline([min(s.pool.load, 2.0) for s in recent], 2.0), "yellow"),
        )
        rows.add_row(
            "service time",
            _ms(sample.pool.service_time),
            f"wait {_ms(sample.pool.wait_time)}",
            "",
        )
        rows.add_row("resizes", str(sample.pool.resizes), "", "")
        header = Text.assemble(("event-collector demo", "bold"), "\n", (self._title, "dim"))
        return Group(header, progress, Text(), rows)


@final
class LineView:
    """
    Plain lines, one every ``every`` seconds of the run and one at the end.
    """

    def __init__(self, file: IO[str], every: float = 1.0) -> None:
        self._file = file
        self._every = every
        self._next = 0.0

    def __call__(self, sample: Sample) -> None:
        if sample.time < self._next and sample.done < sample.total:
            return
        self._next = (math.floor(sample.time / self._every) + 1) * self._every
        pool = sample.pool
        print(
            f"t={sample.time:4.1f}s done={sample.done}/{sample.total}"
            f" arrivals={sample.arrival_rate:.0f}/s completions={sample.completion_rate:.0f}/s"
            f" pool={_pools(sample).replace(' ', '')} busy={pool.busy} queued={pool.queued}"
            f" load={pool.load:.2f} service={pool.service_time * 1000:.0f}ms",
            file=self._file,
            flush=True,
        )


def print_summary(report: DemoReport, console: Console, title: str) -> None:
    """
    Print the run's summary table.
    """
    summary = report.summary
    table = Table(title=f"{title}: summary", title_justify="left", show_header=False)
    table.add_column(style="bold cyan")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_row(
        "events",
        f"{summary.events}",
        f"{summary.ok} ok, {summary.failed} failed",
    )
    table.add_row("elapsed", f"{summary.elapsed:.2f} s", f"{summary.throughput:.0f} events/s")
    table.add_row(
        "arrival rate",
        f"{summary.peak_arrival_rate:.0f}/s",
        f"peak (schedule: {report.config.peak_rate:.0f}/s)",
    )
    table.add_row(
        "latency",
        _ms(summary.latency_mean),
        f"mean; p50 {_ms(summary.latency_p50)}, p99 {_ms(summary.latency_p99)},"
        f" max {_ms(summary.latency_max)}",
    )
    table.add_row("service time", _ms(summary.service_time), "mean of the last events")
    table.add_row(
        "pool",
        f"{summary.peak_consumers}",
        f"peak; mean {summary.mean_consumers:.1f}, at the end {summary.final_consumers}",
    )
    table.add_row("resizes", f"{summary.resizes}", "by the autoscaler")
    table.add_row("load", f"{summary.peak_load:.2f}", "peak")
    console.print(table)


def report_json(report: DemoReport, mode: str) -> str:
    """
    Return the run's config, summary and final metrics as one JSON document.
    """
    document: dict[str, Any] = {
        "mode": mode,
        "config": attrs.asdict(report.config),
        "summary": attrs.asdict(report.summary),
        "metrics": report.metrics,
    }
    return json.dumps(document, indent=2, default=str)
