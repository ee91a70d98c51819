"""Cloud-Optimized GeoTIFF export: EPSG:4326, north-up, nodata declared, validated before it is moved into place.

Arrays on a :class:`~oco_l3.grids.GridSpec` are south-first (row 0 = southernmost latitude); GeoTIFFs are north-up,
so rows are flipped here. User options are GDAL COG driver creation options, checked against an allow-list.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from oco_l3.errors import ConfigInvalid
from oco_l3.grids import GridSpec
from oco_l3.paths import check_component, cog_name, safe_join
from oco_l3.stores import SliceData
from oco_l3.zarr_store._objectstore import is_local

if TYPE_CHECKING:
    from oco_l3.sparse_cog import SparseRaster

log = logging.getLogger(__name__)

#: GDAL COG driver creation options a user may set (``output.cog.options``). Reprojection options are not allowed:
#: the product is EPSG:4326 on the target grid.
ALLOWED_OPTIONS = frozenset({
    "BLOCKSIZE", "COMPRESS", "LEVEL", "ZLEVEL", "ZSTD_LEVEL", "PREDICTOR", "QUALITY", "NUM_THREADS", "BIGTIFF",
    "OVERVIEWS", "OVERVIEW_COUNT", "OVERVIEW_RESAMPLING", "RESAMPLING", "WARP_RESAMPLING", "OVERVIEW_COMPRESS",
    "OVERVIEW_QUALITY", "OVERVIEW_PREDICTOR", "MAX_Z_ERROR", "MAX_Z_ERROR_OVERVIEW", "NBITS", "SPARSE_OK",
    "STATISTICS", "GEOTIFF_VERSION", "JXL_LOSSLESS", "JXL_EFFORT", "JXL_DISTANCE", "JXL_ALPHA_DISTANCE",
})


def validate_options(options: Mapping[str, Any] | None) -> dict[str, str]:
    """Upper-cased COG options; an unknown key raises :class:`ConfigInvalid` naming it."""
    out: dict[str, str] = {}
    for key, value in (options or {}).items():
        name = str(key).upper()
        if name not in ALLOWED_OPTIONS:
            raise ConfigInvalid(f"output.cog.options.{str(key)[:40]} is not a GDAL COG creation option we allow "
                                f"(allowed: {', '.join(sorted(ALLOWED_OPTIONS))})")
        out[name] = str(value).upper() if isinstance(value, bool) else str(value)
    return out


def _translate_args(options: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """rio-cogeo ``dst_kwargs``, ``cog_translate`` keyword arguments and GDAL config from COG options."""
    from rio_cogeo.profiles import cog_profiles

    profile: dict[str, Any] = dict(cog_profiles.get("deflate"))
    profile.pop("interleave", None)  # one band; GDAL's COG driver has no INTERLEAVE option and warns about it
    kwargs: dict[str, Any] = {}
    config: dict[str, str] = {}
    for name, value in options.items():
        if name == "BLOCKSIZE":
            profile["blockxsize"] = profile["blockysize"] = int(value)
        elif name == "NUM_THREADS":
            config["GDAL_NUM_THREADS"] = value
        elif name == "OVERVIEW_RESAMPLING":
            kwargs["overview_resampling"] = value.lower()
        elif name in ("RESAMPLING", "WARP_RESAMPLING"):
            kwargs["resampling"] = value.lower()
        elif name == "OVERVIEWS" and value.upper() == "NONE":
            kwargs["overview_level"] = 0
        elif name == "OVERVIEW_COUNT":
            kwargs["overview_level"] = int(value)
        elif name != "OVERVIEWS":
            profile[name.lower()] = value
    return profile, kwargs, config


def _nodata_for(array: np.ndarray, nodata: float | int | None) -> float | int:
    if nodata is not None:
        return nodata
    if array.dtype.kind == "f":
        return float("nan")
    raise ValueError("an integer array needs an explicit nodata (its fill value)")


def _to_tiff(array: np.ndarray, grid: GridSpec, nodata: float | int, tmp_path: str, options: dict[str, str]) -> None:
    import rasterio
    from affine import Affine
    from rasterio.io import MemoryFile
    from rio_cogeo.cogeo import cog_translate

    north_up = np.ascontiguousarray(array[::-1])
    profile = {"driver": "GTiff", "width": grid.n_lon, "height": grid.n_lat, "count": 1, "dtype": north_up.dtype.name,
               "crs": "EPSG:4326", "transform": Affine(*grid.transform()), "nodata": nodata}
    dst, kwargs, config = _translate_args(options)
    # GDAL's COG driver wants blocks of at least 128 pixels (a small grid is padded within one block).
    block = min(int(dst["blockxsize"]), max(128, 16 * (max(grid.n_lat, grid.n_lon) // 16)))
    dst["blockxsize"] = dst["blockysize"] = block
    with rasterio.Env(**config), MemoryFile() as mem:
        with mem.open(**profile) as src:
            src.write(north_up, 1)
        with mem.open() as src:
            cog_translate(src, tmp_path, dst, nodata=nodata, quiet=True, in_memory=True, use_cog_driver=True,
                          config=config, **kwargs)


def write_cog(
    array: np.ndarray,
    grid: GridSpec,
    out_dir: str,
    name: str,
    *,
    nodata: float | int | None = None,
    options: Mapping[str, Any] | None = None,
    fs: fsspec.AbstractFileSystem | None = None,
) -> str:
    """Write ``array`` (south-first rows on ``grid``) as the COG ``out_dir/name``; returns the final path.

    ``fs`` defaults to local disk. The file is written to a temporary file, validated with ``cog_validate``, then
    renamed into place (local) or uploaded with one put (other filesystems), so a reader never sees a partial COG.
    """
    if array.shape != grid.shape:
        raise ValueError(f"COG array shape {array.shape} does not match the grid {grid.shape}")
    opts = validate_options(options)
    return _write_validated(lambda tmp: _to_tiff(array, grid, _nodata_for(array, nodata), tmp, opts), out_dir,
                            name, fs)


def _write_validated(make: Callable[[str], None], out_dir: str, name: str,
                     fs: fsspec.AbstractFileSystem | None) -> str:
    """``make(tmp)`` writes the COG to a temporary file; it is validated, then renamed (local) or put (other
    filesystems) to ``out_dir/name``. Returns the final path."""
    from rio_cogeo.cogeo import cog_validate

    fs = fs or fsspec.filesystem("file")
    local = is_local(fs)
    check_component(name)
    final = safe_join(out_dir, name) if local or "://" in out_dir else f"{out_dir.rstrip('/')}/{name}"
    tmp_dir = os.path.dirname(final) if local else None
    if tmp_dir:
        os.makedirs(tmp_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tif", dir=tmp_dir)
    os.close(fd)
    try:
        make(tmp)
        valid, errors, _warnings = cog_validate(tmp, quiet=True)
        if not valid:
            raise RuntimeError(f"COG {name} failed validation: {'; '.join(errors)[:200]}")
        if local:
            os.replace(tmp, final)
        else:
            fs.put_file(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.debug("Wrote COG %s", final)
    return final


#: GDAL COG options the sparse (global) COGs follow; the others of :data:`ALLOWED_OPTIONS` do not apply to them.
SPARSE_OPTIONS = frozenset({"BLOCKSIZE", "COMPRESS", "LEVEL", "ZLEVEL", "ZSTD_LEVEL", "SPARSE_OK"})


def sparse_settings(options: Mapping[str, Any] | None) -> tuple[int, str, int | None]:
    """(block size, compression, level) of the sparse COGs from ``output.cog.options`` (default 256, DEFLATE,
    level 1); :class:`ConfigInvalid` for a compression they cannot be written with."""
    from oco_l3.sparse_cog import COMPRESSION

    opts = validate_options(options)
    block = int(opts.get("BLOCKSIZE", 256))
    compress = opts.get("COMPRESS", "DEFLATE").upper()
    if compress not in COMPRESSION:
        raise ConfigInvalid(f"output.cog.options.COMPRESS={compress[:20]} is not written for the global product's "
                            f"sparse COGs (use {' or '.join(COMPRESSION)})")
    if block % 16 or not 16 <= block <= 4096:
        raise ConfigInvalid(f"output.cog.options.BLOCKSIZE={block} must be a multiple of 16 in 16..4096")
    level = opts.get("ZSTD_LEVEL" if compress == "ZSTD" else "ZLEVEL", opts.get("LEVEL"))
    ignored = sorted(set(opts) - SPARSE_OPTIONS)
    if ignored:
        log.debug("COG options %s do not apply to sparse COGs", ", ".join(ignored))
    return block, compress, None if level is None else int(level)


def write_sparse_cog(
    raster: SparseRaster,
    out_dir: str,
    name: str,
    *,
    options: Mapping[str, Any] | None = None,
    fs: fsspec.AbstractFileSystem | None = None,
) -> str:
    """Write the sparse raster as the COG ``out_dir/name`` (only tiles with data, overviews by nearest sampling;
    :mod:`oco_l3.sparse_cog`), validated with ``cog_validate`` before it is moved into place like
    :func:`write_cog`. Returns the final path."""
    from oco_l3.sparse_cog import encode_cog

    block, compress, level = sparse_settings(options)

    def make(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(encode_cog(raster, block, compress, level))

    return _write_validated(make, out_dir, name, fs)


def write_slice_cogs(
    slice_: SliceData,
    mission: str,
    target_id: str,
    qf_filtered: bool,
    out_dir: str,
    *,
    options: Mapping[str, Any] | None = None,
    fs: fsspec.AbstractFileSystem | None = None,
    keys: Sequence[str] | None = None,
) -> list[str]:
    """One COG per variable of ``slice_`` named by :func:`oco_l3.paths.cog_name`; returns the paths."""
    validate_options(options)
    paths = []
    for key in keys or sorted(slice_.data):
        values = slice_.data[key]
        fill = slice_.fill(key)
        full = np.full(slice_.grid.shape, fill, dtype=np.float32 if values.dtype.kind == "f" else values.dtype)
        r0, r1, c0, c1 = slice_.bounds
        full[r0:r1, c0:c1] = values
        name = cog_name(mission, target_id, slice_.time, qf_filtered, key)
        paths.append(write_cog(full, slice_.grid, out_dir, name, nodata=fill, options=options, fs=fs))
    return paths
