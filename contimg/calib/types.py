"""Inputs, options, results and errors of calibration (no CASA imports here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from contimg.astro.catalog import REF_FREQ_HZ, Source  # noqa: F401 - REF_FREQ_HZ re-exported

# Stations nearest the array's tee centre (distance 6-48 m), nearest first: 29 sits at
# the junction of the east-west and north-south arms, then its neighbours along the
# east-west arm.  A central reference antenna has only short and medium baselines to
# every other dish and the most stable phase; ten candidates leave room for several
# to be flagged or off-line.
DEFAULT_REFANTS = ["29", "28", "30", "27", "31", "26", "32", "25", "33", "24"]


class CalibError(Exception):
    """Base class of calibration errors."""


class CalibrationError(CalibError):
    """Solving cannot produce usable solutions (no reference antenna, CASA failed,
    everything flagged).  Retrying on the same data gives the same answer."""


class CalTableMissing(CalibError):
    """A calibration table is absent or incomplete on disk.

    Retryable: the table may be restored (or the set re-solved) and the apply run again.
    """

    retryable = True

    def __init__(self, path: Path, what: str):
        self.path = Path(path)
        super().__init__(
            f"calibration table {self.path} is missing or incomplete ({what}); restore it or "
            "re-solve its calibration set, then retry the calibrate step")


# A point source of the calibration model (ICRS position, flux at 1.4 GHz from the
# catalogue, spectral index): the catalogue's Source; the old name stays an alias.
CalSource = Source


@dataclass
class SolveOptions:
    """Solver settings.

    refants: antenna NAMES in priority order; the first with unflagged
        cross-correlations is the reference (see DEFAULT_REFANTS).
    bp_solint: one bandpass per observation ("inf"): the bandpass is stable for
        hours and a 5-minute average maximises per-channel SNR.
    gain_solint: "inf" = one amplitude+phase solution per observation.  These gains
        are transferred to other observations for hours, where the calibrator-scan
        mean is the best estimate; a per-integration solution ("int") would only add
        noise to the edge value that applycal carries forward.  Gains drift ~1 deg
        within one 5-minute scan on DSA-110 (see docs/calibration.md).
    prephase_solint: the phase-only solve before the bandpass is per integration so
        the bandpass average over the scan does not decorrelate.
    minsnr: solutions below this SNR are flagged by CASA.
    uvrange: CASA uvrange selection for all solves ("" = all cross-correlations;
        CASA never uses autocorrelations in solving).
    average: solve on the model-weighted average (calib/average.py: V/M summed
        over time with weight |M|^2, no full-resolution MODEL_DATA); False = the
        old solve on the full MS (kept for the benchmark's side-by-side).
    phase_track_s: the fast solve's scan average decorrelates where antenna phases wander
        within the scan (the amplitudes come out low: -0.6 % on the realistic sky's 7 deg
        of phase noise); a second pass solves band-averaged phases every this many
        seconds and divides the scan average by each baseline's decorrelation before the
        final solve (0: off).
    uv_min_lambda: baselines shorter than this (per channel) are left out of the
        averaged solve (short spacings carry the most unmodelled extended flux).
    gain_calmode: "ap" (sets the amplitude scale) or "p" (phase only: a calibrator
        whose flux is not on the Perley-Butler 2017 scale).
    write_amplitude: also write <set>.acal, the gain amplitudes alone (with "ap"), which
        carries the flux scale to observations calibrated by a phase-only set.
    """

    refants: list[str] = field(default_factory=lambda: list(DEFAULT_REFANTS))
    bp_solint: str = "inf"
    gain_solint: str = "inf"
    prephase_solint: str = "int"
    minsnr: float = 3.0
    uvrange: str = ""
    average: bool = True
    phase_track_s: float = 26.0
    uv_min_lambda: float = 100.0
    gain_calmode: str = "ap"
    write_amplitude: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SolveResult:
    """Final table paths, the reference antenna, per-table quality and solver parameters.

    quality[kind] = {"n_solutions", "flagged_fraction", "median_snr"} for kind in
    ("bandpass", "gain"); params holds everything the registry should record.
    """

    tables: dict[str, Path]
    refant: str
    quality: dict
    params: dict

    def to_dict(self) -> dict:
        return {"tables": {k: str(v) for k, v in self.tables.items()}, "refant": self.refant,
                "quality": self.quality, "params": self.params}
