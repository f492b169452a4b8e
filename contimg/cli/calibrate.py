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


def _show_registry(app: App) -> None:
    rows = calibration.list_tables(app.db())
    if app.json_output:
        emit_json(rows)
        return
    if app.interactive:
        t = Table("set", "kind", "calibrator", "valid MJD", "refant", "flagged", "path")
        for r in rows:
            t.add_row(r["set_name"], r["kind"], r["calibrator"],
                      f"{r['valid_start_mjd']:.4f}-{r['valid_end_mjd']:.4f}", r["refant"],
                      str(r["quality"].get("fraction_flagged", "")), r["path"])
        app.console.print(t)
        return
    for r in rows:
        click.echo(f"{r['set_name']}\t{r['kind']}\t{r['calibrator']}\t{r['valid_start_mjd']:.5f}"
                   f"\t{r['valid_end_mjd']:.5f}\t{r['refant']}\t{r['path']}")
