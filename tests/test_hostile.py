"""Hostile names and configs: target ids from granules and target files never leave the output root; configs are
validated; YAML is parsed with safe loaders only. (The config parser itself is fuzzed in tests/test_config.py.)"""

from __future__ import annotations

import datetime as dt
import json
import re
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from oco_l3.cli import main
from oco_l3.config import parse_config
from oco_l3.errors import ConfigInvalid
from oco_l3.sample_data import CaptureSpec, sample_filename, write_granule
from tests.test_crash_safety import write_config

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2021, 12, 18)
HOSTILE = [
    "../../escaped",
    "a/b",
    "/abs/path",
    "..",
    "x" * 300,
    "$(touch PWNED_SUBST)",
    "`touch PWNED_TICK`",
    "t; touch PWNED_SEMI",
    "t|touch PWNED_PIPE&",
    ".hidden",
    "nul\u0001byte",
    "~root",
    "tab\tid",
]
PLACEHOLDER = "NULPLACEHOLDER"  # becomes a real NUL in the file (h5py edit below)


def hostile_granule(folder: Path) -> Path:
    """One SYNTHETIC OCO-3 granule with a capture per hostile target id (and a NUL one), plus a valid capture."""
    caps = [CaptureSpec("fossil0005", "sam", 80, dt.datetime.combine(DAY, dt.time(1, 0)),
                        target_name="../../name; rm -rf / $(id)")]
    for i, tid in enumerate([*HOSTILE, PLACEHOLDER]):
        caps.append(CaptureSpec(tid, "sam", 24, dt.datetime.combine(DAY, dt.time(2 + i // 6, (i % 6) * 10)),
                                center=(10.0 + i, 20.0 + i), target_name=tid))
    folder.mkdir(parents=True, exist_ok=True)
    path = write_granule(folder / sample_filename("oco3", DAY), "oco3", DAY, caps, n_background=40)
    with h5py.File(path, "r+") as f:
        for key in ("Sounding/target_id", "Sounding/target_name"):
            values = f[key][...].astype(object)
            # variable-length HDF5 strings cannot hold NUL: rewrite as fixed-length bytes, which can
            fixed = np.array([(v.decode() if isinstance(v, bytes) else v).replace(PLACEHOLDER, "a\x00/../b").encode()
                              for v in values])
            del f[key]
            f.create_dataset(key, data=fixed)
    return path


def hostile_target_file(folder: Path) -> Path:
    """The bundled targets plus entries whose ids (as keys and as ``id``) and names are hostile; each gets a valid
    bbox around the capture that carries that id, so only the id can stop it."""
    raw = json.loads(resources.files("oco_l3.data").joinpath("targets.json").read_text(encoding="utf-8"))
    for i, tid in enumerate([*HOSTILE, "a\x00/../b"]):
        lat, lon = 10.0 + i, 20.0 + i
        raw[tid] = {"id": tid, "name": f"../{tid}", "centroid_wkt": f"POINT ({lon} {lat})",
                    "bbox": {"min_lon": lon - 0.5, "min_lat": lat - 0.5, "max_lon": lon + 0.5, "max_lat": lat + 0.5}}
    raw["fossil0005"]["name"] = "../../$(touch PWNED_NAME)\x00"
    path = folder / "hostile-targets.json"
    path.write_text(json.dumps(raw))
    return path


def test_hostile_target_ids_never_leave_the_output_root(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    (work / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(work / "a" / "b")  # "../../escaped" relative to here is still inside tmp_path
    granule = hostile_granule(tmp_path / "in")
    targets = hostile_target_file(tmp_path)
    out = work / "out"
    config = write_config(tmp_path / "c.yaml", [granule], {"local": str(out), "cog": {"output": {"local": str(out / "cog")}}},
                          **{"target-file": str(targets)})
    before = {p for p in tmp_path.rglob("*")}
    rc = main(["run", "-i", str(config)])
    stdout, stderr = capsys.readouterr()
    assert rc == 0, stderr[-3000:]
    assert re.search(r"ok +oco3_LtCO2_\S+: 1 captures \(fossil0005\)", stdout), stdout
    for tid in ("../../escaped", "a/b", "$(touch PWNED_SUBST)"):
        assert f"skipping target {tid[:60]!r}" in stderr, tid  # refused by the target-file loader, by name
    created = {p for p in tmp_path.rglob("*")} - before
    assert created, "the valid capture wrote its stores"
    outside = sorted(str(p) for p in created if out not in p.parents and p != out)
    assert not outside, outside
    for p in created:
        name = p.name
        assert "\x00" not in name and ".." not in name.replace(".zarr", "") and "$" not in name and "`" not in name
        assert len(name) < 200
    stores = sorted(p.name for p in (out / "oco3" / "pre_qf").iterdir() if p.suffix == ".zarr")
    assert stores == ["fossil0005.zarr"]
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path("/tmp").glob("PWNED*"))
    attrs = json.loads((out / "oco3" / "pre_qf" / "fossil0005.zarr" / ".zattrs").read_text())
    assert "\x00" not in attrs["target_name"]  # names are data, stored as text, NUL removed


def test_hostile_names_from_an_oco2_style_nearest_target(tmp_path: Path) -> None:
    """The target-file loader refuses every hostile id whatever the mission (OCO-2 picks targets by distance)."""
    from oco_l3.targets import load_targets

    targets = load_targets(hostile_target_file(tmp_path))
    for tid in [*HOSTILE, "a\x00/../b"]:
        assert tid not in targets
    assert all(re.fullmatch(r"[A-Za-z0-9_+\-][A-Za-z0-9_+.\-]{0,127}", t) and ".." not in t for t in targets)


@pytest.mark.parametrize("key, value", [
    ("grid", {"latitude": 10**9, "longitude": 10}),
    ("grid", {"latitude": 0, "longitude": 10}),
    ("grid", {"latitude": "1e9", "longitude": 10}),
    ("chunking", {"latitude": 10**9, "longitude": 250, "time": 5}),
    ("max-workers", 10**6),
    ("mask-scaling", 1000.0),
    ("output", {"local": "out\x00/x"}),
    ("output", {"naming": {"pre_qf": "../../etc"}, "local": "out"}),
    ("output", {"naming": {"post_qf": "a/b"}, "local": "out"}),
])
def test_config_values_are_validated(key: str, value: object) -> None:
    raw = {"input": {"files": ["x.nc4"]}, "output": {"local": "out"}, key: value}
    with pytest.raises(ConfigInvalid) as err:
        parse_config(raw, "hostile.yaml")
    assert "\n" not in str(err.value).strip() and "hostile.yaml" in str(err.value)


def test_yaml_is_parsed_with_safe_loaders_only() -> None:
    unsafe = re.compile(r"yaml\.(unsafe_load|full_load|load_all|load)\s*\(|Loader\s*=|yaml\.(Unsafe|Full)?Loader\b")
    offenders = []
    for folder in ("oco_l3", "flows", "tasks", "scripts", "bench", "deployments"):
        for path in sorted((REPO / folder).rglob("*.py")) if (REPO / folder).exists() else []:
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if unsafe.search(line) and "safe_load" not in line:
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, offenders
    # and the loader in use refuses Python tags
    assert yaml.safe_load("a: 1") == {"a": 1}
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("!!python/object/apply:os.system ['true']")
