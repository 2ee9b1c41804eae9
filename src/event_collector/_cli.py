"""
The ``event-collector`` command (also ``python -m event_collector``).

Subcommands: ``demo``, and the distributed mode's ``gateway``, ``worker``, ``serve`` and
``keygen``. Logs go to standard error: readable on a terminal, JSON otherwise (or with
``--log-format json``). A user mistake (a bad option, an import path that does not resolve,
an endpoint in use) exits with status 2 and one line, no traceback. ``gateway``, ``worker``
and ``serve`` stop on SIGINT or SIGTERM: they stop taking tasks, finish those they hold
(bounded by ``--drain-timeout``), deliver the results and exit 0 (a second signal meanwhile
is ignored: the drain is bounded already). ``gateway`` and ``serve``
print their ready line (``gateway ready: producers=... workers=...``) on stdout once they
handle those signals. With ``--metrics-port`` they serve Prometheus metrics over HTTP (the
``prometheus`` extra), and log ``metrics_serving`` with the port bound before they are ready.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click
import structlog
import trio

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

_PROG = "event-collector"
_LEVELS = ["debug", "info", "warning", "error"]


def _fail(message: str) -> NoReturn:
    raise click.UsageError(message)


class _Group(click.Group):
    """
    Runs a command; a ClickException (user mistake) is one line on stderr, status 2.
    """

    def main(  # type: ignore[override]  # always exits, standalone_mode is ours to set
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> NoReturn:
        try:
            super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.ClickException as exc:
            click.echo(f"{_PROG}: error: {exc.format_message()}", err=True)
            sys.exit(2 if exc.exit_code == 1 else exc.exit_code)
        except click.exceptions.Abort:
            sys.exit(130)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        sys.exit(0)


def configure_logging(level: str, log_format: str) -> None:
    """
    Send structlog's entries to stderr at ``level``: console or JSON lines.

    Each entry is one write (text and newline together): worker processes share their
    supervisor's stderr, and with Python unbuffered the two writes of ``print()`` let
    another process's entry in between.
    """
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(_LEVELS),
    default="info",
    show_default=True,
    help="Least severe log entries shown.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    help="console on a terminal, JSON lines otherwise (auto), or as given.",
)
def cli(log_level: str, log_format: str) -> None:
    """
    Run a Trio-native event collector and task queue.
    """
    configure_logging(log_level, log_format)


# -- shared options ----------------------------------------------------------------------

_heartbeat_options = [
    click.option(
        "--heartbeat",
        type=click.FloatRange(min=0, min_open=True),
        default=2.0,
        show_default=True,
        help="Seconds between heartbeats.",
    ),
    click.option(
        "--liveness",
        type=click.IntRange(min=1),
        default=5,
        show_default=True,
        help="Heartbeats of silence after which a peer is declared gone.",
    ),
    click.option(
        "--drain-timeout",
        type=click.FloatRange(min=0),
        default=10.0,
        show_default=True,
        help="Seconds given to the tasks held to finish when stopping.",
    ),
]


def _with(options: list[Any]) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _heartbeat(heartbeat: float, liveness: int) -> Any:
    from ._remote import Heartbeat  # noqa: PLC0415  (the zmq extra)

    return Heartbeat(heartbeat, liveness)


def _require_zmq() -> None:
    try:
        import msgspec  # noqa: F401, PLC0415
        import zmq  # noqa: F401, PLC0415
    except ImportError:
        _fail("the ZeroMQ mode needs the zmq extra: pip install 'event-collector[zmq]'")


def _require_redis() -> None:
    try:
        import coredis  # noqa: F401, PLC0415
        import msgspec  # noqa: F401, PLC0415
    except ImportError:
        _fail("the Redis mode needs the redis extra: pip install 'event-collector[redis]'")


def _load(path: str) -> list[Any]:
    from ._worker import load_collectors  # noqa: PLC0415

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as python -m does: import from where you are
    try:
        return load_collectors(path)
    except (ValueError, TypeError) as exc:
        _fail(str(exc))


def _catch_signals() -> ContextManager[AsyncIterator[int]]:
    """
    Catch SIGINT and SIGTERM for the block, for :func:`_until_signal`.

    A command catches them before it starts anything: one that comes while it starts (its
    worker processes, its connections) is handled once it has started, never kills it
    half-way (leaving worker processes behind, in sessions of their own).
    """
    return trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)


async def _until_signal(
    signals: AsyncIterator[int], ready: Callable[[], None] | None = None
) -> None:
    """
    Call ``ready`` (which says the command is up), then wait for a signal of ``signals``.
    """
    if ready is not None:
        ready()
    async for signum in signals:
        structlog.get_logger("event_collector").info(
            "signal_received", signal=signal.Signals(signum).name
        )
        return


#: The transports' libraries, whose errors are the user's endpoint or URL, by their name.
_LIBRARIES: Final = {"zmq": "ZeroMQ", "coredis": "Redis"}


def _run(function: Any, *args: Any) -> Any:
    """
    ``trio.run`` a command, return its value; an endpoint problem is a user mistake.

    That is one line on stderr, status 2.

    Then terminate ZeroMQ's shared context, which waits (up to each socket's linger) until
    the messages the closed sockets still hold are sent: pyzmq leaves the context alone at
    interpreter exit, so a process that just ends drops them.
    """
    try:
        return trio.run(function, *args)
    except Exception as exc:
        error = _sole(exc)
        library = type(error).__module__.split(".")[0]
        if library in _LIBRARIES or isinstance(error, OSError):
            _fail(f"{_LIBRARIES.get(library, 'OS')}: {error}")
        raise
    finally:
        zmq = sys.modules.get("zmq")  # only if the command used ZeroMQ (not with Redis)
        if zmq is not None:
            zmq.Context.instance().term()


def _sole(exc: BaseException) -> BaseException:
    """
    Return the one exception in ``exc``, a group of one (nested or not), or ``exc``.

    coredis runs its connections in a task group, which wraps what leaves ``async with``
    the client (a wrong password, say) in an exception group.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _check_redis(url: str, queue: str | None) -> None:
    """
    Fail (one line, no traceback) for a Redis URL coredis cannot read, or a bad --queue.

    The URL is not repeated: it may hold a password.
    """
    import coredis  # noqa: PLC0415  (the redis extra)

    from ._redis_streams import Keys  # noqa: PLC0415

    try:
        coredis.Redis.from_url(url)
    except ValueError as exc:
        _fail(f"Redis: bad URL: {exc}")
    if queue is not None:
        try:
            Keys(queue)
        except ValueError as exc:
            _fail(f"--queue: {exc}")


def _curve_server(secret: Path | None, clients: Path | None) -> Any:
    if secret is None and clients is None:
        return None
    if secret is None or clients is None:
        _fail("CURVE needs both --curve-secret and --curve-clients")
    from ._remote import CurveServer  # noqa: PLC0415

    return CurveServer(secret, clients)


def _curve_client(secret: Path | None, server: Path | None) -> Any:
    if secret is None and server is None:
        return None
    if secret is None or server is None:
        _fail("CURVE needs both --curve-secret and --curve-server")
    from ._remote import CurveClient  # noqa: PLC0415

    return CurveClient(secret, server)


def _print_endpoints(gateway: Any) -> None:
    print(
        f"gateway ready: producers={gateway.producers_endpoint} workers={gateway.workers_endpoint}",
        flush=True,
    )


_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)


_metrics_options = [
    click.option(
        "--metrics-port",
        type=click.IntRange(min=0, max=65535),
        help="Serve Prometheus metrics over HTTP on this port (0: a free one, logged as "
        "metrics_serving) [default: none: no metrics].",
    ),
    click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address the metrics server binds (0.0.0.0 for every IPv4 interface).",
    ),
]


def _require_prometheus(port: int | None, servers: int = 1) -> None:
    """
    Fail (one line) without the extra, or if ``servers`` ports from ``port`` on pass 65535.
    """
    if port is None:
        return
    try:
        import prometheus_client  # noqa: F401, PLC0415
    except ImportError:
        _fail(
            "--metrics-port needs the prometheus extra: pip install 'event-collector[prometheus]'"
        )
    if port and port + servers - 1 > _LAST_PORT:
        _fail(
            f"--metrics-port {port} gives {servers} servers ports up to {port + servers - 1},"
            f" beyond {_LAST_PORT}"
        )


_LAST_PORT: Final = 65535


def _nth_port(port: int | None, index: int) -> int | None:
    """
    Return the metrics port of the ``index``-th of several servers from ``port`` on.

    Port 0 (a free one each) and None (no metrics) stay as they are.
    """
    return port + index if port else port


@asynccontextmanager
async def _serving_metrics(source: Any, host: str, port: int | None) -> AsyncIterator[None]:
    """
    Serve ``source``'s metrics (with the process's own) on ``host:port`` while in the block.
    """
    if port is None:
        yield
        return
    from prometheus_client import REGISTRY  # noqa: PLC0415  (the prometheus extra)

    from ._prometheus import register, serve_metrics  # noqa: PLC0415

    register(source, registry=REGISTRY)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_metrics, port, host, REGISTRY)
        yield
        nursery.cancel_scope.cancel()


# -- gateway -------------------------------------------------------------------------------


@cli.command()
@click.option("--producers", required=True, help="Endpoint producers connect to (bound).")
@click.option("--workers", required=True, help="Endpoint workers connect to (bound).")
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Tasks held at most, queued and in flight.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Workers that may die with a task before it fails.",
)
@_with(_heartbeat_options)
@_with(_metrics_options)
@click.option(
    "--curve-secret",
    type=_existing_file,
    help="The gateway's .key_secret file, for CURVE (with --curve-clients) "
    "[default: none: no CURVE, unencrypted, every client let in].",
)
@click.option(
    "--curve-clients",
    type=_existing_dir,
    help="Directory of the .key files of the clients let in (with --curve-secret) "
    "[default: none: no CURVE].",
)
def gateway(
    producers: str,
    workers: str,
    capacity: int,
    max_attempts: int,
    heartbeat: float,
    liveness: int,
    drain_timeout: float,
    curve_secret: Path | None,
    curve_clients: Path | None,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """
    Run a gateway between producers and workers.

    Binding tcp://HOST:0 picks a free port; the real endpoints are printed on stdout.
    """
    _require_zmq()
    _require_prometheus(metrics_port)
    curve = _curve_server(curve_secret, curve_clients)

    async def run() -> None:
        from ._gateway import open_gateway  # noqa: PLC0415

        with _catch_signals() as signals:
            async with (
                open_gateway(
                    producers,
                    workers,
                    capacity=capacity,
                    max_attempts=max_attempts,
                    heartbeat=_heartbeat(heartbeat, liveness),
                    drain_timeout=drain_timeout,
                    curve=curve,
                ) as running,
                _serving_metrics(running, metrics_host, metrics_port),
            ):
                await _until_signal(signals, lambda: _print_endpoints(running))

    _run(run)


# -- worker --------------------------------------------------------------------------------

_worker_options = [
    click.option(
        "--min-consumers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Smallest consumer pool of each worker.",
    ),
    click.option(
        "--max-consumers",
        type=click.IntRange(min=1),
        default=100,
        show_default=True,
        help="Largest consumer pool of each worker.",
    ),
    click.option(
        "--credit",
        type=click.IntRange(min=1),
        help="Tasks each worker holds at most [default: 2 x --max-consumers].",
    ),
    click.option(
        "--processes",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Worker processes, each restarted if it dies.",
    ),
]


def _worker_command(
    collectors: str, connect: str, options: dict[str, Any], *, log_level: str
) -> list[str]:
    """
    Return the command of one worker process (what --processes N runs N of).
    """
    command = [sys.executable, "-m", "event_collector", "--log-level", log_level]
    command += ["--log-format", "json", "worker", collectors, "--connect", connect]
    for name, value in options.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return command


def _worker_commands(
    collectors: str, connect: str, options: dict[str, Any], *, log_level: str, first_port: int
) -> Callable[[int], list[str]]:
    """
    Return the function giving the command of the ``index``-th worker process.

    Its metrics port is ``options["metrics_port"] + first_port + index`` (0 stays 0).
    """
    port = options.get("metrics_port")

    def command(index: int) -> list[str]:
        own = {**options, "metrics_port": _nth_port(port, first_port + index)}
        return _worker_command(collectors, connect, own, log_level=log_level)

    return command


async def _run_workers(
    collectors: str, connect: str, processes: int, options: dict[str, Any], stop_timeout: float
) -> None:
    from ._producer import is_redis_url  # noqa: PLC0415
    from ._supervise import run_worker_processes  # noqa: PLC0415

    level = _current_level()
    command = _worker_commands(collectors, connect, options, log_level=level, first_port=0)
    log = structlog.get_logger("event_collector").bind(component="supervisor")
    with _catch_signals() as signals:
        if is_redis_url(connect):
            await _redis_lets_in(connect, options["queue"])
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_worker_processes(
                    command, processes, log=log, stop_timeout=stop_timeout, task_status=task_status
                )
            )
            await _until_signal(signals)
            nursery.cancel_scope.cancel()


async def _redis_lets_in(url: str, queue: str | None) -> None:
    """
    Raise what every worker process would fail on at once (a wrong password).

    Return if Redis answers, is unreachable (the workers wait for it), or is silent for
    5 s: a supervisor does not start workers that it would restart for ever.
    """
    import coredis  # noqa: PLC0415  (the redis extra)

    from ._redis_producer import RETRYABLE  # noqa: PLC0415
    from ._redis_streams import DEFAULT_QUEUE, Keys  # noqa: PLC0415

    client: coredis.Redis[bytes] = coredis.Redis.from_url(url, decode_responses=False)
    with trio.move_on_after(5):
        try:
            async with client:
                await client.get(Keys(queue or DEFAULT_QUEUE).size)  # a right workers have
        except Exception as exc:
            if not isinstance(_sole(exc), RETRYABLE):
                raise


def _current_level() -> str:
    ctx = click.get_current_context()
    level: str = ctx.find_root().params.get("log_level", "info")
    return level


@cli.command()
@click.argument("collectors", metavar="MODULE:ATTR")
@click.option("--connect", required=True, help="The gateway's worker endpoint.")
@_with(_worker_options)
@_with(_heartbeat_options)
@_with(_metrics_options)
@click.option("--name", help="The worker's name in the gateway's logs [default: HOST-PID-RANDOM].")
@click.option(
    "--curve-secret",
    type=_existing_file,
    help="This worker's .key_secret file, for CURVE (with --curve-server) "
    "[default: none: no CURVE, unencrypted].",
)
@click.option(
    "--curve-server",
    type=_existing_file,
    help="The gateway's public .key file (with --curve-secret) [default: none: no CURVE].",
)
@click.option(
    "--queue",
    help="Redis only: the queue's name, which namespaces its keys [default: event-collector].",
)
@click.option(
    "--visibility-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Redis only: seconds before a dead worker's task is taken by another [default: 30].",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    help="Redis only: workers that may die with a task before it is dead-lettered [default: 3].",
)
def worker(
    collectors: str,
    connect: str,
    min_consumers: int,
    max_consumers: int,
    credit: int | None,
    processes: int,
    heartbeat: float,
    liveness: int,
    drain_timeout: float,
    name: str | None,
    curve_secret: Path | None,
    curve_server: Path | None,
    queue: str | None,
    visibility_timeout: float | None,
    max_attempts: int | None,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """
    Run the collectors at MODULE:ATTR for the broker at --connect.

    MODULE:ATTR is a list of Collector, or a function returning one. --connect is a
    gateway's worker endpoint (tcp://, ipc://) or a Redis URL (redis://, rediss://, unix://).
    Worker processes serve metrics on consecutive ports, from --metrics-port on.
    """
    _require_prometheus(metrics_port, processes)
    from ._producer import is_redis_url  # noqa: PLC0415

    redis = is_redis_url(connect)
    if redis:
        _require_redis()
        _check_redis(connect, queue)
    else:
        _require_zmq()
        if queue or visibility_timeout or max_attempts:
            _fail("--queue, --visibility-timeout and --max-attempts are for a Redis --connect")
    loaded = _load(collectors)
    if max_consumers < min_consumers:
        _fail("--max-consumers must be >= --min-consumers")
    curve = _curve_client(curve_secret, curve_server)
    if redis and curve is not None:
        _fail("CURVE is for a gateway; with Redis use a rediss:// URL and Redis ACLs")
    if processes > 1:
        options = {
            "min_consumers": min_consumers,
            "max_consumers": max_consumers,
            "credit": credit,
            "heartbeat": heartbeat,
            "liveness": liveness,
            "drain_timeout": drain_timeout,
            "curve_secret": curve_secret,
            "curve_server": curve_server,
            "queue": queue,
            "visibility_timeout": visibility_timeout,
            "max_attempts": max_attempts,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host if metrics_port is not None else None,
        }
        _run(_run_workers, collectors, connect, processes, options, drain_timeout + 5)
        return
    extra: dict[str, Any] = (
        {"queue": queue, "visibility_timeout": visibility_timeout, "max_attempts": max_attempts}
        if redis
        else {"heartbeat": _heartbeat(heartbeat, liveness), "curve": curve}
    )
    if metrics_port is not None:
        from ._options import TIME_BUCKETS  # noqa: PLC0415

        extra["time_buckets"] = TIME_BUCKETS  # the queue's histograms, for the metrics only

    async def run() -> None:
        from ._worker import open_worker  # noqa: PLC0415

        with _catch_signals() as signals:
            async with (
                open_worker(
                    loaded,
                    connect,
                    name=name,
                    credit=credit,
                    drain_timeout=drain_timeout,
                    min_consumers=min_consumers,
                    max_consumers=max_consumers,
                    **extra,
                ) as running,
                _serving_metrics(running, metrics_host, metrics_port),
            ):
                await _until_signal(signals)

    _run(run)


# -- serve ---------------------------------------------------------------------------------


@cli.command()
@click.argument("collectors", metavar="MODULE:ATTR")
@click.option("--producers", required=True, help="Endpoint producers connect to (bound).")
@click.option(
    "--workers",
    help="Endpoint the local workers connect through [default: ipc in a temporary dir].",
)
@_with(_worker_options)
@_with(_heartbeat_options)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Tasks the gateway holds at most.",
)
@_with(_metrics_options)
def serve(
    collectors: str,
    producers: str,
    workers: str | None,
    min_consumers: int,
    max_consumers: int,
    credit: int | None,
    processes: int,
    heartbeat: float,
    liveness: int,
    drain_timeout: float,
    capacity: int,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """
    Run a gateway and --processes local worker processes for MODULE:ATTR.

    One command for one machine; the workers connect through --workers. Metrics: the
    gateway on port P of --metrics-port, the N workers on ports P+1 to P+N.
    """
    _require_zmq()
    _require_prometheus(metrics_port, 1 + processes)  # the gateway, then each worker
    _load(collectors)
    with tempfile.TemporaryDirectory(prefix="ec-") as tmp:
        endpoint = workers or f"ipc://{tmp}/workers"
        options = {
            "min_consumers": min_consumers,
            "max_consumers": max_consumers,
            "credit": credit,
            "heartbeat": heartbeat,
            "liveness": liveness,
            "drain_timeout": drain_timeout,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host if metrics_port is not None else None,
        }

        async def run() -> None:
            from ._gateway import open_gateway  # noqa: PLC0415
            from ._supervise import run_worker_processes  # noqa: PLC0415

            log = structlog.get_logger("event_collector").bind(component="supervisor")
            with _catch_signals() as signals:
                async with open_gateway(
                    producers,
                    endpoint,
                    capacity=capacity,
                    heartbeat=_heartbeat(heartbeat, liveness),
                    drain_timeout=drain_timeout,
                ) as running:
                    command = _worker_commands(
                        collectors,
                        running.workers_endpoint,
                        options,
                        log_level=level,
                        first_port=1,
                    )
                    async with (
                        _serving_metrics(running, metrics_host, metrics_port),
                        trio.open_nursery() as nursery,
                    ):
                        await nursery.start(
                            lambda task_status: run_worker_processes(
                                command,
                                processes,
                                log=log,
                                stop_timeout=drain_timeout + 5,
                                task_status=task_status,
                            )
                        )
                        await _until_signal(signals, lambda: _print_endpoints(running))
                        await running.drain()  # the workers finish what the gateway holds
                        nursery.cancel_scope.cancel()  # then they stop, one SIGTERM each

        level = _current_level()
        _run(run)


# -- keygen and demo -------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="key", show_default=True, help="File name of the key pair.")
def keygen(directory: Path, name: str) -> None:
    """
    Write a CURVE key pair into DIRECTORY: NAME.key (public) and NAME.key_secret.
    """
    _require_zmq()
    import zmq.auth  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    print(f"public: {public}\nsecret: {secret}")


def _require_plot() -> None:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        _fail("--plot needs the plot extra: pip install 'event-collector[plot]'")


@cli.command()
@click.option(
    "--events",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Events sent over the run.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=7.0,
    show_default=True,
    help="Seconds over which they arrive: the rate rises from 0, peaks halfway "
    "(at twice the mean rate) and falls back to 0.",
)
@click.option(
    "--service-time",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    help="Mean seconds an event takes to process (log-normal, sigma 0.5).",
)
@click.option(
    "--min-consumers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Smallest consumer pool (of each worker with --distributed).",
)
@click.option(
    "--max-consumers",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Largest consumer pool (of each worker with --distributed).",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Run the load through a gateway and --processes worker processes on ipc:// "
    "endpoints, all started and stopped by the demo (needs the zmq extra).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes with --distributed.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE.png",
    help="Also write a plot of arrival rate, pool size and load over time (needs the plot extra).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the config, summary and final metrics as JSON on stdout "
    "(the progress goes to stderr).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the arrival times and service times.",
)
def demo(
    events: int,
    duration: float,
    service_time: float,
    min_consumers: int,
    max_consumers: int,
    distributed: bool,
    processes: int,
    plot: Path | None,
    as_json: bool,
    seed: int,
) -> None:
    """
    Run a collector queue under a load that rises and falls, and watch its pool scale.

    A live view on a terminal (plain lines otherwise), then a summary table.
    """
    from ._demo import main as demo_main  # noqa: PLC0415
    from ._demo_load import DemoConfig  # noqa: PLC0415

    if max_consumers < min_consumers:
        _fail("--max-consumers must be >= --min-consumers")
    if distributed:
        _require_zmq()
    if plot is not None:
        _require_plot()
    config = DemoConfig(
        events=events,
        duration=duration,
        service_time=service_time,
        min_consumers=min_consumers,
        max_consumers=max_consumers,
        seed=seed,
    )
    try:
        demo_main(
            config,
            processes=processes if distributed else None,
            plot=plot,
            as_json=as_json,
            runner=_run,
        )
    except BaseException as exc:
        status = _stop_status(exc)
        if status is None:
            raise
        click.echo(f"{_PROG}: interrupted", err=True)
        sys.exit(status)


def _stop_status(exc: BaseException) -> int | None:
    """
    Return the exit status of a demo stopped by a signal (128 + its number), else None.

    A Ctrl-C is a KeyboardInterrupt, a SIGTERM or SIGHUP the demo's SignalStop; each may come
    in an exception group of nothing else.
    """
    from ._demo import SignalStop  # noqa: PLC0415

    leaves: list[BaseException] = [exc]
    if isinstance(exc, BaseExceptionGroup):
        stops, rest = exc.split((KeyboardInterrupt, SignalStop))
        if stops is None or rest is not None:
            return None
        leaves = list(_leaves(stops))
    for leaf in leaves:
        if isinstance(leaf, SignalStop):
            return 128 + leaf.signum
    if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        return 128 + signal.SIGINT
    return None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    Run the ``event-collector`` command.
    """
    cli.main(args=list(argv) if argv is not None else None, prog_name=_PROG)
