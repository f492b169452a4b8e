"""`contimg reprocess image`: new image versions with changed options, beside the old ones."""

from __future__ import annotations

import click

from contimg.cli.common import App, emit_json, exit_for, fail_usage, items_from, json_option, pass_app


def _setting(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: use KEY=VALUE, e.g. image.robust=0.5")
        out[key.strip()] = value.strip()
    return out


def _mjd(ctx, param, value: str | None) -> float | None:
    if value is None:
        return None
    from astropy.time import Time

    try:
        return float(Time(value, scale="utc").mjd)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give an ISO UTC time, e.g. 2025-06-15T03:00") from None


@click.command("reprocess")
@click.argument("step", type=click.Choice(["image"]))
@click.argument("observations", nargs=-1)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", callback=_setting,
              help="An image.* option for this run (repeatable), e.g. image.robust=0.5.")
@click.option("--start", callback=_mjd, help="Without IDs: imaged observations from this UTC time.")
@click.option("--end", callback=_mjd, help="Without IDs: ... up to this UTC time.")
@click.option("--keep-current", is_flag=True,
              help="Register the new versions but keep using the current ones.")
@click.option("--note", default="", help="Why (kept with each version in the registry).")
@click.option("--list", "list_only", is_flag=True, help="List the registered versions.")
@json_option
@pass_app
def command(app: App, step: str, observations: tuple[str, ...], settings: dict, start, end,
            keep_current: bool, note: str, list_only: bool) -> None:
    """Make new versions of STEP's products with changed options (IDs as arguments or on
    stdin, or a time range), beside the old ones; `watch` carries on meanwhile.

    The new version becomes the observation's current image (unless --keep-current);
    mosaics made from then on use it.  Every version stays listed (--list).
    """
    from contimg.ops.reprocess import reprocess_images, select, versions

    db = app.db()
    named = items_from(observations)
    if list_only:
        _render_versions(app, versions(db, named))
        return
    if not settings:
        fail_usage("nothing would change: give at least one --set image.KEY=VALUE")
    if not named and start is None and end is None:
        fail_usage("give observation IDs (arguments or stdin) or --start/--end")
    chosen = select(db, named, start, end)
    if not chosen:
        click.echo("no imaged observation in that range", err=True)
        return
    import os

    from contimg import casa

    cfg = app.config()
    casa.start(cfg.home, native_stderr_to_log=True)
    os.chdir(casa.scratch_dir(cfg.home))  # tclean's scratch files; every path is absolute
    done = reprocess_images(cfg, db, chosen, settings, keep_current=keep_current, note=note,
                            announce=lambda line: app.say(line, level=0))
    if app.json_output:
        emit_json([r.__dict__ for r in done])
    else:
        for r in done:
            click.echo(f"{r.observation_id}\t{r.status}\t{r.message}")
    exit_for(sum(r.failed for r in done))


def _render_versions(app: App, rows: list[dict]) -> None:
    if app.json_output:
        emit_json(rows)
        return
    for r in rows:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items()) or "pipeline"
        noise = r["figures"].get("noise_jy")
        click.echo(f"{r['observation_id']}\tv{r['version']}\t{'current' if r['current'] else '-'}\t"
                   f"{opts}\t{'' if noise is None else f'{noise * 1e3:.2f} mJy/beam'}\t{r['dir']}")
    if not rows:
        click.echo("no image versions registered", err=True)
