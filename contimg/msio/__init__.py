"""Measurement Set I/O: DSA-110 subband files -> one MS per observation.

Domain code only (no database).  Public API: :func:`build_ms`, :class:`MsInfo`,
:class:`ConvertError`.  Phasing is explained in docs/phasing.md.

The API is imported on first use: ``contimg.msio.validate`` (ingest's gate, h5py and
numpy only) must not pull in pyuvdata and numba, which cost every `status`, `ingest`
and `watch` process about 2.5 s of CPU at start.
"""

from importlib import import_module

__all__ = ["build_ms", "MsInfo", "ConvertError"]
_WHERE = {"build_ms": ".convert", "MsInfo": ".convert", "ConvertError": ".inputs"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
