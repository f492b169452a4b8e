"""Write a Measurement Set atomically, streaming the main table in row blocks.

pyuvdata's ``write_ms`` needs the whole dataset in memory and then copies the data
again (conjugation), about 3.6 GB for one DSA-110 observation.  Here pyuvdata
still creates the MS skeleton and every subtable (ANTENNA, FIELD, SPECTRAL_WINDOW,
...) from a metadata-only UVData object, and the main table is filled block by
block with the same conventions as ``write_ms`` (DATA conjugated and UVW negated,
``pyuvdata_flip_conj`` = True), so peak memory is one block.

Atomicity (C2): everything is written under a temporary name beside the target
(contimg.paths.temp_path), verified, then renamed; leftovers of crashed attempts
are removed first (contimg.paths.clean_leftovers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.time import Time
from casacore import tables
from pyuvdata.utils.io import ms as ms_utils

from .inputs import ConvertError
from contimg import paths


def remove_leftovers(out_ms: Path) -> list[Path]:
    """Delete temporaries of earlier attempts at ``out_ms`` whose writer is gone (a live
    writer's are left alone): contimg.paths.clean_leftovers for this MS."""
    return paths.clean_leftovers(Path(out_ms).parent, Path(out_ms).name)


class MainTableWriter:
    """Fills the MAIN table of a fresh MS skeleton, block by block."""

    def __init__(self, path: Path, meta, *, flip_conj: bool = True):
        self.path = path
        self.meta = meta
        self.flip = flip_conj
        self.tab = ms_utils.init_ms_file(str(path))
        self.tab.addrows(meta.Nblts)
        self._write_row_metadata()

    def _write_row_metadata(self) -> None:
        """Per-row columns, as pyuvdata's write_ms fills them (one SPW, one field)."""
        m, t = self.meta, self.tab
        ut, inv = np.unique(m.time_array, return_inverse=True)
        mjd_s = (Time(ut, format="jd", scale="utc").mjd * 86400.0)[inv]
        t.putcol("TIME", mjd_s)
        t.putcol("TIME_CENTROID", mjd_s)
        t.putcol("ANTENNA1", m.ant_1_array.astype(np.int32))
        t.putcol("ANTENNA2", m.ant_2_array.astype(np.int32))
        t.putcol("INTERVAL", m.integration_time)
        t.putcol("EXPOSURE", m.integration_time)
        zeros = np.zeros(m.Nblts, np.int32)
        for col in ("DATA_DESC_ID", "FIELD_ID", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID",
                    "FEED1", "FEED2"):
            t.putcol(col, zeros)
        t.putcol("STATE_ID", zeros - 1)  # no STATE table rows
        t.putcol("SCAN_NUMBER", zeros + 1)
        t.putcol("UVW", m.uvw_array * (-1.0 if self.flip else 1.0))

    def put_block(self, r0: int, data: np.ndarray, flags: np.ndarray, nsamples: np.ndarray,
                  present: np.ndarray) -> None:
        """Write rows r0.. of DATA/FLAG/WEIGHT_SPECTRUM (rows, chans, pols; CASA pol order).

        ``data`` is conjugated in place when flip_conj.  WEIGHT is the mean
        nsamples over the channels of present subbands (pyuvdata's median over all
        channels gives 0 weight when half the band is missing, and costs seconds).
        """
        n = data.shape[0]
        if self.flip:
            np.conjugate(data, out=data)
        t = self.tab
        t.putcol("DATA", data, startrow=r0, nrow=n)
        t.putcol("FLAG", flags, startrow=r0, nrow=n)
        t.putcol("WEIGHT_SPECTRUM", nsamples, startrow=r0, nrow=n)
        # channels of missing subbands hold 0, so the sum over all / n_present is the mean
        w = nsamples.sum(axis=1) / np.float32(max(int(present.sum()), 1))
        t.putcol("WEIGHT", w, startrow=r0, nrow=n)
        sigma = np.ones_like(w)
        np.divide(1.0, np.sqrt(w), out=sigma, where=w > 0)
        t.putcol("SIGMA", sigma, startrow=r0, nrow=n)
        t.putcol("FLAG_ROW", flags.reshape(n, -1).all(axis=1), startrow=r0, nrow=n)

    def finish(self, pol_order, keywords: dict) -> None:
        """Close MAIN, then let pyuvdata write every subtable from the metadata."""
        m, t = self.meta, self.tab
        t.putcolkeyword("DATA", "QuantumUnits", m.vis_units)
        if m.extra_keywords:
            t.putkeyword("pyuvdata_extra", m.extra_keywords)
        t.putkeyword("pyuvdata_flip_conj", self.flip)
        for k, v in keywords.items():
            t.putkeyword(k, v)
        t.done()
        p = str(self.path)
        ms_utils.write_ms_antenna(p, uvobj=m)
        ms_utils.write_ms_data_description(p, uvobj=m)
        ms_utils.write_ms_feed(p, uvobj=m)
        ms_utils.write_ms_field(p, uvobj=m)
        ms_utils.write_ms_history(p, uvobj=m)
        ms_utils.write_ms_observation(p, uvobj=m)
        ms_utils.write_ms_pointing(p, uvobj=m)
        ms_utils.write_ms_polarization(p, pol_order=pol_order, uvobj=m)
        ms_utils.write_ms_source(p, uvobj=m)
        ms_utils.write_ms_spectral_window(p, uvobj=m)

    def abort(self) -> None:
        try:
            self.tab.close()
        except Exception:  # noqa: BLE001 - already failing; the temp dir is removed next
            pass


def verify_ms(path: Path, *, nrows: int, nchan: int, npol: int, nants_table: int) -> None:
    """Reopen the finished temporary MS and check its shape before it is renamed in."""
    try:
        with tables.table(str(path), ack=False) as t:
            if t.nrows() != nrows:
                raise ConvertError(f"{path}: MS has {t.nrows()} rows, expected {nrows}")
            for row in (0, nrows - 1):
                shape = t.getcell("DATA", row).shape
                if shape != (nchan, npol):
                    raise ConvertError(f"{path}: DATA row {row} shape {shape}, expected "
                                       f"{(nchan, npol)}")
        with tables.table(f"{path}::SPECTRAL_WINDOW", ack=False) as spw:
            f = spw.getcol("CHAN_FREQ")[0]
            if f.size != nchan or np.any(np.diff(f) <= 0):
                raise ConvertError(f"{path}: SPECTRAL_WINDOW frequencies not ascending/complete")
        with tables.table(f"{path}::ANTENNA", ack=False) as ant:
            if ant.nrows() != nants_table:
                raise ConvertError(f"{path}: ANTENNA has {ant.nrows()} rows, expected "
                                   f"{nants_table}")
    except ConvertError:
        raise
    except RuntimeError as exc:  # casacore errors
        raise ConvertError(f"{path}: written MS fails verification ({exc})") from exc


def dir_size(path: Path) -> int:
    """Bytes used by all files below ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
