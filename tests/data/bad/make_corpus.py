"""Generate the bad-input corpus (SYNTHETIC OCO-3 Lite FP granules) at test time; see README.md.

``build(directory)`` writes every case and returns :class:`Case` values: the input file, what the run must do with
it (``fail`` with a one-line error matching ``expect``, ``skip`` a capture with a warning matching ``expect``, or
``ok``: processed under a documented policy) and the stores it may write. Run as a script to write the corpus to a
folder for manual inspection: ``python tests/data/bad/make_corpus.py /tmp/bad``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import h5py
import numpy as np

from oco_l3.readers.naming import granule_filename
from oco_l3.sample_data import CaptureSpec, write_corrupt_variants, write_granule

#: The day whose stores exist before the bad run (fossil0005 and tccon105).
DAY0 = dt.date(2021, 12, 18)
#: The bad inputs' day: a bad file accepted by mistake would add a time to an existing store.
BAD_DAY = dt.date(2021, 12, 19)
BUILD = "B11072Ar"


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    outcome: str  # "fail" | "skip" | "ok"
    expect: str  # regex: the one-line error (fail), the warning (skip), or "" (ok)
    targets: tuple[str, ...] = ()  # targets whose stores the case may write (ok cases)


def _name(day: dt.date, serial: int) -> str:
    """A valid, unique OCO-3 Lite FP file name (the production time carries the serial)."""
    production = dt.datetime(2022, 10, 1, 0, 0) + dt.timedelta(seconds=serial)
    return granule_filename("oco3", day, BUILD, production)


def _at(hour: int, minute: int, day: dt.date = BAD_DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


def _granule(folder: Path, serial: int, captures: list[CaptureSpec], n_background: int = 40,
             day: dt.date = BAD_DAY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_granule(folder / _name(day, serial), "oco3", day, captures, n_background=n_background, seed=serial)


def _capture_index(f: h5py.File, target: str) -> np.ndarray:
    tid = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in f["Sounding/target_id"][:]])
    return np.flatnonzero(tid == target)


def target_file(directory: Path) -> Path:
    """The bundled OCO-3 targets plus two SYNTHETIC entries: a target by the antimeridian and one whose bbox
    has min > max (it must be skipped with a warning, the rest load)."""
    raw = json.loads(resources.files("oco_l3.data").joinpath("targets.json").read_text(encoding="utf-8"))
    raw["fossilAM"] = {"id": "fossilAM", "name": "Antimeridian_SYNTHETIC", "centroid_wkt": "POINT (179.95 -16.5)",
                       "bbox": {"min_lon": 179.5, "min_lat": -17.0, "max_lon": 180.0, "max_lat": -16.0}}
    raw["fossilBadBox"] = {"id": "fossilBadBox", "name": "BadBox_SYNTHETIC", "centroid_wkt": "POINT (40 40)",
                           "bbox": {"min_lon": 41.0, "min_lat": 41.0, "max_lon": 39.0, "max_lat": 39.0}}
    path = directory / "targets-with-bad-entries.json"
    path.write_text(json.dumps(raw))
    return path


def build(directory: str | Path) -> list[Case]:
    base = Path(directory)
    cases: list[Case] = []
    # -- content the reader must refuse (from oco_l3.sample_data's corrupt variants, on BAD_DAY) --
    corrupt = write_corrupt_variants(base / "corrupt", BAD_DAY)
    refuse = {
        "zero_byte": r"zero|empty|not an HDF5|unreadable|cannot", "truncated": r"truncat|read error|cannot|unreadable",
        "not_hdf5": r"not an HDF5|not a netCDF|cannot|unreadable", "netcdf3": r"netCDF|HDF5|unreadable|cannot",
        "hdf5_not_netcdf": r"not a netCDF-4", "missing_group": r"Sounding|group|missing",
        "renamed_variable": r"latitude|missing|variable", "wrong_dtype": r"operation_mode|dtype|type",
        "wrong_shape": r"vertex|shape",
    }
    for variant, pattern in refuse.items():
        cases.append(Case(variant, corrupt[variant], "fail", pattern))
    serial = 100

    def nxt() -> int:
        nonlocal serial
        serial += 1
        return serial

    # -- missing /Sounding/target_id (an OCO-3 FP file must have it) --
    p = _granule(base / "missing_target_id", nxt(), [CaptureSpec("fossil0005", "sam", 40, _at(3, 10))])
    with h5py.File(p, "r+") as f:
        del f["Sounding/target_id"]
    cases.append(Case("missing_target_id", p, "fail", r"target_id"))
    # -- all-fill xco2: reads; the capture's xco2 layer is all missing (documented), other layers are kept --
    p = _granule(base / "all_fill", nxt(), [CaptureSpec("fossil0020", "sam", 120, _at(4, 0))])
    with h5py.File(p, "r+") as f:
        f["xco2"][...] = np.float32(-999999.0)
    cases.append(Case("all_fill_xco2", p, "ok", "", ("fossil0020",)))
    # -- NaN / out-of-range coordinates inside a capture: those soundings are dropped, the rest gridded --
    p = _granule(base / "bad_coordinates", nxt(), [CaptureSpec("fossil0002", "sam", 120, _at(5, 0))])
    with h5py.File(p, "r+") as f:
        idx = _capture_index(f, "fossil0002")
        lat, lon = f["latitude"][...], f["longitude"][...]
        lat[idx[:3]] = np.nan
        lat[idx[3:5]] = 95.0
        lon[idx[5:7]] = 400.0
        f["latitude"][...], f["longitude"][...] = lat, lon
    cases.append(Case("nan_and_out_of_range_coordinates", p, "ok", "", ("fossil0002",)))
    # -- tiny captures: 1, 2, 3 soundings (nearest-neighbour fallback, documented). One or two footprints of a
    #    few km cover no cell centre of the 50 x 50 target grid: the slice is empty and not written (drop-empty) --
    for n, target, minute in ((1, "fossil0007", 10), (2, "fossil0018", 20), (3, "fossil0036", 30)):
        p = _granule(base / f"capture_of_{n}", nxt(), [CaptureSpec(target, "sam", n, _at(6, minute))])
        cases.append(Case(f"capture_of_{n}", p, "ok", "", (target,) if n == 3 else ()))
    # -- collinear soundings (all centres on one line): nearest-neighbour fallback --
    p = _granule(base / "collinear", nxt(), [CaptureSpec("fossil0001", "sam", 48, _at(7, 0))])
    with h5py.File(p, "r+") as f:
        idx = _capture_index(f, "fossil0001")
        lat, lon = f["latitude"][...], f["longitude"][...]
        t = np.linspace(-0.05, 0.05, idx.size, dtype=np.float32)
        lat[idx] = lat[idx].mean() + t
        lon[idx] = lon[idx].mean() + 2 * t
        f["latitude"][...], f["longitude"][...] = lat, lon
    cases.append(Case("collinear_soundings", p, "ok", "", ("fossil0001",)))
    # -- duplicate sounding ids --
    p = _granule(base / "duplicate_ids", nxt(), [CaptureSpec("fossil0003", "sam", 64, _at(8, 0))])
    with h5py.File(p, "r+") as f:
        ids = f["sounding_id"][...]
        ids[1::2] = ids[0::2][: ids[1::2].size]
        f["sounding_id"][...] = ids
    cases.append(Case("duplicate_sounding_ids", p, "ok", "", ("fossil0003",)))
    # -- footprints crossing the antimeridian (longitudes wrapped to [-180, 180)) --
    p = _granule(base / "antimeridian", nxt(),
                 [CaptureSpec("fossilAM", "sam", 96, _at(9, 0), center=(-16.5, 179.97), target_name="AM")])
    with h5py.File(p, "r+") as f:
        for key in ("longitude", "vertex_longitude"):
            values = f[key][...]
            f[key][...] = np.where(values >= 180.0, values - 360.0, values)
    cases.append(Case("antimeridian_footprints", p, "ok", "", ("fossilAM",)))
    # -- a capture over the target whose bbox has min > max: the entry is skipped, so is the capture --
    p = _granule(base / "bad_bbox_target", nxt(),
                 [CaptureSpec("fossilBadBox", "sam", 40, _at(10, 0), center=(40.0, 40.0), target_name="BadBox")])
    cases.append(Case("target_bbox_min_gt_max", p, "skip", r"fossilBadBox.*not in the target file"))
    # -- an empty day: a granule with a few nadir/glint soundings and no capture at all --
    p = _granule(base / "no_captures", nxt(), [], n_background=8)
    cases.append(Case("day_without_captures", p, "ok", ""))
    return cases


if __name__ == "__main__":  # pragma: no cover
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad-corpus")
    for case in build(out):
        print(f"{case.outcome:4} {case.name:36} {case.path}")
    print(f"target file: {target_file(out)}")
