"""One typed configuration: defaults < TOML file < CONTIMG_* environment < flags.

Every option is declared once in ``OPTIONS`` (section, name, type, default, help),
so the loader, ``contimg config`` and the sample ``contimg.toml`` cannot disagree.
Each effective value remembers where it came from, because "why is it using that
directory?" is the first question an operator asks.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


class ConfigError(ValueError):
    """A bad configuration value or key (exit code 2)."""


@dataclass(frozen=True)
class Option:
    """One option.  ``lo``/``hi`` bound a number (``lo_open``: strictly above ``lo``);
    ``choices`` lists the allowed strings.  Numbers are always finite."""

    section: str
    name: str
    type: type
    default: Any
    help: str
    lo: float | None = 0
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env(self) -> str:
        return f"CONTIMG_{self.section}_{self.name}".upper()


# Paths default to None: they are then derived from the state directory.
OPTIONS: tuple[Option, ...] = (
    Option("paths", "incoming", Path, None, "where subband files arrive (read only); default <home>/incoming"),
    Option("paths", "staging", Path, None, "where every product is made; default <home>/staging"),
    Option("paths", "products", Path, None, "where products are published; default <home>/products"),
    Option("ingest", "group_tolerance_s", float, 60.0, "subbands whose start times differ by at most this are one observation"),
    Option("ingest", "min_subbands", int, 12, "an observation with fewer subbands after the wait is marked incomplete", lo=1, hi=1024),
    Option("ingest", "incomplete_wait_s", float, 900.0, "how long to wait for missing subbands after the last one arrived"),
    Option("ingest", "settle_s", float, 5.0, "a file modified more recently than this is still being written"),
    Option("ingest", "follow_symlinks", bool, False, "read files through symlinks that point outside the directory scanned and the incoming directory (default: refused, recorded as quarantined)"),
    Option("jobs", "max_attempts", int, 5, "failures before a job is dead (needs contimg retry)", lo=1, hi=1000),
    Option("jobs", "backoff_base_s", float, 30.0, "first retry delay; doubles with every failure"),
    Option("jobs", "backoff_max_s", float, 3600.0, "longest retry delay"),
    Option("jobs", "lease_s", float, 900.0, "a claimed job is taken over by another worker after this", lo_open=True),
    Option("watch", "executor", str, "local", "where watch runs each step's work: local (child processes here) or dask (a Dask cluster; docs/scaling.md)", choices=("local", "dask")),
    Option("watch", "scheduler", str, "", "dask: the scheduler address (tcp://HOST:8786); empty: a LocalCluster of watch --workers processes on this host"),
    Option("disk", "reserve_gb", float, 2.0, "convert, calibrate, image and mosaic wait (deferred, shown in status) while staging would keep less free space than this after the job"),
    Option("disk", "recheck_s", float, 300.0, "how often a job waiting for disk space is rechecked"),
    Option("disk", "prune", bool, True, "watch removes Measurement Sets whose mosaics are all published (false: never; subband files are always kept)"),
    Option("disk", "keep_ms_h", float, 24.0, "how long after the last of its mosaics was published a Measurement Set is kept"),
    Option("convert", "nsubbands", int, 16, "subbands per observation", lo=1, hi=1024),
    Option("calibrate", "refants", list, [], "reference antenna names in priority order (empty: built-in list)"),
    Option("calibrate", "bandpass_valid_h", float, 12.0, "bandpass solutions apply this many hours either side of the transit"),
    Option("calibrate", "gain_valid_h", float, 1.0, "gain solutions apply this many hours either side of the transit"),
    Option("calibrate", "max_offset_deg", float, 2.0, "calibrators within this many degrees of the pointing declination"),
    Option("calibrate", "min_beam_jy", float, 5.0, "a calibrator needs at least this beam-weighted flux density (lower it where no bright calibrator transits)"),
    Option("calibrate", "recheck_s", float, 600.0, "how often an observation waiting for a solution is rechecked"),
    Option("calibrate", "uv_min_lambda", float, 100.0, "baselines shorter than this many wavelengths are left out of the calibrator solve", lo=0.0),
    Option("calibrate", "flux_calibrators", list, ["3C286", "3C48", "3C147", "3C138"], "calibrators whose gain amplitudes set the flux scale (Perley-Butler 2017); others give bandpass and phase only"),
    Option("calibrate", "amplitude_valid_h", float, 12.0, "a flux-scale calibrator's gain amplitudes apply this many hours either side of its transit", lo_open=True),
    Option("flag", "engine", str, "aoflagger", "RFI flagger run before calibration: aoflagger (its library), casa (flagdata tfcrop+rflag) or none", choices=("aoflagger", "casa", "none")),
    Option("flag", "strategy", str, "generic-default", "AOFlagger strategy: a packaged name (e.g. generic-default) or a .lua file"),
    Option("flag", "base_threshold", float, 1.6, "AOFlagger sensitivity set in the strategy (lower flags more; the packaged default 1.0 flagged 9 % of clean data on the realistic sky); 0 keeps the strategy's own", lo=0.0),
    Option("flag", "time_sigma_s", float, 40.0, "width in time of AOFlagger's background fit, s (the packaged strategy's ~97 s is flat over a 309 s observation and flagged its first and last integrations and the neighbours of bursts); 0 keeps the strategy's own", lo=0.0),
    Option("flag", "freq_dilation", float, 0.05, "AOFlagger's scale-invariant dilation level in frequency (the packaged 0.2 grew broad-band bursts by a quarter of their width into clean channels); below 0 keeps the strategy's own", lo=-1.0, hi=0.9),
    Option("calibrate", "autocorr_amplitude", bool, True, "follow each antenna's gain amplitude from the flux-scale transit to the observation with its autocorrelation power (sqrt of the ratio, applied as an amplitude-only table); a change of system temperature reads as a gain change (docs/calibration.md)"),
    Option("calibrate", "autocorr_max_change", float, 0.2, "an autocorrelation amplitude correction further than this fraction from 1 is not trusted: that antenna keeps 1 (counted as held)", lo=0.0, lo_open=True),
    Option("calibrate", "phase_solint_s", float, 26.0, "per-observation phase-only calibration against sky_model.catalogue: one solution per this many seconds (two 12.9 s integrations: the simulated 7 deg phase noise left 3.4 deg rms at 60 s, 1.9 at 26 s, 1.7 at 13 s; docs/calibration.md)", lo_open=True),
    Option("sky_model", "catalogue", Path, None, "reference catalogue (CSV or FITS: ra_deg, dec_deg, flux_jy[, spectral_index]) for per-observation phase calibration; unset: none; unreadable: none, with a warning in status"),
    Option("image", "robust", float, 0.0, "Briggs robust parameter (-2 uniform-like .. 2 natural-like)", lo=-2.0, hi=2.0),
    Option("image", "backend", str, "tclean", "imaging engine: tclean (CASA, the default; capped CLEAN) or ducc (ducc0 2-D gridder + radler CLEAN to 2 sigma in an auto-mask, drift model, phase self-calibration: meets the catalogue bounds, not yet pixel-identical between runs; docs/imaging.md)", choices=("tclean", "ducc")),
    Option("image", "niter", int, 0, "maximum CLEAN iterations (0: the backend's default, tclean 1000, ducc 100000 as a guard only)", hi=10**9),
    Option("image", "threshold_sigma", float, 0.0, "CLEAN down to this many times the measured noise (0: the backend's default, tclean 4, ducc 2)"),
    Option("image", "mask_sigma", float, 4.0, "ducc: the automatic CLEAN mask holds components found down to this many times the noise", lo=0.5, hi=100.0),
    Option("image", "time_intervals", int, 6, "ducc: model an observation as this many time intervals, because sources drift through the primary beam (1 = a constant sky)", lo=1, hi=24),
    Option("image", "drift", str, "beam", "ducc: how the intervals are modelled: beam (one image per sub-band, each interval predicted through its primary beam) or images (cleaned jointly, one PSF each; memory grows with the intervals)", choices=("beam", "images")),
    Option("image", "selfcal", bool, True, "ducc: one round of phase-only self-calibration against the observation's own CLEAN model (in memory; the flux scale stays the calibrator's), then CLEAN starts again on the corrected data"),
    Option("image", "selfcal_solint_s", float, 60.0, "ducc self-calibration: one phase per antenna per this many seconds", lo_open=True),
    Option("image", "selfcal_min_phase_deg", float, 1.0, "ducc self-calibration: applied (and CLEAN restarted) only if the solved phases scatter by more than this (rms) and more than twice their own noise", lo=0.0),
    Option("image", "selfcal_model_sigma", float, 10.0, "ducc self-calibration: its model is CLEANed only down to this many times the noise, so that sidelobes made by the phase errors stay out of it", lo_open=True),
    Option("image", "max_cycles", int, 10, "major cycles at most (each one a full degrid + grid); the image record says if this bound", lo=1, hi=100),
    Option("image", "imsize", int, 0, "image size in pixels (0: cover the primary beam to 20 %)", hi=65536),
    Option("image", "cell_arcsec", float, 0.0, "pixel size (0: about a quarter of the synthesized beam)"),
    Option("mosaic", "n", int, 10, "observations per mosaic", lo=1, hi=10000),
    Option("mosaic", "mode", str, "tiles", "tiles (each observation in one mosaic) or sliding (overlapping windows)", choices=("tiles", "sliding")),
    Option("mosaic", "overlap", int, 5, "observations shared by consecutive windows in sliding mode"),
    Option("mosaic", "max_gap_s", float, 360.0, "a longer gap between observations starts a new group"),
    Option("mosaic", "max_span_s", float, 3600.0, "a group spanning longer than this is refused"),
    Option("mosaic", "warn_span_s", float, 3000.0, "a group spanning longer than this is formed with a warning"),
    Option("mosaic", "max_noise_jy", float, 0.01, "QA: the mosaic's median noise must be below this"),
    Option("mosaic", "min_dynamic_range", float, 20.0, "QA: peak over noise must reach this"),
    Option("mosaic", "workers", int, 1, "processes regridding tiles at once (forked; 2 on an idle 2-core machine nearly halves the time)", lo=1, hi=64),
    Option("mosaic", "common_beam", bool, True, "restore every member with one beam containing all of theirs before combining (false: the header carries the largest member's beam)"),
    Option("mosaic", "noise_weighting", str, "local", "weight each member by the local rms of its residual (local) or by its one residual rms (scalar); the noise map follows", choices=("local", "scalar")),
    Option("mosaic", "fix_to_beam", bool, True, "catalogue: fit Gaussians of the mosaic beam's shape, only flux and position (needs common_beam; false: free sizes)"),
    Option("qa", "max_offset_arcsec", float, 3.0, "mosaic QA: median astrometric offset from the reference (or calibrator) catalogue, arcsec; 0: not checked"),
    Option("qa", "flux_ratio_min", float, 0.8, "mosaic QA: median flux ratio found/catalogue must be at least this; 0: not checked"),
    Option("qa", "flux_ratio_max", float, 1.2, "mosaic QA: median flux ratio found/catalogue must be at most this; 0: not checked"),
    Option("qa", "min_recovery", float, 0.8, "mosaic QA: fraction of catalogue sources expected above 10 sigma that must be found; 0: not checked", hi=1.0),
    Option("qa", "max_false_fraction", float, 0.0, "mosaic QA: detections in the negated mosaic over detections (both 5 sigma); 0: not checked (the default: negative sidelobes of bright sources count too)"),
    Option("qa", "max_noise_ratio", float, 1.5, "mosaic QA: measured rms of mosaic / noise map over the noise map; 0: not checked"),
    Option("qa", "sefd_jy", float, 0.0, "per-dish system equivalent flux density for the radiometer noise; 0: not computed"),
    Option("qa", "max_radiometer_ratio", float, 3.0, "mosaic QA: median tile rms over the radiometer noise (needs qa.sefd_jy); 0: not checked"),
    Option("publish", "stale_after_h", float, 24.0, "status flags products staged longer than this"),
)

OPTION_BY_KEY = {o.key: o for o in OPTIONS}
SECTIONS = tuple(dict.fromkeys(o.section for o in OPTIONS))


@dataclass(frozen=True)
class Config:
    """The effective configuration; ``sources`` says where each value came from."""

    home: Path
    values: Mapping[str, Any]
    sources: Mapping[str, str]
    config_file: Path | None = None
    json_output: bool = False
    verbosity: int = 0

    def get(self, key: str) -> Any:
        return self.values[key]

    def __getattr__(self, name: str) -> Any:
        # cfg.ingest_min_subbands -> values["ingest.min_subbands"]
        for section in SECTIONS:
            prefix = section + "_"
            if name.startswith(prefix) and f"{section}.{name[len(prefix):]}" in self.values:
                return self.values[f"{section}.{name[len(prefix):]}"]
        raise AttributeError(name)

    @property
    def db_path(self) -> Path:
        return self.home / "state.sqlite3"

    @property
    def incoming(self) -> Path:
        return self.values["paths.incoming"]

    @property
    def staging(self) -> Path:
        return self.values["paths.staging"]

    @property
    def products(self) -> Path:
        return self.values["paths.products"]

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def ensure_dirs(self) -> None:
        for d in (self.home, self.incoming, self.staging, self.products, self.logs):
            d.mkdir(parents=True, exist_ok=True)

    def as_records(self) -> list[dict]:
        rows = [{"key": "home", "value": str(self.home), "source": self.sources["home"]},
                {"key": "config_file", "value": str(self.config_file) if self.config_file else None,
                 "source": self.sources["config_file"]}]
        for opt in OPTIONS:
            v = self.values[opt.key]
            rows.append({"key": opt.key, "value": str(v) if isinstance(v, Path) else v,
                         "source": self.sources[opt.key], "help": opt.help})
        return rows


def _coerce(opt: Option, raw: Any, where: str) -> Any:
    try:
        if opt.type is Path:
            if not isinstance(raw, (str, Path)) or str(raw) == "":
                raise ValueError("expected a path")
            return Path(raw).expanduser()
        if opt.type is list:
            if isinstance(raw, str):
                return [x.strip() for x in raw.split(",") if x.strip()]
            if isinstance(raw, (list, tuple)) and all(isinstance(x, (str, int)) for x in raw):
                return [str(x) for x in raw]
            raise ValueError("expected a list of names")
        if opt.type is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if opt.type is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("expected an integer")
            value = int(raw)
        elif opt.type is float:
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
        else:
            if not isinstance(raw, str):
                raise ValueError("expected a string")
            value = opt.type(raw)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{opt.key} from {where}: bad value {raw!r} ({exc}); {opt.help}") from None
    _check_range(opt, value, where)
    return value


def _check_range(opt: Option, value: Any, where: str) -> None:
    """The per-option bounds and choices declared in OPTIONS."""
    if opt.choices is not None and value not in opt.choices:
        raise ConfigError(f"{opt.key} from {where}: {value!r} is not one of "
                          f"{', '.join(opt.choices)}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    hi = opt.hi if opt.hi is not None else (2**31 - 1 if opt.type is int else None)
    if opt.lo is not None and (value <= opt.lo if opt.lo_open else value < opt.lo):
        if opt.lo == 0 and not opt.lo_open:
            raise ConfigError(f"{opt.key} from {where}: must not be negative, got {value!r}")
        raise ConfigError(f"{opt.key} from {where}: must be {'>' if opt.lo_open else '>='} "
                          f"{opt.lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{opt.key} from {where}: must be <= {hi:g}, got {value!r}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid UTF-8 text (byte {exc.start}); "
                          "save it as UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    flat: dict[str, Any] = {}
    for section, body in data.items():
        if section not in SECTIONS or not isinstance(body, dict):
            raise ConfigError(f"config file {path}: unknown section [{section}]; "
                              f"known sections: {', '.join(SECTIONS)}")
        for name, value in body.items():
            key = f"{section}.{name}"
            if key not in OPTION_BY_KEY:
                raise ConfigError(f"config file {path}: unknown key {key}; "
                                  "'contimg config --sample' lists every known key")
            flat[key] = value
    return flat


def load_config(*, home: str | Path | None = None, config_file: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                json_output: bool = False, verbosity: int = 0) -> Config:
    """Resolve the effective configuration.  ``overrides`` are command-line values."""
    env = os.environ if environ is None else environ
    sources: dict[str, str] = {}
    if home is not None:
        home_path, sources["home"] = Path(home), "flag --home"
    elif env.get("CONTIMG_HOME"):
        home_path, sources["home"] = Path(env["CONTIMG_HOME"]), "env CONTIMG_HOME"
    else:
        home_path, sources["home"] = Path("contimg-data"), "default"
    home_path = home_path.expanduser().resolve()

    if config_file is not None:
        cfg_path, sources["config_file"] = Path(config_file), "flag --config"
    elif env.get("CONTIMG_CONFIG"):
        cfg_path, sources["config_file"] = Path(env["CONTIMG_CONFIG"]), "env CONTIMG_CONFIG"
    elif (home_path / "contimg.toml").is_file():
        cfg_path, sources["config_file"] = home_path / "contimg.toml", "state directory"
    else:
        cfg_path, sources["config_file"] = None, "none found"
    from_file = _read_toml(cfg_path) if cfg_path is not None else {}

    known_env = {o.env for o in OPTIONS} | {"CONTIMG_HOME", "CONTIMG_CONFIG"}
    for name in env:
        if name.startswith("CONTIMG_") and name not in known_env:
            raise ConfigError(f"unknown environment variable {name}; "
                              "'contimg config --sample' lists every option with its variable")

    values: dict[str, Any] = {}
    for opt in OPTIONS:
        value, src = opt.default, "default"
        if opt.key in from_file:
            value, src = _coerce(opt, from_file[opt.key], f"{cfg_path}"), f"file {cfg_path}"
        if opt.env in env:
            value, src = _coerce(opt, env[opt.env], f"env {opt.env}"), f"env {opt.env}"
        if overrides and overrides.get(opt.key) is not None:
            value, src = _coerce(opt, overrides[opt.key], "command line"), "flag"
        if opt.type is Path and value is None and opt.section != "paths":
            pass   # an optional file left unset (only [paths] default to <home>/<name>)
        elif opt.type is Path:
            if value is None:
                value, src = home_path / opt.name, f"default (<home>/{opt.name})"
            elif not Path(value).is_absolute():
                value = (home_path / value) if src.startswith("file") else Path(value).resolve()
            value = Path(value).resolve()
        values[opt.key] = value
        sources[opt.key] = src
    if overrides:
        unknown = set(overrides) - set(OPTION_BY_KEY)
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))}")
    _check_together(values, sources)
    return Config(home=home_path, values=values, sources=sources,
                  config_file=cfg_path.resolve() if cfg_path else None,
                  json_output=json_output, verbosity=verbosity)


def _check_together(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """Options that are only meaningful relative to each other."""
    def bad(a: str, b: str, why: str) -> None:
        raise ConfigError(f"{a} = {values[a]!r} ({sources[a]}) and {b} = {values[b]!r} "
                          f"({sources[b]}): {why}")
    if values["mosaic.mode"] == "sliding" and values["mosaic.overlap"] >= values["mosaic.n"]:
        bad("mosaic.overlap", "mosaic.n", "sliding windows need overlap < n")
    if values["ingest.min_subbands"] > values["convert.nsubbands"]:
        bad("ingest.min_subbands", "convert.nsubbands", "min_subbands must not exceed nsubbands")
    if values["jobs.backoff_base_s"] > values["jobs.backoff_max_s"]:
        bad("jobs.backoff_base_s", "jobs.backoff_max_s", "the first delay exceeds the longest")


def sample_toml() -> str:
    """A contimg.toml with every option, its default and its meaning."""
    lines = ["# contimg configuration: every option with its default.",
             "# Precedence: defaults < this file < CONTIMG_* environment < command-line flags.", ""]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for opt in (o for o in OPTIONS if o.section == section):
            lines.append(f"# {opt.help} (env {opt.env})")
            if opt.default is None:
                lines.append(f'# {opt.name} = "/data/dsa110/{opt.name}"')
            else:
                lines.append(f"{opt.name} = {_toml_literal(opt.default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_literal(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f'"{x}"' for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return f'"{v}"'
