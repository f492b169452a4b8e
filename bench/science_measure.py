"""Measurements of bench/science.py: published mosaics and MS flags against the truth.

Every figure is defined in docs/science.md. The source list is the pipeline's
published one when a product directory holds one (a CSV/JSON with ra_deg, dec_deg,
flux_jy); otherwise this module's own simple finder on the mosaic FITS (peaks of
image / noise map, one per restoring beam, peak pixel as the flux of a point source).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from scipy.ndimage import maximum_filter
from scipy.spatial import cKDTree

from contimg.astro.beam import airy_power
from contimg.sim import rfi as simrfi
from contimg.sim import sky as simsky

MAD = 1.4826
BEAM_BANDS = ((0.5, 1.01), (0.2, 0.5), (0.05, 0.2), (0.0, 0.05))
BRIGHT_JY, BRIGHT_RADIUS_DEG = 1.0, 0.5


def _robust(x):
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None, None
    med = float(np.median(x))
    return med, float(MAD * np.median(np.abs(x - med)))


def load_truth(home: Path) -> tuple[dict, Path]:
    paths = sorted((home / "incoming").glob("*_truth.json"))
    if not paths:
        raise SystemExit(f"science: no truth manifest in {home / 'incoming'}")
    return json.loads(paths[0].read_text()), paths[0]


def find_mosaics(home: Path) -> tuple[list[Path], bool]:
    # the mosaic itself is <id>.fits (no other dot); .noise.fits, .cat.fits etc. are its companions
    pub = [p for p in sorted((home / "products").rglob("*.fits")) if p.name.count(".") == 1]
    if pub:
        return pub, True
    staged = [p for p in sorted((home / "staging").rglob("mos_*.fits")) if p.name.count(".") == 1]
    return staged, False


def published_source_list(mosaic: Path):
    """The pipeline's own source list beside the mosaic, if it publishes one (``<id>.cat.csv``)."""
    for p in sorted(mosaic.parent.iterdir(), key=lambda q: not q.name.endswith(".cat.csv")):
        if p.suffix.lower() not in (".csv", ".json") or not any(k in p.name.lower() for k in ("source", "cat")):
            continue
        try:
            rows = (list(csv.DictReader(line for line in p.read_text().splitlines() if not line.startswith("#")))
                    if p.suffix.lower() == ".csv" else json.loads(p.read_text()))
            if isinstance(rows, dict):
                rows = rows.get("sources", [])
            # peak (Jy/beam) is what is compared with the expected peak; else the catalogue's flux
            out = [{"ra_deg": float(r["ra_deg"]), "dec_deg": float(r["dec_deg"]),
                    "flux_jy": float(r["peak_jy"] if r.get("peak_jy") not in (None, "") else r["flux_jy"]),
                    "snr": float(r["snr"]) if r.get("snr") not in (None, "") else None,
                    "int_flux_jy": float(r["int_flux_jy"]) if r.get("int_flux_jy") not in (None, "") else None}
                   for r in rows]
            return out, p.name
        except (KeyError, ValueError, TypeError):
            continue
    return None, None


def simple_finder(img, noise, wcs, beam_minor_pix: float, min_snr: float = 4.5) -> list[dict]:
    """Peaks of image / noise above ``min_snr``, one per beam; 3x3 centroid position; peak flux."""
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(np.isfinite(img) & (noise > 0), img / noise, -np.inf)
    size = max(3, int(np.ceil(beam_minor_pix)) | 1)
    peaks = (snr > min_snr) & (snr == maximum_filter(snr, size=size, mode="constant", cval=-np.inf))
    ys, xs = np.nonzero(peaks)
    ok = (ys > 0) & (xs > 0) & (ys < img.shape[0] - 1) & (xs < img.shape[1] - 1)
    ys, xs = ys[ok], xs[ok]
    oy, ox = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
    patch = np.clip(np.nan_to_num(img[ys[:, None] + oy.ravel(), xs[:, None] + ox.ravel()]), 0, None)
    wsum = patch.sum(1) + 1e-30
    fx = xs + (patch * ox.ravel()).sum(1) / wsum
    fy = ys + (patch * oy.ravel()).sum(1) / wsum
    ra, dec = wcs.pixel_to_world_values(fx, fy)
    return [{"ra_deg": float(r), "dec_deg": float(d), "flux_jy": float(img[y, x]), "snr": float(snr[y, x])}
            for r, d, x, y in zip(np.atleast_1d(ra), np.atleast_1d(dec), xs, ys)]


def radiometer_sigma(truth: dict) -> float:
    """Natural-weighting Stokes-I image noise of one observation (Jy/beam)."""
    nants = len(truth["antennas"]["numbers"])
    nbl = nants * (nants - 1) // 2
    nchan = len(truth["bandpass"]["freqs_hz"])
    n_vis = nbl * nchan * len(truth["observations"][0]["times_jd"])
    return truth["noise"]["sigma_jy"] / np.sqrt(2.0 * n_vis)


def _pointings(truth: dict):
    mids = np.array([0.5 * (o["start_jd"] + o["end_jd"]) for o in truth["observations"]])
    ra, dec = simsky.meridian_icrs(mids, truth["pointing_dec_deg"])
    return SkyCoord(ra * u.deg, dec * u.deg)


def _truth_arrays(truth: dict, freq: float):
    s = truth["sources"]
    col = {k: np.array([x.get(k, 0.0) for x in s], float)
           for k in ("ra_deg", "dec_deg", "flux_jy", "spectral_index", "maj_arcsec", "min_arcsec",
                     "beam_at_transit_1400MHz")}
    col["flux"] = col["flux_jy"] * (freq / 1.4e9) ** col["spectral_index"]
    col["kind"] = np.array([x.get("kind", "catalogue") for x in s])
    return col


def measure_mosaic(path: Path, truth: dict, sigma_obs: float, noise=None, found=None, list_name=None,
                   obs_index=None) -> dict:
    """Figures of one mosaic (or, with ``noise``/``found``/``obs_index``, one observation's image)."""
    with fits.open(path) as h:
        hdr = h[0].header
        img = np.squeeze(h[0].data).astype(float)
    noise_path = path.with_name(path.name[:-5] + ".noise.fits")
    if noise is not None:
        pass
    elif noise_path.exists():
        noise = np.squeeze(fits.getdata(noise_path)).astype(float)
    else:
        noise = np.full(img.shape, _robust(img)[1])
    wcs = WCS(hdr).celestial
    freq = float(hdr.get("RESTFRQ") or hdr.get("CRVAL3") or 1.405e9)
    cell = abs(wcs.wcs.cdelt[1]) * 3600.0
    bmaj, bmin = float(hdr.get("BMAJ", 0.0)) * 3600, float(hdr.get("BMIN", 0.0)) * 3600
    if not bmaj:
        bmaj = bmin = 15.0
    if found is None:
        found, list_name = published_source_list(path)
    if found is None:
        found, list_name = simple_finder(img, noise, wcs, bmin / cell), "bench simple finder (none published)"
    t = _truth_arrays(truth, freq)
    px, py = wcs.world_to_pixel_values(t["ra_deg"], t["dec_deg"])
    px, py = np.asarray(px, float), np.asarray(py, float)
    ix, iy = np.round(np.nan_to_num(px, nan=-1)).astype(int), np.round(np.nan_to_num(py, nan=-1)).astype(int)
    inside = (ix >= 0) & (iy >= 0) & (ix < img.shape[1]) & (iy < img.shape[0])
    inside[inside] &= np.isfinite(img[iy[inside], ix[inside]]) & (noise[iy[inside], ix[inside]] > 0)
    local = np.full(px.size, np.nan)
    local[inside] = noise[iy[inside], ix[inside]]
    size = bmaj * bmin / np.sqrt((bmaj ** 2 + t["maj_arcsec"] ** 2) * (bmin ** 2 + t["min_arcsec"] ** 2))
    peak_true = t["flux"] * size
    esnr = np.where(inside, peak_true / np.where(inside, local, 1.0), 0.0)
    radius = max(0.5 * bmaj, 6.0)
    tc = SkyCoord(t["ra_deg"] * u.deg, t["dec_deg"] * u.deg)
    fc = SkyCoord([f["ra_deg"] for f in found] * u.deg, [f["dec_deg"] for f in found] * u.deg) if found else None
    fsnr = np.array([f["snr"] if f.get("snr") is not None else np.nan for f in found], float)
    fflux = np.array([f["flux_jy"] for f in found], float)
    if found:
        j, sep, _ = tc.match_to_catalog_sky(fc)
        sep = sep.arcsec
    else:
        j, sep = np.zeros(len(tc), int), np.full(len(tc), np.inf)
    res = {"mosaic": path.name, "source_list": list_name, "n_found": len(found), "freq_hz": freq,
           "beam_arcsec": [bmaj, bmin], "match_radius_arcsec": radius}
    for x in (5, 10):
        sel = esnr >= x
        res[f"completeness_{x}sigma"] = float(np.mean(sep[sel] <= radius)) if sel.any() else None
        res[f"n_truth_{x}sigma"] = int(sel.sum())
        det = np.flatnonzero(fsnr >= x) if found else np.array([], int)
        cand = esnr >= 2.0
        if det.size and cand.any():
            k, dsep, _ = fc[det].match_to_catalog_sky(tc[cand])
            res[f"false_fraction_{x}sigma"] = float(np.mean(dsep.arcsec > radius))
        else:
            res[f"false_fraction_{x}sigma"] = None if not det.size else 1.0
        res[f"n_detections_{x}sigma"] = int(det.size)
    good = (esnr >= 10) & (sep <= radius)
    pts = good & (t["maj_arcsec"] == 0)
    ratio = fflux[j[pts]] / peak_true[pts] if found else np.array([])
    res["flux_ratio_median"], res["flux_ratio_scatter"] = _robust(ratio)
    res["flux_ratios"] = ratio.tolist()
    # the catalogue's integrated flux density against the true one: every matched source (resolved too)
    fint = np.array([f.get("int_flux_jy") if f.get("int_flux_jy") is not None else np.nan for f in found], float)
    iratio = fint[j[good]] / t["flux"][good] if found else np.array([])
    res["int_flux_ratio_median"], res["int_flux_ratio_scatter"] = _robust(iratio)
    res["int_flux_ratios"] = iratio.tolist()
    bands = []
    for lo, hi in BEAM_BANDS:
        inb = (t["beam_at_transit_1400MHz"][pts] >= lo) & (t["beam_at_transit_1400MHz"][pts] < hi)
        med, sc = _robust(ratio[inb]) if inb.any() else (None, None)
        bands.append({"beam_lo": lo, "beam_hi": min(hi, 1.0), "n": int(inb.sum()), "median": med, "scatter": sc})
    res["flux_ratio_by_beam"] = bands
    bright = (esnr >= 20) & (sep <= radius) & (t["maj_arcsec"] == 0)
    med20 = _robust(fflux[j[bright]] / peak_true[bright])[0] if (found and bright.any()) else None
    res["flux_scale"] = med20
    offs = sep[good]
    res["offset_median_arcsec"] = float(np.median(offs)) if offs.size else None
    res["offset_p90_arcsec"] = float(np.percentile(offs, 90)) if offs.size else None
    res.update(_noise_ratios(img, wcs, truth, t, esnr, sigma_obs, bmaj / cell, obs_index))
    return res


def _noise_ratios(img, wcs, truth, t, esnr, sigma_obs, bmaj_pix, obs_index=None) -> dict:
    """Robust rms of image / radiometer noise in sampled pixels away from sources (clean)
    and within 30 arcmin of > 1 Jy sources (bright)."""
    step = 4
    ys, xs = np.mgrid[0:img.shape[0]:step, 0:img.shape[1]:step]
    ys, xs = ys.ravel(), xs.ravel()
    v = img[ys, xs]
    ok = np.isfinite(v)
    ys, xs, v = ys[ok], xs[ok], v[ok]
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    pc = SkyCoord(ra * u.deg, dec * u.deg)
    w2 = np.zeros(v.size)
    freq = 1.405e9
    pts = _pointings(truth)
    for pt in (pts if obs_index is None else pts[[obs_index]]):
        w2 += airy_power(pc.separation(pt).rad, freq) ** 2
    sig = sigma_obs / np.sqrt(np.maximum(w2, 1e-12))
    core = w2 >= 0.25 * w2.max()
    px, py = wcs.world_to_pixel_values(t["ra_deg"], t["dec_deg"])
    src = np.isfinite(px) & np.isfinite(py) & (esnr >= 3)
    near = np.zeros(v.size, bool)
    if src.any():
        d, _ = cKDTree(np.c_[px[src], py[src]]).query(np.c_[xs, ys])
        near = d < 3 * bmaj_pix
    bright = t["flux"] >= BRIGHT_JY
    close = np.zeros(v.size, bool)
    if bright.any():
        bc = SkyCoord(t["ra_deg"][bright] * u.deg, t["dec_deg"][bright] * u.deg)
        _, sep, _ = pc.match_to_catalog_sky(bc)
        close = sep.deg <= BRIGHT_RADIUS_DEG
    r = v / sig
    clean = core & ~near & ~close
    brt = ~near & close & (w2 >= 0.05 * w2.max())
    return {"noise_ratio_clean": _robust(r[clean])[1] if clean.sum() > 100 else None,
            "noise_ratio_bright": _robust(r[brt])[1] if brt.sum() > 100 else None,
            "sigma_radiometer_jy": float(sig[core].min()) if core.any() else None,
            "n_pixels_clean": int(clean.sum()), "n_pixels_bright": int(brt.sum())}


def find_images(home: Path) -> list[Path]:
    """Per-observation image records (``<obs>.image.json``) in staging."""
    return sorted((home / "staging" / "images").glob("*/*.image.json"))


def measure_image(record: Path, truth: dict, sigma_obs: float) -> dict | None:
    """An observation's primary-beam-corrected image with the imaging step's own source list;
    noise map = the image's noise / primary beam."""
    rec = json.loads(record.read_text())
    pbcor, pb = record.parent / rec["pbcor_fits"], record.parent / rec["pb_fits"]
    if not (pbcor.exists() and pb.exists()):
        return None
    beam = np.squeeze(fits.getdata(pb)).astype(float)
    noise = np.where(beam >= rec.get("pb_cutoff", 0.2), rec["noise_jy"] / np.maximum(beam, 1e-6), np.nan)
    found = [{"ra_deg": x["ra_deg"], "dec_deg": x["dec_deg"], "flux_jy": x["flux_jy"], "snr": x.get("snr")}
             for x in rec.get("sources", [])]
    start = Time(datetime.strptime(record.name.split(".")[0], "%Y%m%dT%H%M%S"), scale="utc").jd
    k = int(np.argmin([abs(o["start_jd"] - start) for o in truth["observations"]]))
    return measure_mosaic(pbcor, truth, sigma_obs, noise=noise, found=found,
                          list_name="imaging step's source list (image.json)", obs_index=k)


def measure_rfi(home: Path, truth: dict) -> dict:
    """Confusion counts of the MS FLAG column against the truth RFI mask (cross-correlations)."""
    plan = truth.get("instrument", {}).get("rfi")
    mss = sorted(p for p in (home / "staging").rglob("*.ms") if p.is_dir())
    if not plan or not mss:
        return {"rfi_recall": None, "rfi_false_fraction": None, "rfi_ms": len(mss)}
    from casacore.tables import table

    file_freqs = np.array(truth["bandpass"]["freqs_hz"])
    obs_times = [np.array(o["times_jd"]) for o in truth["observations"]]
    tp = fn = fp = tn = 0
    for ms in mss:
        with table(str(ms), ack=False) as tb:
            a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
            tjd = tb.getcol("TIME") / 86400.0 + 2400000.5
            ddid = tb.getcol("DATA_DESC_ID")
            flag = tb.getcol("FLAG").any(axis=2)  # (nrow, nchan)
        with table(str(ms / "DATA_DESCRIPTION"), ack=False) as dd:
            spw_of = dd.getcol("SPECTRAL_WINDOW_ID")
        with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as sw:
            chan_freq = sw.getcol("CHAN_FREQ")
        k = int(np.argmin([np.abs(ot - tjd.mean()).min() for ot in obs_times]))
        t_idx = np.argmin(np.abs(obs_times[k][None, :] - tjd[:, None]), axis=1)
        cross = a1 != a2
        for d in np.unique(ddid):
            rows = cross & (ddid == d)
            chans = np.argmin(np.abs(file_freqs[None, :] - chan_freq[spw_of[d]][:, None]), axis=1)
            m = simrfi.mask_for_rows(plan, k, t_idx[rows], a1[rows], a2[rows], chans)
            f = flag[rows]
            tp += int((f & m).sum())
            fn += int((~f & m).sum())
            fp += int((f & ~m).sum())
            tn += int((~f & ~m).sum())
    if tp + fp == 0:
        return {"rfi_recall": None, "rfi_false_fraction": None, "rfi_ms": len(mss), "rfi_note": "nothing flagged"}
    return {"rfi_recall": tp / max(tp + fn, 1), "rfi_false_fraction": fp / max(fp + tn, 1), "rfi_ms": len(mss),
            "rfi_flagged_fraction": (tp + fp) / max(tp + fp + fn + tn, 1)}


def _measure_images(home: Path, truth: dict, sigma_obs: float) -> dict:
    """No mosaic yet: the figures of each observation's image, medians over images."""
    per = [r for r in (measure_image(p, truth, sigma_obs) for p in find_images(home)) if r]
    res = {"mosaics": 0, "mode": "per-observation images (no mosaic)", "images": len(per),
           "observed_s": float(sum((o["end_jd"] - o["start_jd"]) * 86400 for o in truth["observations"]))}
    keys = ("completeness_5sigma", "completeness_10sigma", "false_fraction_5sigma", "false_fraction_10sigma",
            "offset_median_arcsec", "offset_p90_arcsec", "noise_ratio_clean", "noise_ratio_bright",
            "n_truth_5sigma", "n_detections_5sigma", "sigma_radiometer_jy")
    for k in keys:
        vals = [r[k] for r in per if r.get(k) is not None]
        res[k] = float(np.median(vals)) if vals else None
    ratios = np.concatenate([np.array(r["flux_ratios"]) for r in per]) if per else np.array([])
    res["flux_ratio_median"], res["flux_ratio_scatter"] = _robust(ratios)
    scales = [abs(r["flux_scale"] - 1) for r in per if r["flux_scale"] is not None]
    res["flux_scale_error_max"] = max(scales) if scales else None
    res["source_list"] = per[0]["source_list"] if per else None
    res["per_image"] = [{k: v for k, v in r.items() if k not in ("flux_ratios", "int_flux_ratios")} for r in per]
    bands = []
    for b in range(len(BEAM_BANDS)):
        n = sum(r["flux_ratio_by_beam"][b]["n"] for r in per)
        meds = [r["flux_ratio_by_beam"][b]["median"] for r in per if r["flux_ratio_by_beam"][b]["median"] is not None]
        bands.append({"beam_lo": BEAM_BANDS[b][0], "beam_hi": min(BEAM_BANDS[b][1], 1.0), "n": n,
                      "median": float(np.median(meds)) if meds else None, "scatter": None})
    res["flux_ratio_by_beam"] = bands
    res.update(measure_rfi(home, truth))
    res["sigma_obs_natural_jy"] = sigma_obs
    return res


def flux_trend(home: Path, truth: dict, sigma_obs: float) -> dict:
    """The calibration issue's flux-scale trend from the images themselves: per observation,
    the median catalogue peak / true peak of point sources above 20 sigma (``flux_scale``)
    against the time from the transit that set its amplitudes (state provenance), and the
    least-squares slopes against |dt| and dt in % per 30 minutes."""
    from contimg.state import Database, calibration

    db = Database(home / "state.sqlite3")
    rows = []
    for rec in find_images(home):
        obs_id = rec.name.split(".")[0]
        r = measure_image(rec, truth, sigma_obs)
        prov = calibration.provenance(db, obs_id) or {}
        tab = (prov.get("tables") or {})
        amp = tab.get("amplitude") or tab.get("gain")
        if not r or r.get("flux_scale") is None or not amp:
            continue
        start = Time(datetime.strptime(obs_id, "%Y%m%dT%H%M%S"), scale="utc").jd
        o = min(truth["observations"], key=lambda x: abs(x["start_jd"] - start))
        mid_mjd = 0.5 * (o["start_jd"] + o["end_jd"]) - 2400000.5
        rows.append({"observation": obs_id, "dt_min": round((mid_mjd - amp["transit_mjd"]) * 1440.0, 2),
                     "amp_calibrator": amp["calibrator"], "flux_scale": round(float(r["flux_scale"]), 4)})
    out = {"per_observation": rows}
    if len(rows) >= 3:
        dt = np.array([x["dt_min"] for x in rows])
        f = np.array([x["flux_scale"] for x in rows])
        out["slope_abs_pct_per_30min"] = round(float(np.polyfit(np.abs(dt), f, 1)[0]) * 3000.0, 3)
        out["slope_pct_per_30min"] = round(float(np.polyfit(dt, f, 1)[0]) * 3000.0, 3)
        out["scale_median"] = round(float(np.median(f)), 4)
    return out


def measure(home: Path) -> dict:
    truth, _ = load_truth(home)
    mosaics, published = find_mosaics(home)
    sigma_obs = radiometer_sigma(truth)
    if not mosaics:
        return _measure_images(home, truth, sigma_obs)
    res = {k: None for k in ("completeness_5sigma", "completeness_10sigma", "false_fraction_5sigma",
                             "false_fraction_10sigma", "flux_ratio_median", "flux_ratio_scatter",
                             "offset_median_arcsec", "offset_p90_arcsec", "noise_ratio_clean",
                             "noise_ratio_bright", "flux_scale_error_max")}
    res["observed_s"] = float(sum((o["end_jd"] - o["start_jd"]) * 86400 for o in truth["observations"]))
    res["mosaics"] = len(mosaics)
    res["mosaics_published"] = published
    per = [measure_mosaic(p, truth, sigma_obs) for p in mosaics]
    res["per_mosaic"] = [{k: v for k, v in r.items() if k not in ("flux_ratios", "int_flux_ratios")} for r in per]
    if per:
        first = per[0]
        for k in ("completeness_5sigma", "completeness_10sigma", "false_fraction_5sigma", "false_fraction_10sigma",
                  "offset_median_arcsec", "offset_p90_arcsec", "noise_ratio_clean", "noise_ratio_bright",
                  "flux_ratio_by_beam", "n_truth_5sigma", "n_detections_5sigma", "sigma_radiometer_jy",
                  "source_list"):
            res[k] = first.get(k)
        ratios = np.concatenate([np.array(r["flux_ratios"]) for r in per])
        res["flux_ratio_median"], res["flux_ratio_scatter"] = _robust(ratios)
        iratios = np.concatenate([np.array(r["int_flux_ratios"]) for r in per])
        res["int_flux_ratio_median"], res["int_flux_ratio_scatter"] = _robust(iratios)
        scales = [abs(r["flux_scale"] - 1) for r in per if r["flux_scale"] is not None]
        res["flux_scale_error_max"] = max(scales) if scales else None
    res.update(measure_rfi(home, truth))
    res["sigma_obs_natural_jy"] = sigma_obs
    res["flux_trend"] = flux_trend(home, truth, sigma_obs)
    return res
