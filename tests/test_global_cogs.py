"""COGs of the global daily product: one sparse COG per variable, day and QF pass, valid per rio-cogeo, with
overviews, nodata, EPSG:4326 north-up, only the tiles that hold data, values equal to the committed store."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import fsspec
import numpy as np
import pytest
import rasterio
import xarray as xr
from rio_cogeo.cogeo import cog_validate

from oco_l3.cog import sparse_settings, write_sparse_cog
from oco_l3.errors import ConfigInvalid
from oco_l3.global_product import (
    canvas_raster,
    commit_global_day,
    compose_day,
    export_global_cogs,
    global_cog_name,
    run_global,
)
from oco_l3.sparse_cog import SparseRaster, encode_cog, level_factors
from tests import test_global as tg

LOCAL = fsspec.filesystem("file")


def tiles_written(path: str, level: int | None = None) -> set[tuple[int, int]]:
    """The (row, col) of every tile the file holds (offset > 0), as GDAL reports them."""
    kwargs = {} if level is None else {"OVERVIEW_LEVEL": level}
    with rasterio.open(path, **kwargs) as src:
        bh, bw = src.block_shapes[0]
        return {(y, x) for y in range(math.ceil(src.height / bh)) for x in range(math.ceil(src.width / bw))
                if int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1) or 0) > 0}


def tiles_with_data(values: np.ndarray, fill: float | int, block: int) -> set[tuple[int, int]]:
    data = np.isfinite(values) if isinstance(fill, float) and math.isnan(fill) else values != fill
    return {(y, x) for y in range(math.ceil(values.shape[0] / block)) for x in range(math.ceil(values.shape[1] / block))
            if data[y * block : (y + 1) * block, x * block : (x + 1) * block].any()}


@pytest.fixture(scope="module")
def day_canvas(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A committed global day (0.5 degree, 360 x 720): OCO-3 SAMs at two targets, one across the antimeridian,
    and an OCO-3 SIF capture; the canvas as committed (target ids remapped to the store's list)."""
    base = tmp_path_factory.mktemp("gcog")
    caps = [tg.product(tg.make_soundings("oco3", 10.0, 20.0, target="volcano0007"), "volcano0007"),
            tg.product(tg.make_soundings("oco3", 179.5, -30.0, target="fossil0001", hour=12), "fossil0001"),
            tg.product(tg.make_soundings("oco3_sif", 100.0, 40.0, target="sif0003"), "sif0003")]
    canvas = compose_day(tg.GRID, tg.CHUNKS, caps, "post")
    store = str(base / "post.zarr")
    commit_global_day(LOCAL, store, tg.DAY, canvas, attrs={"title": "t"})
    return canvas, store, base


def test_one_valid_sparse_cog_per_variable_equal_to_the_store(day_canvas) -> None:  # type: ignore[no-untyped-def]
    canvas, store, base = day_canvas
    out = str(base / "cogs")
    keys = ["OCO3_global_xco2", "Retrieval/OCO3_global_psurf", "OCO3_global_target_id", "OCO3_SIF_global_Daily_SIF_757nm"]
    for key in keys:
        group, _, name = key.rpartition("/")
        stored = xr.open_zarr(store, group=group or None, mask_and_scale=False)[name].isel(time=0).values
        path = write_sparse_cog(canvas_raster(canvas, key), out, global_cog_name(key, tg.DAY, "post"))
        valid, errors, warnings = cog_validate(path, strict=True, quiet=True)
        assert valid, (key, errors, warnings)
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 4326 and src.transform[:6] == pytest.approx(tg.GRID.transform())
            assert src.transform.e < 0  # north-up
            assert src.block_shapes[0] == (256, 256) and src.overviews(1) == [2, 4]
            values = src.read(1)
            fill = canvas.fills[key]
            assert (math.isnan(src.nodata) if isinstance(fill, float) else src.nodata == fill), key
            assert values.dtype == stored.dtype
        np.testing.assert_array_equal(values, stored[::-1], err_msg=key)  # south-first store, north-up COG
        assert tiles_written(path) == tiles_with_data(values, canvas.fills[key], 256), key
        with rasterio.open(path, OVERVIEW_LEVEL=0) as ovr:  # nearest: the centre pixel of each 2 x 2 block
            np.testing.assert_array_equal(ovr.read(1), values[1::2, 1::2], err_msg=key)
    with rasterio.open(os.path.join(out, global_cog_name("OCO3_global_target_id", tg.DAY, "post"))) as src:
        assert json.loads(src.tags()["target_ids"]) == xr.open_zarr(store)["OCO3_global_target_id"].attrs["target_ids"]


def test_names_follow_the_reference_style() -> None:
    day = dt.date(2022, 3, 14)
    assert global_cog_name("OCO3_global_xco2", day, "pre") == "oco3-co2_global_2022-03-14T000000Z_unfiltered_xco2.tif"
    assert global_cog_name("Retrieval/OCO2_global_psurf", day, "post") == \
        "oco2-co2_global_2022-03-14T000000Z_filtered_Retrieval.psurf.tif"
    assert global_cog_name("OCO3_SIF_global_target_type", day, "post") == \
        "oco3-sif_global_2022-03-14T000000Z_filtered_target_type.tif"


def test_full_resolution_day_is_sparse_and_small(tmp_path: Path) -> None:
    """36000 x 18000 with four 3 x 3 degree captures: a few tiles per level, well under a few MB, valid."""
    rng = np.random.default_rng(1)
    pieces = []
    for r, c in ((1000, 2000), (9000, 18000), (9100, 35800), (17700, 100)):
        y, x = np.mgrid[0:300, 0:200]
        v = (400 + 0.01 * y + 0.02 * x).astype(np.float32)
        v[rng.random(v.shape) < 0.2] = np.nan
        pieces.append((r, c, v))
    raster = SparseRaster(18000, 36000, (0.01, 0.0, -180.0, 0.0, -0.01, 90.0), np.dtype(np.float32), float("nan"),
                          tuple(pieces))
    path = tmp_path / "big.tif"
    path.write_bytes(encode_cog(raster))
    assert path.stat().st_size < 3_000_000
    assert cog_validate(str(path), strict=True, quiet=True)[0]
    factors = level_factors(18000, 36000, 256)
    assert factors == [2 ** k for k in range(9)]  # down to one 256 block: 36000 / 256 -> 141
    for i, f in enumerate(factors[1:]):  # GDAL's overview sizes: ceil(size / factor)
        with rasterio.open(path, OVERVIEW_LEVEL=i) as ovr:
            assert (ovr.height, ovr.width) == (math.ceil(18000 / f), math.ceil(36000 / f))
    with rasterio.open(path) as src:
        for r, c, v in pieces:
            got = src.read(1, window=rasterio.windows.Window(c, r, v.shape[1], v.shape[0]))
            np.testing.assert_array_equal(got, v)
    expected = set()
    for r, c, v in pieces:  # the 256-tiles under the finite cells, and no other
        ys, xs = np.nonzero(np.isfinite(v))
        expected |= set(zip(((r + ys) // 256).tolist(), ((c + xs) // 256).tolist(), strict=True))
    assert tiles_written(str(path)) == expected and len(expected) <= 4 * 6


def test_options(tmp_path: Path) -> None:
    assert sparse_settings(None) == (256, "DEFLATE", None)
    assert sparse_settings({"blocksize": 512, "compress": "zstd", "zstd_level": 3}) == (512, "ZSTD", 3)
    with pytest.raises(ConfigInvalid, match="COMPRESS=LZW"):
        sparse_settings({"COMPRESS": "LZW"})
    raster = SparseRaster(600, 600, (1.0, 0.0, 0.0, 0.0, -1.0, 600.0), np.dtype(np.int16), -9,
                          ((10, 10, np.arange(100, dtype=np.int16).reshape(10, 10)),))
    path = write_sparse_cog(raster, str(tmp_path), "z.tif", options={"COMPRESS": "ZSTD", "BLOCKSIZE": 512})
    with rasterio.open(path) as src:
        assert src.compression.name.upper() == "ZSTD" and src.nodata == -9 and src.block_shapes[0] == (512, 512)
        assert src.read(1)[10:20, 10:20].sum() == np.arange(100).sum()


def test_run_global_with_cogs_end_to_end(tmp_path: Path) -> None:
    """``output.cog`` with the global product: COGs of both QF passes after the stores, one per variable with data;
    the absent mission (no OCO-2 granule) gets none."""
    from oco_l3.config import parse_config
    from oco_l3.sample_data import CaptureSpec, sample_filename, write_granule

    day = tg.DAY
    caps = [CaptureSpec("fossil0005", "sam", 300, dt.datetime.combine(day, dt.time(3, 10)))]
    files = [str(write_granule(tmp_path / sample_filename(m, day), m, day, caps, n_background=100, seed=3))  # type: ignore[arg-type]
             for m in ("oco3", "oco3_sif")]
    config = parse_config({"input": {"files": files},
                           "output": {"local": str(tmp_path / "out"), "global": True, "format": "zarr3",
                                      "cog": {"output": {"local": str(tmp_path / "cog")}}},
                           "grid": {"latitude": 1800, "longitude": 3600, "method": "linear"}})  # a SAM covers cells
    [result] = run_global(config)
    assert result.ok, result.errors
    names = sorted(os.path.basename(p) for p in result.cogs)
    assert names and names == sorted(os.listdir(tmp_path / "cog"))
    assert not any(n.startswith("oco2-co2") for n in names)
    for qf in ("filtered", "unfiltered"):
        assert f"oco3-co2_global_{day}T000000Z_{qf}_xco2.tif" in names
        assert f"oco3-sif_global_{day}T000000Z_{qf}_Daily_SIF_757nm.tif" in names
    pre = xr.open_zarr(tmp_path / "out" / "pre_qf")["OCO3_global_xco2"].isel(time=0).values
    with rasterio.open(tmp_path / "cog" / f"oco3-co2_global_{day}T000000Z_unfiltered_xco2.tif") as src:
        np.testing.assert_array_equal(src.read(1), pre[::-1])
    # the catalogue's day items list the day's COGs as assets (STAC, oco_l3/stac/global_day.py)
    items = [json.loads(f.read_text()) for f in (tmp_path / "out").rglob("*.json")]
    days = [i for i in items if i.get("type") == "Feature" and "OCO3_global_xco2" in i.get("assets", {})]
    assert len(days) == 2, [i.get("id") for i in items]
    for item in days:
        asset = item["assets"]["OCO3_global_xco2"]
        assert asset["href"].endswith("_xco2.tif") and "cloud-optimized" in asset["type"]
        assert Path(item["assets"]["OCO3_global_xco2"]["href"]).name in names
    assert export_global_cogs(config.model_copy(update={"output": config.output.model_copy(update={"cog": None})}),
                              day, compose_day(tg.GRID, tg.CHUNKS, [], "pre"), "pre") == []
