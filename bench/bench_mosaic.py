"""Benchmark: contimg.mosaicking.combine on one realistic hour of DSA-110 tiles.

Usage:  python bench/bench_mosaic.py [--cache DIR] [--tiles 12] [--nx 3456] [--ny 3000]
                                     [--cell 5.3] [--dec 55] [--repeat 1] [--workers 2] [--json]

Runs the old combine (reproject_interp per pixel, MosaicOptions(regrid="reproject"))
and the new one (coarse pixel map, regrid="coarse", --workers processes) side by side
on the same tiles, without the catalogue (find_sources=False: the same for both), and
compares the mosaics at every injected source above 10 sigma: peak flux and peak
pixel. --catalogue also times PyBDSF's catalogue and QA of the new mosaic.
--json prints {"old": {...}, "new": {...}, "max_flux_diff": ..., ...}.

Tiles are made once into --cache (not timed): the size contimg.imaging chooses at
dec 55 (3456 x 3000 pixels of 5.3 arcsec: the pb >= 0.2 field of the HA- and
band-averaged beam plus 5 %), one every 309 s (1.2875 deg of RA), CASA-style 4-D
float32 FITS, the effective beam of a 4.65 m dish averaged over the drift, noise
correlated on the beam scale and ~300 point sources. combine() then runs in a
child process, so that its peak RSS (ru_maxrss via os.wait4) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DRIFT_DEG = 309.0 / 240.0
FREQ = 1.405e9
BEAM = (18.0, 13.0, 20.0)  # arcsec, arcsec, deg: about DSA-110's robust-0 beam


def make_tiles(d: Path, n_tiles: int, nx: int, ny: int, cell: float, dec0: float) -> list[dict]:
    """Write the tiles (image + pb) and a JSON list of Tile fields; reused when present."""
    index = d / "tiles.json"
    if index.exists() and (d / "sources.json").exists():
        return json.loads(index.read_text())
    from astropy.io import fits
    from astropy.wcs import WCS
    from scipy.signal import fftconvolve

    from contimg.astro.beam import airy_power

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    ra_c = 150.0 + (np.arange(n_tiles) - (n_tiles - 1) / 2) * DRIFT_DEG
    n_src = 300
    src_ra = rng.uniform(ra_c[0] - 2, ra_c[-1] + 2, n_src)
    src_dec = dec0 + rng.uniform(-2, 2, n_src)
    src_s = 0.005 * rng.pareto(1.2, n_src) + 0.005
    k = np.arange(-15, 16)
    pa = np.radians(BEAM[2])

    def psf(dx, dy):
        a, b = -dx * np.sin(pa) + dy * np.cos(pa), dx * np.cos(pa) + dy * np.sin(pa)
        return np.exp(-4 * np.log(2) * ((a * cell / BEAM[0]) ** 2 + (b * cell / BEAM[1]) ** 2))

    kern = psf(k[None, :], k[:, None])
    out = []
    for i, rc in enumerate(ra_c):
        t0 = time.monotonic()
        w = WCS(naxis=4)
        w.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
        w.wcs.crval = [rc, dec0, FREQ, 1.0]
        w.wcs.cdelt = [-cell / 3600, cell / 3600, 1.875e8, 1.0]
        w.wcs.crpix = [nx / 2 + 1, ny / 2 + 1, 1, 1]
        w.wcs.radesys = "FK5"
        w.wcs.equinox = 2000.0
        cel = w.celestial
        yy, xx = np.mgrid[0:ny, 0:nx]
        ra, dec = (np.radians(v) for v in cel.pixel_to_world_values(xx, yy))
        pb = np.zeros((ny, nx))
        d0 = np.radians(dec0)
        for off in (np.arange(8) + 0.5) / 8 * DRIFT_DEG - DRIFT_DEG / 2:
            c = np.sin(dec) * np.sin(d0) + np.cos(dec) * np.cos(d0) * np.cos(ra - np.radians(rc + off))
            pb += airy_power(np.arccos(np.clip(c, -1, 1)), FREQ) / 8
        del ra, dec, xx, yy
        noise = 5e-4 * (1 + 0.03 * i)
        img = fftconvolve(rng.normal(size=(ny, nx)).astype(np.float32), kern.astype(np.float32), mode="same")
        img *= noise / img.std()
        sx, sy = cel.world_to_pixel_values(src_ra, src_dec)
        for x0, y0, s in zip(sx, sy, src_s):
            ix, iy = round(float(x0)), round(float(y0))
            if 15 <= ix < nx - 15 and 15 <= iy < ny - 15:
                ys, xs = np.mgrid[iy - 15:iy + 16, ix - 15:ix + 16]
                img[iy - 15:iy + 16, ix - 15:ix + 16] += s * pb[iy, ix] * psf(xs - x0, ys - y0)
        h = w.to_header()
        h["BUNIT"], h["BMAJ"], h["BMIN"], h["BPA"] = "Jy/beam", BEAM[0] / 3600, BEAM[1] / 3600, BEAM[2]
        name = f"obs{i:02d}"
        ip, pp = d / f"{name}.image.fits", d / f"{name}.pb.fits"
        fits.PrimaryHDU(img.astype(np.float32)[None, None], h).writeto(ip, overwrite=True)
        fits.PrimaryHDU(pb.astype(np.float32)[None, None], h).writeto(pp, overwrite=True)
        out.append({"name": name, "image_fits": str(ip), "pb_fits": str(pp), "noise_jy": noise,
                    "beam_major_arcsec": BEAM[0], "beam_minor_arcsec": BEAM[1], "beam_pa_deg": BEAM[2],
                    "freq_hz": FREQ, "cell_arcsec": cell, "dec_deg": dec0})
        print(f"made tile {i + 1}/{n_tiles} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    (d / "sources.json").write_text(json.dumps([
        {"name": f"s{j:03d}", "ra_deg": float(r), "dec_deg": float(de), "flux_jy": float(f), "spectral_index": 0.0}
        for j, (r, de, f) in enumerate(zip(src_ra, src_dec, src_s))]))
    index.write_text(json.dumps(out))
    return out


def child(tiles_json: Path, out: Path, regrid: str, workers: int = 1) -> dict:
    """combine() without the catalogue (timed: regridding, sums, FITS and PNG), or with
    regrid='catalogue' the PyBDSF catalogue and QA of the new combine."""
    from contimg.mosaicking import MosaicOptions, Tile, combine

    tiles = [Tile(**t) for t in json.loads(tiles_json.read_text())]
    catalogue = json.loads((tiles_json.parent / "sources.json").read_text())
    find = regrid == "catalogue"
    opts = MosaicOptions(regrid="coarse" if find else regrid, workers=workers, find_sources=find)
    t0 = time.monotonic()
    r = combine(tiles, out, "bench_mosaic", opts, catalogue=catalogue if find else None)
    wall = time.monotonic() - t0
    res = {"wall_s": round(wall, 1), "timings": r.timings, "shape": r.footprint["shape"],
           "area_deg2": round(r.footprint["area_deg2"], 1), "noise_jy": r.noise_jy,
           "mosaic_mb": round(r.mosaic_fits.stat().st_size / 1e6, 1), "mosaic": str(r.mosaic_fits)}
    if find:
        cat = r.qa["catalogue"]
        res.update(n_sources=len(r.sources), qa=r.qa["status"], qa_failed=r.qa["failed"],
                   false_detection_fraction=r.qa["false_detection_fraction"],
                   catalogue={k: cat[k] for k in ("n_expected", "n_matched", "flux_ratio_median",
                                                  "offset_arcsec_median", "offset_arcsec_max")})
    return res


def peaks_at_sources(mosaic: Path, sources: list[dict]) -> dict:
    """Peak value and its pixel (5x5 box) at every injected source inside the mosaic."""
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(mosaic) as h:
        img, w = h[0].data, WCS(h[0].header).celestial
    ra = np.array([s["ra_deg"] for s in sources])
    dec = np.array([s["dec_deg"] for s in sources])
    px, py = w.world_to_pixel_values(ra, dec)
    out = {}
    for s, x, y in zip(sources, px, py):
        ix, iy = int(round(float(x))), int(round(float(y)))
        if not (2 <= ix < img.shape[1] - 2 and 2 <= iy < img.shape[0] - 2):
            continue
        box = img[iy - 2:iy + 3, ix - 2:ix + 3]
        if not np.isfinite(box).all() or box.max() <= 0:
            continue
        k = int(np.argmax(box))
        out[s["name"]] = (float(box.max()), iy - 2 + k // 5, ix - 2 + k % 5)
    return out


def run_child(d: Path, out: Path, regrid: str, tile_mb: float, tiles: list, shape: list, workers: int) -> dict:
    """One combine in a child process, so that ru_maxrss is its own (workers: forked)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(d / "tiles.json"), str(out), regrid,
                             str(workers)],
                            stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"{regrid} child failed with status {status}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res.update(regrid=regrid, workers=workers, tiles=len(tiles), tile_shape=shape, input_mb=round(tile_mb),
               peak_rss_mb=round(ru.ru_maxrss / 1024), cpu_s=round(ru.ru_utime + ru.ru_stime, 1))
    return res


def compare(old: dict, new: dict, sources: list[dict], min_peak: float) -> dict:
    """Peak flux (relative) and peak-pixel position differences at the injected sources
    whose peak is above ``min_peak`` (10 sigma) in both mosaics."""
    po, pn = peaks_at_sources(Path(old["mosaic"]), sources), peaks_at_sources(Path(new["mosaic"]), sources)
    common = [k for k in po if k in pn and min(po[k][0], pn[k][0]) > min_peak]
    fd = [abs(pn[k][0] / po[k][0] - 1) for k in common]
    moved = sum((po[k][1], po[k][2]) != (pn[k][1], pn[k][2]) for k in common)
    return {"n_compared": len(common), "max_flux_diff": float(f"{max(fd):.3g}") if fd else None,
            "median_flux_diff": float(f"{np.median(fd):.3g}") if fd else None,
            "peak_pixel_moved": int(moved), "speedup": round(old["wall_s"] / new["wall_s"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/contimg-bench-mosaic"))
    ap.add_argument("--tiles", type=int, default=12)
    ap.add_argument("--nx", type=int, default=3456)
    ap.add_argument("--ny", type=int, default=3000)
    ap.add_argument("--cell", type=float, default=5.3)
    ap.add_argument("--dec", type=float, default=55.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--catalogue", action="store_true", help="also time PyBDSF's catalogue of the mosaic")
    ap.add_argument("--workers", type=int, default=2, help="regridding processes of the new combine")
    ap.add_argument("--child", nargs=4, metavar=("TILES_JSON", "OUT", "REGRID", "WORKERS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(Path(a.child[0]), Path(a.child[1]), a.child[2], int(a.child[3]))))
        return
    d = a.cache / f"{a.tiles}x{a.nx}x{a.ny}_c{a.cell}_d{a.dec}"
    tiles = make_tiles(d, a.tiles, a.nx, a.ny, a.cell, a.dec)
    tile_mb = sum(os.path.getsize(t["image_fits"]) + os.path.getsize(t["pb_fits"]) for t in tiles) / 1e6
    runs = {"old": [], "new": []}
    for _ in range(a.repeat):
        for key, regrid, workers in (("old", "reproject", 1), ("new", "coarse", a.workers)):
            runs[key].append(run_child(d, a.cache / f"out_{key}", regrid, tile_mb, tiles, [a.ny, a.nx], workers))
    med = {k: float(np.median([r["wall_s"] for r in v])) for k, v in runs.items()}
    old, new = (dict(runs[k][-1], wall_s=med[k]) for k in ("old", "new"))
    sources = json.loads((d / "sources.json").read_text())
    cmp = compare(old, new, sources, 10 * new["noise_jy"])
    cat = run_child(d, a.cache / "out_cat", "catalogue", tile_mb, tiles, [a.ny, a.nx], a.workers) \
        if a.catalogue else None
    if a.json:
        print(json.dumps({"old": old, "new": new, **cmp, "catalogue": cat}))
        return
    keys = ["wall_s", "workers", "cpu_s", "peak_rss_mb", "timings", "shape", "noise_jy"]
    print(f"{len(tiles)} tiles of {a.ny} x {a.nx}, median of {a.repeat} run(s)")
    print(f"{'':24s} {'old (reproject)':>40s}   {'new (coarse map)':>40s}")
    for k in keys:
        print(f"{k:24s} {json.dumps(old.get(k))[:40]:>40s}   {json.dumps(new.get(k))[:40]:>40s}")
    print(json.dumps(cmp))
    if cat:
        print("catalogue and QA of the new mosaic (PyBDSF):", json.dumps(cat))


if __name__ == "__main__":
    main()
