"""
The getting-started demo: 100 events through a collector whose processor takes 0.25 s.

Run it with ``python -m event_collector`` (options: ``--help``). Results go to standard
output; the queue's log entries (JSON lines, INFO and up) go to standard error, so the two
can be read or redirected apart. The demo configures structlog for that, which the library
itself never does.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

import structlog
import trio

from ._collector import Collector
from ._data import Context, Ok, Payload, Result
from ._event import CollectorEvent
from ._publisher import EventPublisher
from ._queue import CollectorQueue


def _handler(service_time: float) -> Any:
    async def event_handler(payload: Payload[dict[str, Any]], ctx: Context) -> Result[Any]:
        """
        Stamp the payload id with the time it was received, after 'working' a while.
        """
        now = datetime.datetime.now(datetime.UTC).isoformat()
        await trio.sleep(service_time)
        return Ok({"id": payload.value["id"], "received_at": now})

    return event_handler


async def send_events(publisher: EventPublisher[Any], count: int) -> list[CollectorEvent[Any]]:
    """
    Send ``count`` payloads and return their events.
    """
    return [await publisher.send(Payload({"id": f"payload-{i}"})) for i in range(count)]


async def output_results(events: list[CollectorEvent[Any]]) -> None:
    """
    Wait for each event and print its first result's value.
    """
    for event in events:
        result_list = await event.wait()
        print(result_list.first().unwrap())


async def run_demo(args: argparse.Namespace) -> None:
    """
    Run the getting-started scenario and print the elapsed time.
    """
    collector = Collector("demo-collector", _handler(args.service_time))
    queue = CollectorQueue(
        [collector],
        min_consumers=args.min_consumers,
        max_consumers=args.max_consumers,
        report_interval=args.report_interval,
    )
    start = time.monotonic()
    async with queue:
        events = await send_events(queue.get_publisher(), args.events)
        await output_results(events)
    print(f"elapsed={time.monotonic() - start:.3f}")


def build_parser() -> argparse.ArgumentParser:
    """
    Return the demo's command-line parser.
    """
    parser = argparse.ArgumentParser(
        prog="python -m event_collector",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=100, help="events to send")
    parser.add_argument(
        "--service-time", type=float, default=0.25, help="seconds each event takes to process"
    )
    parser.add_argument("--min-consumers", type=int, default=1, help="smallest pool size")
    parser.add_argument("--max-consumers", type=int, default=100, help="largest pool size")
    parser.add_argument(
        "--report-interval",
        type=float,
        default=0.1,
        help="seconds between two metrics log entries (0: none)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """
    Parse options, send log entries to standard error and run the demo.
    """
    args = build_parser().parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    trio.run(run_demo, args)
