"""Inspect one subband file cheaply before registering it (I1, I6).

The checks themselves live in ``contimg.msio.validate`` (convert runs them again):
every required dataset's type, shape and values, read from the header only, plus
the last element of each data array, which catches truncation without reading
139 MB per file during a scan.  Here they are tied to the file's name.
"""

from __future__ import annotations

from pathlib import Path

from contimg.msio.validate import FileSummary, InvalidFile, subband_from_frequencies, validate

__all__ = ["BadFile", "FileSummary", "inspect", "subband_from_frequencies"]


class BadFile(ValueError):
    """The file cannot be used; the message says why and what to do."""


def inspect(path: Path, name_subband: int) -> FileSummary:
    """Validate a subband file's structure and return what grouping needs (the checker's
    own summary: subband, start, declination, channels, fingerprint)."""
    try:
        s = validate(path)
    except InvalidFile as exc:
        raise BadFile(str(exc)) from None
    if s.subband != name_subband:
        raise BadFile(f"its frequencies are those of sb{s.subband:02d}, but the name says "
                      f"sb{name_subband:02d}")
    return s
