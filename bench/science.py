"""Issue 13's science figures, on SYNTHETIC SAMs from oco_l3.sample_data (called by bench/run.py; alone:
``.venv/bin/python bench/science.py [--quick]``).

1. Cubic accuracy: RMS error of oco-l3's cubic and of SciPy's ``griddata(method="cubic")`` against the true curved
   fields (``Retrieval/tcwv`` sine/cosine pattern, ``Retrieval/aod_total`` Gaussian plumes), within 3 km of the
   soundings' convex hull and inside, for SAMs of 1,200 / 3,000 / 5,600 / 15,000 soundings on 800 x 800 cells.
2. Time per capture (5,600-sounding SAM, 800 x 800 cubic, mask + both QF passes, best of 5; wall and CPU) for 7
   complete float variables, the same plus an integer flag, and the bench's seven variables (two of which have 3 %
   fill values, so a second validity pattern), and the last again with every pattern triangulated, located and
   evaluated on its own (the code before patterns shared the pass's triangulation).
3. That check: every variable and quality layer of both passes, shared vs on its own, for the bench's seven plus an
   azimuth with the same fills and an integer flag: cells that differ in being missing (must be 0) and the largest
   difference (float32 rounding).

Prints a table, then the figures as one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oco_l3 import gridding  # noqa: E402
from oco_l3 import sample_data as sd  # noqa: E402
from oco_l3.allocator import keep_freed_memory  # noqa: E402
from oco_l3.captures import split_captures  # noqa: E402
from oco_l3.gridding import grid_capture  # noqa: E402
from oco_l3.grids import target_grid  # noqa: E402
from oco_l3.interpolation import PointInterpolator  # noqa: E402
from oco_l3.readers import Selection, read_granule  # noqa: E402
from oco_l3.soundings import Soundings  # noqa: E402
from oco_l3.targets import Target, load_targets  # noqa: E402

DAY = dt.date(2021, 6, 1)
SAMS = ((1200, "fossil0020", 4), (3000, "fossil0036", 2), (5600, "fossil0005", 1), (15000, "fossil0018", 3))
CURVED = ("Retrieval/tcwv", "Retrieval/aod_total")
COMPLETE = ("xco2", "xco2_apriori", "solar_zenith_angle", "sensor_zenith_angle", "Retrieval/psurf",
            "Retrieval/xco2_raw", "Retrieval/aod_total")
SEVEN = ("xco2", "xco2_uncertainty", "xco2_apriori", "solar_zenith_angle", "Retrieval/psurf", "Retrieval/windspeed",
         "Retrieval/aod_total")  # bench/run.py's: xco2_uncertainty and windspeed have 3 % fills
SHARED = gridding._SHARED


def capture(folder: Path, n: int, target: str, seed: int, keys: tuple[str, ...]) -> tuple[Soundings, Target]:
    path = folder / f"sam{n}_{seed}.nc4"
    if not path.exists():
        spec = sd.CaptureSpec(target, "sam", n, dt.datetime.combine(DAY, dt.time(3, 10)))
        sd.write_granule(path, "oco3", DAY, [spec], n_background=0, seed=seed)
    s = read_granule(path, Selection(variables=keys), "oco3")
    cap = split_captures(s, load_targets()).captures[0]
    return s.take(cap.index), cap.target


def accuracy(folder: Path, sams: tuple[tuple[int, str, int], ...]) -> list[dict[str, Any]]:
    import shapely
    from scipy.interpolate import griddata

    rows = []
    for n, target, seed in sams:
        s, tgt = capture(folder, n, target, seed, CURVED)
        grid = target_grid(tgt.bbox, 800, 800)
        gridded = grid_capture(s, grid, "cubic").pre
        lat, lon = np.meshgrid(grid.latitude, grid.longitude, indexing="ij")
        plane = PointInterpolator(s.longitude, s.latitude)
        cells = plane.to_plane(np.column_stack([lon.ravel(), lat.ravel()])).reshape(*lat.shape, 2)
        hull = shapely.convex_hull(shapely.multipoints(plane.points)).exterior
        to_hull = shapely.distance(hull, shapely.points(cells.reshape(-1, 2))).reshape(lat.shape) * sd.KM_PER_DEG
        for key in CURVED:
            ours = gridded.full(key)
            at = np.isfinite(ours)
            scipy = np.full(lat.shape, np.nan)
            t0 = time.perf_counter()
            scipy[at] = griddata(plane.points, s.variable(key).values, cells[at], method="cubic")
            seconds = time.perf_counter() - t0
            truth = sd.ANALYTIC[key](lat, lon)
            both = at & np.isfinite(scipy)
            row: dict[str, Any] = {"soundings": n, "variable": key, "scipy_s": seconds}
            for band, sel in (("edge", both & (to_hull < 3)), ("inside", both & (to_hull >= 3))):
                rms = float(np.sqrt(np.mean((ours[sel] - truth[sel]) ** 2)))
                rms_scipy = float(np.sqrt(np.mean((scipy[sel] - truth[sel]) ** 2)))
                row[band] = {"cells": int(sel.sum()), "rms": rms, "rms_scipy": rms_scipy, "ratio": rms / rms_scipy}
            rows.append(row)
    return rows


def best_of(fn: Any, repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time (both threads) of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def speed(folder: Path, repeat: int) -> dict[str, float]:
    out = {}
    cases = (("complete_7_floats", COMPLETE, True), ("complete_7_floats_and_a_flag", (*COMPLETE, "xco2_quality_flag"), True),
             ("bench_seven_2_with_fills", SEVEN, True), ("bench_seven_2_with_fills_patterns_alone", SEVEN, False))
    for name, keys, shared in cases:
        s, tgt = capture(folder, 5600, "fossil0005", 1, keys)
        grid = target_grid(tgt.bbox, 800, 800)
        gridding._SHARED = SHARED if shared else 2.0  # 2.0: no pattern shares the pass's triangulation
        try:
            out[name], out[name + "_cpu"] = best_of(lambda s=s, grid=grid: grid_capture(s, grid, "cubic"), repeat)
        finally:
            gridding._SHARED = SHARED
    return out


def shared_equals_alone(folder: Path) -> dict[str, Any]:
    """Every variable and layer of both passes, patterns sharing the pass's triangulation vs each on its own: cells
    missing in one and not the other, and the largest absolute difference, per method."""
    from dataclasses import replace

    s, tgt = capture(folder, 5600, "fossil0005", 1, (*SEVEN, "xco2_quality_flag", "Sounding/solar_azimuth_angle"))
    fills = np.isnan(s.variable("xco2_uncertainty").values)
    azimuth = s.variable("Sounding/solar_azimuth_angle")
    s = replace(s, variables=tuple(replace(v, values=np.where(fills, np.nan, v.values)) if v is azimuth else v
                                   for v in s.variables))
    grid = target_grid(tgt.bbox, 800, 800)
    out: dict[str, Any] = {}
    for method in ("cubic", "linear"):
        shared = grid_capture(s, grid, method)  # type: ignore[arg-type]
        gridding._SHARED = 2.0
        try:
            alone = grid_capture(s, grid, method)  # type: ignore[arg-type]
        finally:
            gridding._SHARED = SHARED
        missing, worst = 0, {}
        for a, b in ((shared.pre, alone.pre), (shared.post, alone.post)):
            assert a is not None and b is not None
            for key in a.data:
                x, y = a.full(key).astype(float), b.full(key).astype(float)
                missing += int((np.isfinite(x) != np.isfinite(y)).sum())
                both = np.isfinite(x) & np.isfinite(y)
                diff = float(np.abs(x[both] - y[both]).max()) if both.any() else 0.0
                worst[key] = max(worst.get(key, 0.0), diff)
        out[method] = {"cells_missing_in_one_only": missing, "max_abs_diff": worst}
        if missing:
            raise AssertionError(f"{method}: {missing} cells are missing in one result and not the other")
    return out


def main() -> int:
    keep_freed_memory()  # this process grids, as oco-l3 run does
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="two SAMs, fewer repeats")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oco-l3-bench-science-") as tmp:
        folder = Path(tmp)
        rows = accuracy(folder, SAMS[1:3] if args.quick else SAMS)
        timing = speed(folder, 3 if args.quick else 5)
        equal = shared_equals_alone(folder)
    lines = ["Cubic vs SciPy griddata(cubic), SYNTHETIC curved fields, 800 x 800, pre-QF: RMS error (ratio ours/SciPy)"]
    for r in rows:
        e, i = r["edge"], r["inside"]
        lines.append(f"  {r['soundings']:>6} {r['variable']:<20} within 3 km of the hull {e['rms']:.2e} vs "
                     f"{e['rms_scipy']:.2e} (x{e['ratio']:.2f}); inside {i['rms']:.2e} vs {i['rms_scipy']:.2e} "
                     f"(x{i['ratio']:.2f}); SciPy {r['scipy_s']:.2f} s for this variable")
    lines.append("Per capture, 5,600 soundings, 800 x 800 cubic, mask + both QF passes (best of repeats, wall / CPU):")
    lines += [f"  {name}: {seconds:.3f} s / {timing[name + '_cpu']:.3f} s CPU" for name, seconds in timing.items()
              if not name.endswith("_cpu")]
    for method, e in equal.items():
        worst = ", ".join(f"{k} {d:.1e}" for k, d in e["max_abs_diff"].items())
        lines.append(f"Patterns sharing the pass's triangulation vs each on its own ({method}, both passes): "
                     f"{e['cells_missing_in_one_only']} cells missing in one only; max |diff| {worst}")
    print("\n".join(lines))
    print(json.dumps({"cubic_vs_scipy": rows, "capture_s": timing, "shared_vs_alone": equal,
                      "output": "\n".join(lines)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
