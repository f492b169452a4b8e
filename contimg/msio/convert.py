"""Subband files of one observation -> one Measurement Set (issue 4, C1-C5).

Flow: check every input (C1) -> read and cross-check all headers -> recognise the
correlator's meridian phasing (C3) -> build the metadata (ascending 16 x nchan
channel comb, C5; one ICRS phase centre at the meridian at mid time) -> stream the
visibilities in row blocks from all files at once: place each file's channels in
the comb (missing subbands stay flagged, zero weight), re-phase, write -> verify
-> rename into place (C2).

Visibilities are read with h5py rather than pyuvdata: same bytes, no per-file
UVData objects, no concatenation copy (see bench/bench_convert.py for figures).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation
from pyuvdata import Telescope, UVData
from pyuvdata.utils.pol import determine_pol_order

from . import phasing
from .inputs import (ConvertError, SubbandHeader, check_consistent, check_readable, read_complex,
                     frequency_grid, read_header)
from .mswrite import MainTableWriter, dir_size, remove_leftovers, verify_ms
from contimg.paths import install, release, temp_path

TELESCOPE_NAME = "OVRO_MMA"  # CASA knows it; "DSA-110" breaks listobs/msmd
DISH_DIAMETER_M = 4.65
BLOCK_BYTES = 96 * 2**20  # visibility bytes per streamed block (DATA only)
# Policy for values no instrument produces: a visibility component beyond this is
# flagged like a NaN.  Far above any correlator count (a 64-bit accumulator of one
# 13 s integration stays below ~1e11), and low enough that its square, and every
# product the re-phasing, calibration and imaging form, stays finite in float32.
MAX_ABS_VIS = 1e15

Progress = Callable[[str, float], None]


@dataclass
class MsInfo:
    """What the converter made; times are MJD (UTC) from the data's time array (C4).

    start_mjd/end_mjd are the start of the first and the end of the last
    integration (centre -/+ integration_time/2); mid_mjd is their midpoint, the
    epoch of the phase centre.
    """

    path: Path
    start_mjd: float
    end_mjd: float
    mid_mjd: float
    pointing_dec_deg: float
    phase_ra_deg: float
    phase_dec_deg: float
    subbands_present: list[int]
    nchan_total: int
    nants: int
    ntimes: int
    size_bytes: int
    meridian_offset_arcsec: float = 0.0  # largest fitted offset of the recorded phasing
    files: list[Path] = field(default_factory=list)
    # samples flagged here because they were NaN, infinite or beyond MAX_ABS_VIS (or their
    # nsamples was), per subband "sbNN"; total_samples counts every sample read
    flagged_samples: dict[str, int] = field(default_factory=dict)
    total_samples: int = 0
    # input files left out (build_ms(min_files=...)): (path, why)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        d["files"] = [str(f) for f in self.files]
        return d


def _telescope(h: SubbandHeader) -> Telescope:
    lat, lon, alt = h.lat_lon_alt
    loc = EarthLocation.from_geodetic(lon=lon * u.deg, lat=lat * u.deg, height=alt * u.m)
    diam = h.ant_diameters if h.ant_diameters is not None else \
        np.full(h.ant_numbers.size, DISH_DIAMETER_M)
    return Telescope.new(name=TELESCOPE_NAME, location=loc, antenna_positions=h.ant_positions,
                         antenna_names=h.ant_names, antenna_numbers=h.ant_numbers,
                         antenna_diameters=np.asarray(diam, float), instrument=h.instrument,
                         update_from_known=False)


def _metadata(h: SubbandHeader, freqs: np.ndarray, width: float, ra: float, dec: float):
    """Metadata-only UVData of the output: pyuvdata computes app coords, frame PA, uvw."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = UVData.new(
            freq_array=freqs, channel_width=np.full(freqs.size, width),
            polarization_array=h.pols, times=h.times, telescope=_telescope(h),
            antpairs=np.stack([h.ant1, h.ant2], axis=1), do_blt_outer=False,
            integration_time=np.asarray(h.int_time, float), update_telescope_from_known=False,
            phase_center_catalog={0: dict(cat_name="meridian_mid", cat_type="sidereal",
                                          cat_lon=ra, cat_lat=dec, cat_frame="icrs")},
            vis_units=h.vis_units if h.vis_units in ("Jy", "K str", "uncalib") else "uncalib",
            history="contimg: DSA-110 subbands combined, re-phased from the meridian "
                    "(RA = LST(t)) to one ICRS centre at mid time",
        )
    meta.extra_keywords = {k: v for k, v in h.extra.items()
                           if isinstance(v, str | int | float | np.integer | np.floating)
                           and k != "applied_delays_ns"}
    return meta


def _channel_index(h: SubbandHeader, grid: np.ndarray, width: float):
    """Target channels of this file's channels in the ascending comb (a slice if possible)."""
    idx = np.rint((h.freqs - grid[0]) / width).astype(int)
    if idx.size > 1 and np.all(np.diff(idx) == -1):
        stop = idx[-1] - 1
        return slice(idx[0], stop if stop >= 0 else None, -1), idx
    if idx.size == 1 or np.all(np.diff(idx) == 1):
        return slice(idx[0], idx[-1] + 1), idx
    return idx, idx


def build_ms(files: Sequence[Path], out_ms: Path, *, nsubbands: int = 16,
             progress: Progress | None = None, overwrite: bool = False,
             meridian_tol_arcsec: float = phasing.MERIDIAN_TOL_ARCSEC,
             min_files: int | None = None) -> MsInfo:
    """Convert one observation's subband files into ``out_ms`` (see module docstring).

    Raises ConvertError (naming the file) for unreadable, truncated or inconsistent
    inputs, for phasing that is not the correlator's meridian phasing, or if
    ``out_ms`` exists and ``overwrite`` is false.  Never leaves a partial MS at
    ``out_ms``.  With ``min_files``, a file that fails on its own is left out
    (``MsInfo.rejected``) and the others are converted, as long as at least
    ``min_files`` remain and the rejected ones stay a minority (a failure shared by
    many files is not theirs but something common, and is raised).  NaN, infinite
    and absurdly large visibilities are flagged and counted, never written.
    """
    todo = [Path(f) for f in files]
    rejected: list[tuple[str, str]] = []
    while True:
        try:
            info = _build(todo, out_ms, nsubbands=nsubbands, progress=progress,
                          overwrite=overwrite, meridian_tol_arcsec=meridian_tol_arcsec)
        except (ValueError, TypeError, KeyError, IndexError, ArithmeticError) as exc:
            # validated inputs should never get here; if one does, say so on one line
            raise ConvertError(f"{Path(out_ms).name}: conversion failed unexpectedly "
                               f"({type(exc).__name__}: {exc}); please report it") from exc
        except ConvertError as exc:
            if min_files is None or exc.path is None or exc.path not in todo:
                raise
            todo.remove(exc.path)
            rejected.append((str(exc.path), str(exc)))
            if len(todo) < max(min_files, 1) or len(rejected) >= len(todo):
                raise ConvertError(
                    f"{len(rejected)} of {len(todo) + len(rejected)} input files fail "
                    f"({rejected[0][1]}); {len(todo)} left, fewer than {max(min_files, 1)} or "
                    "not a majority: not converting") from None
            continue
        info.rejected = rejected
        return info


def _bad_samples(vis: np.ndarray, nsamp: np.ndarray) -> np.ndarray | None:
    """Mask of samples that must not reach the MS (NaN, inf, |component| > MAX_ABS_VIS,
    or an nsamples that is NaN, infinite or negative); None when there are none,
    found with four reductions rather than a full mask in the usual case."""
    flat = np.ascontiguousarray(vis).view(np.float32)  # (re, im) pairs: contiguous is fast
    extremes = np.array([flat.max(), -flat.min()])  # NaN propagates
    if np.all(extremes <= MAX_ABS_VIS) and nsamp.min() >= 0 and nsamp.max() < np.inf:
        return None
    re, im = vis.real, vis.imag
    return ~((np.abs(re) <= MAX_ABS_VIS) & (np.abs(im) <= MAX_ABS_VIS)
             & (nsamp >= 0) & (nsamp < np.inf))


def _build(files: list[Path], out_ms: Path, *, nsubbands: int, progress: Progress | None,
           overwrite: bool, meridian_tol_arcsec: float) -> MsInfo:
    t_start = time.monotonic()
    report = progress or (lambda msg, frac: None)
    out_ms = Path(out_ms)
    if not files:
        raise ConvertError(f"{out_ms}: no input files given")
    paths = check_readable(files)
    report(f"checking {len(paths)} files", 0.0)
    headers = sorted((read_header(p) for p in paths), key=lambda h: h.sb)
    check_consistent(headers, nsubbands)
    grid, width = frequency_grid(headers, nsubbands)
    ref = headers[0]
    swap = ref.ant1 > ref.ant2
    if not (swap.any() and (ref.ant1 < ref.ant2).any()):
        swap = None
    else:
        # Another writer may order some baselines the other way round: present them all
        # as ant1 < ant2 (V_ji = conj(V_ij), uvw_ji = -uvw_ij), as write_ms would.
        for h in headers:   # every file has the same baselines (checked above)
            h.ant1, h.ant2 = np.where(swap, h.ant2, h.ant1), np.where(swap, h.ant1, h.ant2)
            h.uvw = np.where(swap[:, None], -h.uvw, h.uvw)
    if out_ms.exists() and not overwrite:
        raise ConvertError(f"{out_ms}: already exists; remove it or convert with overwrite")

    phasing.configure_astropy_offline()
    tel = _telescope(ref)
    tel_d = dict(positions=tel.antenna_positions, numbers=tel.antenna_numbers,
                 ant1=ref.ant1, ant2=ref.ant2, loc=tel.location)
    geo = phasing.meridian_geometry(ref.times, ref.dec_rad, tel_d)
    fits = []
    for h in headers:
        try:
            fits.append(phasing.check_meridian_phasing(h.path, h.uvw, geo, ref.times,
                                                       ref.dec_rad, meridian_tol_arcsec))
        except ConvertError as exc:
            raise ConvertError(str(exc), h.path) from None
    offset = max(worst for worst, _ in fits)
    # Each file is re-phased from the centre its own uvw record (a writer could stamp
    # subbands differently); the phasor costs the same per file as for the whole band.
    w_recorded = [w for _, w in fits]
    del fits
    half = ref.int_time / 86400.0 / 2
    start_jd, end_jd = float(np.min(ref.times - half)), float(np.max(ref.times + half))
    mid_jd = 0.5 * (start_jd + end_jd)
    ra, dec = phasing.mid_time_target(mid_jd, ref.dec_rad, tel.location)
    meta = _metadata(ref, grid, width, ra, dec)
    if not (np.array_equal(meta.ant_1_array, ref.ant1)
            and np.array_equal(meta.time_array, ref.times)):
        raise ConvertError(f"{ref.path}: internal error: pyuvdata reordered the rows")
    dws = [meta.uvw_array[:, 2] - w for w in w_recorded]
    del geo, w_recorded

    out_ms.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out_ms)
    tmp = temp_path(out_ms)
    npol, ntot, nblts = ref.pols.size, grid.size, ref.times.size
    pol_order = determine_pol_order(ref.pols, order="CASA")
    pol_sel = slice(None) if np.array_equal(pol_order, np.arange(npol)) else pol_order
    present = np.zeros(ntot, bool)
    targets = []
    for h in headers:
        sl, idx = _channel_index(h, grid, width)
        present[idx] = True
        targets.append(sl)
    block = max(1, min(nblts, BLOCK_BYTES // (ntot * npol * 8)))
    total_mb = sum(np.prod(h.vis_shape) * 13 for h in headers) / 2**20  # vis+flag+nsamples
    done_mb, t_read = 0.0, time.monotonic()
    flagged: dict[str, int] = {}
    total = sum(int(np.prod(h.vis_shape)) for h in headers)
    writer = None
    try:
        writer = MainTableWriter(tmp, meta)
        # Buffers reused for every block: present channels are overwritten each time,
        # channels of missing subbands stay zero / flagged / zero weight throughout.
        buf_data = np.zeros((block, ntot, npol), np.complex64)
        buf_flags = np.ones((block, ntot, npol), bool)
        buf_nsamp = np.zeros((block, ntot, npol), np.float32)
        fhs = [h5py.File(h.path, "r") for h in headers]
        try:
            for r0 in range(0, nblts, block):
                r1 = min(nblts, r0 + block)
                n = r1 - r0
                data, flags, nsamp = buf_data[:n], buf_flags[:n], buf_nsamp[:n]
                for h, f, sl in zip(headers, fhs, targets, strict=True):
                    shp = (n, h.nchan, npol)
                    try:
                        vis = read_complex(f["Data/visdata"], r0, r1).reshape(shp)[..., pol_sel]
                        fl = f["Data/flags"][r0:r1].reshape(shp)[..., pol_sel]
                        ns = f["Data/nsamples"][r0:r1].reshape(shp)[..., pol_sel]
                    except (OSError, KeyError, ValueError, TypeError) as exc:
                        raise ConvertError(f"{h.path}: reading visibilities failed ({exc}); "
                                           "quarantine it", h.path) from exc
                    bad = _bad_samples(vis, ns)
                    if bad is not None:  # item 13: flagged, zero weight, counted
                        vis, fl, ns = np.where(bad, 0, vis), fl | bad, np.where(bad, 0, ns)
                        key = f"sb{h.sb:02d}"
                        flagged[key] = flagged.get(key, 0) + int(bad.sum())
                    data[:, sl] = vis
                    flags[:, sl] = fl
                    nsamp[:, sl] = ns
                if swap is not None:
                    rows = swap[r0:r1]
                    data[rows] = np.conjugate(data[rows])
                for dw, sl in zip(dws, targets, strict=True):
                    data[:, sl] *= phasing.phasor(dw[r0:r1], grid[sl])[:, :, None]
                writer.put_block(r0, data, flags, nsamp, present)
                done_mb = total_mb * r1 / nblts
                rate = done_mb / max(time.monotonic() - t_read, 1e-6)
                report(f"{len(headers)} files: {done_mb:.0f}/{total_mb:.0f} MB at "
                       f"{rate:.0f} MB/s", 0.95 * r1 / nblts)
        finally:
            for f in fhs:
                f.close()
        if sum(flagged.values()) >= total:
            raise ConvertError(f"{out_ms.name}: every visibility of every input file is NaN, "
                               "infinite or beyond the plausible range; quarantine the files")
        writer.finish(pol_order, {"contimg_meridian_offset_arcsec": float(offset),
                                  "contimg_flagged_nonfinite": int(sum(flagged.values()))})
        writer = None
        verify_ms(tmp, nrows=nblts, nchan=ntot, npol=npol,
                  nants_table=int(ref.ant_numbers.max()) + 1)
        install(tmp, out_ms)  # overwrite: the old one moved aside first, never garbage
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        release(tmp)
    info = MsInfo(
        path=out_ms, start_mjd=start_jd - 2400000.5, end_mjd=end_jd - 2400000.5,
        mid_mjd=mid_jd - 2400000.5, pointing_dec_deg=float(np.rad2deg(ref.dec_rad)),
        phase_ra_deg=float(np.rad2deg(ra)), phase_dec_deg=float(np.rad2deg(dec)),
        subbands_present=[h.sb for h in headers], nchan_total=int(ntot),
        nants=int(np.unique(np.concatenate([ref.ant1, ref.ant2])).size),
        ntimes=int(np.unique(ref.times).size), size_bytes=dir_size(out_ms),
        meridian_offset_arcsec=float(offset), files=[h.path for h in headers],
        flagged_samples=flagged, total_samples=total,
    )
    elapsed = time.monotonic() - t_start
    report(f"wrote {out_ms.name}: {info.size_bytes / 2**20:.0f} MB in {elapsed:.1f} s", 1.0)
    return info
