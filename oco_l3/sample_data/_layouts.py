"""SYNTHETIC sample data: the Lite FP and Lite SIF file layouts of a sounding table, written as netCDF-4."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import netCDF4
import numpy as np

from oco_l3.missions import MissionSpec, mission_spec
from oco_l3.sample_data._fields import (
    _UNITS,
    ANALYTIC,
    ANALYTIC_FP,
    ANALYTIC_SIF,
    FILL,
    FILLED,
    FOOTPRINT_KM,
    SIF_EPOCH_OFFSET,
    SYNTHETIC,
    fill_mask,
    fp_quality_flag,
)
from oco_l3.sample_data._geometry import (
    _Table,
)
from oco_l3.soundings import (
    Mission,
)


@dataclass
class _Var:
    dims: tuple[str, ...]
    data: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Layout:
    dims: dict[str, int | None]
    groups: dict[str, dict[str, _Var]]
    attrs: dict[str, Any]


def _science(table: _Table, key: str, dims: tuple[str, ...], fill_attr: str) -> _Var:
    values = ANALYTIC[key](table.lat, table.lon)
    attrs: dict[str, Any] = {"long_name": f"{key.rsplit('/', 1)[-1]} ({SYNTHETIC}: {ANALYTIC[key].__doc__})"}
    if key in _UNITS:
        attrs["units"] = _UNITS[key]
    if np.issubdtype(values.dtype, np.integer):
        return _Var(dims, values.astype(np.int8), attrs)
    data = values.astype(np.float32)
    if key in FILLED:
        data[fill_mask(table.lat, table.lon)] = FILL
    bad = ~(np.isfinite(table.lat) & (np.abs(table.lat) <= 90) & (np.abs(table.lon) <= 180))
    data[bad] = FILL
    attrs["missing_value"] = np.float32(FILL)
    if fill_attr == "_FillValue":
        attrs["_FillValue"] = np.float32(FILL)
    return _Var(dims, data, attrs)


def _f32var(dims: tuple[str, ...], data: np.ndarray, fill_attr: str, **attrs: Any) -> _Var:
    extra: dict[str, Any] = {"missing_value": np.float32(FILL)}
    if fill_attr == "_FillValue":
        extra["_FillValue"] = np.float32(FILL)
    return _Var(dims, np.asarray(data, np.float32), {**attrs, **extra})


def _global_attrs(spec: MissionSpec, day: dt.date, table: _Table) -> dict[str, Any]:
    start = dt.datetime.fromtimestamp(float(table.unix.min()), dt.UTC)
    end = dt.datetime.fromtimestamp(float(table.unix.max()), dt.UTC)
    sif = spec.naming.kind == "SIF"
    common = {
        "title": f"{SYNTHETIC} (layout of the {'SIF Lite' if sif else 'ACOS L2 Lite Output'})",
        "comment": f"{SYNTHETIC}: not a measurement; written by oco_l3.sample_data for tests and demos",
        "Sensor": spec.sensor,
        "Platform": spec.platform,
        "date_time_coverage": f"{start:%Y-%m-%dT%H:%M:%S}Z/{end:%Y-%m-%dT%H:%M:%S}Z",
    }
    if sif:
        across, along = FOOTPRINT_KM[spec.naming.platform]
        return {**common, "conventions": "CF-1.6", "product_version": spec.naming.build, "cdm_data": "point",
                "platform": spec.platform, "spatial_resolution": f"{along}km x {across}km at nadir",
                "InputCollectionLabel": "SYNTHETIC", "InputBuildId": "SYNTHETIC"}
    return {**common, "BuildId": "B11.0.SYNTHETIC", "CollectionLabel": f"SYNTHETIC_{spec.naming.build}",
            "filtering_state": "synthetic", "data_day": f"{day:%Y-%m-%d}"}


def _sounding_ids(unix: np.ndarray, foot: np.ndarray) -> np.ndarray:
    secs = np.floor(unix).astype("int64")
    stamp = secs.astype("datetime64[s]").astype(str)
    digits = np.strings.replace(np.strings.replace(np.strings.replace(stamp, "-", ""), "T", ""), ":", "")
    tenth = np.floor((unix - secs) * 10).astype(np.int64)
    return digits.astype(np.int64) * 100 + tenth * 10 + foot.astype(np.int64)


def _date_array(unix: np.ndarray) -> np.ndarray:
    t = np.round(unix * 1000).astype("int64").astype("datetime64[ms]")
    y = t.astype("datetime64[Y]")
    mo = t.astype("datetime64[M]")
    d = t.astype("datetime64[D]")
    ms = (t - d).astype(np.int64)
    return np.stack([y.astype(int) + 1970, (mo - y).astype(int) + 1, (d - mo).astype(int) + 1, ms // 3_600_000,
                     ms // 60_000 % 60, ms // 1000 % 60, ms % 1000], axis=1).astype(np.int16)


#: Levels of the Lite FP profiles (space to surface) and their sigma coordinate ``p / psurf``: the top at 0.1 hPa, the
#: others evenly spaced in pressure down to the surface (the OCO L2 retrieval grid).
LEVELS = 20
_SIGMA = np.linspace(0.0, 1.0, LEVELS)


def _profile_rng(table: _Table) -> np.random.Generator:
    """The seeded generator of a granule's measurement-like noise (deterministic per granule)."""
    return np.random.default_rng([table.lat.size, int(np.nanmin(table.unix))])


def _profiles(table: _Table, fill_attr: str) -> dict[str, _Var]:
    """The four (N, 20) root profiles of a Lite FP file, SYNTHETIC but shaped and varying like real ones, at float32
    full precision (so zlib + shuffle compresses them as it would measured values; module docstring):

    * ``pressure_levels`` (hPa): 0.1 hPa at the top, then ``sigma * psurf`` with ``psurf`` the analytic
      ``Retrieval/psurf`` (the last level is that surface pressure);
    * ``co2_profile_apriori`` (ppm): the analytic ``xco2_apriori`` in the troposphere, 6 ppm less in the upper
      stratosphere (older air), plus a smooth per-sounding perturbation of 0.3 ppm (prior model weather);
    * ``xco2_averaging_kernel`` (1): about 0.45 at the top rising to about 1.0 near 700 hPa and 0.9 at the surface,
      scaled per sounding by 1 +- 8 % (albedo, aerosol, geometry) with 1 % level-to-level noise;
    * ``pressure_weight`` (1): the layer weights of the evenly spaced levels (half weights at both ends), corrected
      per sounding for water vapour (0-0.5 %), summing to 1.
    None of them is analytic test truth; the readers never read them (they are not per-sounding 1-D)."""
    rng = _profile_rng(table)
    n = table.lat.size
    psurf = ANALYTIC["Retrieval/psurf_apriori"](table.lat, table.lon)[:, None] + rng.normal(0.0, 1.0, (n, 1))
    levels = np.maximum(_SIGMA[None, :] * psurf, 0.1)
    strat = 6.0 * np.clip(1.0 - _SIGMA / 0.2, 0.0, 1.0) ** 1.5
    apriori = ANALYTIC["xco2_apriori"](table.lat, table.lon)[:, None] - strat[None, :]
    apriori = apriori + rng.normal(0.0, 0.3, (n, 1)) * np.sin(np.pi * (_SIGMA[None, :] + 0.25))
    apriori = apriori + rng.normal(0.0, 0.02, (n, LEVELS))
    shape = 0.45 + 0.55 * np.sin(np.pi * np.clip(_SIGMA / 1.4 + 0.1, 0.0, 1.0))
    kernel = shape[None, :] * (1.0 + rng.normal(0.0, 0.08, (n, 1))) + rng.normal(0.0, 0.002, (n, LEVELS))
    base = np.full(LEVELS, 1.0 / (LEVELS - 1))
    base[[0, -1]] /= 2
    weight = base[None, :] * (1.0 + rng.normal(0.0, 0.002, (n, LEVELS)))
    weight /= weight.sum(axis=1, keepdims=True)
    dims = ("sounding_id", "levels")
    return {
        "pressure_levels": _f32var(dims, levels, fill_attr, units="hPa"),
        "co2_profile_apriori": _f32var(dims, apriori, fill_attr, units="ppm"),
        "xco2_averaging_kernel": _f32var(dims, kernel, fill_attr, units="1"),
        "pressure_weight": _f32var(dims, weight, fill_attr, units="1"),
    }


def _fp_layout(mission: Mission, day: dt.date, table: _Table, target_vars: bool) -> _Layout:
    n = table.lat.size
    s = ("sounding_id",)
    spec = mission_spec(mission)
    oco2 = spec.naming.platform == "oco2"
    dims: dict[str, int | None] = {"sounding_id": n, "levels": 20, "bands": 3, "vertices": 4, "epoch_dimension": 7}
    if oco2:
        dims["footprints"] = 8
    fa = "missing_value"
    root: dict[str, _Var] = {
        "sounding_id": _Var(s, _sounding_ids(table.unix, table.footprint)),
        "levels": _Var(("levels",), np.arange(20, dtype=np.int16)),
        "bands": _Var(("bands",), np.arange(1, 4, dtype=np.int16)),
        "vertices": _Var(("vertices",), np.arange(1, 5, dtype=np.int16)),
        "date": _Var(("sounding_id", "epoch_dimension"), _date_array(table.unix)),
        "latitude": _f32var(s, table.lat, fa, units="degrees_north", long_name="latitude"),
        "longitude": _f32var(s, table.lon, fa, units="degrees_east", long_name="longitude"),
        "vertex_latitude": _f32var(("sounding_id", "vertices"), table.vlat, fa, units="degrees_north"),
        "vertex_longitude": _f32var(("sounding_id", "vertices"), table.vlon, fa, units="degrees_east"),
        "time": _Var(s, table.unix.astype(np.float64),
                     {"units": "seconds since 1970-01-01 00:00:00", "long_name": "time"}),
        "file_index": _Var(s, np.ones(n, np.int8), {"missing_value": np.int8(-1)}),
        "xco2_qf_simple_bitflag": _Var(s, fp_quality_flag(table.lat, table.lon)),
        **_profiles(table, fa),
    }
    if oco2:
        root["footprints"] = _Var(("footprints",), np.arange(1, 9, dtype=np.int16))
    groups: dict[str, dict[str, _Var]] = {"": root, "Sounding": {}, "Retrieval": {}, "Meteorology": {},
                                          "Preprocessors": {}}
    for key in ANALYTIC_FP:
        group, _, name = key.rpartition("/")
        groups[group][name] = _science(table, key, s, fa)
    snd = groups["Sounding"]
    snd["operation_mode"] = _Var(s, spec.modes.product_code(table.mode).astype(np.int8),
                                 {"long_name": spec.modes.meanings})
    snd["footprint"] = _Var(s, table.footprint)
    snd["orbit"] = _Var(s, np.full(n, 12345, np.int32))
    if target_vars:
        snd["target_id"] = _Var(s, table.target_id.astype(object))
        snd["target_name"] = _Var(s, table.target_name.astype(object))
    return _Layout(dims, groups, _global_attrs(spec, day, table))


def _sif_layout(mission: Mission, day: dt.date, table: _Table, delta_time_units: str) -> _Layout:
    n = table.lat.size
    s = ("sounding_dim",)
    spec = mission_spec(mission)
    seqs = table.sequences or [("none", "none")]
    dims: dict[str, int | None] = {"sounding_dim": n, "vertex_dim": 4, "sequences_dim": len(seqs)}
    fa = "_FillValue"
    sif_modes = spec.modes.product_code(table.mode).astype(np.int8)
    root: dict[str, _Var] = {
        "Latitude": _f32var(s, table.lat, fa, units="degrees_north"),
        "Longitude": _f32var(s, table.lon, fa, units="degrees_east"),
        "Latitude_Corners": _f32var(("sounding_dim", "vertex_dim"), table.vlat, fa, units="degrees_north"),
        "Longitude_Corners": _f32var(("sounding_dim", "vertex_dim"), table.vlon, fa, units="degrees_east"),
        "Delta_Time": _Var(s, table.unix - SIF_EPOCH_OFFSET, {"units": delta_time_units, "long_name": "time"}),
    }
    groups: dict[str, dict[str, _Var]] = {"": root, "Metadata": {}, "Science": {}, "Cloud": {}, "Meteo": {},
                                          "Offset": {}, "Sequences": {}}
    for key in ANALYTIC_SIF:
        group, _, name = key.rpartition("/")
        groups[group][name] = _science(table, key, s, fa)
    groups["Metadata"] = {
        "MeasurementMode": _Var(s, sif_modes, {"comment": spec.modes.meanings}),
        "OrbitId": _Var(s, np.full(n, 12345, np.int32)),
        "SoundingId": _Var(s, _sounding_ids(table.unix, table.footprint)),
        "FootprintId": _Var(s, table.footprint),
    }
    groups["Sequences"] = {
        "SequencesIndex": _Var(s, table.sequence.astype(np.int32)),
        "SequencesId": _Var(("sequences_dim",), np.array([i for i, _ in seqs], dtype=object)),
        "SequencesName": _Var(("sequences_dim",), np.array([m for _, m in seqs], dtype=object)),
    }
    return _Layout(dims, groups, _global_attrs(spec, day, table))


@dataclass(frozen=True)
class Storage:
    """How a granule's numeric variables are stored in HDF5: filters and chunk shapes.

    ``compression`` ``None`` stores them contiguous and unfiltered. ``chunks`` maps a variable key (``name`` or
    ``Group/name``) to a chunk shape; any other variable gets netCDF-C's default chunk shape for its shape.
    """

    compression: Literal["zlib"] | None = "zlib"
    complevel: int = 4
    shuffle: bool = True
    chunks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def options(self, key: str) -> dict[str, Any]:
        """The ``netCDF4.Dataset.createVariable`` keywords of variable ``key``."""
        if self.compression is None:
            return {"contiguous": True}
        opts: dict[str, Any] = {"compression": self.compression, "complevel": self.complevel,
                                "shuffle": self.shuffle}
        if key in self.chunks:
            opts["chunksizes"] = self.chunks[key]
        return opts


#: The Lite files' storage as far as it is known (module docstring): zlib level 4 + shuffle, default chunks.
LITE_STORAGE = Storage()
#: Contiguous, unfiltered storage (the layout a subsetter or an h5repack -l CONTI would leave).
CONTIGUOUS = Storage(compression=None)


def _write_layout(path: Path, layout: _Layout, storage: Storage) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            for name, size in layout.dims.items():
                nc.createDimension(name, size)
            nc.setncatts(layout.attrs)
            for group, variables in layout.groups.items():
                node = nc if group == "" else nc.createGroup(group)
                for name, var in variables.items():
                    _write_var(node, name, var, storage.options(f"{group}/{name}" if group else name))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _write_var(node: Any, name: str, var: _Var, options: Mapping[str, Any]) -> None:
    attrs = dict(var.attrs)
    fill = attrs.pop("_FillValue", False)
    if var.data.dtype == object:
        v = node.createVariable(name, str, var.dims)
        v[:] = var.data
    else:
        v = node.createVariable(name, var.data.dtype, var.dims, fill_value=fill, **options)
        v.set_auto_maskandscale(False)
        v[:] = var.data
    if attrs:
        v.setncatts(attrs)
