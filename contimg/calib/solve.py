"""Bandpass and gain solutions with CASA against a point-source model of the calibrator (K2).

Sequence (the standard one for a bright calibrator):
 1. MODEL_DATA of the calibrator(s) at their catalogue flux and true position,
    through the primary beam (model.write_model).
 2. Phase-only gaincal per integration on a narrow central window (1/8 of the
    band, the best-flagged window): removes the small phase drift within the scan
    so that averaging for the bandpass does not decorrelate; the window is narrow
    so that instrumental delays (a few ns) do not decorrelate it either.
 3. bandpass (one per observation, normalised: solnorm) with (2) applied.
 4. gaincal amplitude + phase with (3) applied: carries the flux scale.
Only (3) and (4) are kept; (2) lives and dies in the staging directory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from contimg import casa, names
from contimg.paths import staging_area

from . import tables as ct
from .fastsolve import bandpass_and_gain
from .model import write_model
from .types import CalibrationError, Source, SolveOptions, SolveResult

PREPHASE_FRACTION = 1 / 8  # of the band, for step 2
FLAG_SAMPLE_ROWS = 4000
TABLE_SUFFIX = names.CALTABLE_SUFFIX
final_paths = names.caltable_paths  # where solve() puts each table of a set (contimg.names)


def _antenna_ids(tb, ms: Path) -> dict[str, int]:
    tb.open(f"{ms}/ANTENNA")
    try:
        names = list(tb.getcol("NAME"))
    finally:
        tb.close()
    return {str(n): i for i, n in enumerate(names)}


def data_antennas(tb, ms: Path) -> list[int]:
    """IDs of antennas that appear in cross-correlations of the MS."""
    tb.open(str(ms))
    try:
        q = tb.query("ANTENNA1 != ANTENNA2", columns="ANTENNA1, ANTENNA2")
        try:
            ids = np.union1d(q.getcol("ANTENNA1"), q.getcol("ANTENNA2"))
        finally:
            q.close()
    finally:
        tb.close()
    return [int(i) for i in ids]


def usable_refants(ms: Path, candidates: list[str]) -> list[str]:
    """The candidates (names, order kept) that exist in the MS and have unflagged data.

    One pass over the cross-correlation rows (FLAG read in row blocks), so a long
    candidate list (every station, as a fallback) costs the same as a short one.
    """
    tb = casa.tools().table()
    ids = _antenna_ids(tb, Path(ms))
    good: set[int] = set()
    tb.open(str(ms))
    try:
        q = tb.query("ANTENNA1 != ANTENNA2 && !FLAG_ROW", columns="ANTENNA1, ANTENNA2, FLAG")
        try:
            n, step = q.nrows(), 20000
            for start in range(0, n, step):
                nrow = min(step, n - start)
                flag = q.getcol("FLAG", startrow=start, nrow=nrow)   # (npol, nchan, nrow)
                ok = ~flag.all(axis=(0, 1))
                a1 = q.getcol("ANTENNA1", startrow=start, nrow=nrow)[ok]
                a2 = q.getcol("ANTENNA2", startrow=start, nrow=nrow)[ok]
                good.update(np.unique(a1).tolist())
                good.update(np.unique(a2).tolist())
        finally:
            q.close()
    finally:
        tb.close()
    return [c for c in candidates if str(c) in ids and ids[str(c)] in good]


def reference_antenna(ms: Path, candidates: list[str]) -> str:
    """First candidate antenna NAME with unflagged cross-correlations; CalibrationError if none."""
    usable = usable_refants(ms, candidates)
    if usable:
        return str(usable[0])
    raise CalibrationError(
        f"{ms}: none of the reference antenna candidates {list(candidates)} has unflagged "
        "cross-correlation data; give other candidates (SolveOptions.refants)")


def prephase_window(ms: Path) -> tuple[str, int, int]:
    """CASA spw selection of the central window (1/8 of the band) with the most unflagged data.

    Flags are read from ~FLAG_SAMPLE_ROWS rows spread evenly over the MS:
    subband and channel flags are shared by every row, so a sample tells which
    channels hold data without reading the whole FLAG column.
    """
    tb = casa.tools().table()
    tb.open(str(ms))
    try:
        nrow = tb.nrows()
        flag = np.asarray(tb.getcol("FLAG", 0, -1, max(1, nrow // FLAG_SAMPLE_ROWS)), bool)
    finally:
        tb.close()
    good = (~flag).sum(axis=(0, 2)).astype(float)
    nchan = good.size
    width = max(1, round(nchan * PREPHASE_FRACTION))
    sums = np.convolve(good, np.ones(width), mode="valid")  # window starting at each channel
    if sums.max() <= 0:
        raise CalibrationError(f"{ms}: every channel is flagged (sampled {flag.shape[-1]} rows)")
    starts = np.flatnonzero(sums == sums.max())
    c0 = int(starts[np.argmin(np.abs(starts + width / 2 - nchan / 2))])
    return f"0:{c0}~{c0 + width - 1}", c0, c0 + width - 1


def _run(task, name: str, caltable: Path, **kw) -> None:
    """Run a CASA solve task and insist that it wrote a complete table."""
    try:
        task(caltable=str(caltable), **kw)
    except Exception as exc:  # CASA raises assorted RuntimeError/ValueError types
        raise CalibrationError(f"CASA {name} failed on {kw.get('vis')}: {exc}") from exc
    try:
        ct.check_tables([caltable])
    except ct.CalTableMissing as exc:
        raise CalibrationError(f"CASA {name} on {kw.get('vis')} wrote no usable table "
                               f"({exc}); see the CASA log") from exc


def _solve_full_casa(ms, srcs, opts, paths, stage, timings, t0):
    """The previous solve (MODEL_DATA on the full MS, CASA gaincal/bandpass/gaincal): the
    benchmark's baseline (SolveOptions(average=False))."""
    tasks = casa.tasks()
    refs = usable_refants(ms, opts.refants)[:10]  # CASA falls back along this list
    if not refs:
        reference_antenna(ms, opts.refants)  # raises with the full message
    timings["refant"] = time.monotonic() - t0 - sum(timings.values())
    model = write_model(ms, srcs)
    timings["model"] = time.monotonic() - t0 - sum(timings.values())
    tasks.delmod(vis=str(ms), otf=True, scr=False)  # a virtual model would shadow MODEL_DATA
    common = {"vis": str(ms), "refant": ",".join(refs), "minsnr": opts.minsnr,
              "uvrange": opts.uvrange, "parang": False}
    window, _c0, _c1 = prephase_window(ms)
    pre = stage / "prephase.gcal"
    _run(tasks.gaincal, "gaincal (phase-only, pre-bandpass)", pre, solint=opts.prephase_solint,
         calmode="p", gaintype="G", spw=window, **common)
    timings["prephase"] = time.monotonic() - t0 - sum(timings.values())
    _run(tasks.bandpass, "bandpass", paths["bandpass"], solint=opts.bp_solint, bandtype="B",
         solnorm=True, gaintable=[str(pre)], interp=["linear"], **common)
    timings["bandpass"] = time.monotonic() - t0 - sum(timings.values())
    _run(tasks.gaincal, "gaincal", paths["gain"], solint=opts.gain_solint,
         calmode=opts.gain_calmode, gaintype="G", gaintable=[str(paths["bandpass"])],
         interp=["nearest"], **common)
    timings["gain"] = time.monotonic() - t0 - sum(timings.values())
    return refs, model, window


def _data_pairs(tb, ms: Path):
    """ANTENNA1, ANTENNA2 of the cross-correlations (column reads only, no data)."""
    tb.open(str(ms))
    try:
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
    finally:
        tb.close()
    return a1[a1 != a2], a2[a1 != a2]


def solve(ms: Path, out_dir: Path, set_name: str, sources: list[Source],
          opts: SolveOptions | None = None) -> SolveResult:
    """Solve bandpass and gains on calibrator observation ``ms`` (see module docstring).

    Tables are staged in a private directory beside them (contimg.paths.staging_area)
    and renamed into final_paths(out_dir, set_name) only when complete and verified;
    leftovers of crashed attempts are removed first; a re-solve replaces an
    existing set table by table (old one moved aside, then deleted).  Raises
    CalibrationError: no usable reference antenna, a CASA task failed, or all
    solutions of a table are flagged.  Needs casa.start().
    """
    opts = opts or SolveOptions()
    ms, out_dir = Path(ms), Path(out_dir)
    if not (ms / "table.dat").is_file():
        raise CalibrationError(f"{ms}: Measurement Set not found (no table.dat)")
    srcs = [Source.from_any(s) for s in sources]
    if not srcs or any(not np.isfinite(s.flux_jy) or s.flux_jy <= 0 for s in srcs):
        raise CalibrationError(f"{ms}: calibrator model needs sources with a positive catalogue "
                               f"flux, got {[(s.name, s.flux_jy) for s in srcs]}")
    t0 = time.monotonic()
    tb = casa.tools().table()
    with staging_area(out_dir / set_name) as stage:
        timings: dict[str, float] = {}
        averaging, window = None, None
        paths = {k: stage / p.name for k, p in final_paths(out_dir, set_name).items()}
        amp_final = names.amplitude_table_path(out_dir, set_name)
        if opts.average and opts.gain_calmode == "ap" and opts.write_amplitude:
            paths["amplitude"] = stage / amp_final.name
        if opts.average:  # one streamed pass + numpy solvers; never a full MODEL_DATA
            fast = bandpass_and_gain(ms, srcs, opts, paths)
            refs, averaging, timings = fast["refs"], fast["averaging"], fast["timings"]
            model = {"pointing_dec_deg": averaging.get("pointing_dec_deg")}
        else:
            refs, model, window = _solve_full_casa(ms, srcs, opts, paths, stage, timings, t0)
        refant = refs[0]
        ants = [int(i) for i in np.union1d(*_data_pairs(tb, ms))]
        quality = {k: ct.table_quality(tb, paths[k], ants) for k in ("bandpass", "gain")}
        for kind, q in quality.items():
            if q["n_solutions"] == 0 or q["flagged_fraction"] >= 1.0:
                raise CalibrationError(f"{ms}: every {kind} solution is flagged (minsnr "
                                       f"{opts.minsnr}, refant {refant}); the calibrator may be "
                                       "absent, too faint or the data flagged")
        ids = _antenna_ids(tb, ms)
        want = {ids[r] for r in refs}
        for kind, q in quality.items():  # CASA reads refant names; make sure it did so here
            if not set(q["refant_ids"]) <= want:
                raise CalibrationError(f"{ms}: CASA referenced {kind} solutions to antenna IDs "
                                       f"{q['refant_ids']}, not the requested {sorted(want)}")
        finals = final_paths(out_dir, set_name)
        replaced = [k for k in ("bandpass", "gain") if ct.install(paths[k], finals[k])]
        if "amplitude" in paths:
            ct.install(paths["amplitude"], amp_final)
    params = {
        **opts.to_dict(), "refant": refant, "refant_list": refs, "prephase_spw": window,
        "bandtype": "B", "solnorm": True, "gaintype": "G", "gain_calmode": opts.gain_calmode,
        "engine": "numpy stefcal on model-weighted average" if opts.average else "casa on full MS",
        "averaging": averaging,
        "apply_order": ["bandpass", "gain"],
        "model": {"sources": [{k: getattr(s, k) for k in ("name", "ra_deg", "dec_deg", "flux_jy",
                                                           "spectral_index")} for s in srcs], "primary_beam": "airy 4.65 m",
                  "pointing_dec_deg": model.get("pointing_dec_deg")},
        "replaced": replaced, "casa": casa.tools().version_string(),
        "amplitude_table": str(amp_final) if "amplitude" in paths else None,
        "elapsed_s": round(time.monotonic() - t0, 2),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    return SolveResult(tables=final_paths(out_dir, set_name), refant=refant, quality=quality,
                       params=params)
