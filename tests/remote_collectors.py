"""
Collectors that the worker processes of ``test_remote_processes.py`` import.

Worker processes load them as ``tests.remote_collectors:NAME`` from the repository root (the
tests start them with that as their working directory). Each result says which collector ran
the task, in which process, and as the how-manieth task of that process, so a test can tell
where and in which order tasks ran.

A payload value is ``[n, wait]`` or ``[n, wait, size]``: ``n`` identifies the task (a
negative ``n`` makes the processor raise), ``wait`` says what the processor waits for before
answering: a number of seconds, or a gate, the path of a directory (the processor appends
``n`` to the file ``started`` there, waits until a file ``open`` exists there, then appends
``n`` to ``finished``); ``size`` adds that many bytes to the result.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import trio

from event_collector import Collector, Context, Ok, Payload, Result

#: Tasks this process has started, in order.
_started = itertools.count()


async def _report(payload: Payload[Any], ctx: Context) -> Result[Any]:
    """
    Wait as the payload asks, then return ``[key, n, pid, seq]`` (and the padding).
    """
    n, wait, *size = payload.value
    seq = next(_started)
    if n < 0:
        raise ValueError(f"task {n} fails on purpose")
    if isinstance(wait, str):
        await _pass_gate(trio.Path(wait), n)
    elif wait:
        await trio.sleep(wait)
    result = [ctx.key, n, os.getpid(), seq]
    return Ok([*result, bytes(size[0])] if size else result)


async def _pass_gate(gate: trio.Path, n: int) -> None:
    await _append(gate / "started", n)
    while not await (gate / "open").exists():  # noqa: ASYNC110  (a file: nothing to wait on)
        await trio.sleep(0.01)
    await _append(gate / "finished", n)


async def _append(path: trio.Path, n: int) -> None:
    async with await path.open("a") as file:
        await file.write(f"{n}\n")


def _collector(key: str, *topics: str) -> Collector[Any]:
    return Collector(key, _report, ctx=Context(key=key), topics=topics)


#: Three collectors: ``a`` on topic ``x``, ``b`` on ``x`` and ``y``, ``c`` on ``y``.
ROUTED = [_collector("a", "x"), _collector("b", "x", "y"), _collector("c", "y")]


def one() -> list[Collector[Any]]:
    """
    One collector, ``a``, for tests that count tasks rather than routes.
    """
    return [_collector("a")]


async def _fast(payload: Payload[Any], ctx: Context) -> Result[Any]:
    return Ok(payload.value)


#: One collector that answers at once with the value it got (for load tests).
FAST = [Collector("fast", _fast)]


#: The tasks after which ``STALLING`` stalls: every 50 000th.
STALL_EVERY = 50_000


async def _stalling(payload: Payload[Any], ctx: Context) -> Result[Any]:
    if payload.value % STALL_EVERY == STALL_EVERY - 1:
        await trio.sleep(0.5)
    return Ok(payload.value)


#: One collector that answers at once with the int it got, except that it stalls for half
#: a second on every ``STALL_EVERY``-th task: there its worker is slower than any producer,
#: whose pending tasks pile up to its window (in the gateway's queue).
STALLING = [Collector("stalling", _stalling)]
