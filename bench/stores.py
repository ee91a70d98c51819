"""Benchmark: the Zarr store writer alone (no gridding), through the products' public entry points.

* target store: the first commit of a new 7-variable 800 x 800 slice (float32, every cell finite; chunks
  250 / 250 / 5), appends (days 2..11), an insert before the first day, and a 400 x 500 window slice;
* ICESat-2 daily grid store (``upsert_day``) on ease2-north-6.25km (2880 x 2880, 9 chunks a statistic): create,
  appends, an insert before the first day.

Each figure is the median of several runs (the machine is shared). Prints one line per figure and a JSON document.

    .venv/bin/python bench/stores.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEVEN = ("xco2", "xco2_uncertainty", "xco2_apriori", "solar_zenith_angle", "Retrieval/psurf",
         "Retrieval/windspeed", "Retrieval/aod_total")


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def target_slice(day: int, window: tuple[int, int, int, int] | None = None) -> Any:
    from oco_l3.grids import target_grid
    from oco_l3.stores import SliceData
    from oco_l3.targets import BBox

    grid = target_grid(BBox(10.0, 40.0, 10.6, 40.6), 800, 800)
    r0, r1, c0, c1 = window or (0, 800, 0, 800)
    y, x = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    data = {key: (400.0 + i + 0.01 * y + 0.02 * x + 0.1 * day).astype(np.float32) for i, key in enumerate(SEVEN)}
    t = np.datetime64("2021-06-01T03:10:00", "us") + np.timedelta64(day, "D")
    return SliceData(t, grid, data, var_attrs={k: {"units": "1"} for k in SEVEN},
                     attrs={"source_granules": [f"g{day}"]}, window=window)


def target_store(tmp: Path) -> dict[str, float]:
    import fsspec

    from oco_l3.stores import upsert_slices

    fs = fsspec.filesystem("file")
    up = lambda path, s: upsert_slices(fs, str(path), [s], chunking=(250, 250, 5), title="bench")  # noqa: E731
    new = [timed(lambda i=i: up(tmp / f"new{i}.zarr", target_slice(0))) for i in range(7)]
    window = [timed(lambda i=i: up(tmp / f"win{i}.zarr", target_slice(0, (200, 600, 100, 600)))) for i in range(7)]
    store = tmp / "append.zarr"
    up(store, target_slice(1))
    appends = [timed(lambda d=d: up(store, target_slice(d))) for d in range(2, 12)]
    inserts = []
    for i in range(3):
        path = tmp / f"ins{i}.zarr"
        for d in range(1, 11):
            up(path, target_slice(d))
        inserts.append(timed(lambda path=path: up(path, target_slice(0))))
    return {"target_new_slice_s": statistics.median(new), "target_new_window_slice_s": statistics.median(window),
            "target_append_s": statistics.median(appends), "target_insert_first_of_10_s": statistics.median(inserts)}


def icesat2_store(tmp: Path) -> dict[str, float]:
    from oco_l3.icesat2.grids import resolve_grid
    from oco_l3.icesat2.writers import day_dataset, upsert_day

    grid = resolve_grid("ease2-north-6.25km")
    rng = np.random.default_rng(0)

    def ds(day: int) -> Any:
        n = np.zeros(grid.shape, np.int32)
        n[1000:1400, 900:1700] = rng.integers(1, 5, (400, 800))
        v = np.where(n > 0, rng.normal(0.3, 0.1, grid.shape), np.nan).astype(np.float32)
        stats = {"n_segments": n, "mean_segment_length": np.where(n > 0, 17.5, np.nan).astype(np.float32),
                 "mean": v, "std": np.abs(v) / 10}
        return day_dataset(grid, np.datetime64("2020-01-01", "D") + np.timedelta64(day, "D"), stats, {"product": "b"})

    days = {d: ds(d) for d in range(0, 8)}
    creates = [timed(lambda i=i: upsert_day(tmp / f"is2_{i}.zarr", days[1], grid)) for i in range(3)]
    store = tmp / "is2_0.zarr"
    appends = [timed(lambda d=d: upsert_day(store, days[d], grid)) for d in range(2, 8)]
    insert = timed(lambda: upsert_day(store, days[0], grid))
    return {"icesat2_create_s": statistics.median(creates), "icesat2_append_s": statistics.median(appends),
            "icesat2_insert_first_of_7_s": insert}


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="oco-l3-bench-stores-") as tmpdir:
        tmp = Path(tmpdir)
        out = {**target_store(tmp), **icesat2_store(tmp)}
    for key, value in out.items():
        print(f"store writer: {key} {value * 1000:.1f} ms")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
