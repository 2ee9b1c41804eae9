"""
Worker processes: N copies of one worker command, restarted when they die, stopped cleanly.

Each worker runs in a session of its own (``start_new_session``), so that a Ctrl-C in the
terminal reaches only the supervising process, which then stops the workers in order:
SIGTERM (each drains its tasks and exits 0), then SIGKILL for one still running after
``stop_timeout``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Final

import trio

from ._logging import FilteringBoundLogger

__all__ = ["run_worker_processes"]

#: Seconds before restarting a worker that died, doubled after each quick death.
_FIRST_BACKOFF: Final = 0.5
_MAX_BACKOFF: Final = 30.0
#: A worker that ran this long before dying is restarted after the first backoff again.
_HEALTHY_AFTER: Final = 10.0


async def run_worker_processes(
    command: Sequence[str] | Callable[[int], Sequence[str]],
    count: int,
    *,
    log: FilteringBoundLogger,
    stop_timeout: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """
    Run ``count`` processes of ``command`` until cancelled, restarting any that exits.

    ``command`` is one command for all, or a function of the process's index (from 0)
    returning its command: each worker's own metrics port, say.

    Reports started once every process has been started. On cancellation each process gets
    SIGTERM and ``stop_timeout`` seconds to exit, then SIGKILL; this returns (or raises
    Cancelled) only once all have exited.
    """
    async with trio.open_nursery() as nursery:
        for index in range(count):
            one = command(index) if callable(command) else command
            await nursery.start(_keep_running, list(one), index, log, stop_timeout)
        task_status.started()


async def _keep_running(
    command: list[str],
    index: int,
    log: FilteringBoundLogger,
    stop_timeout: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    backoff = _FIRST_BACKOFF
    while True:
        started = trio.current_time()
        process = await trio.lowlevel.open_process(command, start_new_session=True)
        log.info("worker_process_started", index=index, pid=process.pid)
        task_status.started()
        task_status = trio.TASK_STATUS_IGNORED
        try:
            code = await process.wait()
        except BaseException:
            with trio.CancelScope(shield=True):
                await _stop(process, stop_timeout, log)
            raise
        log.warning("worker_process_exited", index=index, pid=process.pid, returncode=code)
        if trio.current_time() - started >= _HEALTHY_AFTER:
            backoff = _FIRST_BACKOFF
        await trio.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF)


async def _stop(process: trio.Process, timeout: float, log: FilteringBoundLogger) -> None:
    """
    SIGTERM, wait up to ``timeout``, then SIGKILL; return once the process has exited.
    """
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(timeout):
            await process.wait()
        if process.returncode is None:
            log.warning("worker_process_killed", pid=process.pid, timeout=timeout)
            process.kill()
    await process.wait()
    log.info("worker_process_stopped", pid=process.pid, returncode=process.returncode)
