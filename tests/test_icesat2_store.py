"""The ICESat-2 daily grid store: every write is one transaction; a crash leaves the before or the after state."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from oco_l3.errors import StoreCorrupt
from oco_l3.icesat2.grids import custom_grid, resolve_grid
from oco_l3.icesat2.writers import day_dataset, open_grid_store, recover_grid_store, upsert_day
from oco_l3.zarr_store import _txn
from tests.test_stores import Crash, crash_at

# 1100 x 20 cells: two chunks along x (1024 + a partial edge chunk), small enough to be fast.
GRID = custom_grid("EPSG:6931", 1000.0, [0.0, 0.0, 1_100_000.0, 20_000.0], name="test-1km")




def day(text: str) -> np.datetime64:
    return np.datetime64(text, "D")


def make_day(d: str, seed: int, *, empty_right: bool = False, grid=GRID) -> xr.Dataset:  # type: ignore[no-untyped-def]
    """One day of statistics; ``empty_right``: no data right of x index 1024 (that chunk is all fill)."""
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 4, grid.shape).astype(np.int32)
    if empty_right:
        n[:, 1024:] = 0
    v = np.where(n > 0, rng.normal(seed, 1.0, grid.shape), np.nan).astype(np.float32)
    stats = {"n_segments": n, "mean_segment_length": np.where(n > 0, 17.5, np.nan).astype(np.float32),
             "mean": v, "std": np.abs(v) / 10}
    return day_dataset(grid, day(d), stats, {"product": "test"}, time_bounds=True)  # the sea-ice layout


def snapshot(store: Path) -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def reference(days: list[xr.Dataset]) -> xr.Dataset:
    """What the store must read as: the days concatenated in time order (later duplicates replace earlier)."""
    by_time = {}
    for ds in days:
        by_time[ds.time.values[0]] = ds
    ordered = [by_time[t] for t in sorted(by_time)]
    return xr.concat(ordered, dim="time", data_vars="minimal", coords="minimal", compat="override",
                     join="override")


def assert_same(got: xr.Dataset, ref: xr.Dataset) -> None:
    np.testing.assert_array_equal(got.time.values, ref.time.values)
    for name in ("n_segments", "mean_segment_length", "mean", "std", "time_bnds", "lat", "lon", "x", "y"):
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
        assert got[name].dtype == ref[name].dtype, name


def test_create_append_insert_replace_read_like_one_xarray_write(tmp_path: Path) -> None:
    store = tmp_path / "icesat2-seaice" / f"{GRID.name}.zarr"
    days = [make_day("2020-01-03", 3), make_day("2020-01-05", 5), make_day("2020-01-01", 1),
            make_day("2020-01-03", 33, empty_right=True), make_day("2020-01-04", 4), make_day("2020-01-06", 6),
            make_day("2020-01-04", 4)]
    actions = [upsert_day(store, ds, GRID) for ds in days]
    assert actions == ["created", "appended", "inserted", "replaced", "inserted", "appended", "replaced"]
    got = open_grid_store(store).load()
    assert_same(got, reference(days))
    assert (got.time_bnds.values[:, 1] - got.time.values == np.timedelta64(1, "D")).all()
    # Layout as before: CF grid mapping, 2-D lat/lon, time chunks of one day, no transaction left over.
    assert got["mean"].attrs["grid_mapping"] == "crs" and got.crs.attrs["crs_wkt"]
    assert got.lat.dims == ("y", "x") and got["mean"].encoding["chunks"] == (1, 20, 1024)
    assert not (store / ".oco-l3-txn").exists()
    # The all-fill chunk of the replaced day is deleted, not left holding the old values.
    assert not (store / "mean" / "1.0.1").exists() and (store / "mean" / "1.0.0").exists()
    assert np.isnan(got["mean"].sel(time="2020-01-03").values[:, 1024:]).all()
    # Re-running a day with the same data leaves every object as it was.
    before = snapshot(store)
    assert upsert_day(store, days[-1], GRID) == "replaced"
    assert snapshot(store) == before


@pytest.mark.parametrize("point", ["staged", "manifest", "apply:1", "apply:3", "deleted", "applied"])
@pytest.mark.parametrize("kind", ["replace", "append", "insert"])
def test_crash_then_recover_gives_before_or_after(tmp_path: Path, point: str, kind: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "s.zarr"
    old = [make_day("2020-01-02", 2), make_day("2020-01-04", 4)]
    new = {"replace": make_day("2020-01-04", 44, empty_right=True), "append": make_day("2020-01-05", 5),
           "insert": make_day("2020-01-01", 1)}[kind]
    for ds in old:
        upsert_day(store, ds, GRID)
    before_bytes = snapshot(store)
    before = open_grid_store(store).load()
    monkeypatch.setattr(_txn, "FAULT_HOOK", crash_at(point))
    with pytest.raises(Crash):
        upsert_day(store, new, GRID)
    monkeypatch.setattr(_txn, "FAULT_HOOK", None)
    replayed, discarded = recover_grid_store(store)
    assert not (store / ".oco-l3-txn").exists()
    got = open_grid_store(store).load()
    if point == "staged":  # before the commit point: exactly the old store, byte for byte
        assert replayed == 0  # the failed writer removed its staging itself, or recovery discarded it
        assert snapshot(store) == before_bytes
        assert_same(got, before)
        return
    assert replayed == 1  # after the commit point: exactly what an uninterrupted write gives
    clean = tmp_path / "clean.zarr"
    for ds in [*old, new]:
        upsert_day(clean, ds, GRID)
    assert snapshot(store) == snapshot(clean)
    assert_same(got, reference([*old, new]))


def test_next_writer_replays_a_committed_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "s.zarr"
    upsert_day(store, make_day("2020-01-01", 1), GRID)
    monkeypatch.setattr(_txn, "FAULT_HOOK", crash_at("apply:2"))
    with pytest.raises(Crash):
        upsert_day(store, make_day("2020-01-01", 11), GRID)
    monkeypatch.setattr(_txn, "FAULT_HOOK", None)
    assert (store.parent / f".{store.name}.oco-l3-txn").exists()  # staged beside the store
    assert upsert_day(store, make_day("2020-01-02", 2), GRID) == "appended"  # recovers first, then writes
    assert_same(open_grid_store(store).load(), reference([make_day("2020-01-01", 11), make_day("2020-01-02", 2)]))


def test_crash_during_create_leaves_no_store_then_creates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "s.zarr"
    monkeypatch.setattr(_txn, "FAULT_HOOK", crash_at("staged"))
    with pytest.raises(Crash):
        upsert_day(store, make_day("2020-01-01", 1), GRID)
    monkeypatch.setattr(_txn, "FAULT_HOOK", None)
    recover_grid_store(store)
    with pytest.raises(StoreCorrupt):
        open_grid_store(store)
    assert upsert_day(store, make_day("2020-01-01", 1), GRID) == "created"
    assert_same(open_grid_store(store).load(), reference([make_day("2020-01-01", 1)]))


def test_foreign_folder_and_other_grid_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a store")
    with pytest.raises(StoreCorrupt, match="without consolidated metadata"):
        upsert_day(foreign, make_day("2020-01-01", 1), GRID)
    store = tmp_path / "s.zarr"
    upsert_day(store, make_day("2020-01-01", 1), GRID)
    other = resolve_grid("nsidc-ps-north-25km")
    with pytest.raises(StoreCorrupt, match="does not match"):
        upsert_day(store, make_day("2020-01-02", 2, grid=other), other)
    assert sorted(os.listdir(store / "mean")) == [".zarray", ".zattrs", "0.0.0", "0.0.1"]
