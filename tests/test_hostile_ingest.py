"""Hostile-input suite, ingest side (issue 17 items 3, 14, 17, 21, 22; acceptance 3).

One valid observation sits in incoming/ and beside it, each in its own folder, a
corpus of hostile entries made from copies of its files.  One real `contimg ingest`
and one `contimg convert` run over all of it: every hostile entry must end
quarantined with its reason in `status` (or be ignored, for what is not named like
a subband file), the valid observation must convert with all 16 subbands, the
database must pass PRAGMA integrity_check, no traceback may reach the terminal and
nothing may be written outside the state directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest
from hostile_helpers import (Runner, make_deep_path, mutate, place, replace, simulate_source,
                             snapshot)
from pipeline_helpers import age

SB = 7  # the subband the hostile copies are made from


def _dup_row(f):
    a1, a2 = f["Header/ant_1_array"][()], f["Header/ant_2_array"][()]
    a1[1], a2[1] = a1[0], a2[0]
    f["Header/ant_1_array"][...], f["Header/ant_2_array"][...] = a1, a2


def _set(key, fn):
    def apply(f):
        v = f[key][()]
        f[key][...] = fn(v)
    return apply


def _unknown_ant(f):
    a2 = f["Header/ant_2_array"][()]
    a2[a2 == a2.max()] = 200
    f["Header/ant_2_array"][...] = a2


def _external_link(f):
    del f["Data/flags"]
    f["Data/flags"] = h5py.ExternalLink("/etc/passwd", "/flags")


def _external_storage(f):
    shape = f["Data/nsamples"].shape
    del f["Data/nsamples"]
    f.create_dataset("Data/nsamples", shape=shape, dtype="f4",
                     external=[("/etc/hostname", 0, h5py.h5f.UNLIMITED)])


# case -> (how the file is changed, expected status, reason pattern)
CONTENT_CASES = {
    "item17_negative_antenna_numbers": (_set("Header/ant_1_array", lambda a: np.where(
        np.arange(a.size) < 5, -1, a)), "negative antenna numbers"),
    "item17_unknown_antenna_numbers": (_unknown_ant, r"antennas \[200\].*not in"),
    "item17_bytes_time_array": (lambda f: replace(f, "Header/time_array", np.array(
        [b"2460841.65"] * f["Header/time_array"].shape[0])), "time_array has type"),
    "item17_text_nblts": (lambda f: replace(f, "Header/Nblts", np.bytes_("many")),
                          "Nblts has type"),
    "item17_float_antenna_arrays": (lambda f: replace(f, "Header/ant_1_array",
                                    f["Header/ant_1_array"][()].astype(float)),
                                    "ant_1_array has type"),
    "item17_uvw_wrong_shape": (lambda f: replace(f, "Header/uvw_array",
                               f["Header/uvw_array"][()][:, :2]), "uvw_array has shape"),
    "item17_missing_uvw_array": (lambda f: f.__delitem__("Header/uvw_array"),
                                 "uvw_array is missing"),
    "item17_missing_flags": (lambda f: f.__delitem__("Data/flags"), "Data/flags is missing"),
    "item17_missing_phase_center_dec": (lambda f: f.__delitem__(
        "Header/extra_keywords/phase_center_dec"), "phase_center_dec is missing"),
    "item17_visdata_wrong_shape": (lambda f: replace(f, "Data/visdata", np.zeros(
        (f["Data/visdata"].shape[0], 1, 5, 2), np.complex64)), "Data/visdata has shape"),
    "item17_visdata_not_complex": (lambda f: replace(f, "Data/visdata", np.abs(
        f["Data/visdata"][()]).astype(np.float32)), "visdata has type float32"),
    "huge_header_nblts": (lambda f: replace(f, "Header/Nblts", np.int64(2**62)),
                          r"Nblts = \d+ is outside"),
    "huge_declared_time_array": (lambda f: replace(
        f, "Header/time_array", shape=(2**34,), dtype="f8", chunks=(4096,)),
        "time_array has shape"),
    "huge_antenna_number": (_set("Header/antenna_numbers", lambda a: np.where(
        a == a.max(), 2**40, a)), "antenna_numbers must be distinct"),
    "wrong_ntimes": (lambda f: replace(f, "Header/Ntimes", np.int64(23)), "Ntimes = 23"),
    "wrong_nbls": (lambda f: replace(f, "Header/Nbls", np.int64(5)), "Nbls = 5"),
    "duplicate_rows": (_dup_row, "duplicate rows"),
    "nan_time": (_set("Header/time_array", lambda a: np.where(np.arange(a.size) == 3, np.nan, a)),
                 "time_array holds NaN"),
    "time_not_a_julian_date": (_set("Header/time_array", lambda a: a - 2400000.5),
                               "not a Julian Date"),
    "nan_uvw": (_set("Header/uvw_array", lambda a: np.where(a == a.max(), np.nan, a)),
                "uvw_array holds NaN"),
    "huge_uvw": (_set("Header/uvw_array", lambda a: np.where(a == a.max(), 1e30, a)),
                 "longer than any"),
    "negative_integration_time": (_set("Header/integration_time", lambda a: -a),
                                  "integration_time"),
    "invalid_polarizations": (lambda f: replace(f, "Header/polarization_array",
                              np.array([-5, 99])), "polarization codes"),
    "frequencies_outside_band": (_set("Header/freq_array", lambda a: a * 2),
                                 "outside the DSA-110 band"),
    "nan_frequencies": (_set("Header/freq_array", lambda a: a * np.nan), "freq_array holds NaN"),
    "item22_other_telescope_name": (lambda f: replace(f, "Header/telescope_name",
                                    np.bytes_("VLA")), "another telescope"),
    "item22_other_telescope_site": (lambda f: replace(f, "Header/latitude", 34.0784),
                                    "not the DSA-110 site"),
    "hdf5_external_link": (_external_link, "link to another file"),
    "hdf5_external_storage": (_external_storage, "keeps its data in other files"),
    "header_not_a_group": (lambda f: (f.__delitem__("Header"), f.__setitem__("Header", 1)),
                           "no Header group"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Build the corpus, run ingest and convert once; every test below reads the outcome."""
    src = simulate_source(tmp_path_factory.mktemp("hostile_src"), observations=2)
    base = tmp_path_factory.mktemp("hostile_ingest")
    run = Runner(base)
    inc = run.incoming
    for p in src[0].values():
        place(p, inc)
    good = src[0][SB]
    name = good.name
    expect: dict[str, tuple[str, str, str]] = {}  # case -> (path text, status, pattern)
    for case, (fn, pattern) in CONTENT_CASES.items():
        path = mutate(place(good, inc / case), fn)
        expect[case] = (str(path), "quarantined", pattern)
    # not HDF5 at all / truncated / empty, under a good name
    for case, data, pattern in (("zero_length_file", b"", "unreadable or truncated"),
                                ("text_file", b"hello\n" * 100, "unreadable or truncated"),
                                ("truncated_file", good.read_bytes()[:good.stat().st_size * 2 // 5],
                                 "truncated")):
        (inc / case).mkdir()
        (inc / case / name).write_bytes(data)
        age([inc / case / name])
        expect[case] = (str(inc / case / name), "quarantined", pattern)
    stamp = name.split("_sb")[0]
    bad_names = {
        "item14_impossible_date": "2025-13-45T03:48:07" + name[19:],
        "item14_february_30": "2025-02-30T03:48:07" + name[19:],
        "item14_arabic_indic_digits": "٢٠٢٥" + name[4:],
        "item14_trailing_newline": name + "\n",
    }
    for case, bad in bad_names.items():
        place(good, inc / case, bad)
        pattern = {"item14_arabic_indic_digits": "non-ASCII",
                   "item14_trailing_newline": "control characters"}.get(case, "not a real date")
        expect[case] = (os.path.join(inc, case, bad.replace("\n", "\\n")), "quarantined", pattern)
    place(good, inc / "other_subband_name", f"{stamp}_sb{SB + 1:02d}.hdf5")
    expect["name_says_another_subband"] = (str(inc / "other_subband_name" /
                                               f"{stamp}_sb{SB + 1:02d}.hdf5"),
                                           "quarantined", f"name says sb{SB + 1:02d}")
    deep, fd = make_deep_path(inc / "item14_path_too_long")
    with open(os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as fh:
        fh.write(good.read_bytes())
    os.close(fd)
    expect["item14_path_too_long"] = (None, "quarantined", "longer than the system allows")
    (inc / "directory_named_like_subband" / name).mkdir(parents=True)
    expect["directory_named_like_subband"] = (str(inc / "directory_named_like_subband" / name),
                                              "quarantined", "but a directory")
    (inc / "fifo").mkdir()
    os.mkfifo(inc / "fifo" / name)
    expect["fifo_named_like_subband"] = (str(inc / "fifo" / name), "quarantined",
                                         "not a regular file")
    outside = base / "outside"
    target = place(src[1][SB], outside)
    (inc / "item22_symlink_outside").mkdir()
    os.symlink(target, inc / "item22_symlink_outside" / target.name)
    expect["item22_symlink_outside"] = (str(inc / "item22_symlink_outside" / target.name),
                                        "quarantined", "symlink to .*refused")
    (inc / "links").mkdir()
    os.symlink(inc / "links" / f"{stamp}_sb01.hdf5", inc / "links" / f"{stamp}_sb01.hdf5")
    os.symlink(base / "nowhere.hdf5", inc / "links" / f"{stamp}_sb02.hdf5")
    os.symlink(inc, inc / "links" / "loop")  # a directory loop: not followed
    place(good, inc / "duplicate_copy")
    expect["duplicate_copy"] = (str(inc / "duplicate_copy" / name), "duplicate",
                                "already registered")
    bad_dir = os.fsencode(inc) + b"/undecodable\xff"
    os.mkdir(bad_dir)
    shutil.copy2(good, os.fsdecode(bad_dir + b"/" + name.encode()))
    age([os.fsdecode(bad_dir + b"/" + name.encode())])
    expect["undecodable_directory_name"] = (None, "quarantined", "not valid UTF-8")
    (inc / "notes.txt").write_text("not a subband file")

    before = snapshot(base, run.home) | snapshot(good.parent, run.home)
    ingest = run("ingest")
    convert = run("convert")
    status = run("status", "--json")
    after = snapshot(base, run.home) | snapshot(good.parent, run.home)
    shutil.rmtree(inc / "item14_path_too_long")  # pytest's own cleanup cannot stat it
    return dict(run=run, expect=expect, ingest=ingest, convert=convert,
                status=json.loads(status.stdout), before=before, after=after, valid=src[0])


def _entries(corpus) -> dict[str, dict]:
    return {q["path"]: q for q in corpus["status"]["quarantined"]}


@pytest.mark.parametrize("case", sorted(list(CONTENT_CASES) + [
    "zero_length_file", "text_file", "truncated_file", "item14_impossible_date",
    "item14_february_30", "item14_arabic_indic_digits", "item14_trailing_newline",
    "name_says_another_subband", "item14_path_too_long", "directory_named_like_subband",
    "fifo_named_like_subband", "item22_symlink_outside", "duplicate_copy",
    "undecodable_directory_name"]))
def test_hostile_entry_recorded_with_reason_in_status(corpus, case) -> None:
    path, status, pattern = corpus["expect"][case]
    entries = _entries(corpus)
    if path is None:  # the path text is escaped or cut: find it by its reason
        hits = [q for q in entries.values() if re.search(pattern, q["error"] or "")]
        assert len(hits) == 1, (case, hits)
        got = hits[0]
    else:
        assert path in entries, (case, sorted(entries))
        got = entries[path]
    assert got["status"] == status, (case, got)
    assert re.search(pattern, got["error"]), (case, got["error"])
    assert "\n" not in got["path"] + got["error"], "one line per entry"


def test_acceptance3_valid_observation_converts_beside_the_corpus(corpus) -> None:
    assert corpus["ingest"].returncode == 0, corpus["ingest"].stderr[-2000:]
    assert corpus["convert"].returncode == 0, corpus["convert"].stdout[-2000:]
    with corpus["run"].db() as conn:
        rows = conn.execute("SELECT subbands FROM measurement_sets").fetchall()
        reg = conn.execute("SELECT COUNT(*) FROM subband_files WHERE status = 'registered'")
        assert reg.fetchone()[0] == 16
    assert len(rows) == 1 and json.loads(rows[0]["subbands"]) == list(range(16))
    assert corpus["convert"].stdout.count("\tdone\t") == 1


def test_acceptance3_stderr_lines_are_single_and_name_their_file(corpus) -> None:
    lines = corpus["ingest"].stderr.splitlines()
    quarantined = [ln for ln in lines if ln.startswith("quarantined\t")]
    n_expected = len(corpus["expect"])  # duplicates are reported on the same kind of line
    assert len(quarantined) == n_expected, "\n".join(lines)
    assert all(len(ln.split("\t")) == 3 for ln in quarantined)


def test_acceptance3_links_loops_and_other_files_are_ignored_not_fatal(corpus) -> None:
    entries = _entries(corpus)
    assert not [p for p in entries if "/links/" in p or p.endswith("notes.txt")]


def test_acceptance3_database_intact_and_nothing_written_outside_the_state_dir(corpus) -> None:
    run = corpus["run"]
    run.check_integrity()
    run.check_sandbox_untouched()
    assert corpus["before"] == corpus["after"], "files outside the state directory changed"


def test_acceptance3_rescan_records_nothing_twice(corpus) -> None:
    run = corpus["run"]
    with run.db() as conn:
        n_events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    again = run("ingest")
    assert again.returncode == 0 and "quarantined" not in again.stderr, again.stderr
    with run.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == n_events
