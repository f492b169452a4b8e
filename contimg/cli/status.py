"""`contimg status`: counts per step and state, failures, stuck items."""

from __future__ import annotations

import time

import click
from rich.table import Table

from contimg.cli.common import App, emit_json, json_option, pass_app
from contimg.ops.status import collect_status
from contimg.state.jobs import STATES


def _parse_since(value: str | None) -> float | None:
    """'2h', '30m', '1d' or seconds ago -> a Unix time."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if value[-1] in units:
            return time.time() - float(value[:-1]) * units[value[-1]]
        return time.time() - float(value)
    except (ValueError, IndexError):
        raise click.BadParameter(f"{value!r}: use e.g. 90s, 30m, 2h or 1d") from None


@click.command("status")
@click.option("--failed", "failed_only", is_flag=True, help="Only failed and dead jobs.")
@click.option("--step", default=None, help="Only this step.")
@click.option("--since", default=None, help="Only items changed since (e.g. 2h, 30m, 1d).")
@json_option
@pass_app
def command(app: App, failed_only: bool, step: str | None, since: str | None) -> None:
    """Show counts per step and state, recent failures and stuck items."""
    report = collect_status(app.db(), step=step, failed_only=failed_only, since=_parse_since(since),
                            stale_after_s=app.config().publish_stale_after_h * 3600,
                            staging=app.config().staging)
    if app.json_output:
        emit_json(report)
        return
    if app.interactive:
        _render_rich(app, report)
    else:
        _render_plain(report)


def _render_plain(report: dict) -> None:
    for step, by_state in sorted(report["counts"].items()):
        click.echo(step + "\t" + "\t".join(f"{s}={by_state[s]}" for s in STATES))
    for j in report.get("failures", []):
        click.echo(f"{j['state']}\t{j['id']}\t{j['step']}\t{j['subject']}\t{j['last_error']}")
    for j in report.get("expired_leases", []):
        click.echo(f"lease-expired\t{j['id']}\t{j['step']}\t{j['subject']}\t{j['lease_owner']}")
    for j in report.get("waiting", []):
        click.echo(f"waiting\t{j['id']}\t{j['step']}\t{j['subject']}\t{j['last_error']}")
    for f in report.get("quarantined", []):
        click.echo(f"{f['status']}\t{f['path']}\t{f['error']}")
    for o in report.get("incomplete_observations", []):
        click.echo(f"incomplete\t{o['id']}\t{o['nsubbands']} subbands\t{o['reason']}")
    for p in report.get("held_products", []):
        click.echo(f"{p['state']}\t{p['id']}\t{p['reason']}")
    for p in report.get("stale_products", []):
        click.echo(f"stale\t{p['id']}\t{p['state']} since {p['created_at']:.0f}")
    for p in report.get("products", []):
        if p["state"] == "published":
            click.echo(f"published\t{p['id']}\t{p['published_dir']}")
    if "disk" in report:
        click.echo("disk\t" + _disk_line(report["disk"]))


def _disk_line(d: dict) -> str:
    free = d.get("staging_free_bytes")
    where = f"staging {free / 1e9:.1f} GB free, " if free is not None else ""
    return (f"{where}{d['kept']} Measurement Set(s) kept ({d['kept_bytes'] / 1e9:.2f} GB), "
            f"{d['pruned']} pruned")


def _render_rich(app: App, report: dict) -> None:
    table = Table("step", *STATES, title="jobs")
    for step, by_state in sorted(report["counts"].items()):
        table.add_row(step, *(str(by_state[s]) for s in STATES))
    app.console.print(table)
    if report.get("failures"):
        t = Table("id", "step", "subject", "state", "attempts", "last error", title="failures")
        for j in report["failures"]:
            t.add_row(str(j["id"]), j["step"], j["subject"], j["state"], str(j["attempts"]),
                      j["last_error"] or "")
        app.console.print(t)
    stuck = [("lease expired", j["step"], j["subject"], j["lease_owner"] or "")
             for j in report.get("expired_leases", [])]
    stuck += [("waiting", j["step"], j["subject"], j["last_error"] or "")
              for j in report.get("waiting", [])]
    stuck += [(f["status"], "ingest", f["path"], f["error"] or "") for f in report.get("quarantined", [])]
    stuck += [("incomplete", "ingest", o["id"], o["reason"] or "")
              for o in report.get("incomplete_observations", [])]
    stuck += [(p["state"], "publish", p["id"], p["reason"] or "") for p in report.get("held_products", [])]
    stuck += [("staged too long", "publish", p["id"], p["state"]) for p in report.get("stale_products", [])]
    if stuck:
        t = Table("what", "step", "item", "why", title="needs attention")
        for row in stuck:
            t.add_row(*row)
        app.console.print(t)
    if "disk" in report:
        app.console.print("disk: " + _disk_line(report["disk"]))
    if not report["counts"]:
        app.console.print("no jobs yet: run 'contimg ingest' (or 'contimg simulate' first)")
