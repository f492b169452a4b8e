"""The shared shape of a queued-step subcommand: IDs in, one line (or JSON) per item out."""

from __future__ import annotations

import click

from contimg.cli.common import App, emit_json, exit_for
from contimg.steps.runner import DoOne, Outcome, StepContext, make_owner, run_jobs


def run_and_render(app: App, step: str, do: DoOne, subjects: list[str], limit: int | None,
                   *, casa: bool = False, progress=None) -> list[Outcome]:
    if casa:
        import os

        from contimg import casa as casa_mod

        casa_mod.start(app.config().home)
        app.db()  # open the database before leaving the working directory
        os.chdir(casa_mod.scratch_dir(app.config().home))
    ctx = StepContext(app.config(), app.db(), make_owner(), progress)
    outcomes = run_jobs(ctx, step, do, subjects=subjects, limit=limit)
    render(app, outcomes, f"nothing to {step}")
    return outcomes


def render(app: App, outcomes: list[Outcome], empty: str) -> None:
    if app.json_output:
        emit_json([o.__dict__ for o in outcomes])
    else:
        for o in outcomes:
            click.echo(f"{o.subject}\t{o.status}\t{o.message}")
        if not outcomes:
            click.echo(empty, err=True)
    exit_for(sum(o.failed for o in outcomes))
