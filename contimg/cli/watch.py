"""`contimg watch`: run the whole pipeline continuously (or once, for cron and the demo)."""

from __future__ import annotations

import json
import math
import signal

import click

from contimg.cli.common import App, json_option, pass_app
from contimg.steps.registry import PIPELINE

STEP_NAMES = [s.name for s in PIPELINE]


def _positive(ctx, param, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"{value}: give a positive number of seconds")
    return value


def _not_negative(ctx, param, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"{value}: give seconds >= 0")
    return value


def parse_timeouts(items: tuple[str, ...]) -> dict[str, float]:
    limits = {}
    for item in items:
        step, _, secs = item.partition("=")
        try:
            value = float(secs)
        except ValueError:
            value = float("nan")
        if step not in STEP_NAMES or not math.isfinite(value) or value <= 0:
            raise click.BadParameter(
                f"{item!r}: use STEP=SECONDS with STEP one of {', '.join(STEP_NAMES)} and "
                "SECONDS > 0, e.g. image=1800", param_hint="--timeout")
        limits[step] = value
    return limits


@click.command("watch")
@click.option("--once", is_flag=True, help="Do everything that can be done now, then exit.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Jobs run at the same time (each in its own process).")
@click.option("--interval", type=float, default=30.0, show_default=True, callback=_positive,
              help="Seconds between scans of the incoming directory.")
@click.option("--grace", type=float, default=600.0, show_default=True, callback=_not_negative,
              help="After SIGINT/SIGTERM, seconds running jobs get to finish.")
@click.option("--timeout", "timeouts", multiple=True, metavar="STEP=SECONDS",
              help="Kill and fail a job of STEP running longer than this (repeatable).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
              help="Where work runs: local child processes, or a Dask cluster "
                   "[default: watch.executor, local].")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Dask scheduler, e.g. tcp://head:8786 (default: watch.scheduler; "
                   "none: a LocalCluster of --workers processes).")
@json_option
@pass_app
def command(app: App, once: bool, workers: int, interval: float, grace: float,
            timeouts: tuple[str, ...], executor: str | None, scheduler: str | None) -> None:
    """Run every step in a loop: ingest, then the oldest work, downstream steps first.

    On a terminal a live view; otherwise one line per event (--json: JSON lines),
    also in <home>/logs/watch.log.  -q shows only failures, holds and stopping.
    """
    from contimg.ops.watch import Watcher, WatchOptions

    if scheduler is not None and (executor or app.config().watch_executor) != "dask":
        raise click.UsageError("--scheduler needs --executor dask (or watch.executor = \"dask\")")
    opts = WatchOptions(once=once, workers=workers, interval_s=interval, grace_s=grace,
                        timeouts=parse_timeouts(timeouts), verbosity=app.verbosity,
                        executor=executor, scheduler=scheduler)
    app.db()  # the state must exist (or be created here, see 'contimg init')
    if app.interactive and app.verbosity >= 0:
        code = _run_live(app, opts)
    else:
        emit = _json_line if app.json_output else (lambda line: click.echo(line))
        watcher = Watcher(app.config(), opts, emit=emit)
        _install_signals(watcher)
        code = watcher.run()
    raise SystemExit(code)


def _json_line(stamped: str) -> None:
    at, _, message = stamped.partition(" ")
    step, sep, _rest = message.partition(":")
    click.echo(json.dumps({"time": at, "step": step if sep and " " not in step else None,
                           "message": message}))


def _install_signals(watcher) -> None:
    signal.signal(signal.SIGINT, watcher.request_stop)
    signal.signal(signal.SIGTERM, watcher.request_stop)


def _run_live(app: App, opts) -> int:
    from contimg.cli.watch_view import run_live

    return run_live(app, opts, _install_signals)
