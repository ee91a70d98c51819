"""The global daily product on a coarse global grid: exactness, masks, prefixes, layers, days, antimeridian."""

from __future__ import annotations

import datetime as dt
import os

import fsspec
import numpy as np
import pytest
import xarray as xr

from oco_l3.global_grid import global_grid, grid_capture_global
from oco_l3.global_product import (
    GlobalCaptureProduct,
    commit_global_day,
    compose_day,
    output_key,
)
from oco_l3.soundings import MODE_SAM, MODE_TARGET, Soundings, Variable
from oco_l3.targets import BBox, Target

DAY = dt.date(2021, 12, 18)
GRID = global_grid(360, 720)  # 0.5 degree
CHUNKS = (40, 40)


def xco2(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return 400.0 + 0.25 * lon + 0.5 * lat


def psurf(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return 95000.0 - 3.0 * lon + 7.0 * lat


def make_soundings(
    mission: str, lon0: float, lat0: float, *, n: int = 8, size: float = 1.0, hour: int = 10,
    field_offset: float = 0.0, mode: int = MODE_SAM, target: str = "fossil0001",
) -> Soundings:
    """An ``n x n`` block of square footprints of ``size`` degrees centred on (lon0, lat0).

    Longitudes are NOT wrapped here (a block at 180 has longitudes > 180 on one side; they are wrapped into
    -180..180 below). Field values use the unwrapped longitude, so they are linear across the antimeridian.
    """
    k = (np.arange(n) - (n - 1) / 2) * size
    glon, glat = np.meshgrid(lon0 + k, lat0 + k)
    lon, lat = glon.ravel(), glat.ravel()
    h = size / 2
    vlon = np.stack([lon - h, lon + h, lon + h, lon - h], axis=1)
    vlat = np.stack([lat - h, lat - h, lat + h, lat + h], axis=1)
    m = lon.size
    start = np.datetime64(f"{DAY.isoformat()}T{hour:02d}:00:00", "ns")
    times = start + np.arange(m).astype("timedelta64[s]")
    good = (np.arange(m) % 5) != 0
    variables = (
        Variable("", "xco2", xco2(lon, lat) + field_offset, {"units": "ppm"}),
        Variable("Retrieval", "psurf", psurf(lon, lat) + field_offset, {"units": "Pa"}),
    )
    if mission == "oco3_sif":
        variables = (Variable("", "Daily_SIF_757nm", xco2(lon, lat) / 400.0 + field_offset, {}),)

    def wrap(a: np.ndarray) -> np.ndarray:
        return (a + 180.0) % 360.0 - 180.0

    return Soundings(
        mission=mission, latitude=lat, longitude=wrap(lon), vertex_latitude=vlat, vertex_longitude=wrap(vlon),
        time=times, mode=np.full(m, mode, np.int8), target_id=np.full(m, target), target_name=np.full(m, target),
        good=good, variables=variables, source="synthetic",
    )


def target(tid: str, lon: float = 0.0, lat: float = 0.0) -> Target:
    return Target(tid, tid, lon, lat, BBox(max(lon - 1.5, -180), lat - 1.5, min(lon + 1.5, 180), lat + 1.5))


def product(s: Soundings, tid: str = "fossil0001", method: str = "linear") -> GlobalCaptureProduct:
    gc = grid_capture_global(s, GRID, method)  # type: ignore[arg-type]
    return GlobalCaptureProduct(s.mission, target(tid), "sam", s.time[0], len(s), "g.nc4", gc.pre, gc.post)


def commit(
    path: str, caps: list[GlobalCaptureProduct], day: dt.date = DAY, qf: str = "pre",
    chunks: tuple[int, int] = CHUNKS, fs: fsspec.AbstractFileSystem | None = None,
) -> None:
    canvas = compose_day(GRID, chunks, caps, qf)  # type: ignore[arg-type]
    commit_global_day(fs or fsspec.filesystem("file"), path, day, canvas, attrs={"title": "test"})


def cell_coords() -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(GRID.longitude, GRID.latitude)


@pytest.fixture
def store(tmp_path: object) -> str:
    return os.path.join(str(tmp_path), "global_pre.zarr")


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_exact_where_finite_and_nan_outside(store: str, method: str) -> None:
    s = make_soundings("oco3", 10.0, 20.0)
    commit(store, [product(s, method=method)])
    ds = xr.open_zarr(store, consolidated=True)
    assert list(ds.time.values) == [np.datetime64("2021-12-18T00:00:00", "ns")]
    got = ds["OCO3_global_xco2"].isel(time=0).values
    lon, lat = cell_coords()
    inside = (np.abs(lon - 10.0) < 4.0) & (np.abs(lat - 20.0) < 4.0)
    finite = np.isfinite(got)
    assert finite.sum() > 100
    assert not (finite & ~inside).any()
    np.testing.assert_allclose(got[finite], xco2(lon, lat)[finite], rtol=0, atol=2e-4)
    g = xr.open_zarr(store, group="Retrieval", consolidated=True)["OCO3_global_psurf"].isel(time=0).values
    gf = np.isfinite(g)
    np.testing.assert_allclose(g[gf], psurf(lon, lat)[gf], rtol=0, atol=0.02)


def test_prefixes_layers_and_absent_missions(store: str) -> None:
    caps = [
        product(make_soundings("oco3", 10.0, 20.0, target="volcano0007"), "volcano0007"),
        product(make_soundings("oco2", -60.0, -10.0, mode=MODE_TARGET)),
        product(make_soundings("oco3_sif", 100.0, 40.0, target="sif0003"), "sif0003"),
    ]
    commit(store, caps)
    ds = xr.open_zarr(store, consolidated=True, mask_and_scale=False)
    for name in ("OCO3_global_xco2", "OCO2_global_xco2", "OCO3_SIF_global_Daily_SIF_757nm",
                 "OCO3_global_target_id", "OCO3_global_target_type", "OCO3_global_operation_mode",
                 "OCO3_SIF_global_target_id"):
        assert name in ds, name
    assert "OCO2_global_target_id" not in ds
    assert output_key("oco3", "Retrieval/psurf") == "Retrieval/OCO3_global_psurf"
    tid = ds["OCO3_global_target_id"].isel(time=0).values
    xc = ds["OCO3_global_xco2"].isel(time=0).values
    assert tid.dtype == np.int32 and ds["OCO3_global_target_type"].dtype == np.int8
    covered = tid != -1
    assert covered.any() and not np.isfinite(xc[~covered]).any()  # values only where a footprint is
    assert np.isfinite(xc[covered]).mean() > 0.5  # edge cells outside the hull of the centres are NaN
    ids = ds["OCO3_global_target_id"].attrs["target_ids"]
    assert {ids[i] for i in np.unique(tid[covered])} == {"volcano0007"}
    assert set(np.unique(ds["OCO3_global_target_type"].isel(time=0).values[covered])) == {4}
    assert set(np.unique(ds["OCO3_global_operation_mode"].isel(time=0).values[covered])) == {MODE_SAM}
    assert (ds["OCO3_global_target_type"].isel(time=0).values[~covered] == -1).all()
    sif_types = ds["OCO3_SIF_global_target_type"].isel(time=0).values
    assert set(np.unique(sif_types[sif_types != -1])) == {3}
    # next day: only OCO-3 present -> OCO-2 and SIF all-fill that day
    commit(store, [product(make_soundings("oco3", 10.0, 20.0))], day=DAY + dt.timedelta(days=1))
    ds = xr.open_zarr(store, consolidated=True)
    assert ds.sizes["time"] == 2
    assert np.isnan(ds["OCO2_global_xco2"].isel(time=1).values).all()
    assert np.isfinite(ds["OCO2_global_xco2"].isel(time=0).values).any()
    assert np.isnan(ds["OCO3_SIF_global_target_id"].isel(time=1).values).all()
    # a new target id on day 2 is appended: day 1's indices keep their meaning
    assert ds["OCO3_global_target_id"].attrs["target_ids"] == ["volcano0007", "fossil0001"]
    raw = xr.open_zarr(store, consolidated=True, mask_and_scale=False)["OCO3_global_target_id"].values
    assert set(np.unique(raw[0])) == {-1, 0} and set(np.unique(raw[1])) == {-1, 1}


def test_antimeridian_capture_both_sides(store: str) -> None:
    s = make_soundings("oco3", 180.0, -30.0, n=6, size=0.8)
    assert (s.longitude > 170).any() and (s.longitude < -170).any()
    commit(store, [product(s)], chunks=(50, 70))  # 720 = 10 x 70 + 20: the east edge chunk is partial
    got = xr.open_zarr(store, consolidated=True)["OCO3_global_xco2"].isel(time=0).values
    lon, lat = cell_coords()
    finite = np.isfinite(got)
    east, west = finite & (lon > 0), finite & (lon < 0)
    assert east.sum() > 10 and west.sum() > 10
    assert (np.abs(lon[finite]) > 177).all()
    unwrapped = np.where(lon < 0, lon + 360.0, lon)
    np.testing.assert_allclose(got[finite], xco2(unwrapped, lat)[finite], rtol=0, atol=2e-4)


def test_pole_capture_is_clipped(store: str) -> None:
    s = make_soundings("oco3", 40.0, 87.9, n=6, size=0.8)  # top centres at 89.9, footprints reach 90.3 before clipping
    s = Soundings(**{**s.__dict__, "vertex_latitude": np.minimum(s.vertex_latitude, 90.0)})
    commit(store, [product(s)])
    got = xr.open_zarr(store, consolidated=True)["OCO3_global_xco2"].isel(time=0).values
    types = xr.open_zarr(store, consolidated=True, mask_and_scale=False)["OCO3_global_target_type"]
    assert (types.isel(time=0).values[-1] != -1).any()  # the northernmost row is covered
    lon, lat = cell_coords()
    finite = np.isfinite(got)
    np.testing.assert_allclose(got[finite], xco2(lon, lat)[finite], rtol=0, atol=2e-4)


def test_day_without_captures_and_memory_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    path = "/global-test/pre_qf"
    commit(path, [product(make_soundings("oco3", 10.0, 20.0))], fs=fs)
    commit(path, [], day=DAY + dt.timedelta(days=1), fs=fs)
    ds = xr.open_zarr(fs.get_mapper(path), consolidated=True)
    assert ds.sizes["time"] == 2
    assert np.isfinite(ds["OCO3_global_xco2"].isel(time=0).values).any()
    assert np.isnan(ds["OCO3_global_xco2"].isel(time=1).values).all()
    assert np.isnan(ds["OCO3_SIF_global_target_id"].values).all()
    assert not fs.exists(path + "/.oco-l3-txn")


def test_rerun_replaces_day_and_later_sounding_wins(store: str) -> None:
    early = make_soundings("oco3", 10.0, 20.0, hour=3)
    late = make_soundings("oco3", 11.0, 21.0, hour=9, field_offset=100.0)
    commit(store, [product(late), product(early)])
    got = xr.open_zarr(store, consolidated=True)["OCO3_global_xco2"].isel(time=0).values
    lon, lat = cell_coords()
    both = (np.abs(lon - 11.0) < 2.5) & (np.abs(lat - 21.0) < 2.5) & np.isfinite(got)
    np.testing.assert_allclose(got[both], xco2(lon, lat)[both] + 100.0, atol=2e-3)
    # re-run the day with a capture elsewhere: one slice, old cells gone
    commit(store, [product(make_soundings("oco3", -100.0, 0.0))])
    ds = xr.open_zarr(store, consolidated=True)
    assert ds.sizes["time"] == 1
    got = ds["OCO3_global_xco2"].isel(time=0).values
    assert not np.isfinite(got[(np.abs(lon - 10.0) < 5) & (np.abs(lat - 20.0) < 5)]).any()
    assert np.isfinite(got[(np.abs(lon + 100.0) < 3) & (np.abs(lat) < 3)]).any()


def test_insert_day_before_end_keeps_days_and_only_touched_chunks(store: str) -> None:
    d1, d2, d3 = DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    commit(store, [product(make_soundings("oco3", 10.0, 20.0))], day=d1)
    commit(store, [product(make_soundings("oco3", 50.0, -20.0))], day=d3)
    commit(store, [product(make_soundings("oco3", -30.0, 60.0))], day=d2)
    ds = xr.open_zarr(store, consolidated=True)
    assert [str(t)[:10] for t in ds.time.values] == [str(d1), str(d2), str(d3)]
    x = ds["OCO3_global_xco2"].values
    lon, lat = cell_coords()
    for i, (clon, clat) in enumerate([(10.0, 20.0), (-30.0, 60.0), (50.0, -20.0)]):
        near = (np.abs(lon - clon) < 5) & (np.abs(lat - clat) < 5)
        assert np.isfinite(x[i][near]).any() and not np.isfinite(x[i][~near]).any()
    chunks = [f for f in os.listdir(os.path.join(store, "OCO3_global_xco2")) if not f.startswith(".")]
    assert sorted(chunks) == ["0", "1", "2"]
    per_day = sum(len(fs) for _, _, fs in os.walk(os.path.join(store, "OCO3_global_xco2", "1")))
    assert 1 <= per_day <= 4  # a 4-degree capture touches at most 2 x 2 chunks of 20 degrees
    assert not os.path.exists(os.path.join(store, ".oco-l3-txn"))


def test_run_global_end_to_end_on_sample_day(tmp_path: object) -> None:
    from oco_l3.config import parse_config
    from oco_l3.global_product import run_global
    from oco_l3.sample_data import ANALYTIC, write_sample_day

    base = str(tmp_path)
    paths = write_sample_day(os.path.join(base, "in"), DAY)
    out = os.path.join(base, "out")

    def config(files: list[str]) -> object:
        return parse_config({
            "input": {"files": files}, "output": {"local": out, "global": True},
            "grid": {"latitude": 1800, "longitude": 3600, "method": "linear"},
        })

    import yaml

    from oco_l3.cli import main

    cfg_path = os.path.join(base, "run.yaml")
    with open(cfg_path, "w") as fh:
        yaml.safe_dump({"input": {"files": [str(p) for p in paths.values()]},
                        "output": {"local": out, "global": True},
                        "grid": {"latitude": 1800, "longitude": 3600, "method": "linear"}}, fh)
    assert main(["run", "-i", cfg_path]) == 0
    # the two stores, and the STAC catalogue at the output root
    assert sorted(f for f in os.listdir(out) if not f.endswith(".lock")) == ["catalog.json", "post_qf", "pre_qf", "stac"]
    ds = xr.open_zarr(os.path.join(out, "pre_qf"), consolidated=True)
    assert ds.time.values[0] == np.datetime64(f"{DAY.isoformat()}T00:00:00", "ns")
    lon, lat = np.meshgrid(ds.longitude.values, ds.latitude.values)
    for name, field, group in (("OCO3_global_xco2", "xco2", None), ("OCO2_global_xco2", "xco2", None),
                               ("OCO3_SIF_global_Daily_SIF_757nm", "Daily_SIF_757nm", None),
                               ("OCO3_global_psurf", "Retrieval/psurf", "Retrieval")):
        arr = (xr.open_zarr(os.path.join(out, "pre_qf"), group=group) if group else ds)[name].isel(time=0).values
        finite = np.isfinite(arr)
        assert finite.sum() > 20, name
        expect = ANALYTIC[field](lat, lon)
        np.testing.assert_allclose(arr[finite], expect[finite], rtol=1e-6, atol=1e-4, err_msg=name)
    # integer variables keep their dtype and fill (nearest neighbour, never averaged)
    lwi = xr.open_zarr(os.path.join(out, "pre_qf"), group="Sounding", mask_and_scale=False)[
        "OCO3_global_land_water_indicator"]
    values = lwi.isel(time=0).values
    assert lwi.dtype.kind == "i"
    valid = values != lwi.attrs["_FillValue"]
    assert valid.sum() > 20 and set(np.unique(values[valid])) <= {0, 1}
    # every SAM/target capture is in the global product, also ids outside the target file and "Missing"
    raw = xr.open_zarr(os.path.join(out, "pre_qf"), consolidated=True, mask_and_scale=False)
    ids = raw["OCO3_global_target_id"].attrs["target_ids"]
    assert {"fossil0005", "fossil0036", "tccon105", "fossil9999"} <= set(ids) and "Missing" not in ids
    near_missing = (np.abs(lat - 10.0) < 1.0) & (np.abs(lon - 20.0) < 1.0)
    assert np.isfinite(ds["OCO3_global_xco2"].isel(time=0).values[near_missing]).any()
    layer = raw["OCO3_global_target_type"].isel(time=0).values[near_missing]
    assert set(np.unique(layer)) == {-1, 6}
    assert (raw["OCO3_global_target_id"].isel(time=0).values[near_missing] == -1).all()
    # the next day with only OCO-3: the other missions are reported absent and are all-fill that day
    day2 = write_sample_day(os.path.join(base, "in2"), DAY + dt.timedelta(days=1), missions=("oco3",))
    (result2,) = run_global(config([str(p) for p in day2.values()]))
    assert result2.ok and set(result2.absent) == {"oco2", "oco3_sif"}
    ds = xr.open_zarr(os.path.join(out, "pre_qf"), consolidated=True)
    assert ds.sizes["time"] == 2
    assert np.isnan(ds["OCO2_global_xco2"].isel(time=1).values).all()
    assert np.isfinite(ds["OCO3_global_xco2"].isel(time=1).values).any()


@pytest.mark.parametrize("point", ["staged", "manifest"])
def test_crash_during_commit_is_all_or_nothing(store: str, point: str) -> None:
    from oco_l3.stores import recover_store
    from oco_l3.zarr_store import _txn

    commit(store, [product(make_soundings("oco3", 10.0, 20.0))])

    def crash(name: str) -> None:
        if name == point:
            raise KeyboardInterrupt(name)

    _txn.FAULT_HOOK = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            commit(store, [product(make_soundings("oco3", -100.0, 0.0))], day=DAY + dt.timedelta(days=1))
    finally:
        _txn.FAULT_HOOK = None
    recover_store(fsspec.filesystem("file"), store)
    ds = xr.open_zarr(store, consolidated=True)
    assert ds.sizes["time"] == (1 if point == "staged" else 2)
    assert np.isfinite(ds["OCO3_global_xco2"].isel(time=-1).values).any()


def _concat(a: Soundings, b: Soundings) -> Soundings:
    cols = {f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in (
        "latitude", "longitude", "vertex_latitude", "vertex_longitude", "time", "mode", "target_id", "target_name",
        "good")}
    variables = tuple(Variable(v.group, v.name, np.concatenate([v.values, w.values]), v.attrs, v.fill)
                      for v, w in zip(a.variables, b.variables, strict=True))
    return Soundings(mission=a.mission, variables=variables, source=a.source, **cols)


def test_overpasses_hours_apart_are_separate_captures_and_huge_spans_are_refused() -> None:
    from oco_l3.errors import CaptureDegenerate
    from oco_l3.global_product import global_captures

    a = make_soundings("oco2", -97.5, 36.6, hour=4, mode=MODE_TARGET)
    b = make_soundings("oco2", 130.9, -12.4, hour=10, mode=MODE_TARGET)
    caps = global_captures(_concat(a, b), {})
    assert [c.index.size for c in caps] == [len(a), len(b)]
    assert all(c.target is None for c in caps)
    with pytest.raises(CaptureDegenerate, match="spans"):
        grid_capture_global(_concat(a, b), GRID, "linear")


def test_failed_granules_permanent_vs_retryable(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import oco_l3.global_product as gp
    from oco_l3.config import parse_config
    from oco_l3.errors import SourceUnavailable
    from oco_l3.sample_data import sample_filename, write_sample_day

    base = str(tmp_path)
    paths = write_sample_day(os.path.join(base, "in"), DAY, missions=("oco3",))
    broken = os.path.join(base, "in", sample_filename("oco2", DAY))
    open(broken, "wb").close()  # zero bytes: permanently unreadable
    out = os.path.join(base, "out")
    config = parse_config({"input": {"files": [str(paths["oco3"]), broken]}, "output": {"local": out, "global": True},
                           "grid": {"latitude": 360, "longitude": 720, "method": "nearest"},
                           "search": {"missions": ["oco3", "oco2"]}})
    (result,) = gp.run_global(config)
    assert [o.ok for o in result.outcomes] == [True, False] and "empty file" in result.errors[0]
    assert result.absent == ("oco2",) and len(result.stores) == 2
    before = sorted(os.walk(out))

    real = gp.grid_granule_global

    def flaky(cfg: object, granule: object) -> object:
        if getattr(granule, "mission", None) == "oco3":
            raise SourceUnavailable("oco3 granule: connection reset")
        return real(cfg, granule)  # type: ignore[arg-type]

    monkeypatch.setattr(gp, "grid_granule_global", flaky)
    (result,) = gp.run_global(config)
    assert not any(o.ok for o in result.outcomes) and result.stores == ()
    assert "SourceUnavailable" in result.errors[0]
    assert sorted(os.walk(out)) == before  # the stored day is untouched
