"""`contimg simulate`: DSA-110-format subband files from a known sky, with a truth manifest."""

from __future__ import annotations

from pathlib import Path

import click

from contimg.cli.common import App, emit_json, fail_usage, json_option, pass_app


def _pairs(values: tuple[str, ...], what: str) -> list[tuple[int, int]]:
    from contimg.sim import parse_obs_sb

    out = []
    for v in values:
        try:
            out.append(parse_obs_sb(v))
        except ValueError:
            fail_usage(f"{what} {v!r}: expected OBS:SB, e.g. 0:3")
    return out


def _gaps(values: tuple[str, ...]) -> dict[int, float]:
    out = {}
    for v in values:
        try:
            obs, secs = v.split(":")
            out[int(obs)] = float(secs)
        except ValueError:
            fail_usage(f"--gap {v!r}: expected OBS:SECONDS, e.g. 2:420")
    return out


@click.command("simulate")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the files (default: the configured incoming directory).")
@click.option("--nants", type=click.IntRange(2, 96), default=96, show_default=True, help="Antennas with data.")
@click.option("--nchan", type=click.Choice(["1", "2", "3", "4", "6", "8", "12", "16", "24", "48"]),
              default="48", show_default=True, help="Channels per subband (divides 48).")
@click.option("--observations", type=click.IntRange(1), default=1, show_default=True,
              help="Consecutive 309 s observations.")
@click.option("--start", default=None, help="ISO UTC start (default: a calibrator transits in the span).")
@click.option("--dec", "dec_deg", type=float, default=None, help="Pointing declination, deg.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option("--sefd", type=float, default=None, help="System equivalent flux density, Jy (0 = no noise).")
@click.option("--no-gains", is_flag=True, help="No antenna gain errors.")
@click.option("--no-bandpass", is_flag=True, help="No bandpass errors.")
@click.option("--constant-gains", is_flag=True, help="Gains constant in time.")
@click.option("--field-sources", type=click.IntRange(0), default=6, show_default=True,
              help="Fainter field sources added to the default sky.")
@click.option("--sky", type=click.Choice(["default", "realistic"]), default="default", show_default=True,
              help="realistic: source counts, resolved sources, smearing, wider elliptical beam, "
                   "phase noise, RFI, and a reference catalogue beside the truth.")
@click.option("--flux-floor", "flux_floor_jy", type=click.FloatRange(0, min_open=True), default=None,
              help="Realistic sky: drop sources whose best apparent flux is below this, Jy [default: 0.001].")
@click.option("--workers", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Processes writing subbands in parallel (the files are the same).")
@click.option("--omit", multiple=True, metavar="OBS:SB", help="Fault: do not write this subband.")
@click.option("--truncate", multiple=True, metavar="OBS:SB", help="Fault: truncate this file.")
@click.option("--foreign-ants", multiple=True, metavar="OBS:SB", help="Fault: other antennas.")
@click.option("--foreign-times", multiple=True, metavar="OBS:SB", help="Fault: other times.")
@click.option("--gap", multiple=True, metavar="OBS:SECONDS", help="Fault: a gap after an observation.")
@click.option("--duplicate", multiple=True, metavar="OBS:SB", help="Fault: a second copy of a file.")
@click.option("--leave-temporary", multiple=True, metavar="OBS:SB",
              help="Fault: leave the file under its temporary name.")
@json_option
@pass_app
def command(app: App, out_dir, nants, nchan, observations, start, dec_deg, seed, sefd, no_gains,
            no_bandpass, constant_gains, field_sources, sky, flux_floor_jy, workers, omit, truncate, foreign_ants,
            foreign_times, gap, duplicate, leave_temporary) -> None:
    """Write simulated DSA-110 subband files and a truth manifest (JSON) beside them."""
    from contimg.sim import DEFAULT_SEFD_JY, SimOptions, simulate

    omitted: dict[int, list[int]] = {}
    for obs, sb in _pairs(omit, "--omit"):
        omitted.setdefault(obs, []).append(sb)
    opts = SimOptions(
        nants=nants, nchan=int(nchan), observations=observations, start=start, dec_deg=dec_deg,
        seed=seed, sefd_jy=DEFAULT_SEFD_JY if sefd is None else (sefd or None),
        gains=not no_gains, bandpass=not no_bandpass, gains_vary=not constant_gains,
        n_field_sources=field_sources, sky=sky, workers=workers, omit_subbands=omitted,
        **({"flux_floor_jy": flux_floor_jy} if flux_floor_jy else {}),
        truncate=_pairs(truncate, "--truncate"), foreign_ants=_pairs(foreign_ants, "--foreign-ants"),
        foreign_times=_pairs(foreign_times, "--foreign-times"), gap_after=_gaps(gap),
        duplicate=_pairs(duplicate, "--duplicate"),
        leave_temporary=_pairs(leave_temporary, "--leave-temporary"))
    target = out_dir or app.config().incoming
    target.mkdir(parents=True, exist_ok=True)
    say = (lambda msg: click.echo(msg, err=True)) if app.interactive else None
    try:
        result = simulate(target, opts, progress=say)
    except ValueError as exc:
        fail_usage(str(exc))
    if app.json_output:
        emit_json({"files": [str(f) for f in result.files], "manifest": str(result.manifest),
                   "observations": result.observations})
        return
    for f in result.files:
        click.echo(str(f))
    click.echo(f"truth manifest: {result.manifest}", err=True)
