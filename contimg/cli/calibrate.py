"""`contimg calibrate`: solve on calibrator transits, apply to every observation."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from contimg.cli.common import App, emit_json, items_from, json_option, pass_app
from contimg.cli.stepcmd import run_and_render
from contimg.state import calibration, measurement_sets
from contimg.steps.calibrate import STEP, calibrate_one


def _subjects(app: App, items: list[str]) -> list[str]:
    """Observation IDs, or MS paths mapped to their observation."""
    by_path = {str(Path(m["path"]).resolve()): m["observation_id"]
               for m in measurement_sets.list_ms(app.db())}
    return [by_path.get(str(Path(i).resolve()), i) if i.endswith((".ms", ".ms/")) else i
            for i in items]


@click.command("calibrate")
@click.argument("items", nargs=-1)
@click.option("--list", "list_only", is_flag=True, help="Show the registry of solution tables.")
@click.option("--limit", type=int, default=None, help="Process at most N observations.")
@json_option
@pass_app
def command(app: App, items: tuple[str, ...], list_only: bool, limit: int | None) -> None:
    """Solve where a calibrator transits and apply solutions (observation IDs or MS paths)."""
    if list_only:
        _show_registry(app)
        return
    run_and_render(app, STEP, calibrate_one, _subjects(app, items_from(items)), limit, casa=True)


LIST_COLUMNS = ("set", "kind", "calibrator", "transit_mjd", "valid_mjd", "flux_scale", "refant",
                "flagged", "path")


def _list_row(r: dict) -> tuple[str, ...]:
    q, p = r["quality"], r["params"]
    flagged = q.get("flagged_fraction")
    return (r["set_name"], r["kind"], r["calibrator"], f"{r['transit_mjd']:.5f}",
            f"{r['valid_start_mjd']:.5f}-{r['valid_end_mjd']:.5f}",
            "yes" if p.get("flux_scale", True) else "no (phase only)", r["refant"],
            f"{flagged:.3f}" if isinstance(flagged, (int, float)) else "-", r["path"])


def _show_registry(app: App) -> None:
    """The solution registry: a header line, then one full row per table (never truncated)."""
    rows = calibration.list_tables(app.db())
    if app.json_output:
        emit_json(rows)
        return
    if app.interactive:
        t = Table(*LIST_COLUMNS)
        for col in t.columns:
            col.overflow = "fold"
        for r in rows:
            t.add_row(*_list_row(r))
        app.console.print(t, width=max(app.console.width, 200))
        return
    click.echo("\t".join(LIST_COLUMNS))
    for r in rows:
        click.echo("\t".join(_list_row(r)))
