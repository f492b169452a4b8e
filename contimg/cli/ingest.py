"""`contimg ingest`: register complete subband files, form observations."""

from __future__ import annotations

import errno
import os
from dataclasses import asdict
from pathlib import Path

import click

from contimg.cli.common import (EXIT_FAILED, App, emit_json, fail_usage, items_from, json_option,
                                pass_app, with_override)
from contimg.steps.ingest import scan, text


def _missing(paths: list[Path]) -> list[str]:
    """Named paths that are not there (or cannot be), each with the reason."""
    out = []
    for p in paths:
        try:
            os.stat(p)
        except OSError as exc:
            why = ("path longer than the system allows" if exc.errno == errno.ENAMETOOLONG
                   else exc.strerror or "cannot be read")
            out.append(f"{text(p)}: {why}")
    return out


@click.command("ingest")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read paths from stdin, one per line (empty input: nothing is done).")
@click.option("--min-subbands", type=int, default=None, expose_value=False,
              callback=with_override("ingest.min_subbands"),
              help="Subbands needed to proceed after the wait (default 12).")
@click.option("--wait", type=float, default=None, expose_value=False,
              callback=with_override("ingest.incomplete_wait_s"),
              help="Seconds to wait for missing subbands (default 900).")
@click.option("--settle", type=float, default=None, expose_value=False,
              callback=with_override("ingest.settle_s"),
              help="A file modified within this many seconds is left for the next scan.")
@json_option
@pass_app
def command(app: App, paths: tuple[Path, ...], from_stdin: bool) -> None:
    """Register subband files (the incoming directory, PATHs, or --stdin) and queue observations.

    Without PATHs and --stdin the incoming directory is scanned and stdin is not read
    (cron's stdin never matters).  A named path that does not exist is an error
    (exit 2, nothing ingested); bad files are quarantined with the reason (exit 0,
    see 'contimg status'); a named file that is not a subband file exits 1.
    """
    args = [str(p) for p in paths] + (["-"] if from_stdin else [])
    chosen = [Path(p) for p in items_from(args)] if args else None
    if chosen is not None and not chosen:
        if app.json_output:
            emit_json({"registered": [], "observations": []})
        click.echo("nothing to ingest: no paths given on stdin", err=True)
        return
    missing = _missing(chosen or [])
    if missing:
        fail_usage(f"{missing[0]}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''};"
                   " give existing files or directories (nothing was ingested)")
    report = scan(app.config(), app.db(), chosen)
    named_files = {str(Path(os.path.abspath(p))) for p in chosen or [] if not os.path.isdir(p)}
    refused = [(p, why) for p, why in report.ignored if p in named_files
               and not why.startswith("still being written")]
    if app.json_output:
        emit_json(asdict(report))
    else:
        _render(app, report, refused)
    if refused:
        raise SystemExit(EXIT_FAILED)


def _render(app: App, report, refused: list[tuple[str, str]]) -> None:
    late: dict[str, int] = {}
    for _, obs_id, _ in report.late:
        late[obs_id] = late.get(obs_id, 0) + 1
    for obs in report.observations:
        n_late = late.get(obs["id"], 0)
        click.echo(f"{obs['id']}\t{obs['nsubbands']} subbands"
                   + (f" ({n_late} late, not in its MS)" if n_late else "")
                   + f"\t{obs['state']}" + (f"\t{obs['reason']}" if obs["reason"] else ""))
    for path, _, message in report.late:
        click.echo(f"late\t{path}\t{message}", err=True)
    for path, error in report.quarantined:
        click.echo(f"quarantined\t{path}\t{error}", err=True)
    for obs_id, reason in report.incomplete:
        click.echo(f"incomplete\t{obs_id}\t{reason}", err=True)
    shown = set()
    for path, why in refused:
        click.echo(f"not ingested\t{path}\t{why}", err=True)
        shown.add(path)
    if app.config().verbosity > 0:
        for path, why in report.ignored:
            if path not in shown:
                click.echo(f"ignored\t{path}\t{why}", err=True)
    if not (report.observations or report.quarantined or report.incomplete or refused):
        click.echo(f"nothing new ({report.unchanged} files already known, "
                   f"{len(report.ignored)} ignored)", err=True)
