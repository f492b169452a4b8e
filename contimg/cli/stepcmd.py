"""The shared shape of a queued-step subcommand: IDs in, one line (or JSON) per item out.

A hand-run step says what it is doing (CASA steps take a minute per observation),
keeps CASA's own noise in logs/casa.log, and writes every failure, with its
traceback, to logs/jobs/<step>/<id>.log as `watch` does.
"""

from __future__ import annotations

import time

import click

from contimg.cli.common import App, emit_json, exit_for
from contimg.steps.runner import DoOne, Outcome, StepContext, make_owner, run_jobs


def run_and_render(app: App, step: str, do: DoOne, subjects: list[str], limit: int | None,
                   *, casa: bool = False, progress=None, exit_now: bool = True,
                   show: bool = True) -> list[Outcome]:
    """Run the jobs here and print one line each (``show``); exits 1 if any failed
    (``exit_now``)."""
    cfg = app.config()
    db = app.db()  # open the database before leaving the working directory
    if casa:
        import os

        from contimg import casa as casa_mod

        casa_mod.start(cfg.home, native_stderr_to_log=True)
        os.chdir(casa_mod.scratch_dir(cfg.home))
    logs = cfg.logs / "jobs" / step

    def traced(text: str, subject: str) -> None:
        _append(logs / f"{subject}.log", text)

    ctx = StepContext(cfg, db, make_owner(), progress, trace=traced)
    outcomes = run_jobs(ctx, step, _announced(app, step, do, casa), subjects=subjects,
                        limit=limit)
    for o in outcomes:
        if o.failed:
            _append(logs / f"{o.subject}.log", f"{step} {o.subject} (by hand): {o.status}: "
                    f"{o.message}\n")
    if show:
        render(app, outcomes, f"nothing to {step}", exit_now=exit_now)
    return outcomes


def _announced(app: App, step: str, do: DoOne, casa: bool) -> DoOne:
    """Say on stderr which item starts (CASA steps are silent for a minute otherwise)."""
    def wrapped(ctx: StepContext, job) -> Outcome:
        if casa or app.verbosity > 0:
            app.say(f"{step}: {job.subject} ...", level=0)
        t0 = time.time()
        out = do(ctx, job)
        if casa or app.verbosity > 0:
            app.say(f"{step}: {job.subject} {out.status} in {time.time() - t0:.0f} s", level=1)
        return out
    return wrapped


def _append(path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {text}")
    except OSError:
        pass


def render(app: App, outcomes: list[Outcome], empty: str, *, exit_now: bool = True) -> None:
    if app.json_output:
        emit_json([o.__dict__ for o in outcomes])
    else:
        for o in outcomes:
            click.echo(f"{o.subject}\t{o.status}\t{o.message}")
        if not outcomes:
            click.echo(empty, err=True)
    if exit_now:
        exit_for(sum(o.failed for o in outcomes))
