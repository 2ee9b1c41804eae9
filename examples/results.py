"""
Results and error handling: what a processor's outcome looks like to the sender.

Run it with ``python examples/results.py``. A processor never breaks a consumer: whatever
it does, its event gets one result per collector reached, ``Ok(value)`` or
``Error(exception)``.
"""

from __future__ import annotations

from typing import Any

import trio

from event_collector import (
    Collector,
    CollectorQueue,
    Context,
    Error,
    Ok,
    Payload,
    ProcessingError,
    Result,
    ResultList,
)


async def parse(payload: Payload[str], ctx: Context) -> Result[int]:
    """
    Parse an int; a bad value is an Error the processor returns itself.
    """
    if not payload.value.strip().lstrip("-").isdigit():
        return Error(f"not a number: {payload.value!r}")  # Error("text") wraps ProcessingError
    return Ok(int(payload.value))


async def divide(payload: Payload[str], ctx: Context) -> Result[float]:
    """
    Divide 100 by the value; an exception raised here becomes Error(exception).
    """
    return Ok(100 / int(payload.value))


async def slow(payload: Payload[str], ctx: Context) -> Result[str]:
    """
    Take longer than the collector's timeout for "0".
    """
    await trio.sleep(10 if payload.value == "0" else 0)
    return Ok("in time")


def describe(results: ResultList[Any]) -> str:
    """
    One ``key: outcome`` per collector, matching on Ok and Error.
    """
    parts = []
    for key, result in results.items():
        match result:
            case Ok(value):
                parts.append(f"{key}: ok {value!r}")
            case Error(ProcessingError() as error):
                parts.append(f"{key}: refused ({error})")
            case Error(error):
                parts.append(f"{key}: failed {type(error).__name__}")
    return ", ".join(parts)


async def main() -> None:
    """
    Send a few values to three collectors; show each outcome, then the other ways to read.
    """
    collectors: list[Collector[Any]] = [
        Collector("parse", parse),
        Collector("divide", divide),
        Collector("slow", slow, timeout=0.1),  # a call past 0.1 s: Error(trio.TooSlowError)
    ]
    async with CollectorQueue(collectors, failure_log_level=None) as queue:
        publisher = queue.get_publisher()
        for value in ["4", "0", "four"]:
            event = await publisher.send(Payload(value))  # broadcast: all three collectors
            print(f"{value!r} -> {describe(await event.wait())}")

        # One collector, one result: first(), unwrap() and unwrap_or(). send_nowait() does
        # not yield, so no consumer has run yet and get_result() (synchronous) says None.
        event = publisher.send_nowait(Payload("four", keys=["parse"]))
        print("get_result() before the event is done:", event.get_result())
        result = (await event.wait()).first()
        print("unwrap_or(0):", result.unwrap_or(0))
        try:
            result.unwrap()
        except ProcessingError as exc:
            print("unwrap() raised:", repr(exc))

        # By collector key, and synchronously once done.
        event = await publisher.send(Payload("5", keys=["parse", "divide"]))
        await event.wait()
        done = event.get_result()
        assert done is not None
        print("by_key:", {key: r.unwrap() for key, r in done.by_key().items()})

        # Fire and forget: the event resolves all the same; nobody has to wait for it.
        await publisher.send(Payload("7", keys=["parse"]))
    print("completed:", queue.statistics().completed)


if __name__ == "__main__":
    trio.run(main)
