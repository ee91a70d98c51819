"""SYNTHETIC sample data: broken granules for the reliability tests."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import h5py
import netCDF4
import numpy as np

from oco_l3.errors import GranuleSchemaMismatch, GranuleUnreadable, OcoL3Error
from oco_l3.sample_data._days import (
    _at,
    sample_filename,
)
from oco_l3.sample_data._fields import (
    FILL,
    SYNTHETIC,
)
from oco_l3.sample_data._geometry import (
    CaptureSpec,
    _build_table,
    _Table,
)
from oco_l3.sample_data._layouts import (
    LITE_STORAGE,
    _fp_layout,
    _Var,
    _write_layout,
)

#: Corrupt variant -> the error :func:`oco_l3.readers.read_granule` raises (None: it reads, see the docs).
CORRUPT_EXPECTED: dict[str, type[OcoL3Error] | None] = {
    "zero_byte": GranuleUnreadable,
    "truncated": GranuleUnreadable,
    "not_hdf5": GranuleUnreadable,
    "netcdf3": GranuleUnreadable,
    "hdf5_not_netcdf": GranuleUnreadable,
    "missing_group": GranuleSchemaMismatch,
    "renamed_variable": GranuleSchemaMismatch,
    "wrong_dtype": GranuleSchemaMismatch,
    "wrong_shape": GranuleSchemaMismatch,
    "all_fill": None,  # reads; xco2 is all NaN
}


def write_corrupt_variants(directory: str | os.PathLike[str], day: dt.date = dt.date(2021, 12, 18)) -> dict[str, Path]:
    """Write SYNTHETIC broken OCO-3 Lite FP granules, one per :data:`CORRUPT_EXPECTED` key.

    Each lands in ``directory/<variant>/`` under a valid granule name, so name parsing succeeds and the reader
    has to find the problem in the content.
    """
    base = Path(directory)
    captures = (CaptureSpec("fossil0005", "sam", 160, _at(day, 3, 10)),)
    table = _build_table("oco3", day, captures, 80, 0, 0)
    out: dict[str, Path] = {}
    for variant in CORRUPT_EXPECTED:
        folder = base / variant
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / sample_filename("oco3", day)
        _write_variant(path, variant, table, day)
        out[variant] = path
    return out


def _write_variant(path: Path, variant: str, table: _Table, day: dt.date) -> None:
    if variant == "zero_byte":
        path.write_bytes(b"")
        return
    if variant == "not_hdf5":
        path.write_text("<html><body>503 Service Unavailable (SYNTHETIC)</body></html>\n")
        return
    if variant == "netcdf3":
        with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
            nc.createDimension("sounding_id", table.lat.size)
            nc.createVariable("latitude", "f4", ("sounding_id",))[:] = table.lat
            nc.title = SYNTHETIC
        return
    if variant == "hdf5_not_netcdf":
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=np.arange(10))
            f.attrs["title"] = SYNTHETIC
        return
    layout = _fp_layout("oco3", day, table, target_vars=True)
    n = table.lat.size
    if variant == "missing_group":
        del layout.groups["Sounding"]
    elif variant == "renamed_variable":
        layout.groups[""]["lat"] = layout.groups[""].pop("latitude")
    elif variant == "wrong_dtype":
        layout.groups["Sounding"]["operation_mode"].data = table.mode.astype(np.float32)
    elif variant == "wrong_shape":
        layout.dims["three"] = 3
        layout.groups[""]["vertex_latitude"] = _Var(("sounding_id", "three"), table.vlat[:, :3].astype(np.float32))
    elif variant == "all_fill":
        layout.groups[""]["xco2"].data = np.full(n, FILL, np.float32)
    _write_layout(path, layout, LITE_STORAGE)
    if variant == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
