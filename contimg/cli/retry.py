"""`contimg retry`: put failed or dead jobs back in the queue."""

from __future__ import annotations

import click

from contimg.cli.common import App, emit_json, json_option, fail_usage, items_from, pass_app
from contimg.state import jobs


@click.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--step", default=None, help="Only jobs of this step.")
@click.option("--dead", "dead_only", is_flag=True, help="Only dead jobs (max attempts reached).")
@json_option
@pass_app
def command(app: App, job_ids: tuple[str, ...], step: str | None, dead_only: bool) -> None:
    """Reset failed/dead jobs to pending (IDs as arguments, or one per line on stdin)."""
    raw = items_from(job_ids) if job_ids or step is None else list(job_ids)
    try:
        ids = [int(x) for x in raw]
    except ValueError:
        fail_usage(f"job IDs must be integers, got {raw!r}; see 'contimg status --json'")
    if not ids and step is None and not dead_only:
        fail_usage("give job IDs (arguments or stdin), --step STEP or --dead")
    reset = jobs.retry(app.db(), ids=ids, step=step, dead_only=dead_only)
    if app.json_output:
        emit_json([{"id": j.id, "step": j.step, "subject": j.subject} for j in reset])
    else:
        for j in reset:
            click.echo(f"{j.id}\t{j.step}\t{j.subject}\treset to pending")
        if not reset:
            click.echo("nothing to retry", err=True)
