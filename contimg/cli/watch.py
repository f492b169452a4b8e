"""`contimg watch`: run the whole pipeline continuously (or once, for cron and the demo)."""

from __future__ import annotations

import signal

import click

from contimg.cli.common import App, pass_app
from contimg.ops.watch import Watcher, WatchOptions


@click.command("watch")
@click.option("--once", is_flag=True, help="Do everything that can be done now, then exit.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Jobs run at the same time (each in its own process).")
@click.option("--interval", type=float, default=30.0, show_default=True,
              help="Seconds between scans of the incoming directory.")
@click.option("--grace", type=float, default=600.0, show_default=True,
              help="After SIGINT/SIGTERM, seconds running jobs get to finish.")
@click.option("--timeout", "timeouts", multiple=True, metavar="STEP=SECONDS",
              help="Kill and fail a job of STEP running longer than this (repeatable).")
@pass_app
def command(app: App, once: bool, workers: int, interval: float, grace: float,
            timeouts: tuple[str, ...]) -> None:
    """Run every step in a loop: ingest, then the oldest work, downstream steps first."""
    limits = {}
    for item in timeouts:
        try:
            step, secs = item.split("=")
            limits[step] = float(secs)
        except ValueError:
            raise click.BadParameter(f"{item!r}: use STEP=SECONDS, e.g. image=1800") from None
    opts = WatchOptions(once=once, workers=workers, interval_s=interval, grace_s=grace,
                        timeouts=limits)
    if app.interactive:
        code = _run_live(app, opts)
    else:
        watcher = Watcher(app.config(), opts, emit=lambda line: click.echo(line, err=False))
        _install_signals(watcher)
        code = watcher.run()
    raise SystemExit(code)


def _install_signals(watcher: Watcher) -> None:
    signal.signal(signal.SIGINT, watcher.request_stop)
    signal.signal(signal.SIGTERM, watcher.request_stop)


def _run_live(app: App, opts: WatchOptions) -> int:
    """A live view on a terminal: jobs per step and state, running jobs, recent events."""
    import threading

    from rich.console import Group
    from rich.live import Live
    from rich.table import Table

    from contimg.state import Database, jobs
    from contimg.state.jobs import STATES

    watcher = Watcher(app.config(), opts, emit=lambda line: None)
    _install_signals(watcher)
    view_db = Database(app.config().db_path)

    def render() -> Group:
        counts = Table("step", *STATES, title="contimg watch" + (" (stopping)" if watcher.stopping else ""))
        for step, by in sorted(jobs.counts(view_db).items()):
            counts.add_row(step, *(str(by[s]) for s in STATES))
        running = Table("step", "subject", "pid", "seconds", title="running")
        for r in list(watcher.running.values()):
            import time as _t
            running.add_row(r.spec.name, r.job.subject, str(r.proc.pid), f"{_t.time() - r.started:.0f}")
        recent = Table("recent events", show_header=True)
        for line in list(watcher.recent)[-8:]:
            recent.add_row(line)
        return Group(counts, running, recent)

    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(watcher.run()), daemon=True)
    with Live(render(), console=app.console, refresh_per_second=2) as live:
        worker.start()
        while worker.is_alive():
            worker.join(timeout=0.5)
            live.update(render())
    return result[0] if result else 1
