"""
Benchmarks: event-collector next to the loop a user would write by hand, in the same run.

Run ``python benchmarks/run.py`` (``--quick`` for a smaller, faster pass, ``--autoscaling``
for the autoscaling runs alone, ``--ir`` for instructions per event under callgrind, the
repeatable figure: see ``callgrind.py``). Every row measures the project and its baseline
alternately over several rounds and reports medians and their ratio: the machine is shared
and noisy, so absolute numbers mean little and only ratios measured side by side are
compared. Throughput is timed in process CPU time (both sides are single-threaded and
CPU-bound, so time the process spent descheduled is noise); latency and the autoscaling
runs use the wall clock, which is what they are about, and the autoscaling runs also the
MockClock, which shows the policy alone. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
import trio.testing

from event_collector import (
    Collector,
    CollectorQueue,
    ConsumersScaled,
    Context,
    Delivery,
    MessageBus,
    Ok,
    Payload,
    QueueType,
    Result,
)

# The steady-load generator is the tests' own (tests/loads.py), so both measure one thing.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.loads import MEDIAN_SERVICE, SERVICE_SIGMA, SteadyLoad, steady_load

Run = Callable[[], Awaitable[float]]


# -- the baseline: a trio memory channel, N consumer tasks, a trio.Event + slot per event --


class Slot:
    """
    The naive loop's result holder: an event and a value.
    """

    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: object = None


async def naive_processor(value: object) -> object:
    return value


async def naive_throughput(n: int, consumers: int, processors: int = 1) -> float:
    send, receive = trio.open_memory_channel[tuple[object, Slot]](math.inf)

    async def consume() -> None:
        async for value, slot in receive:
            if processors == 1:
                slot.value = await naive_processor(value)
            else:
                slot.value = [await naive_processor(value) for _ in range(processors)]
            slot.done.set()

    start = time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(consumers):
            nursery.start_soon(consume)
        slots = []
        for i in range(n):
            slot = Slot()
            await send.send(({"id": i}, slot))
            slots.append(slot)
        for slot in slots:
            await slot.done.wait()
        send.close()
    return n / (time.process_time() - start)


class TimedSlot(Slot):
    """
    A slot that also notes when its event was sent.
    """

    __slots__ = ("sent_at",)

    def __init__(self, sent_at: float) -> None:
        super().__init__()
        self.sent_at = sent_at


async def featured_throughput(n: int, consumers: int, window: int = 500) -> float:
    """
    Run the naive loop plus the per-event work the library does, written by hand.

    Each event is a validated KEY Payload routed through a dict of processors returning
    ``Ok``; each result is kept with its key; each event's wait and service time go into
    running sums over the last ``window`` events, as the queue's metrics need.
    """
    now = trio.lowlevel.current_clock().current_time
    send, receive = trio.open_memory_channel[tuple[Payload[Any], TimedSlot]](math.inf)
    processors = {"c0": noop}
    context = Context()
    waits = [0.0] * window
    services = [0.0] * window
    sums = [0.0, 0.0]
    served = 0

    async def consume() -> None:
        nonlocal served
        async for payload, slot in receive:
            started = now()
            key = payload.keys[0]
            slot.value = (key, await processors[key](payload, context))
            slot.done.set()
            waited, service = started - slot.sent_at, now() - started
            index = served % window
            served += 1
            sums[0] += waited - waits[index]
            sums[1] += service - services[index]
            waits[index], services[index] = waited, service

    start = time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(consumers):
            nursery.start_soon(consume)
        slots = []
        for i in range(n):
            slot = TimedSlot(now())
            await send.send((Payload({"id": i}, Delivery.KEY, ("c0",)), slot))
            slots.append(slot)
        for slot in slots:
            await slot.done.wait()
        send.close()
    return n / (time.process_time() - start)


# -- the project ------------------------------------------------------------------------


async def noop(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(payload.value)


def queue_for(consumers: int, collectors: int = 1, **options: Any) -> CollectorQueue[Any]:
    settings: dict[str, Any] = {
        "autoscale": False,
        "min_consumers": 1,
        "max_consumers": consumers,
        "logging": False,
    }
    settings.update(options)
    return CollectorQueue([Collector(f"c{i}", noop) for i in range(collectors)], **settings)


async def project_throughput(n: int, queue: CollectorQueue[Any], delivery: Delivery) -> float:
    keys = ("c0",) if delivery is Delivery.KEY else ()
    start = time.process_time()
    async with queue:
        publisher = queue.get_publisher()
        events = [await publisher.send(Payload({"id": i}, delivery, keys)) for i in range(n)]
        for event in events:
            await event.wait()
    return n / (time.process_time() - start)


async def project_batch(n: int, queue: CollectorQueue[Any]) -> float:
    """
    Run ``n`` events through the batch API, ``as_completed``, taking each as it completes.
    """
    start = time.process_time()
    async with queue:
        publisher = queue.get_publisher()
        payloads = [Payload({"id": i}, Delivery.KEY, ("c0",)) for i in range(n)]
        async for _event in publisher.as_completed(payloads):
            pass
    return n / (time.process_time() - start)


def measure(rounds: int, project: Run, baseline: Run) -> tuple[float, float]:
    """
    Alternate project and baseline runs; return the median of each.
    """
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        for results, run in ((ours, project), (theirs, baseline)):
            gc.collect()
            results.append(trio.run(run))
    return statistics.median(ours), statistics.median(theirs)


def throughput_rows(n: int, rounds: int) -> list[tuple[str, float, float]]:
    cases: list[tuple[str, Run, Run]] = [
        (
            "FIFO, KEY, 10 consumers",
            lambda: project_throughput(n, queue_for(10), Delivery.KEY),
            lambda: naive_throughput(n, 10),
        ),
        (
            "FIFO, KEY, 10 (baseline: loop + same work)",
            lambda: project_throughput(n, queue_for(10), Delivery.KEY),
            lambda: featured_throughput(n, 10),
        ),
        (
            "FIFO, KEY, autoscale 1-10 + metrics",
            lambda: project_throughput(n, queue_for(10, autoscale=True), Delivery.KEY),
            lambda: naive_throughput(n, 10),
        ),
        (
            "Batch API (as_completed), KEY, 10",
            lambda: project_batch(n, queue_for(10)),
            lambda: naive_throughput(n, 10),
        ),
        (
            "BROADCAST to 3 collectors",
            lambda: project_throughput(n, queue_for(10, collectors=3), Delivery.BROADCAST),
            lambda: naive_throughput(n, 10, processors=3),
        ),
        (
            "PRIORITY, KEY (baseline: FIFO loop)",
            lambda: project_throughput(
                n, queue_for(10, queue_type=QueueType.PRIORITY), Delivery.KEY
            ),
            lambda: naive_throughput(n, 10),
        ),
        (
            "LIFO, KEY (baseline: FIFO loop)",
            lambda: project_throughput(n, queue_for(10, queue_type=QueueType.LIFO), Delivery.KEY),
            lambda: naive_throughput(n, 10),
        ),
    ]
    rows = []
    for name, project, baseline in cases:
        ours, theirs = measure(rounds, project, baseline)
        rows.append((name, ours, theirs))
    return rows


# -- latency at half the maximum rate ---------------------------------------------------


async def paced(
    n: int, rate: float, send: Callable[[int], Awaitable[Callable[[], Awaitable[object]]]]
) -> list[float]:
    """
    Send ``n`` events at ``rate`` per second; return each one's arrival-to-result latency.

    Latency counts from when the event was due, not from when the sender got to it: a
    sender that falls behind counts against its events (coordinated omission). Sleeps end
    on the system timer's millisecond, so events arrive in bursts of ``rate / 1000``, as
    messages read from a socket do.
    """
    latencies: list[float] = []

    async def watch(due: float, wait: Callable[[], Awaitable[object]]) -> None:
        await wait()
        latencies.append(trio.current_time() - due)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(n):
            due = start + i / rate
            if trio.current_time() < due:
                await trio.sleep_until(due)
            nursery.start_soon(watch, due, await send(i))
    return latencies


async def naive_latency(n: int, rate: float) -> list[float]:
    channel, receive = trio.open_memory_channel[tuple[object, Slot]](math.inf)

    async def consume() -> None:
        async for value, slot in receive:
            slot.value = await naive_processor(value)
            slot.done.set()

    async def send(i: int) -> Callable[[], Awaitable[object]]:
        slot = Slot()
        await channel.send(({"id": i}, slot))
        return slot.done.wait

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(consume)
        latencies = await paced(n, rate, send)
        channel.close()
    return latencies


async def project_latency(n: int, rate: float) -> list[float]:
    async with queue_for(10) as queue:
        publisher = queue.get_publisher()

        async def send(i: int) -> Callable[[], Awaitable[object]]:
            event = await publisher.send(Payload({"id": i}, Delivery.KEY, ("c0",)))
            return event.wait

        return await paced(n, rate, send)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- memory per pending event -----------------------------------------------------------


async def project_memory(n: int) -> float:
    gate = trio.Event()

    async def blocked(payload: Payload[Any], ctx: Context) -> Result[Any]:
        await gate.wait()
        return Ok(None)

    queue = CollectorQueue(
        [Collector("c0", blocked)], autoscale=False, max_consumers=1, logging=False
    )
    async with queue:
        publisher = queue.get_publisher()
        await publisher.send(Payload({"id": -1}))  # occupies the consumer
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        events = [
            publisher.send_nowait(Payload({"id": i}, Delivery.KEY, ("c0",))) for i in range(n)
        ]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        gate.set()
        del events
    return (after - before) / n


async def naive_memory(n: int) -> float:
    send, receive = trio.open_memory_channel[tuple[object, Slot]](math.inf)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    slots = []
    for i in range(n):
        slot = Slot()
        send.send_nowait(({"id": i}, slot))
        slots.append(slot)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del slots, receive
    return (after - before) / n


# -- autoscaling: the reference headline, a step load and a steady noisy load -------------


async def headline(autoscale: bool) -> float:
    async def work(payload: Payload[Any], ctx: Context) -> Result[Any]:
        await trio.sleep(0.25)
        return Ok(payload.value)

    queue = CollectorQueue(
        [Collector("demo", work)],
        autoscale=autoscale,
        min_consumers=100 if not autoscale else 1,
        max_consumers=100,
        logging=False,
    )
    start = time.perf_counter()
    async with queue:
        publisher = queue.get_publisher()
        events = [await publisher.send(Payload({"id": i})) for i in range(100)]
        for event in events:
            await event.wait()
    return time.perf_counter() - start


async def step_load(service: float, rate: float, phase: float) -> dict[str, float]:
    """
    Run ``rate``, then ``10 * rate``, then ``rate`` again, ``phase`` seconds each.
    """

    async def work(payload: Payload[Any], ctx: Context) -> Result[Any]:
        await trio.sleep(service)
        return Ok(None)

    queue = CollectorQueue(
        [Collector("w", work)], min_consumers=1, max_consumers=500, logging=False
    )
    scaled: list[tuple[float, int]] = []

    async def on_scaled(msg: ConsumersScaled, bus: MessageBus) -> None:
        scaled.append((trio.current_time(), msg.new))

    queue.get_message_bus().add_msg_handler(ConsumersScaled, on_scaled)
    samples: list[tuple[float, float, int]] = []  # (time, offered demand, pool size)
    result: dict[str, float] = {}
    async with queue, trio.open_nursery() as nursery:
        publisher = queue.get_publisher()
        start = trio.current_time()
        demand = 0.0

        async def sample() -> None:
            while True:
                samples.append((trio.current_time() - start, demand, queue.consumer_count()))
                await trio.sleep(queue.monitor_interval)

        nursery.start_soon(sample)
        sent = 0
        for index, phase_rate in enumerate((rate, 10 * rate, rate)):
            demand = phase_rate * service
            phase_start = start + index * phase
            count = int(phase_rate * phase)
            for i in range(count):
                due = phase_start + i / phase_rate
                if trio.current_time() < due:
                    await trio.sleep_until(due)
                publisher.send_nowait(Payload(sent))
                sent += 1
            if index == 1:
                # When did the supervisor first size the pool for the high phase's demand?
                # (from its ConsumersScaled events: exact, unlike a periodic sampler)
                needed = math.ceil(10 * rate * service)
                reached = [t - start for t, size in scaled if t - start >= phase and size >= needed]
                result["meet_s"] = (reached[0] - phase) if reached else math.inf
        stop = trio.current_time()
        demand = 0.0
        # Polling is the point here: the pool size is what is being measured.
        while queue.consumer_count() > queue.min_consumers and trio.current_time() - stop < 30:  # noqa: ASYNC110
            await trio.sleep(queue.monitor_interval)
        result["back_to_min_s"] = trio.current_time() - stop
        nursery.cancel_scope.cancel()
    loaded = [(d, size) for t, d, size in samples if d > 0 and t < 3 * phase]
    result["mean_pool_over_demand"] = sum(size for _, size in loaded) / sum(d for d, _ in loaded)
    result["peak_pool"] = max(size for _, size in loaded)
    result["peak_demand"] = 10 * rate * service
    result["monitor_interval"] = queue.monitor_interval
    return result


def steady_rows(
    rates: tuple[float, ...], duration: float, rounds: int
) -> list[tuple[float, SteadyLoad, SteadyLoad]]:
    """
    Run the steady load at each rate, on the MockClock and on the real clock.

    The virtual result is the mean of seeds 1 to 3; the real one the median of ``rounds``
    rounds, seeded 1, 2, ...
    """

    def run(rate: float, seed: int, clock: trio.abc.Clock | None = None) -> SteadyLoad:
        return trio.run(lambda: steady_load(rate, seed=seed, duration=duration), clock=clock)

    rows = []
    for rate in rates:
        virtual = [
            run(rate, seed, trio.testing.MockClock(autojump_threshold=0)) for seed in (1, 2, 3)
        ]
        real = [run(rate, seed) for seed in range(1, rounds + 1)]
        rows.append((rate, _combine(virtual, statistics.mean), _combine(real, statistics.median)))
    return rows


def _combine(runs: list[SteadyLoad], average: Callable[[list[float]], float]) -> SteadyLoad:
    return SteadyLoad(
        rate=runs[0].rate,
        demand=runs[0].demand,
        resizes_per_s=average([run.resizes_per_s for run in runs]),
        max_resizes_in_a_second=max(run.max_resizes_in_a_second for run in runs),
        mean_pool_over_demand=average([run.mean_pool_over_demand for run in runs]),
        pool_range=(min(r.pool_range[0] for r in runs), max(r.pool_range[1] for r in runs)),
        mean_wait=average([run.mean_wait for run in runs]),
        waited_fraction=average([run.waited_fraction for run in runs]),
    )


# -- report -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer events and rounds")
    parser.add_argument(
        "--autoscaling", action="store_true", help="only the autoscaling runs (headline, loads)"
    )
    parser.add_argument(
        "--ir",
        action="store_true",
        help="only instructions per event under callgrind (repeatable; a few minutes)",
    )
    args = parser.parse_args()
    if args.ir:
        instruction_rows()
        return
    n = 20_000 if args.quick else 100_000
    rounds = 3 if args.quick else 5

    print(f"event-collector benchmarks: python {sys.version.split()[0]}, trio {trio.__version__}")
    if not args.autoscaling:
        other_rows(n, rounds)
    autoscaling_rows(args.quick, rounds)


#: The instruction-count rows: the project's call and its baseline's, over ``N`` events.
IR_ROWS = [
    (
        "FIFO, KEY, 10 consumers",
        "run.project_throughput(N, run.queue_for(10), run.Delivery.KEY)",
        "run.naive_throughput(N, 10)",
    ),
    (
        "Batch API (as_completed), KEY, 10",
        "run.project_batch(N, run.queue_for(10))",
        "run.naive_throughput(N, 10)",
    ),
    (
        "BROADCAST to 3 collectors",
        "run.project_throughput(N, run.queue_for(10, collectors=3), run.Delivery.BROADCAST)",
        "run.naive_throughput(N, 10, processors=3)",
    ),
]


def instruction_rows() -> None:
    import callgrind  # noqa: PLC0415 (needs valgrind: only for --ir)

    print(
        f"instructions per event (callgrind, {callgrind.LARGE} - {callgrind.SMALL} events,"
        " frozen clock)\n"
    )
    print(f"{'case':<40} {'project Ir':>13} {'baseline Ir':>14} {'speed-up':>9}")
    for name, ours, theirs in IR_ROWS:
        a, b = callgrind.per_event(ours), callgrind.per_event(theirs)
        print(f"{name:<40} {a:>13,.0f} {b:>14,.0f} {b / a:>8.2f}x")


def other_rows(n: int, rounds: int) -> None:
    print(f"throughput: {n} events, no-op processor, median of {rounds} alternating rounds\n")
    print(f"{'case':<40} {'project ev/s':>13} {'baseline ev/s':>14} {'ratio':>7}")
    rows = throughput_rows(n, rounds)
    for name, ours, theirs in rows:
        print(f"{name:<40} {ours:>13,.0f} {theirs:>14,.0f} {ours / theirs:>7.3f}")

    rate = rows[0][2] / 2  # half the baseline's measured maximum rate, offered to both
    count = n // 5
    ours_lat: dict[float, list[float]] = {0.5: [], 0.99: []}
    theirs_lat: dict[float, list[float]] = {0.5: [], 0.99: []}
    for _ in range(rounds):
        for results, run in ((ours_lat, project_latency), (theirs_lat, naive_latency)):
            gc.collect()
            latencies = trio.run(run, count, rate)
            for fraction, values in results.items():
                values.append(percentile(latencies, fraction))
    print(f"\nlatency at {rate:,.0f} ev/s (half the baseline's maximum), {count} events,")
    print(f"median over {rounds} alternating rounds")
    print(f"{'':<40} {'project ms':>13} {'baseline ms':>14} {'ratio':>7}")
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        a = statistics.median(ours_lat[fraction]) * 1e3
        b = statistics.median(theirs_lat[fraction]) * 1e3
        print(f"{label:<40} {a:>13.3f} {b:>14.3f} {a / b:>7.3f}")

    ours_mem = trio.run(project_memory, n)
    theirs_mem = trio.run(naive_memory, n)
    print(f"\nmemory per pending event ({n} queued, {{'id': i}} payload, tracemalloc)")
    print(f"{'':<40} {'project B':>13} {'baseline B':>14} {'ratio':>7}")
    ratio = ours_mem / theirs_mem
    print(f"{'bytes per event':<40} {ours_mem:>13.0f} {theirs_mem:>14.0f} {ratio:>7.3f}")


def autoscaling_rows(quick: bool, rounds: int) -> None:
    auto = statistics.median(trio.run(headline, True) for _ in range(rounds))
    fixed = statistics.median(trio.run(headline, False) for _ in range(rounds))
    print("\nreference headline: 100 events x 0.25 s, real clock (median of rounds)")
    print(f"{'':<40} {'seconds':>13} {'x service':>14}")
    print(f"{'autoscale 1-100':<40} {auto:>13.3f} {auto / 0.25:>14.3f}")
    print(f"{'fixed pool of 100 (floor)':<40} {fixed:>13.3f} {fixed / 0.25:>14.3f}")

    phase = 1.0 if quick else 2.0
    virtual = trio.run(
        step_load, 0.05, 200.0, phase, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    real_runs = [trio.run(step_load, 0.05, 200.0, phase) for _ in range(rounds)]
    real = {key: statistics.median(run[key] for run in real_runs) for key in real_runs[0]}
    print(f"\nstep load: 200 ev/s, 2000 ev/s, 200 ev/s, {phase:g} s each; service 50 ms")
    print("(virtual: trio's MockClock, the policy alone; real: median of rounds, host included)")
    print(f"{'':<40} {'virtual':>13} {'real':>14}")

    def summary(run: dict[str, float]) -> list[tuple[str, str]]:
        return [
            ("pool meets 10x demand (intervals)", f"{run['meet_s'] / run['monitor_interval']:.1f}"),
            (f"peak pool (peak demand {run['peak_demand']:.0f})", f"{run['peak_pool']:.0f}"),
            ("mean pool / (arrival rate x service)", f"{run['mean_pool_over_demand']:.3f}"),
            ("back to min_consumers after load (s)", f"{run['back_to_min_s']:.3f}"),
        ]

    for (label, ideal), (_, host) in zip(summary(virtual), summary(real), strict=True):
        print(f"{label:<40} {ideal:>13} {host:>14}")

    duration = 6.0 if quick else 12.0
    service = f"median {MEDIAN_SERVICE * 1e3:g} ms, sigma {SERVICE_SIGMA:g}"
    print(f"\nsteady load: Poisson arrivals, log-normal service ({service}),")
    print(f"measured for {duration - 2:g} s after a 2 s warm-up")
    print("(virtual: MockClock, mean of seeds 1-3; real: median of 3 rounds, host included)")
    print(f"{'':<40} {'virtual':>13} {'real':>14}")
    for rate, mock, wall in steady_rows((100.0, 500.0, 2000.0), duration, rounds=3):
        lines = [
            (f"{rate:g} ev/s (demand {mock.demand:.1f}): resizes/s", "{:.2f}", "resizes_per_s"),
            ("  most resizes in one second", "{}", "max_resizes_in_a_second"),
            ("  mean pool / demand", "{:.3f}", "mean_pool_over_demand"),
            ("  mean wait for a consumer (ms)", "{:.2f}", "mean_wait_ms"),
        ]
        for label, form, name in lines:
            a, b = (form.format(getattr(run, name)) for run in (mock, wall))
            print(f"{label:<40} {a:>13} {b:>14}")


if __name__ == "__main__":
    main()
