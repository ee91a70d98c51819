"""Zarr v3 stores (``output.format: zarr3``) of all three products: the same values as Zarr v2 through xarray,
zarr-python's inline consolidated metadata, GeoZarr ``proj``/``spatial`` attributes that describe the grid exactly,
and GDAL (rasterio) reading the same values.

GDAL: the GDAL bundled with rasterio 1.4.4 (3.10.3) knows the v3 ``bytes`` codec only by its draft name ``endian``
(GDAL 3.11 renamed it); zarr-python 3 accepts only ``bytes``. So a final-spec v3 array opens in GDAL >= 3.11 only:
:func:`test_gdal_opens_v3_store_directly` runs there. :func:`test_gdal_reads_v3_arrays` opens a copy of the store
whose documents differ only in that codec name, and so checks everything else GDAL has to understand (chunk keys,
blosc, fill values, dimension names, the CF grid mapping) on the GDAL we have.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
import xarray as xr

from oco_l3.errors import StoreCorrupt
from oco_l3.global_product import commit_global_day, compose_day
from oco_l3.icesat2.writers import upsert_day
from oco_l3.stores import open_store, read_back, upsert_slices
from oco_l3.zarr_store import geozarr
from tests import test_global as tg
from tests import test_icesat2_store as ti
from tests.test_stores import CHUNKS, day, make_slice

LOCAL = fsspec.filesystem("file")
WRITES = [(1, 1.0), (3, 3.0), (2, 2.0), (2, 22.0), (4, 4.0)]  # create, append, insert, replace, append


def target_store(path: Path, fmt: int) -> str:
    for d, v in WRITES:
        result = upsert_slices(LOCAL, str(path), [make_slice(day(d), v)], chunking=CHUNKS, title="t",
                               zarr_format=fmt)
        assert read_back(LOCAL, str(path), [day(d)], result.objects)
    return str(path)


@pytest.fixture(scope="module")
def target_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("target")
    return target_store(base / "v2.zarr", 2), target_store(base / "v3.zarr", 3)


@pytest.fixture(scope="module")
def global_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("global")
    caps = [tg.product(tg.make_soundings("oco3", 10.0, 20.0, target="volcano0007"), "volcano0007"),
            tg.product(tg.make_soundings("oco3_sif", 179.5, 40.0, target="sif0003"), "sif0003")]
    out = []
    for fmt in (2, 3):
        path = str(base / f"v{fmt}.zarr")
        for d in (tg.DAY, tg.DAY - dt.timedelta(days=2)):  # create, then insert a day before it
            commit_global_day(LOCAL, path, d, compose_day(tg.GRID, tg.CHUNKS, caps, "pre"), attrs={"title": "t"},
                              zarr_format=fmt)
        out.append(path)
    return out[0], out[1]


@pytest.fixture(scope="module")
def icesat2_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("icesat2")
    out = []
    for fmt in (2, 3):
        path = base / f"v{fmt}.zarr"
        for d, seed in (("2020-01-02", 1), ("2020-01-01", 2), ("2020-01-02", 3)):
            upsert_day(path, ti.make_day(d, seed, empty_right=seed == 2), ti.GRID, zarr_format=fmt)
        out.append(str(path))
    return out[0], out[1]


def groups_of(path: str) -> list[str | None]:
    root = json.loads(Path(path, "zarr.json").read_text())
    nodes = root["consolidated_metadata"]["metadata"]
    return [None, *sorted(k for k, v in nodes.items() if v["node_type"] == "group")]


def assert_same_values(v2: str, v3: str) -> None:
    """Every group and variable reads the same through xr.open_zarr (values, dtypes, coordinates)."""
    for group in groups_of(v3):
        a, b = xr.open_zarr(v2, group=group, chunks=None), xr.open_zarr(v3, group=group, chunks=None)  # no dask
        assert sorted(a.variables) == sorted(b.variables), group
        for name in a.variables:
            assert a[name].dtype == b[name].dtype, (group, name)
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group}/{name}")
        assert sorted(a.coords) == sorted(b.coords), group


# --- xarray reads what v2 holds ----------------------------------------------------------------------------------
@pytest.mark.parametrize("product", ["target", "global", "icesat2"])
def test_v3_reads_like_v2_with_plain_xarray(product: str, request: pytest.FixtureRequest) -> None:
    v2, v3 = request.getfixturevalue(f"{product}_pair")
    assert Path(v2, ".zmetadata").exists() and not Path(v2, "zarr.json").exists()
    assert Path(v3, "zarr.json").exists() and not any(Path(v3).rglob(".z*"))
    with _no_warnings():  # consolidated metadata found in the root and in every group, nothing to fall back on
        assert_same_values(v2, v3)
    ds = open_store(LOCAL, v3)  # recovery + open
    assert ds.time.size > 1 and np.all(np.diff(ds.time.values) > np.timedelta64(0))


def test_v3_documents(target_pair: tuple[str, str]) -> None:
    """One zarr.json per node, the spec's codec pipeline (bytes, then blosc), dimension names, default chunk keys,
    CF attributes and the integer fill value declared for CF readers too."""
    _, v3 = target_pair
    xco2 = json.loads(Path(v3, "xco2", "zarr.json").read_text())
    assert xco2["node_type"] == "array" and xco2["zarr_format"] == 3
    assert [c["name"] for c in xco2["codecs"]] == ["bytes", "blosc"]
    assert xco2["codecs"][0]["configuration"] == {"endian": "little"}
    assert xco2["codecs"][1]["configuration"]["typesize"] == 4
    assert xco2["dimension_names"] == ["time", "latitude", "longitude"]
    assert xco2["fill_value"] == "NaN" and xco2["attributes"]["units"] == "ppm"
    assert xco2["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "."}}
    assert Path(v3, "xco2", "c.0.0.0").exists()
    flag = json.loads(Path(v3, "flag", "zarr.json").read_text())
    assert flag["fill_value"] == -999 and flag["attributes"]["_FillValue"] == -999
    root = json.loads(Path(v3, "zarr.json").read_text())
    assert root["node_type"] == "group" and root["attributes"]["Conventions"] == "CF-1.8"
    meta = root["consolidated_metadata"]
    assert meta["kind"] == "inline" and meta["must_understand"] is False
    assert set(meta["metadata"]) >= {"xco2", "flag", "time", "latitude", "longitude", "Retrieval", "Retrieval/psurf"}
    assert meta["metadata"]["xco2"] == xco2  # the consolidated copy is the array's own document
    group = json.loads(Path(v3, "Retrieval", "zarr.json").read_text())
    assert set(group["consolidated_metadata"]["metadata"]) == {"psurf", "time", "latitude", "longitude"}


# --- GeoZarr -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("product", ["target", "global", "icesat2"])
def test_geozarr_attributes_describe_the_grid(product: str, request: pytest.FixtureRequest) -> None:
    """proj + spatial (v0.1) on the root and every group: the conventions are registered, the CRS is the grid's,
    and the affine transform maps every cell's centre index to its coordinate values."""
    import pyproj

    _, v3 = request.getfixturevalue(f"{product}_pair")
    for group in groups_of(v3):
        attrs = xr.open_zarr(v3, group=group).attrs
        names = [c["name"] for c in attrs["zarr_conventions"]]
        assert names == ["proj", "spatial"]
        assert {c["uuid"] for c in attrs["zarr_conventions"]} == {geozarr.PROJ["uuid"], geozarr.SPATIAL["uuid"]}
        crs = pyproj.CRS.from_wkt(attrs["proj:wkt2"])
        ds = xr.open_zarr(v3, group=group)
        ydim, xdim = attrs["spatial:dimensions"]
        node = json.loads(Path(v3, group or "", "zarr.json").read_text())
        arrays = {k: v for k, v in node["consolidated_metadata"]["metadata"].items() if v["node_type"] == "array"}
        assert any(v["dimension_names"][-2:] == [ydim, xdim] for v in arrays.values())
        a, b, c, d, e, f = attrs["spatial:transform"]
        cols, rows = np.arange(ds[xdim].size) + 0.5, np.arange(ds[ydim].size) + 0.5
        np.testing.assert_allclose(a * cols + c, ds[xdim].values, rtol=0, atol=1e-9 * max(1, abs(a)))
        np.testing.assert_allclose(e * rows + f, ds[ydim].values, rtol=0, atol=1e-9 * max(1, abs(e)))
        assert b == d == 0.0 and attrs["spatial:shape"] == [ds[ydim].size, ds[xdim].size]
        xmin, ymin, xmax, ymax = attrs["spatial:bbox"]
        assert xmin < ds[xdim].values.min() < ds[xdim].values.max() < xmax
        assert ymin < ds[ydim].values.min() < ds[ydim].values.max() < ymax
        if product == "icesat2":
            assert crs.equals(ti.GRID.pyproj_crs) and e < 0  # north-first rows
        else:
            assert attrs["proj:code"] == "EPSG:4326" and crs.to_epsg() == 4326 and e > 0  # south-first rows


def test_v2_stores_carry_no_geozarr_attributes(target_pair: tuple[str, str]) -> None:
    v2, _ = target_pair
    assert not any(k.startswith(("proj:", "spatial:", "zarr_conventions")) for k in xr.open_zarr(v2).attrs)


# --- GDAL --------------------------------------------------------------------------------------------------------
def gdal_version() -> tuple[int, int]:
    import rasterio

    major, minor = rasterio.__gdal_version__.split(".")[:2]
    return int(major), int(minor)


def draft_codec_copy(src: str, dst: Path) -> str:
    """A copy of the store whose documents name the v3 ``bytes`` codec by its draft name ``endian`` (all GDAL
    before 3.11 reads); nothing else differs."""
    shutil.copytree(src, dst)
    for doc in dst.rglob("zarr.json"):
        doc.write_text(doc.read_text().replace('"name": "bytes"', '"name": "endian"'))
    return str(dst)


def gdal_read(path: str, var: str, time_index: int) -> tuple[np.ndarray, Any, Any]:
    import rasterio

    with rasterio.open(f'ZARR:"{path}":/{var}:{time_index}') as src:
        return src.read(1), src.transform, src.crs


@pytest.mark.parametrize("product,var", [("target", "xco2"), ("target", "Retrieval/psurf"), ("target", "flag"),
                                         ("global", "OCO3_global_xco2"), ("global", "OCO3_SIF_global_target_id"),
                                         ("icesat2", "mean"), ("icesat2", "n_segments")])
def test_gdal_reads_v3_arrays(product: str, var: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    _, v3 = request.getfixturevalue(f"{product}_pair")
    path = draft_codec_copy(v3, tmp_path / "copy.zarr") if gdal_version() < (3, 11) else v3
    group, _, name = var.rpartition("/")
    ds = xr.open_zarr(v3, group=group or None, mask_and_scale=False, chunks=None)
    for t in range(ds.time.size):
        values, transform, crs = gdal_read(path, var, t)
        np.testing.assert_array_equal(values, ds[name].values[t], err_msg=f"{var} at {t}")
    ydim, xdim = ds[name].dims[1:]
    assert transform.c + transform.a / 2 == pytest.approx(float(ds[xdim][0]))
    assert transform.f + transform.e / 2 == pytest.approx(float(ds[ydim][0]))
    if product == "icesat2":  # the CF grid mapping (GDAL >= 3.9 reads it)
        assert crs is not None and crs.to_wkt() and ti.GRID.pyproj_crs.equals(crs.to_wkt())


@pytest.mark.skipif(gdal_version() < (3, 11), reason="GDAL < 3.11 does not know the v3 'bytes' codec by that name")
def test_gdal_opens_v3_store_directly(target_pair: tuple[str, str]) -> None:
    _, v3 = target_pair
    values, _, _ = gdal_read(v3, "xco2", 0)
    np.testing.assert_array_equal(values, xr.open_zarr(v3).xco2.values[0])


# --- one store, one format -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("existing,configured", [(2, 3), (3, 2)])
def test_other_format_store_is_refused_untouched(tmp_path: Path, existing: int, configured: int) -> None:
    path = str(tmp_path / "s.zarr")
    upsert_slices(LOCAL, path, [make_slice(day(1), 1)], chunking=CHUNKS, zarr_format=existing)
    before = {p: p.read_bytes() for p in Path(path).rglob("*") if p.is_file()}
    with pytest.raises(StoreCorrupt, match=f"is Zarr format {existing}, not {configured}"):
        upsert_slices(LOCAL, path, [make_slice(day(2), 2)], chunking=CHUNKS, zarr_format=configured)
    assert {p: p.read_bytes() for p in Path(path).rglob("*") if p.is_file()} == before
    assert not any(tmp_path.glob(".s.zarr.oco-l3-txn/*"))  # nothing was staged


def test_output_format_config_key() -> None:
    from oco_l3.config import ConfigInvalid, parse_config
    from oco_l3.icesat2.config import parse_icesat2_config

    base = {"input": {"files": ["a.nc4"]}, "output": {"local": "/tmp/x"}}
    assert parse_config(base).output.zarr_format == 2
    assert parse_config({**base, "output": {"local": "/tmp/x", "format": "zarr3"}}).output.zarr_format == 3
    with pytest.raises(ConfigInvalid, match="output.format"):
        parse_config({**base, "output": {"local": "/tmp/x", "format": "zarr4"}})
    ice = {"product": "icesat2-seaice", "input": {"files": ["a.h5"]}, "output": {"local": "/tmp/x", "format": "zarr3"}}
    assert parse_icesat2_config(ice).output.zarr_format == 3


class _no_warnings:
    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DeprecationWarning)

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


def test_icesat2_run_writes_v3_when_configured(tmp_path: Path) -> None:
    """``output.format: zarr3`` in an ICESat-2 config reaches the store (a real ATL07 granule), same values."""
    from oco_l3.icesat2 import run_icesat2
    from tests.test_icesat2_seaice import ATL07_A, _config

    stores = {}
    for fmt in ("zarr2", "zarr3"):
        out = {"cog": False, "quicklook": False, "local": str(tmp_path / fmt), "format": fmt}
        (result,) = run_icesat2({**_config([ATL07_A], tmp_path, grid="nsidc-ps-north-25km"), "output": out})
        assert result.ok, result
        stores[fmt] = str(tmp_path / fmt / "icesat2-seaice" / "atl07-height" / "nsidc-ps-north-25km.zarr")
    assert Path(stores["zarr3"], "zarr.json").exists() and Path(stores["zarr2"], ".zmetadata").exists()
    assert_same_values(stores["zarr2"], stores["zarr3"])
    assert xr.open_zarr(stores["zarr3"]).attrs["proj:code"] == "EPSG:3411"
