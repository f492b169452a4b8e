"""Which imaged observations form a mosaic (G1, G2): a pure function of their times.

Observations form *runs*: same pointing declination, each gap between the end of
one and the start of the next under ``max_gap_s``.  Tiles mode cuts each run into
consecutive blocks of N not yet used; sliding mode takes windows every N-overlap
observations from the start of the run.  A window is only formed when complete
(N members) and no observation still in flight could belong to it, and refused
when it spans more than ``max_span_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from contimg.names import mosaic_id  # noqa: F401 - decided in contimg.names, re-exported


@dataclass(frozen=True)
class ObservationSpan:
    """An imaged observation as grouping sees it: its ID, time span and pointing.

    (Not a mosaic member: that is contimg.mosaicking.Tile, with its image files.)"""

    obs_id: str
    start_mjd: float
    end_mjd: float
    dec_deg: float


Tile = ObservationSpan  # the old name, until steps/mosaic.py imports ObservationSpan


@dataclass(frozen=True)
class Group:
    mosaic_id: str
    members: tuple[str, ...]
    start_mjd: float
    end_mjd: float
    dec_deg: float
    warning: str | None


def runs(tiles: list[ObservationSpan], *, max_gap_s: float = 360.0, dec_tol_deg: float = 0.1) -> list[list[ObservationSpan]]:
    out: list[list[ObservationSpan]] = []
    for t in sorted(tiles, key=lambda t: t.start_mjd):
        last = out[-1][-1] if out else None
        if (last is not None and abs(t.dec_deg - last.dec_deg) <= dec_tol_deg
                and (t.start_mjd - last.end_mjd) * 86400 < max_gap_s):
            out[-1].append(t)
        else:
            out.append([t])
    return out


def plan_groups(tiles: list[ObservationSpan], *, n: int, mode: str, overlap: int = 0, used: set[str] = frozenset(),
                in_flight_mjd: list[float] = (), max_gap_s: float = 360.0, max_span_s: float = 3600.0,
                warn_span_s: float = 3000.0) -> tuple[list[Group], list[str]]:
    """Groups ready to form, and notes on windows refused (span too long)."""
    if mode not in ("tiles", "sliding"):
        raise ValueError(f"unknown mosaic mode {mode!r} (tiles or sliding)")
    stride = n if mode == "tiles" else max(1, n - overlap)
    groups: list[Group] = []
    notes: list[str] = []
    for run in runs(tiles, max_gap_s=max_gap_s):
        candidates = [t for t in run if t.obs_id not in used] if mode == "tiles" else run
        start = 0
        while start + n <= len(candidates):
            window = candidates[start:start + n]
            span_s = (window[-1].end_mjd - window[0].start_mjd) * 86400
            lo = window[0].start_mjd - max_gap_s / 86400
            hi = window[-1].end_mjd + max_gap_s / 86400
            if any(lo <= m <= hi for m in in_flight_mjd):
                break          # an observation still being processed may belong here: wait
            if span_s > max_span_s:
                notes.append(f"refused {window[0].obs_id}..{window[-1].obs_id}: spans "
                             f"{span_s / 60:.1f} min > {max_span_s / 60:.0f} min")
                start += 1 if mode == "tiles" else stride
                continue
            warning = (f"spans {span_s / 60:.1f} min (> {warn_span_s / 60:.0f} min)"
                       if span_s > warn_span_s else None)
            members = tuple(t.obs_id for t in window)
            groups.append(Group(mosaic_id(members), members, window[0].start_mjd,
                                window[-1].end_mjd, window[0].dec_deg, warning))
            start += stride
    return groups, notes
