"""The mosaic source finder's two background/rms methods, side by side on one mosaic.

    python bench/bench_finder.py HOME [--json]

HOME is a state directory of a finished simulated run (``make science SCIENCE_ARGS=--keep``
or the end-to-end test's): its mosaic, noise map and the simulator's truth manifest.
Both methods run PyBDSF in this process on the same mosaic, one after the other:
``bdsf`` (PyBDSF's own adaptive rms box, the previous default) and ``box``
(contimg.catalogs.background). Printed per method: wall time, number of sources, and
completeness, false-detection fraction, flux ratio and offsets against the truth,
computed exactly as bench/science.py does (docs/science.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from science_measure import find_mosaics, load_truth, measure_mosaic, radiometer_sigma  # noqa: E402

from contimg.catalogs.finder import FinderOptions, find_sources  # noqa: E402

KEYS = ("wall_s", "n_sources", "completeness_5sigma", "completeness_10sigma", "false_fraction_5sigma",
        "false_fraction_10sigma", "flux_ratio_median", "flux_ratio_scatter", "int_flux_ratio_median",
        "offset_median_arcsec", "offset_p90_arcsec")


def run(home: Path) -> dict:
    truth, _ = load_truth(home)
    mosaics, _ = find_mosaics(home)
    if not mosaics:
        raise SystemExit(f"bench_finder: no mosaic under {home} (products/ or staging/)")
    path = mosaics[0]
    with fits.open(path) as h:
        img, hdr = np.squeeze(h[0].data).astype(np.float32), h[0].header
    noise = np.squeeze(fits.getdata(path.with_name(path.name[:-5] + ".noise.fits"))).astype(np.float32)
    sigma_obs = radiometer_sigma(truth)
    out = {"mosaic": path.name, "shape": list(img.shape)}
    for method in ("bdsf", "box"):
        t0 = time.perf_counter()
        found = find_sources(img, hdr, FinderOptions(background=method), noise_floor=noise)
        wall = time.perf_counter() - t0
        rows = [{"ra_deg": r["ra_deg"], "dec_deg": r["dec_deg"], "flux_jy": r["peak_jy"], "snr": r["snr"],
                 "int_flux_jy": r["int_flux_jy"]}
                for r in found.rows()]
        m = measure_mosaic(path, truth, sigma_obs, noise=noise, found=rows, list_name=method)
        out[method] = {"wall_s": round(wall, 1), "n_sources": len(found), "n_negative": found.n_negative,
                       **{k: m.get(k) for k in KEYS[2:]}}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    res = run(a.home)
    if a.json:
        print(json.dumps(res))
        return
    print(f"{res['mosaic']} {res['shape'][1]} x {res['shape'][0]} px")
    print(f"{'':24s}{'bdsf (old)':>14s}{'box (new)':>14s}")
    for k in KEYS + ("n_negative",):
        cells = [res[m].get(k) for m in ("bdsf", "box")]
        print(f"{k:24s}" + "".join(f"{c:>14.3f}" if isinstance(c, float) else f"{str(c):>14s}" for c in cells))


if __name__ == "__main__":
    main()
