"""
``event-collector demo``: a collector queue under a load that rises and falls, watched live.

The load, its samples and its summary are in ``_demo_load`` (no output, tested on a
MockClock); this module picks the target (an in-process queue, or with ``distributed`` a
gateway and worker processes from ``_demo_remote``) and the view (``_demo_view``: a live view
on a terminal, plain lines otherwise), runs them, then prints the summary table (or, with
``as_json``, the final metrics as JSON on stdout, the view going to stderr) and writes the
plot (``_demo_plot``).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from ._demo_load import DemoConfig, DemoReport, Sample, Target, local_target, run_load
from ._demo_view import LineView, LiveView, print_summary, report_json

__all__ = ["SignalStop", "describe", "main"]


class SignalStop(Exception):
    """
    A SIGTERM or SIGHUP (the terminal closed) stopped the demo, which cleaned up as on Ctrl-C.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        #: The signal's number.
        self.signum = signum


async def _raise_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            raise SignalStop(signum)


def describe(config: DemoConfig, processes: int | None) -> str:
    """
    Return the run's title: what runs the load, and the load.
    """
    where = "in-process queue" if processes is None else f"{processes} workers via a gateway"
    pool = f"{config.min_consumers}-{config.max_consumers} consumers"
    if processes is not None:
        pool += " each"
    return (
        f"{where}, {pool}; {config.events} events over {config.duration:g} s,"
        f" {config.service_time * 1000:g} ms each"
    )


@asynccontextmanager
async def _target(config: DemoConfig, processes: int | None) -> AsyncIterator[Target]:
    if processes is None:
        async with local_target(config) as target:
            yield target
    else:
        from ._demo_remote import distributed_target  # noqa: PLC0415  (the zmq extra)

        async with distributed_target(config, processes) as target:
            yield target


async def run(
    config: DemoConfig, processes: int | None, view: Callable[[Sample], None]
) -> DemoReport:
    """
    Run the load on its target, showing each sample with ``view``.

    Raises:
        SignalStop: A SIGTERM or SIGHUP came first; the target has stopped (the worker
            processes too).
    """
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_raise_on_signal)
        async with _target(config, processes) as target:
            report = await run_load(config, target, view)
        nursery.cancel_scope.cancel()
    return report


def main(
    config: DemoConfig,
    *,
    processes: int | None,
    plot: Path | None,
    as_json: bool,
    runner: Callable[..., Any],
) -> None:
    """
    Run the demo with a view on stdout (stderr with ``as_json``) and report its end.

    ``runner`` is ``trio.run``, or the command line's wrapper of it.
    """
    stream = sys.stderr if as_json else sys.stdout
    title = describe(config, processes)
    console = Console(file=stream)
    view: Callable[[Sample], None]
    context: AbstractContextManager[Any]
    if console.is_terminal:
        live = LiveView(console, title)
        view, context = live, live
    else:
        print(f"event-collector demo: {title}", file=stream, flush=True)
        view, context = LineView(stream), nullcontext()
    with context:
        report: DemoReport = runner(run, config, processes, view)
    if as_json:
        print(report_json(report, "local" if processes is None else "distributed"), flush=True)
    else:
        print_summary(report, console, "event-collector demo")
    if plot is not None:
        from ._demo_plot import write_plot  # noqa: PLC0415  (the plot extra)

        write_plot(report, plot, f"event-collector demo: {title}")
        print(f"plot written to {plot}", file=stream, flush=True)
