"""The bad-input corpus (tests/data/bad/, generated at test time) through ``oco-l3 run``.

Each bad input gives a one-line error or a documented skip or policy, the other inputs of the run are processed,
and the stores written before the run do not change by a single byte.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest

from oco_l3.cli import main
from oco_l3.stores import open_store
from tests.test_crash_safety import small_day, write_config

_spec = importlib.util.spec_from_file_location("bad_corpus", Path(__file__).parent / "data" / "bad" / "make_corpus.py")
assert _spec is not None and _spec.loader is not None
corpus = importlib.util.module_from_spec(_spec)
sys.modules["bad_corpus"] = corpus
_spec.loader.exec_module(corpus)

LOCAL = fsspec.filesystem("file")
EXISTING = ("fossil0005", "tccon105")


def tree_hashes(root: Path, catalogue: bool = False) -> dict[str, str]:
    """Hashes of the stores' files (or of the STAC catalogue's, which describes them and is checked in test_stac)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and (p.relative_to(root).parts[0] in ("stac", "catalog.json")) == catalogue}


def run(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["run", "-i", str(config)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bad")
    cases = corpus.build(tmp / "corpus")
    targets = corpus.target_file(tmp)
    good = small_day(tmp / "good", corpus.DAY0)
    out = tmp / "out"
    return {"tmp": tmp, "cases": cases, "targets": targets, "good": good, "out": out}


def test_bad_inputs_fail_or_skip_cleanly_and_change_nothing_written(
        bad_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, cases, out = bad_run["tmp"], bad_run["cases"], bad_run["out"]
    extra = {"target-file": str(bad_run["targets"])}
    rc, _, err = run(write_config(tmp / "first.yaml", [bad_run["good"]], {"local": str(out)}, **extra), capsys)
    assert rc == 0, err
    # the target file loads once per process (cached): its bad entry is reported by the first run that reads it
    assert re.search(r"skipping target 'fossilBadBox': bbox .*min_lon < max_lon", err), err[-2000:]
    before, catalogue = tree_hashes(out), tree_hashes(out, catalogue=True)
    existing = {k for k in before if k.split("/")[2].removesuffix(".zarr") in EXISTING}
    assert len(existing) > 20

    rc, stdout, stderr = run(write_config(tmp / "bad.yaml", [c.path for c in cases], {"local": str(out)}, **extra),
                             capsys)
    assert rc == 1  # some inputs failed; the run itself completed
    lines = stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith(("ok  ", "FAIL"))]) == len(cases)
    for case in cases:
        mine = [ln for ln in lines if str(case.path) in ln or (case.outcome != "fail" and case.path.name in ln)]
        assert len(mine) == 1, (case.name, mine)
        line = mine[0]
        if case.outcome == "fail":
            assert line.startswith("FAIL "), (case.name, line)
            assert re.search(case.expect, line, re.IGNORECASE), (case.name, line)
            assert "Traceback" not in line and len(line) < 500, (case.name, line)
        else:
            assert line.startswith("ok   "), (case.name, line)
        if case.outcome == "skip":
            assert re.search(case.expect, stderr), (case.name, stderr[-2000:])
    assert f"{sum(c.outcome == 'fail' for c in cases)} failed:" in stderr
    assert "Traceback" not in stderr

    after = tree_hashes(out)
    # nothing already written changed, byte for byte
    assert {k: after.get(k) for k in existing} == {k: before[k] for k in existing}
    # new objects only in the stores of the inputs processed under a documented policy
    allowed = {t for c in cases if c.outcome == "ok" for t in c.targets}
    new_stores = {k.split("/")[2].removesuffix(".lock").removesuffix(".zarr") for k in set(after) - set(before)}
    assert new_stores <= allowed, new_stores - allowed
    new_items = {k.split("/")[2] for k in set(tree_hashes(out, catalogue=True)) - set(catalogue) if k.count("/") > 2}
    assert new_items <= allowed, new_items - allowed  # catalogue items only for what was written
    for case in cases:
        for target in case.targets:
            check_policy_store(out / "oco3" / "pre_qf" / f"{target}.zarr", case.name)


def check_policy_store(path: Path, case: str) -> None:
    """An input accepted under a policy wrote exactly one well-formed capture slice."""
    ds = open_store(LOCAL, str(path))
    assert ds.sizes["time"] == 1, (case, ds.sizes)
    assert ds.sizes["latitude"] == 50 and ds.sizes["longitude"] == 50
    assert str(ds["time"].values[0]).startswith(str(corpus.BAD_DAY)), case
    xco2 = ds["xco2"].values
    unc = ds["xco2_uncertainty"].values
    assert np.isfinite(unc).any(), case
    assert not np.isinf(xco2).any(), case
    if case == "all_fill_xco2":
        assert np.isnan(xco2).all()  # all-fill becomes all-missing, never the fill number
    else:
        assert np.isfinite(xco2).any(), case
        finite = xco2[np.isfinite(xco2)]
        assert finite.min() > 300 and finite.max() < 500, (case, finite.min(), finite.max())  # no fill leaked


def test_one_by_one_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = small_day(tmp_path / "g", corpus.DAY0)
    config = write_config(tmp_path / "c.yaml", [good], {"local": str(tmp_path / "out")})
    config.write_text(config.read_text().replace("latitude: 50", "latitude: 1").replace("longitude: 50", "longitude: 1"))
    rc, _, err = run(config, capsys)
    assert rc == 0, err
    ds = open_store(LOCAL, str(tmp_path / "out" / "oco3" / "pre_qf" / "fossil0005.zarr"))
    assert ds["xco2"].shape == (1, 1, 1)
    assert np.isfinite(ds["xco2"].values).all()


def test_empty_input_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "c.yaml", [], {"local": str(tmp_path / "out")})
    rc, out, err = run(config, capsys)
    assert rc in (0, 2), (rc, out, err)
    assert "Traceback" not in err
    assert len((out + err).strip().splitlines()) <= 2
    assert not any((tmp_path / "out").rglob("*.zarr")) if (tmp_path / "out").exists() else True


def test_corpus_covers_the_issue_list() -> None:
    text = Path(corpus.__file__).read_text()
    names = set(re.findall(r'Case\(f?"(\w+)', text)) | set(re.findall(r'"(\w+)": r"', text))
    for needed in ("zero_byte", "truncated", "hdf5_not_netcdf", "missing_group", "renamed_variable", "wrong_dtype",
                   "missing_target_id", "all_fill_xco2", "nan_and_out_of_range_coordinates", "capture_of_",
                   "collinear_soundings", "duplicate_sounding_ids", "antimeridian_footprints",
                   "target_bbox_min_gt_max", "day_without_captures"):
        assert needed in names, (needed, sorted(names))
