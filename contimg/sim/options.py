"""Options and result of :func:`contimg.sim.simulate` (the CLI maps onto these)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

# Default DSA-110 system-equivalent flux density per dish, Jy: an estimate, SEFD = 2 k Tsys / A_eff
# with Tsys ~ 25 K and aperture efficiency ~ 0.7 on a 4.65 m dish (A_eff ~ 11.9 m^2) gives ~5800 Jy
# (the lead's brief also proposes 5800 Jy). Replace with a measured value when one is at hand.
DEFAULT_SEFD_JY = 5800.0

ObsSb = tuple[int, int]


@dataclass
class SimOptions:
    """What to simulate. Fault fields use (observation index, subband) pairs.

    nants: antennas with data (<= 96); fewer are spread evenly over the array.
    nchan: channels per subband, dividing 48 (each still spans 11.72 MHz).
    observations: consecutive 16-file groups of 24 x 12.8849 s.
    start: ISO UTC of the first integration's start; None = place the transit of
        the default calibrator in the middle of observation (observations-1)//2
        on a fixed date (2025-06-15).
    dec_deg: pointing declination; None = the default calibrator's (3C286).
    seed: all random draws (sky, gains, noise, timestamp jitter) derive from it.
    sefd_jy: per-dish SEFD for thermal noise; None or 0 = no noise.
    gains / bandpass / gains_vary: per-antenna complex gains, per-antenna bandpass,
        and whether gains drift in time (False = constant).
    sources: None = default sky (catalogue sources near the pointing + field
        sources); otherwise a list of contimg.astro.catalog.Source or dicts.
    n_field_sources: fainter (0.1-2 Jy) sources added to the default sky.
    sky: "default" (the above) or "realistic": catalogue sources in the span plus a
        sky drawn from the 1.4 GHz source counts (contimg.sim.counts), with a
        reference catalogue written beside the truth. The realistic preset also
        switches on every instrument effect below unless it is set explicitly.
    Instrument (None = off for the default sky, on for the realistic one):
      smearing: bandwidth and time smearing (analytic sinc factors).
      beam_scale / beam_ellipticity: simulated beam width relative to the pipeline's
          Airy model and its XX/YY ellipticity (realistic: 1.05 and 0.03).
      phase_noise_deg: fast antenna phase noise rms (realistic: 7 deg, 1-10 min).
      rfi: persistent narrow-band channels, broad-band bursts, a dead antenna and
          a bad baseline (contimg.sim.rfi), with the mask in the truth.
    flux_floor_jy: realistic sources whose best apparent flux stays below it are dropped.
    counts_scale: multiplies the source-count model (1.15 matches NVSS's density).
    workers: processes writing the subbands of an observation in parallel (same output).
    Faults (for tests of the pipeline):
      omit_subbands {obs: [sb, ...]}: those files are never written.
      truncate [(obs, sb)]: file renamed into place but cut to 40 % of its bytes
          (as an rsync copy still in progress looks).
      foreign_ants [(obs, sb)]: file written for another antenna set (last
          antenna replaced by an inactive station).
      foreign_times [(obs, sb)]: file holds the times of the next slot
          (shifted by one observation length) under this group's name.
      gap_after {obs: seconds}: extra gap after that observation.
      duplicate [(obs, sb)]: a second identical copy named with timestamp + 1 s.
      leave_temporary [(obs, sb)]: left under *_incomplete.hdf5, never renamed.
    """

    nants: int = 96
    nchan: int = 48
    observations: int = 1
    start: str | None = None
    dec_deg: float | None = None
    seed: int = 1
    sefd_jy: float | None = DEFAULT_SEFD_JY
    gains: bool = True
    bandpass: bool = True
    gains_vary: bool = True
    sources: list | None = None
    n_field_sources: int = 6
    sky: str = "default"
    smearing: bool | None = None
    beam_scale: float | None = None
    beam_ellipticity: float | None = None
    phase_noise_deg: float | None = None
    rfi: bool | None = None
    flux_floor_jy: float = 1e-3
    counts_scale: float = 1.15
    workers: int = 1
    omit_subbands: dict[int, list[int]] = field(default_factory=dict)
    truncate: list[ObsSb] = field(default_factory=list)
    foreign_ants: list[ObsSb] = field(default_factory=list)
    foreign_times: list[ObsSb] = field(default_factory=list)
    gap_after: dict[int, float] = field(default_factory=dict)
    duplicate: list[ObsSb] = field(default_factory=list)
    leave_temporary: list[ObsSb] = field(default_factory=list)

    REALISTIC = {"smearing": True, "beam_scale": 1.05, "beam_ellipticity": 0.03,
                 "phase_noise_deg": 7.0, "rfi": True}
    PLAIN = {"smearing": False, "beam_scale": 1.0, "beam_ellipticity": 0.0,
             "phase_noise_deg": 0.0, "rfi": False}

    def effective(self, name: str):
        """An instrument option's value: as set, else the preset of ``sky``."""
        v = getattr(self, name)
        if v is not None:
            return v
        return (self.REALISTIC if self.sky == "realistic" else self.PLAIN)[name]

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.sources is not None:
            d["sources"] = [s.to_dict() if hasattr(s, "to_dict") else dict(s) for s in self.sources]
        return d

    def fault_sets(self) -> dict[str, set[ObsSb]]:
        """The (obs, sb) list faults as sets of tuples (lists from JSON/CLI are fine)."""
        names = ("truncate", "foreign_ants", "foreign_times", "duplicate", "leave_temporary")
        return {n: {(int(o), int(s)) for o, s in getattr(self, n)} for n in names}


@dataclass
class SimResult:
    """Files on disk (final, duplicate and temporary names), the truth manifest, per-observation info."""

    files: list[Path]
    manifest: Path
    observations: list[dict]


def parse_obs_sb(text: str) -> ObsSb:
    """'OBS:SB' -> (obs, sb), for command-line options such as --omit 0:3."""
    obs, sb = text.split(":")
    return int(obs), int(sb)
