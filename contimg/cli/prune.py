"""`contimg prune`: remove Measurement Sets whose mosaics are all published."""

from __future__ import annotations

import json

import click

from contimg.cli.common import App, emit_json, fail_usage, json_option, pass_app
from contimg.ops.prune import prune_ms


def _json_row(row: dict) -> dict:
    """One MS for scripts: `subbands` is the number of subbands, sizes are integers."""
    out = dict(row)
    subbands = out.get("subbands")
    if isinstance(subbands, str):
        try:
            subbands = json.loads(subbands)
        except ValueError:
            subbands = None
    out["subbands"] = len(subbands) if isinstance(subbands, list) else subbands
    out["size_bytes"] = int(out.get("size_bytes") or 0)
    return out


@click.command("prune")
@click.option("--keep-hours", type=click.FloatRange(min=0), default=None,
              help="Keep MSs whose mosaics were published less than this long ago "
                   "(default: disk.keep_ms_h).")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@json_option
@pass_app
def command(app: App, keep_hours: float | None, dry_run: bool) -> None:
    """Remove the MS of every observation whose mosaics are all published.

    Subband files, images, calibration tables and products are never removed.
    """
    cfg = app.config()
    if keep_hours is not None and keep_hours < 0:
        fail_usage(f"--keep-hours {keep_hours}: give hours >= 0")
    if keep_hours is None and not cfg.disk_prune:
        click.echo(f"retention is off (disk.prune = false, from "
                   f"{cfg.sources.get('disk.prune', 'default')}): nothing removed; "
                   "give --keep-hours to prune anyway", err=True)
        return
    keep = cfg.disk_keep_ms_h if keep_hours is None else keep_hours
    report = prune_ms(cfg, app.db(), keep_h=keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    if app.json_output:
        rows = [_json_row(r) for r in report.removed]
        emit_json({"dry_run": dry_run,
                   "removed": [] if dry_run else rows,
                   "would_remove": rows if dry_run else [],
                   "refused": [{"path": p, "reason": why} for p, why in report.refused],
                   "swept": report.swept,
                   ("would_free_bytes" if dry_run else "freed_bytes"): report.freed_bytes})
        return
    for r in report.removed:
        click.echo(f"{r['observation_id']}\t{r['path']}\t{(r['size_bytes'] or 0) / 1e9:.2f} GB"
                   f"\t{verb}")
    for path, why in report.refused:
        click.echo(f"refused {path}: {why}", err=True)
    for path in report.swept:
        click.echo(f"finished an interrupted removal: {path}", err=True)
    click.echo(f"{verb} {len(report.removed)} Measurement Set(s), "
               f"{report.freed_bytes / 1e9:.2f} GB", err=True)
