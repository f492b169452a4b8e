"""`contimg retry`: put failed or dead jobs back in the queue."""

from __future__ import annotations

import click

from contimg.cli.common import App, all_option, emit_json, fail_usage, items_from, json_option, pass_app
from contimg.state import jobs
from contimg.steps.registry import PIPELINE

SQLITE_MAX_INT = 2**63 - 1


def _job_ids(db, raw: list[str], step: str | None, dead_only: bool) -> list[int]:
    """Job IDs as status prints them, or observation/mosaic/product IDs (subjects)."""
    ids, subjects = [], []
    for item in raw:
        if item.lstrip("+-").isdigit() and item.isascii():
            value = int(item)
            if not 1 <= value <= SQLITE_MAX_INT:
                fail_usage(f"job ID {item} is out of range (1..{SQLITE_MAX_INT}); "
                           "see 'contimg status --failed'")
            ids.append(value)
        else:
            subjects.append(item)
    if subjects:
        states = ("dead",) if dead_only else ("failed", "dead")
        by_subject = {}
        for j in jobs.list_jobs(db, step=step, states=states):
            by_subject.setdefault(j.subject, []).append(j.id)
        known = {j.subject for j in jobs.list_jobs(db, step=step)}
        unknown = [x for x in subjects if x not in known]
        if unknown:
            fail_usage(f"no {step + ' ' if step else ''}job for {', '.join(unknown[:3])}"
                       f"{' ...' if len(unknown) > 3 else ''}: give job IDs or the observation, "
                       "mosaic or product IDs 'contimg status' prints")
        for s in subjects:
            if s not in by_subject:
                click.echo(f"{s}: no failed{'' if dead_only else ' or dead'} "
                           f"{step + ' ' if step else ''}job", err=True)
            ids.extend(by_subject.get(s, []))
        if not ids:
            return []
    return ids


@click.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--step", type=click.Choice([s.name for s in PIPELINE]), default=None,
              help="Only jobs of this step.")
@click.option("--dead", "dead_only", is_flag=True, help="Only dead jobs (max attempts reached).")
@all_option
@json_option
@pass_app
def command(app: App, job_ids: tuple[str, ...], step: str | None, dead_only: bool) -> None:
    """Reset failed/dead jobs to pending.

    IDs as arguments or one per line on stdin: job IDs, or the observation, mosaic or
    product IDs that `contimg status` prints (with --step, only that step's job).
    Without IDs: --step STEP, --dead or --all select every failed (or dead) job.
    """
    raw = items_from(job_ids)
    if not raw and step is None and not dead_only and not app.all_pending:
        fail_usage("give job IDs or observation/mosaic IDs (arguments or stdin), "
                   "--step STEP, --dead or --all")
    db = app.db()
    ids = _job_ids(db, raw, step, dead_only) if raw else []
    reset = jobs.retry(db, ids=ids, step=step, dead_only=dead_only) if ids or not raw else []
    if app.json_output:
        emit_json([{"id": j.id, "step": j.step, "subject": j.subject} for j in reset])
    else:
        for j in reset:
            click.echo(f"{j.id}\t{j.step}\t{j.subject}\treset to pending")
        if not reset:
            click.echo("nothing to retry", err=True)
