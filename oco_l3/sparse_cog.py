"""Sparse Cloud-Optimized GeoTIFFs of huge, mostly empty grids (the global daily product), built from their pieces.

GDAL's COG driver (``SPARSE_OK=TRUE``) leaves empty tiles out of the file, but it still reads and tests every pixel
of the source and of every overview it computes: about 2 s and 4 s per variable at 36000 x 18000, whatever the
captures (measured here with GDAL 3.10), which is far too slow for ~160 COGs a day. Here the file is laid out
directly from the pieces that hold data, so the cost follows the data:

* :func:`plan_cog` (pure): the levels (full resolution, then overviews by factors 2, 4, ... until both sides fit
  one block, as GDAL's COG driver does) and, per level, the tiles that hold data. Overviews are nearest-neighbour
  samples (the pixel at the centre of each 2^k x 2^k block, as GDAL's ``NEAREST``), taken from the pieces alone.
* :func:`encode_cog`: the bytes of a classic little-endian TIFF in COG order -- the IFDs first (full resolution,
  then overviews by decreasing size), then tile data from the smallest overview to the full resolution, each level
  row-major. Empty tiles have offset and byte count 0 (GDAL reads them as nodata: the "sparse" files of
  ``SPARSE_OK``). DEFLATE (default, level 1) or ZSTD tiles, GeoTIFF keys of the EPSG code (4326 here), north-up,
  GDAL_NODATA on every level, optional GDAL metadata items (units, the ``target_ids`` list) on the first.

The caller validates the result with ``rio_cogeo.cogeo.cog_validate`` before moving it into place
(:func:`oco_l3.cog.write_sparse_cog`). Everything here is tested against GDAL reading the files back.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: TIFF tag codes and types used here.
_SHORT, _LONG, _DOUBLE, _ASCII = 3, 4, 12, 2
_SIZE = {_SHORT: 2, _LONG: 4, _DOUBLE: 8, _ASCII: 1}
_FMT = {_SHORT: "H", _LONG: "I", _DOUBLE: "d"}
_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}
#: TIFF compression codes of the compressions written here.
COMPRESSION = {"DEFLATE": 8, "ZSTD": 50000}
#: Compression threads (zlib releases the GIL); the machine has 2 cores.
WORKERS = 2


@dataclass(frozen=True, eq=False)
class SparseRaster:
    """A north-up single-band raster given by its non-empty pieces ``(row0, col0, values)`` (rows from the north
    edge); everything outside the pieces is ``nodata``. ``transform`` is the affine ``(a, b, c, d, e, f)``."""

    height: int
    width: int
    transform: tuple[float, float, float, float, float, float]
    dtype: np.dtype
    nodata: float | int
    pieces: tuple[tuple[int, int, np.ndarray], ...]
    #: The CRS (only EPSG:4326 is written: the GeoKeys are those of a geographic CRS).
    epsg: int = 4326
    #: GDAL metadata items (``TIFFTAG``-free ``<Item name=...>`` of the GDAL_METADATA tag), e.g. units.
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Level:
    factor: int
    height: int
    width: int
    tiles: dict[tuple[int, int], np.ndarray]


def level_factors(height: int, width: int, block: int) -> list[int]:
    """1, then 2, 4, ... while the previous level is larger than one block (GDAL's COG driver default)."""
    factors = [1]
    while max(math.ceil(height / factors[-1]), math.ceil(width / factors[-1])) > block:
        factors.append(factors[-1] * 2)
    return factors


def _is_empty(values: np.ndarray, nodata: float | int) -> bool:
    if isinstance(nodata, float) and math.isnan(nodata):
        return bool(np.isnan(values).all()) if values.dtype.kind == "f" else False
    return bool((values == nodata).all())


def _level(raster: SparseRaster, factor: int, block: int) -> Level:
    """The level's non-empty tiles: every ``factor``-th pixel of the pieces (the centre of each block)."""
    h, w = math.ceil(raster.height / factor), math.ceil(raster.width / factor)
    tiles: dict[tuple[int, int], np.ndarray] = {}
    off = factor // 2
    for r0, c0, values in raster.pieces:
        rows = np.arange((off - r0) % factor, values.shape[0], factor)
        cols = np.arange((off - c0) % factor, values.shape[1], factor)
        if not rows.size or not cols.size:
            continue
        sub = values[rows[0] :: factor, cols[0] :: factor]
        y0, x0 = (r0 + int(rows[0])) // factor, (c0 + int(cols[0])) // factor
        for ty in range(y0 // block, (y0 + sub.shape[0] - 1) // block + 1):
            for tx in range(x0 // block, (x0 + sub.shape[1] - 1) // block + 1):
                a0, a1 = max(y0, ty * block), min(y0 + sub.shape[0], (ty + 1) * block)
                b0, b1 = max(x0, tx * block), min(x0 + sub.shape[1], (tx + 1) * block)
                part = sub[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0]
                if _is_empty(part, raster.nodata):
                    continue
                tile = tiles.get((ty, tx))
                if tile is None:
                    tile = tiles[(ty, tx)] = np.full((block, block), raster.nodata, dtype=raster.dtype)
                tile[a0 - ty * block : a1 - ty * block, b0 - tx * block : b1 - tx * block] = part
    return Level(factor, h, w, tiles)


def plan_cog(raster: SparseRaster, block: int = 512) -> list[Level]:
    """Every level of the COG with its non-empty tiles (pure: no I/O)."""
    if block % 16 or block < 16:
        raise ValueError(f"block size {block} must be a multiple of 16")
    return [_level(raster, f, block) for f in level_factors(raster.height, raster.width, block)]


def _geokeys(epsg: int) -> list[int]:
    """GeoKeyDirectory of a geographic CRS by EPSG code: model type geographic, pixel is area."""
    keys = [(1024, 0, 1, 2), (1025, 0, 1, 1), (2048, 0, 1, epsg)]
    return [1, 1, 0, len(keys), *[v for key in keys for v in key]]


def _gdal_metadata(items: Mapping[str, str]) -> str:
    from xml.sax.saxutils import escape, quoteattr

    body = "".join(f"<Item name={quoteattr(k)}>{escape(str(v))}</Item>" for k, v in sorted(items.items()))
    return f"<GDALMetadata>{body}</GDALMetadata>"


def _nodata_text(nodata: float | int) -> str:
    if isinstance(nodata, float) and math.isnan(nodata):
        return "nan"
    return repr(float(nodata)) if isinstance(nodata, float) else str(int(nodata))


def _tags(raster: SparseRaster, level: Level, block: int, main: bool, offsets: list[int],
          counts: list[int], compression: int) -> list[tuple[int, int, list[Any] | str]]:
    dt = np.dtype(raster.dtype)
    tags: list[tuple[int, int, list[Any] | str]] = [
        (254, _LONG, [0 if main else 1]), (256, _LONG, [level.width]), (257, _LONG, [level.height]),
        (258, _SHORT, [dt.itemsize * 8]), (259, _SHORT, [compression]), (262, _SHORT, [1]), (277, _SHORT, [1]),
        (284, _SHORT, [1]), (322, _SHORT, [block]), (323, _SHORT, [block]), (324, _LONG, offsets),
        (325, _LONG, counts), (339, _SHORT, [_SAMPLE_FORMAT[dt.kind]]),
    ]
    if main:
        a, _, c, _, e, f = raster.transform
        tags += [(33550, _DOUBLE, [a, -e, 0.0]), (33922, _DOUBLE, [0.0, 0.0, 0.0, c, f, 0.0]),
                 (34735, _SHORT, _geokeys(raster.epsg))]
        if raster.metadata:
            tags.append((42112, _ASCII, _gdal_metadata(raster.metadata)))
    tags.append((42113, _ASCII, _nodata_text(raster.nodata)))
    return tags


def _value_bytes(kind: int, value: list[Any] | str) -> bytes:
    if kind == _ASCII:
        return str(value).encode("ascii", "replace") + b"\0"
    assert isinstance(value, list)
    return struct.pack(f"<{len(value)}{_FMT[kind]}", *value)


def _ifd(tags: list[tuple[int, int, list[Any] | str]], at: int, next_ifd: int) -> bytes:
    """One IFD written at file offset ``at`` with its out-of-line values right after it."""
    head = struct.pack("<H", len(tags))
    extra_at = at + 2 + 12 * len(tags) + 4
    entries, extra = [], b""
    for code, kind, value in sorted(tags, key=lambda t: t[0]):
        data = _value_bytes(kind, value)
        count = len(data) // _SIZE[kind]
        if len(data) <= 4:
            entries.append(struct.pack("<HHI", code, kind, count) + data.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", code, kind, count, extra_at + len(extra)))
            extra += data + (b"\0" if len(data) % 2 else b"")  # word alignment
    return head + b"".join(entries) + struct.pack("<I", next_ifd) + extra


def _ifd_size(tags: list[tuple[int, int, list[Any] | str]]) -> int:
    return len(_ifd(tags, 0, 0))


def _compressor(compress: str, level: int | None) -> Any:
    if compress == "DEFLATE":
        return lambda raw: zlib.compress(raw, 1 if level is None else level)
    if compress == "ZSTD":
        import numcodecs

        codec = numcodecs.Zstd(level=1 if level is None else level)
        return lambda raw: bytes(codec.encode(raw))
    raise ValueError(f"compression {compress!r} is not written here (one of {', '.join(COMPRESSION)})")


def encode_cog(raster: SparseRaster, block: int = 256, compress: str = "DEFLATE", level: int | None = None) -> bytes:
    """The whole COG as bytes (tiles compressed with ``compress`` at ``level`` -- default 1, the fastest -- on
    :data:`WORKERS` threads)."""
    if raster.epsg != 4326:  # the GeoKeys written here are those of a geographic CRS
        raise ValueError(f"sparse COGs are written in EPSG:4326 only, not EPSG:{raster.epsg}")
    levels = plan_cog(raster, block)
    order = [(li, key) for li in reversed(range(len(levels))) for key in sorted(levels[li].tiles)]
    dtype = np.dtype(raster.dtype).newbyteorder("<")
    encode = _compressor(compress, level)

    def compress_tile(item: tuple[int, tuple[int, int]]) -> bytes:
        li, key = item
        return bytes(encode(np.ascontiguousarray(levels[li].tiles[key], dtype=dtype).tobytes()))

    with ThreadPoolExecutor(WORKERS) as pool:
        blobs = list(pool.map(compress_tile, order))
    n_tiles = [math.ceil(lv.height / block) * math.ceil(lv.width / block) for lv in levels]
    zeros = [[0] * n for n in n_tiles]
    code = COMPRESSION[compress]
    sizes = [_ifd_size(_tags(raster, lv, block, i == 0, zeros[i], zeros[i], code)) for i, lv in enumerate(levels)]
    ifd_at = [8 + sum(sizes[:i]) for i in range(len(levels))]
    data_at = 8 + sum(sizes)
    offsets = [[0] * n for n in n_tiles]
    counts = [[0] * n for n in n_tiles]
    pos = data_at
    for (li, (ty, tx)), blob in zip(order, blobs, strict=True):
        index = ty * math.ceil(levels[li].width / block) + tx
        offsets[li][index], counts[li][index] = pos, len(blob)
        pos += len(blob)
    out = [b"II*\0" + struct.pack("<I", ifd_at[0])]
    for i, lv in enumerate(levels):
        nxt = ifd_at[i + 1] if i + 1 < len(levels) else 0
        out.append(_ifd(_tags(raster, lv, block, i == 0, offsets[i], counts[i], code), ifd_at[i], nxt))
    out.extend(blobs)
    data = b"".join(out)
    if pos >= 2**32:
        raise ValueError("sparse COG over 4 GiB: classic TIFF offsets cannot address it")
    return data


def pieces_from_tiles(tiles: Iterable[tuple[int, int, np.ndarray]], height: int) -> tuple[tuple[int, int, np.ndarray], ...]:
    """South-first pieces ``(row0, col0, values)`` (row 0 = southernmost) as north-up pieces of a raster of
    ``height`` rows (rows flipped)."""
    return tuple((height - r0 - v.shape[0], c0, v[::-1]) for r0, c0, v in tiles)
