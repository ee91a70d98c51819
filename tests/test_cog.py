"""COG export: valid per rio-cogeo, EPSG:4326, north-up, nodata declared, options allow-listed."""

from __future__ import annotations

import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from oco_l3.cog import validate_options, write_cog, write_slice_cogs
from oco_l3.errors import ConfigInvalid, UnsafePath
from oco_l3.grids import GridSpec
from oco_l3.stores import SliceData
from oco_l3.targets import BBox

GRID = GridSpec(BBox(10.0, 20.0, 12.0, 23.0), 30, 20)


def south_first() -> np.ndarray:
    """Row i holds latitude[i] (south first): values increase northwards."""
    return np.repeat(GRID.latitude[:, None], GRID.n_lon, axis=1).astype(np.float32)


def test_cog_valid_north_up_nodata(tmp_path: Path) -> None:
    arr = south_first()
    arr[0, 0] = np.nan
    path = write_cog(arr, GRID, str(tmp_path), "a.tif")
    assert cog_validate(path, quiet=True)[0]
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 4326
        assert np.isnan(src.nodata)
        data = src.read(1)
        assert data[0, 0] == pytest.approx(GRID.latitude[-1])  # top-left = northernmost row
        assert np.isnan(data[-1, 0]) and data[-1, 1] == pytest.approx(GRID.latitude[0])
        assert src.transform.c == pytest.approx(10.0) and src.transform.f == pytest.approx(23.0)
        assert src.transform.e < 0
        x, y = src.xy(0, 0)
        assert y == pytest.approx(GRID.latitude[-1]) and x == pytest.approx(GRID.longitude[0])
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]  # no temp file left behind


def test_integer_nodata_and_options(tmp_path: Path) -> None:
    arr = np.full(GRID.shape, 7, dtype=np.int16)
    arr[:5] = -999
    path = write_cog(arr, GRID, str(tmp_path), "i.tif", nodata=-999,
                     options={"compress": "zstd", "LEVEL": 9, "BLOCKSIZE": 256, "overview_resampling": "nearest"})
    with rasterio.open(path) as src:
        assert src.nodata == -999 and src.dtypes[0] == "int16"
        assert src.compression.name.upper() == "ZSTD"
        assert (src.read(1)[-5:] == -999).all() and (src.read(1)[0] == 7).all()


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="TARGET_SRS"):
        write_cog(south_first(), GRID, str(tmp_path), "a.tif", options={"TARGET_SRS": "EPSG:3857"})
    with pytest.raises(ConfigInvalid, match="bogus"):
        validate_options({"bogus": 1})
    assert not list(tmp_path.iterdir())


def test_hostile_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath):
        write_cog(south_first(), GRID, str(tmp_path), "../evil.tif")


def test_slice_cogs_names_and_memory_fs(tmp_path: Path) -> None:
    t = np.datetime64("2020-05-06T07:08:09.5", "ns")
    window = (2, 10, 3, 9)
    data = {"xco2": np.ones((8, 6), np.float32), "Retrieval/psurf": np.full((8, 6), 2.0, np.float32),
            "flag": np.ones((8, 6), np.int8)}
    s = SliceData(t, GRID, data, fills={"flag": -1}, window=window)
    paths = write_slice_cogs(s, "oco3", "fossil0001", True, str(tmp_path))
    names = sorted(Path(p).name for p in paths)
    assert names == ["oco3-co2_fossil0001_2020-05-06T070809Z_filtered_Retrieval.psurf.tif",
                     "oco3-co2_fossil0001_2020-05-06T070809Z_filtered_flag.tif",
                     "oco3-co2_fossil0001_2020-05-06T070809Z_filtered_xco2.tif"]
    with rasterio.open(tmp_path / names[1]) as src:
        band = src.read(1)
        assert src.nodata == -1 and (band == 1).sum() == 48 and band[0, 0] == -1
    mem = fsspec.filesystem("memory")
    out = f"/cogs-{time.time_ns()}"
    written = write_slice_cogs(s, "oco3_sif", "sif_01", False, out, fs=mem, keys=["xco2"])
    assert written == [f"{out}/oco3-sif_sif_01_2020-05-06T070809Z_unfiltered_xco2.tif"]
    local = tmp_path / "copy.tif"
    local.write_bytes(mem.cat_file(written[0]))
    assert cog_validate(str(local), quiet=True)[0]
