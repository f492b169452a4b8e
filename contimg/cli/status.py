"""`contimg status`: counts per step and state, failures, stuck items."""

from __future__ import annotations

import math
import time

import click

from contimg.cli.common import App, emit_json, json_option, pass_app
from contimg.steps.registry import PIPELINE

STATES = ("pending", "running", "done", "failed", "dead")
ORDER = [s.name for s in PIPELINE]


def _parse_since(value: str | None) -> float | None:
    """'2h', '30m', '1d' or seconds ago -> a Unix time."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        n = float(value[:-1]) if value[-1] in units else float(value)
        n *= units.get(value[-1], 1)
    except (ValueError, IndexError):
        n = float("nan")
    if not math.isfinite(n) or n <= 0:
        raise click.BadParameter(f"{value!r}: give a positive age, e.g. 90s, 30m, 2h or 1d",
                                 param_hint="--since")
    return time.time() - n


def ago(t: float | None) -> str:
    """A wall-clock time as an operator reads it: local ISO time and how long ago."""
    if not t:
        return "-"
    d = max(0.0, time.time() - t)
    rel = f"{d / 86400:.1f} d" if d >= 86400 else f"{d / 3600:.1f} h" if d >= 3600 else \
        f"{d / 60:.0f} min" if d >= 60 else f"{d:.0f} s"
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(t))} ({rel} ago)"


def steps_in_order(counts: dict) -> list[str]:
    return sorted(counts, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))


def state_cells(by_state: dict) -> list[tuple[str, int]]:
    cells = [(s, by_state.get(s, 0)) for s in STATES]
    if by_state.get("held"):
        cells.append(("held", by_state["held"]))
    return cells


@click.command("status")
@click.option("--failed", "failed_only", is_flag=True, help="Only failed and dead jobs.")
@click.option("--step", type=click.Choice(ORDER), default=None, help="Only this step.")
@click.option("--since", default=None, help="Only items changed since (e.g. 2h, 30m, 1d).")
@json_option
@pass_app
def command(app: App, failed_only: bool, step: str | None, since: str | None) -> None:
    """Show counts per step and state, recent failures and stuck items.

    -q prints only what needs attention; -v adds collecting observations, every
    product and the CASA measures data.
    """
    from contimg.ops.status import collect_status

    since_t = _parse_since(since)
    cfg = app.config()
    report = collect_status(app.db(), step=step, failed_only=failed_only, since=since_t,
                            stale_after_s=cfg.publish_stale_after_h * 3600,
                            staging=cfg.staging)
    if not failed_only:
        from contimg.ops.watch import read_run_info

        report["group_size"] = cfg.mosaic_n
        report["measures"] = _measures()
        report["watch"] = read_run_info(cfg)
    if app.json_output:
        emit_json(report)
        return
    if app.interactive:
        _render_rich(app, report)
    else:
        _render_plain(report, app.verbosity)


def _measures() -> dict | None:
    from contimg.casa import measures_info

    return measures_info()


def _render_plain(report: dict, verbosity: int = 0) -> None:
    if verbosity >= 0:
        for step in steps_in_order(report["counts"]):
            click.echo(step + "\t" + "\t".join(f"{s}={n}" for s, n in
                                               state_cells(report["counts"][step])))
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
        click.echo(f"stale\t{p['id']}\t{p['state']} since {ago(p['created_at'])}")
    ungrouped = report.get("ungrouped_images", [])
    if ungrouped:
        click.echo(f"ungrouped\t{len(ungrouped)} imaged observation(s) wait for a mosaic group "
                   f"of {report.get('group_size', '?')}\t{ungrouped[0]}..{ungrouped[-1]}")
    if verbosity < 0:
        return
    for i in report.get("shallow_clean", []):
        click.echo(f"shallow-clean\t{i['observation_id']}\t{cap_reason(i)}")
    if report.get("shallow_clean_count", 0) > len(report.get("shallow_clean", [])):
        click.echo(f"shallow-clean\t{report['shallow_clean_count']} image(s) in all; the latest "
                   f"{len(report['shallow_clean'])} are listed")
    if verbosity > 0:
        for o in report.get("collecting_observations", []):
            click.echo(f"collecting\t{o['id']}\t{o['nsubbands']} subbands")
    for p in report.get("products", []):
        if p["state"] == "published" or verbosity > 0:
            click.echo(f"{p['state']}\t{p['id']}\t{p['published_dir'] or ''}")
    if "disk" in report:
        click.echo("disk\t" + disk_line(report["disk"]))
    if report.get("watch"):
        click.echo("watch\t" + watch_line(report["watch"]))
    m = report.get("measures")
    if m and (verbosity > 0 or m.get("stale")):
        click.echo("measures\t" + measures_line(m))


def cap_reason(i: dict) -> str:
    """Why an image is shallower than configured, and the knob."""
    if i["stopped_by"] == "diverging":
        return (f"CLEAN diverged after {i['iterations']} iterations; the best of {i['major_cycles']}"
                " major cycles was kept (try image.backend = tclean for this one)")
    knob = "image.max_cycles" if i["stopped_by"] == "nmajor" else "image.niter"
    return (f"CLEAN stopped on {i['stopped_by']} after {i['iterations']} iterations, "
            f"{i['major_cycles']} major cycles, before its threshold (raise {knob})")


def watch_line(w: dict) -> str:
    """The running watcher and where its work runs (executor, scheduler, dashboard)."""
    parts = [f"pid {w['pid']} running since {ago(w.get('started'))}", f"executor {w['executor']}"]
    parts += [f"{k} {w[k]}" for k in ("scheduler", "dashboard", "workers") if w.get(k)]
    return ", ".join(parts)


def disk_line(d: dict) -> str:
    free = d.get("staging_free_bytes")
    where = f"staging {free / 1e9:.1f} GB free, " if free is not None else ""
    missing = (f", {d['missing']} missing on disk (see 'contimg redo convert')"
               if d.get("missing") else "")
    return (f"{where}{d['kept']} Measurement Set(s) kept ({d['kept_bytes'] / 1e9:.2f} GB), "
            f"{d['pruned']} pruned{missing}")


def measures_line(m: dict) -> str:
    return (f"CASA measures data from {m['date'] or 'unknown date'} ({m['age_days']} days old)"
            f" in {m['path']}; refresh: {m['refresh']}")


def _render_rich(app: App, report: dict) -> None:
    from rich.table import Table

    table = Table("step", *STATES, "held", title="jobs (pipeline order)")
    for step in steps_in_order(report["counts"]):
        cells = dict(state_cells(report["counts"][step]))
        table.add_row(step, *(str(cells.get(s, 0)) for s in (*STATES, "held")))
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
    stuck += [("staged too long", "publish", p["id"], f"{p['state']} since {ago(p['created_at'])}")
              for p in report.get("stale_products", [])]
    ungrouped = report.get("ungrouped_images", [])
    if ungrouped:
        stuck.append(("ungrouped", "mosaic", f"{len(ungrouped)} imaged observation(s)",
                      f"wait for a group of {report.get('group_size', '?')} (mosaic.n)"))
    stuck += [("shallow CLEAN", "image", i["observation_id"], cap_reason(i))
              for i in report.get("shallow_clean", [])]
    if stuck:
        t = Table("what", "step", "item", "why", title="needs attention")
        for row in stuck:
            t.add_row(*row)
        app.console.print(t)
    if "disk" in report:
        app.console.print("disk: " + disk_line(report["disk"]))
    if report.get("watch"):
        app.console.print("watch: " + watch_line(report["watch"]))
    m = report.get("measures")
    if m and (app.verbosity > 0 or m.get("stale")):
        app.console.print("measures: " + measures_line(m))
    if not report["counts"]:
        app.console.print("no jobs yet: run 'contimg ingest' (or 'contimg simulate' first)")
