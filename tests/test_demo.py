"""
``event-collector demo``: its load and numbers on a MockClock, its views, and the command.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio
from rich.console import Console

from event_collector._demo_load import (
    RATE_WINDOW,
    DemoConfig,
    DemoReport,
    PoolState,
    Sample,
    _Tracker,
    arrival_schedule,
    intended_rate,
    local_target,
    run_load,
)
from event_collector._demo_view import (
    LineView,
    LiveView,
    print_summary,
    report_json,
    sparkline,
)

from .processes import ROOT, alive, children

SMALL = DemoConfig(events=200, duration=2.0, service_time=0.05)


async def run_local(config: DemoConfig) -> tuple[DemoReport, list[Sample]]:
    shown: list[Sample] = []
    async with local_target(config) as target:
        report = await run_load(config, target, shown.append)
    return report, shown


class TestSchedule:
    """The arrivals rise and fall as drawn, the same for the same seed."""

    def test_count_order_and_bounds(self) -> None:
        schedule = arrival_schedule(DemoConfig())
        times = [arrival.at for arrival in schedule]
        assert len(schedule) == 2000
        assert times == sorted(times)
        assert times[0] >= 0
        assert times[-1] < 7.0

    def test_seeded(self) -> None:
        assert arrival_schedule(SMALL) == arrival_schedule(SMALL)
        other = DemoConfig(events=200, duration=2.0, service_time=0.05, seed=1)
        assert arrival_schedule(other) != arrival_schedule(SMALL)

    def test_rate_rises_and_falls(self) -> None:
        config = DemoConfig()
        middle = sum(1.75 <= a.at < 5.25 for a in arrival_schedule(config))
        # sin**2 puts 1/2 + 1/pi of the events in the middle half: 1637 of 2000, sd 17.
        assert abs(middle - 2000 * (0.5 + 1 / math.pi)) < 5 * 17

    def test_service_times(self) -> None:
        works = [a.work for a in arrival_schedule(DemoConfig())]
        assert min(works) > 0
        # Log-normal of mean 0.1 and sigma 0.5: a coefficient of variation of 0.53.
        assert sum(works) / len(works) == pytest.approx(0.1, rel=5 * 0.53 / math.sqrt(2000))
        none = DemoConfig(events=10, service_time=0)
        assert {a.work for a in arrival_schedule(none)} == {0.0}

    def test_intended_rate(self) -> None:
        config = DemoConfig()
        assert intended_rate(config, 0) == 0
        assert intended_rate(config, 3.5) == pytest.approx(2 * 2000 / 7)
        assert intended_rate(config, 7.5) == 0
        steps = 7000
        area = sum(intended_rate(config, (i + 0.5) * 7 / steps) * 7 / steps for i in range(steps))
        assert area == pytest.approx(2000)


class TestTracker:
    """Rates count the last RATE_WINDOW seconds, or the time since start if shorter."""

    def test_rates(self) -> None:
        tracker = _Tracker(start=10.0)
        for t in (10.1, 10.2, 10.3):
            tracker.record_send(t)
        tracker.record_result(10.35, 0.25, ok=True)
        assert tracker.rates(10.0) == (0.0, 0.0)
        assert tracker.rates(10.4) == pytest.approx((3 / 0.4, 1 / 0.4))
        assert RATE_WINDOW == 0.5
        assert tracker.rates(10.75) == pytest.approx((1 / 0.5, 1 / 0.5))
        assert tracker.rates(11.0) == (0.0, 0.0)
        tracker.record_result(11.0, 1.0, ok=False)
        assert (tracker.sent, tracker.done, tracker.failed) == (3, 2, 1)


class TestRunLoad:
    """Every event is sent at its time and resolves; the samples and summary add up."""

    async def test_fixed_pool_exact(self, autojump_clock: trio.abc.Clock) -> None:
        config = attrs.evolve(SMALL, min_consumers=200, max_consumers=200)
        schedule = arrival_schedule(config)
        report, _ = await run_local(config)
        summary = report.summary
        assert (summary.events, summary.ok, summary.failed) == (200, 200, 0)
        works = sorted(a.work for a in schedule)
        # No event ever waits: each takes exactly its service time.
        assert summary.latency_max == pytest.approx(works[-1])
        assert summary.latency_p50 == pytest.approx(works[99])
        assert summary.latency_p99 == pytest.approx(works[197])
        assert summary.latency_mean == pytest.approx(sum(works) / 200)
        assert summary.service_time == pytest.approx(sum(works) / 200)
        last = max(a.at + a.work for a in schedule)
        assert summary.elapsed == pytest.approx(last)
        assert summary.throughput == pytest.approx(200 / last)
        assert (summary.peak_consumers, summary.final_consumers, summary.resizes) == (200, 200, 0)
        assert report.metrics["event_count"] == 200

    async def test_samples(self, autojump_clock: trio.abc.Clock) -> None:
        schedule = arrival_schedule(SMALL)
        report, shown = await run_local(SMALL)
        samples = report.samples
        assert shown == list(samples)
        *ticks, last = samples
        assert [s.time for s in ticks] == pytest.approx([k * 0.1 for k in range(len(ticks))])
        for sample in ticks:
            assert sample.sent == sum(a.at <= sample.time for a in schedule)
            assert sample.intended_rate == pytest.approx(intended_rate(SMALL, sample.time))
            assert 1 <= sample.pool.consumers <= 100
        assert [s.done for s in samples] == sorted(s.done for s in samples)
        assert (last.sent, last.done, last.total, last.failed) == (200, 200, 200, 0)
        assert last.time == pytest.approx(report.summary.elapsed)

    async def test_pool_follows_the_load(self, autojump_clock: trio.abc.Clock) -> None:
        report, _ = await run_local(DemoConfig())
        summary = report.summary
        assert summary.ok == 2000
        # Demand peaks at 571/s x 0.1 s = 57 consumers: the pool grows towards it from 1,
        # then shrinks as the rate falls.
        assert summary.peak_consumers > 50
        assert summary.final_consumers < summary.peak_consumers / 3
        assert summary.resizes > 5
        peak_at = next(s.time for s in report.samples if s.pool.consumers == summary.peak_consumers)
        assert 2.0 < peak_at < 5.5

    async def test_cancelled(self, autojump_clock: trio.abc.Clock) -> None:
        async with local_target(SMALL) as target:
            with trio.move_on_after(1.0) as scope:
                await run_load(SMALL, target)
            assert scope.cancelled_caught
        # The queue resolved whatever it held as it stopped.
        assert (target.pool().busy, target.pool().queued) == (0, 0)


def sample(time: float, done: int, total: int = 10, pools: tuple[int, ...] = (4,)) -> Sample:
    state = PoolState(pools=pools, busy=2, queued=1, service_time=0.1, wait_time=0.0, resizes=3)
    return Sample(
        time=time,
        intended_rate=20.0,
        arrival_rate=18.0,
        completion_rate=17.0,
        sent=done,
        done=done,
        failed=0,
        total=total,
        pool=state,
    )


class TestViews:
    """Lines once a second and at the end; the live view, summary and JSON show the run."""

    def test_sparkline(self) -> None:
        assert sparkline([0, 1, 2, 4, 9], 4) == " ▂▄██"
        assert sparkline([1, 2], 0) == "  "

    def test_line_view(self) -> None:
        out = io.StringIO()
        view = LineView(out)
        for k in range(21):
            view(sample(k * 0.1, done=k // 3))
        view(sample(2.05, done=10))
        lines = out.getvalue().splitlines()
        assert [line.split()[0] for line in lines] == ["t=", "t=", "t=", "t="]
        assert [line.split()[1] for line in lines] == ["0.0s", "1.0s", "2.0s", "2.0s"]
        assert lines[-1].split()[2] == "done=10/10"
        assert "pool=4 busy=2 queued=1 load=0.75 service=100ms" in lines[-1]

    def test_pools_of_workers(self) -> None:
        out = io.StringIO()
        LineView(out)(sample(0.0, done=0, pools=(3, 5)))
        assert " pool=8(3+5) " in out.getvalue()

    def test_live_view(self) -> None:
        console = Console(file=io.StringIO(), force_terminal=True, width=100)
        with LiveView(console, "the title") as view:
            view(sample(0.0, done=0))
            view(sample(0.1, done=5))
            rendered = Console(file=io.StringIO(), width=100, record=True)
            rendered.print(view.render())
        text = rendered.export_text()
        assert "the title" in text
        assert " 5/10 events" in text
        for shown in ("arrivals", "18/s", "schedule 20/s", "2 busy, demand 1.8", "1 queued"):
            assert shown in text
        assert "0.75" in text
        assert "100 ms" in text

    async def test_summary_and_json(self, autojump_clock: trio.abc.Clock) -> None:
        report, _ = await run_local(SMALL)
        console = Console(file=io.StringIO(), width=120, record=True)
        print_summary(report, console, "demo")
        text = console.export_text()
        assert "200 ok, 0 failed" in text
        assert f"{report.summary.peak_consumers}" in text
        document = json.loads(report_json(report, "local"))
        assert document["mode"] == "local"
        assert document["config"]["events"] == 200
        assert document["summary"]["ok"] == 200
        assert document["metrics"]["event_count"] == 200


# -- the command ------------------------------------------------------------------------

QUICK = ("--events", "60", "--duration", "0.6", "--service-time", "0.02")


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "event_collector", "demo", *args]


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        demo_command(*args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )


def without(module: str, tmp_path: Path) -> dict[str, str]:
    """
    An environment in which importing ``module`` fails, as if it were not installed.
    """
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text(f"raise ImportError('no {module}')\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


class TestCommand:
    """The real command: plain lines off a terminal, a summary, JSON, a plot, its errors."""

    def test_plain_lines_and_summary(self) -> None:
        done = run_demo(*QUICK)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == (
            "event-collector demo: in-process queue, 1-100 consumers;"
            " 60 events over 0.6 s, 20 ms each"
        )
        progress = [line for line in lines if line.startswith("t=")]
        assert progress[0].startswith("t= 0.0s done=0/60 ")
        assert " done=60/60 " in progress[-1]
        assert any("60 ok, 0 failed" in line for line in lines)
        assert "\x1b[" not in done.stdout  # no terminal codes in a pipe

    def test_json(self) -> None:
        done = run_demo(*QUICK, "--json", "--seed", "3")
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert document["mode"] == "local"
        assert document["config"]["seed"] == 3
        assert document["summary"]["ok"] == 60
        assert document["summary"]["failed"] == 0
        assert document["metrics"]["event_count"] == 60
        assert " done=60/60 " in done.stderr  # the progress went to stderr

    def test_plot(self, tmp_path: Path) -> None:
        pytest.importorskip("matplotlib")
        path = tmp_path / "run.png"
        done = run_demo(*QUICK, "--plot", str(path))
        assert done.returncode == 0, done.stderr
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
        assert f"plot written to {path}" in done.stdout

    def test_docs_plot_script(self, tmp_path: Path) -> None:
        pytest.importorskip("matplotlib")
        path = tmp_path / "autoscaling.png"
        script = ROOT / "docs" / "make_autoscaling_plot.py"
        done = subprocess.run(
            [sys.executable, str(script), "--output", str(path), *QUICK],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "60 ok, 0 failed" in done.stdout

    def test_plot_without_matplotlib(self, tmp_path: Path) -> None:
        done = run_demo(
            *QUICK, "--plot", str(tmp_path / "x.png"), env=without("matplotlib", tmp_path)
        )
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            "event-collector: error: --plot needs the plot extra: "
            "pip install 'event-collector[plot]'"
        ]

    def test_distributed_without_zmq(self, tmp_path: Path) -> None:
        done = run_demo(*QUICK, "--distributed", env=without("zmq", tmp_path))
        assert done.returncode == 2
        assert len(done.stderr.splitlines()) == 1
        assert "needs the zmq extra" in done.stderr

    def test_bad_pool(self) -> None:
        done = run_demo("--min-consumers", "5", "--max-consumers", "2")
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            "event-collector: error: --max-consumers must be >= --min-consumers"
        ]

    def test_help_shows_defaults(self) -> None:
        done = run_demo("--help")
        assert done.returncode == 0
        text = " ".join(done.stdout.split())
        for default in ("[default: 2000;", "[default: 7.0;", "[default: 0.1;", "[default: 0]"):
            assert default in text
        for option in ("--events", "--duration", "--service-time", "--min-consumers"):
            assert option in text
        for option in ("--max-consumers", "--distributed", "--plot", "--json", "--seed"):
            assert option in text


@pytest.mark.skipif(sys.platform != "linux", reason="Linux process tests")
class TestDistributed:
    """A gateway and two workers run the load; no worker outlives the demo, stopped or not."""

    async def test_runs_and_cleans_up(self) -> None:
        with trio.fail_after(120):
            done = await trio.run_process(
                demo_command(*QUICK, "--distributed", "--json"),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=ROOT,
            )
        assert done.returncode == 0, done.stderr.decode()
        document = json.loads(done.stdout)
        assert document["mode"] == "distributed"
        assert document["summary"]["ok"] == 60
        assert document["summary"]["failed"] == 0
        gateway = document["metrics"]["gateway"]
        assert (gateway["workers"], gateway["queued"], gateway["in_flight"]) == (2, 0, 0)
        workers = document["metrics"]["workers"]
        assert len(workers) == 2
        assert sum(worker["event_count"] for worker in workers) == 60
        assert all(worker["event_count"] > 0 for worker in workers)  # both took a share
        assert not [worker["pid"] for worker in workers if alive(worker["pid"])]

    @pytest.mark.parametrize(
        ("signum", "status"),
        [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    )
    async def test_a_signal_stops_the_workers(self, signum: int, status: int) -> None:
        process = await trio.lowlevel.open_process(
            demo_command("--events", "3000", "--duration", "20", "--distributed"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
        )
        workers: list[int] = []
        try:
            with trio.fail_after(60):
                assert process.stdout is not None
                output = b""
                while b"t= 1.0s" not in output:  # running: the workers took the load
                    chunk = await process.stdout.receive_some()
                    assert chunk, output.decode()
                    output += chunk
                workers = children(process.pid)
                assert len(workers) == 2
                assert all(alive(pid) for pid in workers)
                process.send_signal(signum)
                assert await process.wait() == status
            assert not [pid for pid in workers if alive(pid)]
        finally:
            for pid in [process.pid, *workers]:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            await process.wait()
