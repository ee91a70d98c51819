"""`make bench`: the performance figures of issue 5 (and the flows of issue 12, bench/flow_runs.py), on SYNTHETIC days from oco_l3.sample_data.

Prints a table and writes bench/results/bench.json:

1. per-capture time by stage (read, split, mask, triangulate, interpolate, write Zarr, write COG) for SAMs of
   1,200 / 5,600 / 15,000 soundings at 400 / 800 / 1,600 cells per side, for each method;
2. the budget case: a 5,600-sounding SAM, 800 x 800 cubic, both QF passes, 7 variables, with mask;
3. end-to-end CLI wall time and peak RSS: (a) a day of 66,800 soundings with 2 captures, Zarr + COG;
   (b) a busy day: 60,000 background + SAMs of 5,600, 10,000 and 15,000, 800 x 800 cubic, root + /Retrieval, Zarr;
4. the cost of writing the 100th day into a store versus the 1st;
5. scaling with worker count (4 days, max-workers 1 and 2);
6. a check that the optimised gridding equals an unoptimised path (scipy griddata on the whole grid + a shapely
   footprint mask) within float32 tolerance.

    .venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oco_l3.allocator import keep_freed_memory  # noqa: E402
from oco_l3.captures import split_captures  # noqa: E402
from oco_l3.config import parse_config  # noqa: E402
from oco_l3.footprints import footprint_intervals  # noqa: E402
from oco_l3.gridding import grid_capture  # noqa: E402
from oco_l3.grids import target_grid  # noqa: E402
from oco_l3.interpolation import PointInterpolator  # noqa: E402
from oco_l3.readers import Selection, read_granule  # noqa: E402
from oco_l3.sample_data import CaptureSpec, write_granule, write_sample_day  # noqa: E402
from oco_l3.targets import load_targets  # noqa: E402

DAY = dt.date(2021, 6, 1)
REFERENCE = {  # upstream-notes.md, same 2-core machine kind
    "sam_5600_800_cubic_one_pass_s": 2.5,
    "sam_5600_800_cubic_both_passes_s": 5.0,
    "sam_15000_800_cubic_s": 7.0,
    "day_a_wall_s": 10.9, "day_a_rss_mb": 710,
    "day_b_wall_s": 40.7, "day_b_rss_mb": 933,
}
BUDGET = {"sam_5600_s": 0.1, "day_b_wall_s": 2.0, "day_b_rss_mb": 300, "day100_ratio": 1.2}
SEVEN = ("xco2", "xco2_uncertainty", "xco2_apriori", "solar_zenith_angle", "Retrieval/psurf",
         "Retrieval/windspeed", "Retrieval/aod_total")


def reference_workload() -> float:
    """Seconds for a fixed CPU workload (a Python loop and a NumPy sort), best of 3: the VM's speed drifts by tens
    of percent over an hour, and this figure says how fast the machine was when the others were measured."""
    rng = np.random.default_rng(0)
    values = rng.random(2_000_000)

    def work() -> None:
        total = 0
        for i in range(2_000_000):
            total += i
        np.sort(values)

    return best_of(work, 3)[0]


def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def sam_granule(folder: Path, n: int, target: str = "fossil0005") -> Path:
    spec = CaptureSpec(target, "sam", n, dt.datetime(2021, 6, 1, 3, 10))
    return write_granule(folder / f"sam{n}.nc4", "oco3", DAY, [spec], n_background=2000, seed=n)


def stage_times(path: Path, cells: int, method: str, tmp: Path, repeat: int) -> dict[str, float]:
    """One capture through every stage, timed separately (best of ``repeat``)."""
    import fsspec

    from oco_l3.cog import write_slice_cogs
    from oco_l3.pipeline import CaptureProduct, slice_data
    from oco_l3.stores import upsert_slices

    sel = Selection(variables=SEVEN)
    t_read, s = best_of(lambda: read_granule(path, sel, "oco3"), repeat)
    targets = load_targets()
    t_split, split = best_of(lambda: split_captures(s, targets), repeat)
    cap = split.captures[0]
    sub = s.take(cap.index)
    grid = target_grid(cap.target.bbox, cells, cells)
    t_mask, iv = best_of(lambda: footprint_intervals(sub.vertex_latitude, sub.vertex_longitude, grid), repeat)
    mask, window = iv.mask()
    t_tri, interp = best_of(lambda: PointInterpolator(sub.longitude, sub.latitude), repeat)
    floats = np.column_stack([v.values for v in sub.variables if not v.is_integer])

    def interpolate() -> Any:  # one pass, the way grid_capture does it
        if method == "nearest":
            return floats[interp.nearest_cells(grid, window, mask.shape).reshape(-1)[np.flatnonzero(mask)]]
        _, simplex, bary = interp.cells_in_triangles(grid, window, mask)
        return interp.interpolate(floats, simplex, bary, method, np.float32)  # type: ignore[arg-type]

    t_interp, _ = best_of(interpolate, repeat)
    t_both, gc = best_of(lambda: grid_capture(sub, grid, method, 1.0), repeat)  # type: ignore[arg-type]
    prod = CaptureProduct("oco3", cap.target, cap.mode, cap.start_time, len(sub), int(sub.good.sum()), method,
                          path.name, gc.pre, gc.post)
    fs = fsspec.filesystem("file")
    store = tmp / f"z{cells}{method}{len(sub)}.zarr"
    t0 = time.perf_counter()
    upsert_slices(fs, str(store), [slice_data(prod, "pre")], chunking=(250, 250, 5))
    t_zarr = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_slice_cogs(slice_data(prod, "pre"), "oco3", cap.target.id, False, str(tmp / "cog"), keys=["xco2"], fs=fs)
    t_cog = time.perf_counter() - t0
    return {"soundings": len(sub), "cells": cells, "method": method, "read": t_read, "split": t_split,
            "mask": t_mask, "triangulate": t_tri, "interpolate": t_interp, "grid_both_passes": t_both,
            "write_zarr": t_zarr, "write_cog_per_variable": t_cog}


def unoptimised_equal(path: Path, cells: int = 300) -> float:
    """Max |optimised - unoptimised| over cells finite in both; raises if masks or values differ."""
    import shapely
    from scipy.interpolate import griddata

    s = read_granule(path, Selection(variables=("xco2",)), "oco3")
    cap = split_captures(s, load_targets()).captures[0]
    sub = s.take(cap.index)
    grid = target_grid(cap.target.bbox, cells, cells)
    fast = grid_capture(sub, grid, "linear").pre.full("xco2")
    lat, lon = np.meshgrid(grid.latitude, grid.longitude, indexing="ij")
    slow = griddata((sub.longitude, sub.latitude), sub.variable("xco2").values, (lon, lat), method="linear")
    rings = np.stack([sub.vertex_longitude, sub.vertex_latitude], axis=-1)
    polys = shapely.polygons(rings)
    inside = shapely.contains_xy(shapely.union_all(polys), lon, lat)
    slow = np.where(inside, slow, np.nan).astype(np.float32)
    both = np.isfinite(fast) & np.isfinite(slow)
    mismatch = int((np.isfinite(fast) != np.isfinite(slow)).sum())
    if mismatch > 0.002 * both.sum():  # cell centres on a shared footprint edge may go either way
        raise AssertionError(f"masks differ in {mismatch} cells of {both.sum()}")
    err = float(np.max(np.abs(fast[both] - slow[both])))
    if err > 1e-3:
        raise AssertionError(f"optimised and unoptimised values differ by {err}")
    return err


def run_cli(config: dict, tmp: Path, name: str) -> dict[str, float]:
    cfg_path = tmp / f"{name}.yml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(config))
    # GNU time reports the peak RSS of the exec'd program itself (a fork's rusage would include the pre-exec copy
    # of this large benchmark process).
    rss_file = tmp / f"{name}.rss"
    if not os.path.exists("/usr/bin/time"):
        raise SystemExit("bench needs GNU time (/usr/bin/time; Debian package `time`) to measure peak RSS")
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-o", str(rss_file), "-f", "%M", str(ROOT / ".venv/bin/oco-l3"), "run",
                           "-i", str(cfg_path)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: oco-l3 run failed:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    peak_kb = int(rss_file.read_text().split()[-1])
    return {"wall_s": wall, "peak_rss_mb": peak_kb / 1024}


def run_cli_repeated(config: dict, tmp: Path, name: str, repeat: int) -> dict[str, float]:
    """``repeat`` timed runs (fastest and median wall, largest peak RSS), then one run sampled for the peak PSS
    of the whole process tree (the forked capture workers share the parent's pages: PSS counts them once)."""
    runs = [run_cli({**config, "output": {"local": str(tmp / f"out_{name}{i}")}}, tmp, f"{name}{i}")
            for i in range(repeat)]
    walls = [r["wall_s"] for r in runs]
    out = {"wall_s": min(walls), "wall_median_s": statistics.median(walls), "walls_s": walls,
           "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    out["peak_pss_tree_mb"] = tree_pss({**config, "output": {"local": str(tmp / f"out_{name}_pss")}}, tmp, name)
    return out


def tree_pss(config: dict, tmp: Path, name: str) -> float:
    """Peak sum of PSS (MB) over the CLI process and its children, sampled every 10 ms from /proc."""
    import yaml

    cfg_path = tmp / f"{name}_pss.yml"
    cfg_path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([str(ROOT / ".venv/bin/oco-l3"), "run", "-i", str(cfg_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(_pss_kb(pid) for pid in _process_tree(proc.pid)))
        time.sleep(0.01)
    return peak / 1024


def _process_tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return seen


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def day_configs(tmp: Path) -> tuple[dict, dict]:
    a = write_sample_day(tmp / "day_a", DAY, ("oco3",), profile="two-captures")["oco3"]
    b = write_sample_day(tmp / "day_b", DAY, ("oco3",), profile="busy")["oco3"]
    cfg_a = {"output": {"local": str(tmp / "out_a"), "cog": {"output": {"local": str(tmp / "cog_a")}}},
             "input": {"files": [str(a)]}, "grid": {"latitude": 800, "longitude": 800, "method": "cubic"},
             "variables": {"oco3": [{"group": "/", "name": k} if "/" not in k else
                                    {"group": "/" + k.split("/")[0], "name": k.split("/")[1]} for k in SEVEN]}}
    cfg_b = {"output": {"local": str(tmp / "out_b")}, "input": {"files": [str(b)]},
             "grid": {"latitude": 800, "longitude": 800, "method": "cubic"},
             "exclude-groups": ["/Meteorology", "/Preprocessors", "/Sounding"]}
    parse_config(cfg_a), parse_config(cfg_b)
    return cfg_a, cfg_b


def day100(tmp: Path) -> dict[str, float]:
    """Append 100 daily slices of one capture to one store; cost of day 1 vs day 100 (median of neighbours)."""
    import fsspec

    from oco_l3.pipeline import CaptureProduct, slice_data
    from oco_l3.stores import upsert_slices

    path = sam_granule(tmp, 5600)
    s = read_granule(path, Selection(variables=SEVEN), "oco3")
    cap = split_captures(s, load_targets()).captures[0]
    sub = s.take(cap.index)
    gc = grid_capture(sub, target_grid(cap.target.bbox, 800, 800), "cubic")
    fs = fsspec.filesystem("file")
    times = []
    for d in range(100):
        when = cap.start_time + np.timedelta64(d, "D")
        prod = CaptureProduct("oco3", cap.target, "sam", when, len(sub), 0, "cubic", path.name, gc.pre, gc.post)
        t0 = time.perf_counter()
        upsert_slices(fs, str(tmp / "day100.zarr"), [slice_data(prod, "pre")], chunking=(250, 250, 5))
        times.append(time.perf_counter() - t0)
    first = statistics.median(times[:5])
    last = statistics.median(times[-5:])
    return {"day1_s": first, "day100_s": last, "ratio": last / first}


def workers(tmp: Path, cfg: dict) -> dict[str, float]:
    files = []
    for i in range(4):
        files += [str(p) for p in write_sample_day(tmp / "w", DAY + dt.timedelta(days=i), ("oco3",)).values()]
    out = {}
    for n in (1, 2):
        c = {**cfg, "input": {"files": files}, "max-workers": n,
             "output": {"local": str(tmp / f"out_w{n}")}}
        out[f"workers_{n}_wall_s"] = run_cli(c, tmp, f"workers{n}")["wall_s"]
    return out


def main() -> int:
    keep_freed_memory()  # this process grids, as oco-l3 run does
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--skip-global", action="store_true")
    parser.add_argument("--skip-flows", action="store_true")
    args = parser.parse_args()
    repeat = 2 if args.quick else 3
    sizes = (1200, 5600) if args.quick else (1200, 5600, 15000)
    cells_list = (400, 800) if args.quick else (400, 800, 1600)
    results: dict[str, Any] = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
                                          f"Python {platform.python_version()}", "date": dt.date.today().isoformat(),
                               "reference_workload_s": reference_workload()}
    with tempfile.TemporaryDirectory(prefix="oco-l3-bench-") as tmpdir:
        tmp = Path(tmpdir)
        granules = {n: sam_granule(tmp, n) for n in sizes}
        rows = [stage_times(granules[n], cells, method, tmp, repeat)
                for n in sizes for cells in cells_list for method in ("linear", "cubic", "nearest")]
        results["stages"] = rows
        results["unoptimised_max_abs_diff"] = unoptimised_equal(granules[5600])
        budget = next(r for r in rows if r["soundings"] == 5600 and r["cells"] == 800 and r["method"] == "cubic")
        results["sam_5600_800_cubic_both_passes_s"] = budget["grid_both_passes"]
        cfg_a, cfg_b = day_configs(tmp)
        results["day_a"] = run_cli(cfg_a, tmp, "day_a")
        results["day_b"] = run_cli_repeated(cfg_b, tmp, "day_b", repeat + 2)  # the budget case: more runs
        results["day_b_2workers"] = run_cli_repeated({**cfg_b, "max-workers": 2}, tmp, "day_b2", repeat)
        results["day100"] = day100(tmp)
        results["workers"] = workers(tmp, cfg_b)
    if not args.skip_global:
        results["global"] = _json_of([sys.executable, str(ROOT / "bench/global_day.py")])
    results["icesat2_binning"] = _json_of([sys.executable, str(ROOT / "bench/icesat2_binning.py")])
    results["store_writer"] = _json_of([sys.executable, str(ROOT / "bench/stores.py")])  # the Zarr writer alone
    results["inplace"] = _json_of([sys.executable, str(ROOT / "bench/inplace.py")])  # S3 in place vs staged
    results["science"] = _json_of([sys.executable, str(ROOT / "bench/science.py")])  # issue 13: cubic vs SciPy
    if not args.skip_flows:  # the Prefect flows against `oco-l3 run` (bench/flow_runs.py)
        results["flows"] = _json_of([sys.executable, str(ROOT / "bench/flow_runs.py"),
                                     *(["--days", "4", "--long", "6"] if args.quick else [])])
    results["outputs"] = _json_of([sys.executable, str(ROOT / "bench/outputs.py")])  # STAC catalogue, quick-looks
    results["reference_workload_end_s"] = reference_workload()
    report(results)
    out = ROOT / "bench/results"
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nJSON: {out / 'bench.json'}")
    return 0


def _json_of(cmd: list[str]) -> Any:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    text = proc.stdout.strip()
    start = text.rfind("\n{") + 1 if "\n{" in text else (0 if text.startswith("{") else -1)
    if start >= 0:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            pass
    return {"output": text, "error": proc.stderr[-2000:], "returncode": proc.returncode}


def report_inplace(cases: dict[str, Any]) -> None:
    print("\nS3 reads on the moto endpoint (bench/inplace.py): fetched / object size, requests, wall (best)")
    for line in cases.get("summary", []):
        print(line)
    print(f"busy granule: {cases.get('busy_granule')}; local read: {cases.get('busy_day_local_read_s')}; "
          f"h5coro: {cases.get('h5coro')}")


def report(r: dict[str, Any]) -> None:
    if isinstance(r.get("inplace"), dict):
        report_inplace(r["inplace"])
    print(f"oco-l3 benchmark on {r['machine']} ({r['date']}); SYNTHETIC days")
    print(f"reference workload (fixed Python loop + NumPy sort, best of 3): {r['reference_workload_s']:.3f} s at "
          f"the start, {r.get('reference_workload_end_s', float('nan')):.3f} s at the end (the VM's speed drifts; "
          "compare runs by this figure)\n")
    print("Per-capture stages (s, best of repeats); tri = triangulation of all soundings, interp = locating the masked "
          "cells + evaluating all variables (one pass); grid2x = mask + both QF passes (in two threads)")
    print(f"{'sound.':>7} {'cells':>5} {'method':>7} {'read':>6} {'split':>6} {'mask':>6} {'tri':>6} {'interp':>6} "
          f"{'grid2x':>7} {'zarr':>6} {'cog/var':>7}")
    for s in r["stages"]:
        print(f"{s['soundings']:>7} {s['cells']:>5} {s['method']:>7} {s['read']:6.3f} {s['split']:6.3f} "
              f"{s['mask']:6.3f} {s['triangulate']:6.3f} {s['interpolate']:6.3f} {s['grid_both_passes']:7.3f} "
              f"{s['write_zarr']:6.3f} {s['write_cog_per_variable']:7.3f}")
    ref = REFERENCE
    print("\n| measure | oco-l3 | reference | budget |\n|---|---|---|---|")
    print(f"| SAM 5,600 soundings, 800x800 cubic, 7 vars, both passes + mask | "
          f"{r['sam_5600_800_cubic_both_passes_s']:.3f} s | {ref['sam_5600_800_cubic_both_passes_s']} s | "
          f"<= {BUDGET['sam_5600_s']} s |")
    print(f"| day (a) 66,800 soundings, 2 captures, Zarr + COG: wall / peak RSS | {r['day_a']['wall_s']:.2f} s / "
          f"{r['day_a']['peak_rss_mb']:.0f} MB | {ref['day_a_wall_s']} s / {ref['day_a_rss_mb']} MB | <= 3 s / 400 MB |")
    for key, label in (("day_b", "one process (max-workers 1)"), ("day_b_2workers", "max-workers 2 (captures in 2 "
                                                                                 "forked processes)")):
        b = r[key]
        print(f"| day (b) busy, 3 SAMs + 60,000, Zarr, {label}: wall fastest (median) / peak RSS of the largest "
              f"process / peak PSS of all processes | {b['wall_s']:.2f} s ({b['wall_median_s']:.2f} s) / "
              f"{b['peak_rss_mb']:.0f} MB / {b['peak_pss_tree_mb']:.0f} MB | {ref['day_b_wall_s']} s / "
              f"{ref['day_b_rss_mb']} MB | <= {BUDGET['day_b_wall_s']} s / {BUDGET['day_b_rss_mb']} MB |")
    d = r["day100"]
    print(f"| write day 100 vs day 1 (one store) | {d['day100_s']:.3f} s vs {d['day1_s']:.3f} s "
          f"(x{d['ratio']:.2f}) | grows (whole-tree backup) | <= x{BUDGET['day100_ratio']} |")
    w = r["workers"]
    print(f"| 4 days, max-workers 1 / 2 | {w['workers_1_wall_s']:.2f} s / {w['workers_2_wall_s']:.2f} s | | |")
    g = r.get("global")
    if isinstance(g, dict) and "wall_s" in g:
        print(f"| global day 36000x18000 + {g.get('cogs', 0)} COGs ({g.get('cog_mb', 0)} MB): wall / peak RSS | "
              f"{g['wall_s']:.1f} s / {g.get('peak_rss_mb', 0):.0f} MB | | <= 60 s / 4 GB |")
    ib = r.get("icesat2_binning")
    if isinstance(ib, dict) and ib:
        total = next((line.split("total ")[1].split(" s")[0] for line in ib.get("output", "").splitlines()
                      if line.startswith("icesat2 binning, production") and "total " in line), "see below")
        print(f"| ICESat-2: 5.2 M segments projected, binned, 4 statistics (2 threads) | {total} s | 31 s (notebook) "
              "| < 1 s |")
        print(f"\n{ib.get('output', json.dumps(ib))}")
    print(f"\nSTAC catalogue and quick-looks (bench/outputs.py): {json.dumps(r.get('outputs'))}")
    print(f"\nOptimised vs unoptimised gridding (linear, 300x300): max |diff| = {r['unoptimised_max_abs_diff']:.2e}")
    print(f"\n{r['science'].get('output', json.dumps(r['science']))}" if "science" in r else "")
    if isinstance(r.get("flows"), dict) and "flow_threads" in r["flows"]:
        sys.path.insert(0, str(ROOT / "bench"))
        from flow_runs import report as flows_report  # bench/flow_runs.py's own lines

        print()
        flows_report(r["flows"], r["flows"]["long"])


if __name__ == "__main__":
    sys.exit(main())
