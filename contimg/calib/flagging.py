"""RFI flagging before calibration and imaging (AOFlagger through DP3, or CASA flagdata).

Engines (chosen by measurement on the realistic sky's RFI: docs/calibration.md):
  "aoflagger"  AOFlagger's library (its Python module) with a packaged
               strategy (default ``generic-default``) on each baseline's
               time-frequency plane (DP3's step was the plan, but DP3 needs
               4 correlations and DSA-110 writes 2);
  "casa"       flagdata tfcrop (time-frequency envelope) then rflag (sliding
               rms) then extend, the CASA-recommended automatic pair;
  "none"       only the statistics below.
A dead antenna (noise only) looks smooth to a time-frequency flagger; it is
caught by the calibrator solve instead (fastsolve: gain amplitude far below
the array's), whose flagged solutions applycal turns into data flags.
Returns flag statistics for the state database.  Needs casa.start().
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from contimg import casa
from contimg.paths import release, temp_path

from .types import CalibrationError

ENGINES = ("aoflagger", "casa", "none")
BLOCK_ROWS = 5000
DEFAULT_BASE_THRESHOLD = 1.6  # AOFlagger sensitivity (packaged default 1.0): see strategy_file
# The packaged strategy is made for long observations: its background fit is ~7.5
# integrations wide in time (97 s here), flat over a 24-integration observation, so it
# flagged the first and last integrations and the neighbours of bursts; and its
# frequency dilation (0.2) grew a burst over 10 sub-bands by a quarter of its width into
# clean channels.  Measured on the realistic sky (docs/calibration.md).
DEFAULT_TIME_SIGMA_S = 40.0
DEFAULT_FREQ_DILATION = 0.05
ARRAY_FRACTION = 0.5


def strategy_file(strategy: str, base_threshold: float | None = None, work: Path | None = None,
                  *, time_sigma_s: float | None = None, integration_s: float | None = None,
                  freq_dilation: float | None = None) -> Path:
    """A packaged AOFlagger strategy by name (e.g. generic-default), or a .lua path,
    with the settings given replaced in its text (written beside ``work``).

    ``base_threshold``: its ``local base_threshold = ...`` (1.0 flagged 9 % of clean
    data on the realistic sky, a drift-scanned field's fringes; 1.6 flagged 2.7 %).
    ``time_sigma_s``: the Gaussian width in time of its background fit, in seconds
    (with ``integration_s``; the strategy's unit is its time-downsampled sample).
    ``freq_dilation``: the frequency level of its scale-invariant rank operator.
    None keeps the strategy's own; a setting the strategy lacks is an error.
    """
    if strategy.endswith(".lua"):
        path = Path(strategy)
    else:
        import aoflagger

        default = Path(aoflagger.AOFlagger().find_strategy_file(aoflagger.TelescopeId.Generic))
        path = default.parent / f"{strategy}.lua"
    if not path.is_file():
        raise CalibrationError(f"AOFlagger strategy {strategy!r} not found ({path}); set flag.strategy "
                               "to a packaged name such as generic-default or a .lua file")
    if base_threshold is None and time_sigma_s is None and freq_dilation is None:
        return path
    text = path.read_text()
    if base_threshold is not None:
        text = _replace(text, path, r"(local base_threshold = )[0-9.]+", f"{base_threshold:g}",
                        "flag.base_threshold at 0")
    if time_sigma_s is not None:
        down = re.search(r"aoflagger\.downsample\(\w+, ([0-9]+),", text)
        if down is None or not integration_s:
            raise CalibrationError(f"AOFlagger strategy {path} has no time downsampling to scale "
                                   "flag.time_sigma_s by; set flag.time_sigma_s to 0 for this strategy")
        sigma = time_sigma_s / (integration_s * int(down.group(1)))
        text = _replace(text, path, r"(aoflagger\.low_pass_filter\(\w+, [0-9]+, [0-9]+, )[0-9.]+",
                        f"{sigma:.4g}", "flag.time_sigma_s at 0")
    if freq_dilation is not None:
        text = _replace(text, path, r"(scale_invariant_rank_operator_masked\(\w+, \w+, [0-9.]+, )[0-9.]+",
                        f"{freq_dilation:g}", "flag.freq_dilation below 0")
    # a private temporary name (contimg.paths): a crash between writing and loading it
    # leaves a file the one cleaner of leftovers knows
    out = temp_path(Path(work or path.parent) / f"{path.stem}-contimg.lua")
    out.write_text(text)
    return out


def _replace(text: str, path: Path, pattern: str, value: str, keep: str) -> str:
    """Each match of ``pattern``: its group 1 kept, the number after it replaced by ``value``."""
    new, n = re.subn(pattern, lambda m: m.group(1) + value, text)
    if n == 0:
        raise CalibrationError(f"AOFlagger strategy {path} has no line matching {pattern!r} to set; "
                               f"leave {keep} for this strategy")
    return new


def extend_across_array(flags: np.ndarray, cross: np.ndarray, fraction: float = ARRAY_FRACTION) -> np.ndarray:
    """Flag a (time, channel) sample on every baseline when more than ``fraction`` of the
    baselines flagged it: interference enters through every antenna, so what most
    baselines see, the rest carry below their own threshold.  flags (bl, t, chan, pol)."""
    hit = flags[cross].any(axis=3).mean(axis=0) > fraction  # (t, chan)
    flags[cross] |= hit[None, :, :, None]
    return hit


def _aoflagger(ms: Path, strategy: str, tuning: dict) -> dict:
    """AOFlagger (its Python module) on every cross-correlation's time-frequency plane.

    DP3's AOFlagger step needs 4 correlations; DSA-110 MSs have 2, so the library
    is called directly: one image set (XX re/im, YY re/im) per baseline, existing
    flags passed in, the result OR-ed into FLAG.  DATA is held as complex64
    (baselines x times x channels x pols: the MS's DATA size, 1.4 GB on the full
    array), read and written in one pass each.  ``tuning``: strategy_file's settings.
    """
    import aoflagger

    flagger = aoflagger.AOFlagger()
    tb = casa.tools().table()
    tb.open(str(ms), nomodify=False)
    try:
        times = tb.getcol("TIME")
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        ut, tix = np.unique(times, return_inverse=True)
        lua = strategy_file(strategy, work=ms.parent, integration_s=float(np.median(tb.getcol("INTERVAL"))),
                            **tuning)
        try:
            strat = flagger.load_strategy_file(str(lua))
        finally:
            if any(v is not None for v in tuning.values()):  # a tuned copy, not the packaged file
                release(lua)
        keys = a1.astype(np.int64) * 4096 + a2
        ukeys, bix = np.unique(keys, return_inverse=True)
        npol, nchan = tb.getcell("DATA", 0).shape
        data = np.zeros((ukeys.size, ut.size, nchan, npol), np.complex64)
        flags = np.ones((ukeys.size, ut.size, nchan, npol), bool)  # absent samples stay flagged
        for r0 in range(0, a1.size, BLOCK_ROWS):
            n = min(BLOCK_ROWS, a1.size - r0)
            data[bix[r0:r0 + n], tix[r0:r0 + n]] = tb.getcol("DATA", r0, n).T
            flags[bix[r0:r0 + n], tix[r0:r0 + n]] = tb.getcol("FLAG", r0, n).T
        images = flagger.make_image_set(ut.size, nchan, 2 * npol)
        mask = flagger.make_flag_mask(ut.size, nchan, False)
        for k in np.flatnonzero((ukeys // 4096) != (ukeys % 4096)):
            if flags[k].all():
                continue
            for p in range(npol):  # image buffers are (channels, times)
                images.set_image_buffer(2 * p, np.ascontiguousarray(data[k, :, :, p].real.T, np.float32))
                images.set_image_buffer(2 * p + 1, np.ascontiguousarray(data[k, :, :, p].imag.T, np.float32))
            mask.set_buffer(np.ascontiguousarray(flags[k].any(axis=2).T))
            new = strat.run(images, mask).get_buffer()  # (channels, times)
            flags[k] |= new.T[:, :, None]
        grown = extend_across_array(flags, (ukeys // 4096) != (ukeys % 4096))
        for r0 in range(0, a1.size, BLOCK_ROWS):
            n = min(BLOCK_ROWS, a1.size - r0)
            tb.putcol("FLAG", np.ascontiguousarray(flags[bix[r0:r0 + n], tix[r0:r0 + n]].T), r0, n)
        tb.flush()
    finally:
        tb.close()
    return {"array_extended_fraction": round(float(grown.mean()), 6)}


def _casa_flag(ms: Path) -> None:
    tasks = casa.tasks()
    try:
        tasks.flagdata(vis=str(ms), mode="tfcrop", datacolumn="data", timecutoff=4.0, freqcutoff=3.0,
                       extendflags=False, flagbackup=False)
        tasks.flagdata(vis=str(ms), mode="rflag", datacolumn="data", timedevscale=5.0,
                       freqdevscale=5.0, extendflags=False, flagbackup=False)
        tasks.flagdata(vis=str(ms), mode="extend", growtime=50.0, growfreq=50.0, extendpols=True,
                       flagbackup=False)
    except Exception as exc:  # CASA raises assorted exception types
        raise CalibrationError(f"CASA flagdata failed on {ms}: {exc}") from exc


def flagged_fraction(ms: Path) -> float:
    """Fraction of cross-correlation visibilities flagged (FLAG read in blocks)."""
    tb = casa.tools().table()
    tb.open(str(ms))
    try:
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        tot = fl = 0
        for r0 in range(0, a1.size, BLOCK_ROWS):
            n = min(BLOCK_ROWS, a1.size - r0)
            f = tb.getcol("FLAG", r0, n)[..., a1[r0:r0 + n] != a2[r0:r0 + n]]
            tot, fl = tot + f.size, fl + int(f.sum())
    finally:
        tb.close()
    return fl / tot if tot else 0.0


def flag(ms: Path, engine: str = "aoflagger", *, strategy: str = "generic-default",
         base_threshold: float | None = DEFAULT_BASE_THRESHOLD,
         time_sigma_s: float | None = DEFAULT_TIME_SIGMA_S,
         freq_dilation: float | None = DEFAULT_FREQ_DILATION) -> dict:
    """Flag RFI in ``ms`` in place; returns {engine, strategy, before, after, new, seconds, ...}.

    The AOFlagger settings (strategy_file) None keep the strategy's own."""
    ms = Path(ms)
    if engine not in ENGINES:
        raise CalibrationError(f"unknown flagging engine {engine!r}; use one of {', '.join(ENGINES)}")
    if not (ms / "table.dat").is_file():
        raise CalibrationError(f"{ms}: Measurement Set not found (no table.dat)")
    t0 = time.monotonic()
    before = flagged_fraction(ms)
    extra = {}
    tuning = {"base_threshold": base_threshold, "time_sigma_s": time_sigma_s, "freq_dilation": freq_dilation}
    if engine == "aoflagger":
        extra = _aoflagger(ms, strategy, tuning)
    elif engine == "casa":
        _casa_flag(ms)
    t1 = time.monotonic()
    after = flagged_fraction(ms)
    return {"engine": engine, "strategy": strategy if engine == "aoflagger" else None,
            "flagged_before": round(before, 6), "flagged_after": round(after, 6),
            "flagged_new": round(after - before, 6), **extra,
            **{k: (v if engine == "aoflagger" else None) for k, v in tuning.items()},
            "flagger_s": round(t1 - t0, 2), "seconds": round(time.monotonic() - t0, 2)}
