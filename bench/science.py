"""Science benchmark: one simulated hour of realistic sky through the whole pipeline,
measured against the simulator's truth (issue 12; figures and definitions: docs/science.md).

    python bench/science.py [--seed 2] [--json] [--json-out FILE] [--keep] [--home DIR]

Runs `contimg init`, `contimg simulate --sky realistic`, `contimg watch --once` as
subprocesses in a temporary state directory with the configuration in CONFIG, then
reads the published mosaic(s) and the Measurement Sets' FLAG column and prints one
table (or, with --json, one JSON object). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from science_measure import measure  # noqa: E402

# The pipeline configuration of the benchmark, explicit: anything not named is the default.
CONFIG = """\
# contimg configuration of bench/science.py
[ingest]
settle_s = 0.0            # the simulator's files are complete when renamed
incomplete_wait_s = 60.0
[calibrate]
min_beam_jy = 2.0         # accept the calibrator a little off the beam peak
[mosaic]
n = 10                    # one mosaic of the ten observations
"""

KEYS = ("completeness_5sigma", "completeness_10sigma", "false_fraction_5sigma", "false_fraction_10sigma",
        "flux_ratio_median", "flux_ratio_scatter", "int_flux_ratio_median", "offset_median_arcsec", "offset_p90_arcsec",
        "noise_ratio_clean", "noise_ratio_bright", "flux_scale_error_max", "rfi_recall", "rfi_false_fraction",
        "wall_s", "observed_s")
MAX_WAIT_S = 660.0  # longest sleep between watch rounds (calibrate.recheck_s is 600 s)


def contimg(home: Path, *args: str, log=None, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("contimg")
    cmd = [str(exe) if exe.exists() else "contimg", "--home", str(home), *args]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log is not None:
        log.write(f"$ {' '.join(cmd)}\n{out.stdout}\n")
        log.flush()
    if check and out.returncode != 0:
        raise SystemExit(f"science: {' '.join(cmd[1:])} failed (exit {out.returncode}); see {home}/science.log\n"
                         + out.stdout[-2000:])
    return out


def say(msg: str) -> None:
    print(f"science: {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def _pending(home: Path) -> tuple[int, float]:
    """Jobs still pending (deferred ones included) and the shortest wait before one is due."""
    out = contimg(home, "status", "--json", check=False).stdout
    try:
        st = json.loads(out)
    except ValueError:
        return 0, 0.0
    n = sum(c.get("pending", 0) for c in st.get("counts", {}).values())
    waits = [w.get("next_attempt_in_s") or 0.0 for w in st.get("waiting", [])]
    return n, min(waits) if waits else 0.0


def watch_until_idle(home: Path, workers: int, log, max_rounds: int = 6) -> int:
    """`contimg watch --once` ends when no job is due; a job deferred until later (waiting
    for a calibrator solution, for disk space) would then be left behind, so run it again
    (after the wait, at most MAX_WAIT_S) while jobs are pending, as cron would."""
    for rnd in range(1, max_rounds + 1):
        say(f"contimg watch --once (round {rnd})")
        contimg(home, "watch", "--once", "--workers", str(workers), log=log, check=False)
        n, wait = _pending(home)
        if n == 0:
            return rnd
        say(f"{n} job(s) still pending; next due in {wait:.0f} s")
        time.sleep(min(max(wait, 1.0), MAX_WAIT_S))
    return max_rounds


def run_pipeline(home: Path, args) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    (home / "contimg.toml").write_text(CONFIG)
    timings = {}
    with open(home / "science.log", "a") as log:
        contimg(home, "init", log=log)
        say(f"simulating {args.observations} observations (seed {args.seed}) in {home}")
        t0 = time.time()
        contimg(home, "simulate", "--out", str(home / "incoming"), "--sky", "realistic", "--seed", str(args.seed),
                "--nants", str(args.nants), "--nchan", str(args.nchan), "--observations", str(args.observations),
                "--flux-floor", str(args.flux_floor), "--workers", str(args.workers), log=log)
        timings["simulate_s"] = time.time() - t0
        if args.refcat:
            # the survey-like reference catalogue the simulator wrote beside the truth, as a
            # site would name NVSS: per-observation phase calibration against it
            refcat = sorted((home / "incoming").glob("*_refcat.csv"))[0]
            with open(home / "contimg.toml", "a") as cfg:
                cfg.write(f'[sky_model]\ncatalogue = "{refcat}"\n')
        past = time.time() - 120
        for f in (home / "incoming").glob("*.hdf5"):
            os.utime(f, (past, past))
        t1 = time.time()
        rounds = watch_until_idle(home, args.workers, log)
        timings["pipeline_s"] = time.time() - t1
        timings["watch_rounds"] = rounds
        status = contimg(home, "status", log=log, check=False).stdout
        products = contimg(home, "publish", "--list", "--json", log=log, check=False).stdout
    timings["status"] = status
    try:
        timings["products"] = json.loads(products)
    except ValueError:
        timings["products"] = None
    return timings


def render(res: dict) -> str:
    def fmt(v):
        if v is None:
            return "n/a"
        if isinstance(v, (list, tuple)):
            return ", ".join(fmt(x) for x in v)
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1 else (f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}")
        return str(v)
    lines = [f"{'figure':32s} value"]
    lines += [f"{k:32s} {fmt(res.get(k))}" for k in KEYS]
    for band in res.get("flux_ratio_by_beam", []):
        lines.append(f"  flux ratio, beam {band['beam_lo']:.2f}-{band['beam_hi']:.2f}"
                     f"{'':6s} median {fmt(band['median'])} scatter {fmt(band['scatter'])} (n={band['n']})")
    for k in ("mode", "images", "n_truth_5sigma", "n_detections_5sigma", "sigma_radiometer_jy",
              "sigma_obs_natural_jy", "source_list", "mosaics", "mosaics_published", "rfi_flagged_fraction",
              "simulate_s", "pipeline_s", "watch_rounds", "load_avg"):
        if k in res:
            lines.append(f"{k:32s} {fmt(res[k])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--nants", type=int, default=48)
    p.add_argument("--nchan", type=int, default=8)
    p.add_argument("--observations", type=int, default=10)
    p.add_argument("--flux-floor", type=float, default=2e-3, help="simulator's apparent-flux floor, Jy")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--refcat", action="store_true",
                   help="set sky_model.catalogue to the simulated reference catalogue (per-observation phase calibration)")
    p.add_argument("--home", type=Path, default=None, help="state directory (kept); default a temporary one")
    p.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    p.add_argument("--measure-only", action="store_true", help="only measure an existing --home")
    p.add_argument("--json", action="store_true")
    p.add_argument("--json-out", type=Path, default=None, help="also write the JSON object to this file")
    args = p.parse_args(argv)
    t0 = time.time()
    home = args.home or Path(tempfile.mkdtemp(prefix="contimg-science-"))
    try:
        timings = {} if args.measure_only else run_pipeline(home, args)
        say("measuring the products against the truth")
        res = measure(home)
        res.update({k: v for k, v in timings.items() if k in ("simulate_s", "pipeline_s", "watch_rounds")})
        res["wall_s"] = time.time() - t0
        res["seed"] = args.seed
        res["load_avg"] = list(os.getloadavg())  # the machine's load at the end: times depend on it
        res["config"] = {"nants": args.nants, "nchan": args.nchan, "observations": args.observations,
                         "flux_floor_jy": args.flux_floor, "workers": args.workers, "refcat": args.refcat,
                         "pipeline_config": (home / "contimg.toml").read_text() if (home / "contimg.toml").exists()
                         else CONFIG}
        if args.json_out is not None:
            args.json_out.write_text(json.dumps(res, default=float) + "\n")
        if args.json:
            print(json.dumps(res, default=float))
        else:
            print(render(res))
            if timings.get("status"):
                print("\n" + timings["status"])
    finally:
        if args.home is None and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        elif args.home is None:
            print(f"state directory kept: {home}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
