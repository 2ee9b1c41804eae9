"""
A lifecycle around a real resource: a SQLite database, open while the queue runs.

Run it with ``python examples/sqlite_lifecycle.py [PATH]`` (a temporary file by default).
The lifecycle opens the database and creates its table before any consumer starts, and
closes it after the last consumer has stopped. sqlite3 blocks, so each query runs in a
worker thread (``trio.to_thread.run_sync``), one at a time: a ``trio.CapacityLimiter(1)``
keeps the single connection to a single thread at once.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import trio

from event_collector import Collector, CollectorQueue, Context, Ok, Payload, Result


@asynccontextmanager
async def database(ctx: Context) -> AsyncIterator[None]:
    """
    Open the database in ``ctx.path`` for the collector; close it when the queue stops.
    """

    def connect() -> sqlite3.Connection:
        # The connection is used from worker threads, one at a time (ctx.limiter).
        connection = sqlite3.connect(ctx.path, check_same_thread=False)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS readings (sensor TEXT NOT NULL, value REAL NOT NULL)"
        )
        return connection

    ctx.limiter = trio.CapacityLimiter(1)
    ctx.db = await trio.to_thread.run_sync(connect)
    print("database opened")
    try:
        yield
    finally:
        # Runs after the last consumer has stopped (shielded, bounded by
        # consumer_shutdown_timeout): commit what was written, then close.
        ctx.db.commit()
        ctx.db.close()
        print("database closed")


async def query(ctx: Context, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """
    Run one statement in a worker thread; return its rows.
    """
    return await trio.to_thread.run_sync(
        lambda: ctx.db.execute(sql, args).fetchall(), limiter=ctx.limiter
    )


async def record(payload: Payload[dict[str, Any]], ctx: Context) -> Result[int]:
    """
    Insert one reading; return the sensor's count of readings so far.
    """
    sensor, value = payload.value["sensor"], payload.value["value"]
    await query(ctx, "INSERT INTO readings VALUES (?, ?)", sensor, value)
    [(count,)] = await query(ctx, "SELECT count(*) FROM readings WHERE sensor = ?", sensor)
    return Ok(count)


async def summary(payload: Payload[Any], ctx: Context) -> Result[dict[str, float]]:
    """
    Return the mean value of each sensor.
    """
    rows = await query(ctx, "SELECT sensor, avg(value) FROM readings GROUP BY sensor")
    return Ok(dict(rows))


async def main(path: str) -> None:
    """
    Record readings through the queue, ask for a summary, then check the file after close.
    """
    # Both collectors share one context, so one lifecycle serves them: the first opens the
    # database, and the second collector has no lifecycle of its own.
    ctx = Context(path=path)
    collectors: list[Collector[Any]] = [
        Collector("record", record, lifecycle=database, ctx=ctx),
        Collector("summary", summary, ctx=ctx),
    ]
    readings = [("a", 1.0), ("b", 10.0), ("a", 3.0), ("b", 20.0), ("a", 5.0)]
    async with CollectorQueue(collectors, max_consumers=4) as queue:
        publisher = queue.get_publisher()
        events = [
            await publisher.send(Payload({"sensor": s, "value": v}, keys=["record"]))
            for s, v in readings
        ]
        for event in events:
            await event.wait()
        print("readings recorded:", len(events))
        means = await (await publisher.send(Payload(None, keys=["summary"]))).wait()
        print("means:", means.first().unwrap())
    with closing(sqlite3.connect(path)) as connection:  # the lifecycle closed its own
        [(rows,)] = connection.execute("SELECT count(*) FROM readings").fetchall()
    print("rows in the file after the queue stopped:", rows)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        trio.run(main, sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as directory:
            trio.run(main, str(Path(directory) / "readings.db"))
