"""Each fault option produces exactly the fault it names, and nothing else.

Every faulty run is compared with a clean run of the same seed: the named file
must differ in the named way and every other file must be byte-for-byte the
clean one.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import h5py
import numpy as np
import pytest
from sim_helpers import NAME_RE, load, run

from contimg.astro.catalog import find_source

KW = {"nants": 5, "nchan": 2, "observations": 2, "sefd_jy": None, "seed": 11}
OBS_S = 24 * 12.8849


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    res, truth = run(tmp_path_factory.mktemp("clean"), **KW)
    return res, truth


def _final_files(d: Path) -> dict[str, Path]:
    return {p.name: p for p in d.glob("*.hdf5") if NAME_RE.match(p.name)}


def _assert_others_identical(clean_res, res, skip: set[str]):
    a, b = _final_files(clean_res.manifest.parent), _final_files(res.manifest.parent)
    for name in set(a) - skip:
        assert name in b, name
        assert filecmp.cmp(a[name], b[name], shallow=False), name


def _name(res, obs, sb) -> str:
    return res.observations[obs]["files"][f"{sb:02d}"]


def test_omit_subbands(tmp_path, clean):
    res, truth = run(tmp_path, omit_subbands={0: [3, 7]}, **KW)
    c_res = clean[0]
    missing = {_name(c_res, 0, 3), _name(c_res, 0, 7)}
    assert set(_final_files(c_res.manifest.parent)) - set(_final_files(tmp_path)) == missing
    assert len(_final_files(tmp_path)) == 30 and not list(tmp_path.glob("*incomplete*"))
    assert truth["observations"][0]["faults"] == {"03": ["omitted"], "07": ["omitted"]}
    _assert_others_identical(c_res, res, missing)


def test_truncate(tmp_path, clean):
    res, truth = run(tmp_path, truncate=[(1, 5)], **KW)
    name = _name(res, 1, 5)
    path = tmp_path / name
    full = (clean[0].manifest.parent / name).stat().st_size
    assert path.stat().st_size == int(full * 0.4)
    with pytest.raises(OSError):
        h5py.File(path, "r")
    assert truth["observations"][1]["faults"]["05"][0].startswith("truncated:")
    _assert_others_identical(clean[0], res, {name})


def test_foreign_ants(tmp_path, clean):
    res, truth = run(tmp_path, foreign_ants=[(0, 2)], **KW)
    name = _name(res, 0, 2)
    bad, good = load(tmp_path / name), load(clean[0].manifest.parent / name)
    ants_bad = set(bad["ant1"]) | set(bad["ant2"])
    ants_good = set(good["ant1"]) | set(good["ant2"])
    assert len(ants_bad) == len(ants_good) == 5
    assert len(ants_bad ^ ants_good) == 2  # exactly one antenna swapped
    assert sorted(n + 1 for n in ants_bad) == sorted(int(x) for x in truth["antennas"]["foreign_names"])
    assert np.array_equal(bad["time"], good["time"])
    _assert_others_identical(clean[0], res, {name})


def test_foreign_times(tmp_path, clean):
    res, _truth = run(tmp_path, foreign_times=[(0, 4)], **KW)
    name = _name(res, 0, 4)
    bad, good = load(tmp_path / name), load(clean[0].manifest.parent / name)
    assert np.allclose((bad["time"] - good["time"]) * 86400, OBS_S, atol=1e-3)
    nxt = load(clean[0].manifest.parent / _name(clean[0], 1, 4))  # the next slot's times
    assert np.allclose(bad["time"], nxt["time"], rtol=0, atol=1e-8)
    assert np.array_equal(bad["ant1"], good["ant1"])
    _assert_others_identical(clean[0], res, {name})


def test_gap_after(tmp_path, clean):
    # a fixed sky: the default field sources are drawn over the whole span, which a gap lengthens
    cal = [find_source("3C286")]
    res, truth = run(tmp_path / "gap", gap_after={0: 600.0}, sources=cal, **KW)
    c_res, c_truth = run(tmp_path / "nogap", sources=cal, **KW)
    o0, o1 = truth["observations"]
    c0, c1 = c_truth["observations"]
    assert np.isclose((o1["start_jd"] - o0["start_jd"]) * 86400, OBS_S + 600.0, atol=1e-3)
    assert np.isclose((c1["start_jd"] - c0["start_jd"]) * 86400, OBS_S, atol=1e-3)
    assert o0["times_jd"] == c0["times_jd"]  # obs 0 itself is untouched
    # only the second group's files move; the first group is byte-identical
    _assert_others_identical(c_res, res, set(c1["files"].values()))


def test_duplicate(tmp_path, clean):
    res, _truth = run(tmp_path, duplicate=[(0, 6)], **KW)
    sb06 = sorted(p for p in tmp_path.glob("*_sb06.hdf5"))
    assert len(sb06) == 3  # two in obs 0, one in obs 1
    name = _name(res, 0, 6)
    dup = [p for p in sb06 if p.name != name and p.name < _name(res, 1, 6)]
    assert len(dup) == 1
    ts = [NAME_RE.match(n).group(1) for n in (name, dup[0].name)]
    assert (np.datetime64(ts[1]) - np.datetime64(ts[0])).astype(int) == 1
    assert filecmp.cmp(tmp_path / name, dup[0], shallow=False)
    assert dup[0] in res.files
    _assert_others_identical(clean[0], res, set())


def test_leave_temporary(tmp_path, clean):
    res, _truth = run(tmp_path, leave_temporary=[(1, 9)], **KW)
    final = _name(clean[0], 1, 9)
    temp = tmp_path / final.replace(".hdf5", "_incomplete.hdf5")
    assert not (tmp_path / final).exists() and temp.exists()
    assert filecmp.cmp(temp, clean[0].manifest.parent / final, shallow=False)  # complete, just not renamed
    assert list(tmp_path.glob("*incomplete*")) == [temp]
    _assert_others_identical(clean[0], res, {final})
