from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oco_l3.config import DayInputs, S3Object, load_config, parse_config, read_yaml
from oco_l3.errors import ConfigInvalid, TargetFileInvalid
from oco_l3.grids import GridSpec, target_grid
from oco_l3.targets import BBox, is_safe_id, load_targets, parse_targets

CONFIGS = Path(__file__).resolve().parent / "data" / "configs"


def minimal(**extra: object) -> dict:
    return {"output": {"local": "/tmp/out"}, "input": {"files": ["/tmp/a.nc4"]}, **extra}


def test_defaults_are_the_seed_readme_defaults() -> None:
    c = parse_config(minimal())
    assert c.grid.method == "cubic"
    assert (c.chunking.latitude, c.chunking.longitude, c.chunking.time) == (250, 250, 5)
    assert c.max_workers == 1 and c.mask_scaling == 1.0
    assert c.output.naming.pre_qf == "pre_qf" and c.title.post_qf == "post_qf"


def test_later_sample_config_parses() -> None:
    c = load_config(CONFIGS / "sample-run-config.later.yaml")
    assert c.grid.method == "nearest" and c.chunking.time == 14
    assert c.output.local == "/tmp/oco3/"
    assert c.variables is not None and c.variables["oco3_sif"][0].key == "Daily_SIF_757nm"
    assert c.target_path("oco2") == "/tmp/targets_oco2.json" and c.target_path("oco3_sif") == "/tmp/targets.json"


def test_seed_sample_config_parses_with_drop_dims() -> None:
    c = load_config(CONFIGS / "sample-sam-config.yml")
    assert any(d.key == "Sounding/target_id" for d in c.drop_dims)
    assert "/Sounding" in c.exclude_groups


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"grid": {"latitude": 0}}, "grid.latitude"),
        ({"grid": {"latitude": 10**9}}, "grid.latitude"),
        ({"grid": {"method": "spline"}}, "grid.method"),
        ({"mask-scaling": 2}, "mask-scaling"),
        ({"max-workers": 0}, "max-workers"),
        ({"output": {"local": "/x", "naming": {"pre_qf": "../evil"}}}, "output.naming.pre_qf"),
        ({"output": {"local": "/x", "s3": {"url": "s3://b"}}}, "exactly one of local or s3"),
        ({"input": {"files": [{"path": "s3://b/k", "accessKeyID": "a", "secretAccessKey": "b", "extra": 1}]}}, "extra"),
    ],
)
def test_bad_values_name_the_key(patch: dict, needle: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        parse_config({**minimal(), **patch}, "cfg.yml")
    msg = str(err.value)
    assert needle in msg and msg.startswith("cfg.yml: invalid config") and "\n" not in msg


def test_input_items_forms() -> None:
    c = parse_config(minimal(input={"files": [
        "/data/oco3_LtCO2_200303_B10400Br_220318000013s.nc4",
        {"path": "s3://bucket/key.nc4", "accessKeyID": "AKIA", "secretAccessKey": "topsecret"},
        {"oco3": "/a.nc4", "oco2": None, "oco3_sif": {"path": "s3://b/c.nc4"}},
    ]}))
    files = c.input.files  # type: ignore[union-attr]
    assert isinstance(files[1], S3Object) and files[1].region == "us-west-2"
    assert "topsecret" not in repr(files[1]) and "topsecret" not in str(c.model_dump())
    assert isinstance(files[2], DayInputs) and [m for m, _ in files[2].items()] == ["oco3", "oco3_sif"]


def test_queue_host_port_split() -> None:
    c = parse_config({"output": {"local": "/o"}, "input": {"queue": {"host": "rmq:5673", "queue": "q", "password": "pw"}}})
    assert c.input.queue.host == "rmq" and c.input.queue.port == 5673  # type: ignore[union-attr]


def test_unsafe_yaml_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "evil.yml"
    p.write_text("output: !!python/object/apply:os.system ['touch /tmp/pwned-oco']\n")
    with pytest.raises(ConfigInvalid, match="not valid YAML"):
        load_config(p)
    assert not Path("/tmp/pwned-oco").exists()


def test_targets_bundled_and_types() -> None:
    t = load_targets()
    assert len(t) == 559
    assert t["fossil0005"].type == "fossil" if "fossil0005" in t else True
    assert {x.type for x in t.values()} >= {"fossil", "volcano", "ecostress", "sif", "tccon", "other"}
    assert len(load_targets(default="targets_oco2-pub.json")) == 31


@pytest.mark.parametrize("bad", ["../x", "a/b", "x\x00y", ".hidden", "a" * 200, "$(rm -rf /)", "a;b", "..", ""])
def test_unsafe_target_ids_are_skipped(bad: str) -> None:
    assert not is_safe_id(bad)
    raw = {bad: {"id": bad, "name": "n", "bbox": {"min_lon": 0, "min_lat": 0, "max_lon": 1, "max_lat": 1}},
           "ok1": {"id": "ok1", "name": "n", "bbox": {"min_lon": 0, "min_lat": 0, "max_lon": 1, "max_lat": 1}}}
    assert list(parse_targets(raw)) == ["ok1"]


def test_target_bbox_min_greater_than_max_is_skipped() -> None:
    raw = {"t1": {"id": "t1", "bbox": {"min_lon": 5, "min_lat": 0, "max_lon": 1, "max_lat": 1}}}
    assert parse_targets(raw) == {}


def test_unreadable_target_file(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text("{not json")
    with pytest.raises(TargetFileInvalid, match="t.json"):
        load_targets(p)


def test_grid_centres_and_bounds() -> None:
    g = GridSpec(BBox(10, 20, 13, 23), 3, 6)
    assert g.latitude.tolist() == [20.5, 21.5, 22.5]
    assert g.longitude[0] == 10.25 and g.longitude[-1] == 12.75
    assert g.row_range(21.4, 21.6) == (0, 3) or g.row_range(21.4, 21.6)[0] <= 1
    with pytest.raises(Exception, match="grid"):
        target_grid(BBox(0, 0, 1, 1), 20000, 20000)


# --- property-based fuzzing of the two loaders (issue 8) -------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
config_keys = st.sampled_from(["output", "input", "grid", "chunking", "target-file", "exclude-groups", "drop-dims",
                               "max-workers", "mask-scaling", "variables", "local", "s3", "files", "queue", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(config_keys, json_values, max_size=6))
def test_fuzz_config_parser_only_raises_config_invalid(raw: dict) -> None:
    try:
        parse_config(raw, "fuzz.yml")
    except ConfigInvalid as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yml")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_yaml_text_only_raises_config_invalid(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "fuzz.yml")
        with open(path, "w") as f:
            f.write(text)
        try:
            raw = read_yaml(path)
            parse_config(raw, path)
        except ConfigInvalid:
            pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=30), json_values, max_size=5) | st.lists(json_values, max_size=4) | json_values)
def test_fuzz_target_loader(raw: object) -> None:
    try:
        targets = parse_targets(raw)
    except TargetFileInvalid:
        return
    for tid, t in targets.items():
        assert is_safe_id(tid) and t.bbox.min_lon < t.bbox.max_lon and t.bbox.min_lat < t.bbox.max_lat
    json.dumps({k: v.name for k, v in targets.items()})


def test_yaml_roundtrip_of_seed_keys(tmp_path: Path) -> None:
    cfg = minimal(**{"grid": {"latitude": 400, "longitude": 500, "method": "linear"}, "mask-scaling": 1.25,
                     "target-file": {"oco3": "/t3.json", "oco2": "/t2.json"}})
    p = tmp_path / "c.yml"
    p.write_text(yaml.safe_dump(cfg))
    c = load_config(p)
    assert (c.grid.latitude, c.grid.longitude, c.mask_scaling) == (400, 500, 1.25)
    assert c.target_path("oco3_sif") == "/t3.json"
