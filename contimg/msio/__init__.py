"""Measurement Set I/O: DSA-110 subband files -> one MS per observation.

Domain code only (no database).  Public API: :func:`build_ms`, :class:`MsInfo`,
:class:`ConvertError`.  Phasing is explained in docs/phasing.md.
"""

from .convert import MsInfo, build_ms
from .inputs import ConvertError

__all__ = ["build_ms", "MsInfo", "ConvertError"]
