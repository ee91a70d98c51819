"""OCO-3 L2 Lite SIF (``oco3_LtSIF_*.nc4``, B10+ "Metadata" layout) -> :class:`Soundings` (formats.md section 2).

Dimension ``sounding_dim``; root ``Latitude``, ``Longitude``, ``Latitude_Corners``/``Longitude_Corners`` (N, 4),
``Delta_Time`` (seconds since 1990-01-01 UTC -- always decoded numerically from that epoch, whatever its units
attribute says), ``Quality_Flag`` (0 best, 1 good, 2 bad, -1 not investigated; good = 0 or 1);
``/Metadata/MeasurementMode`` (0 ND, 1 GL, 2 TG, 3 SAM, 4 XS, mapped to the FP table); targets from
``/Sequences``: ``SequencesId[SequencesIndex]``, ``"none"`` where the index is negative or out of range.
"""

from __future__ import annotations

import numpy as np

from oco_l3.readers._hdf import (
    Source,
    get_dataset,
    normalise_ids,
    read_float,
    read_int,
    read_strings,
    read_vertices,
    require,
)
from oco_l3.readers.science import drop_bad_geolocation, read_science, seconds_to_datetime64
from oco_l3.readers.selection import SIF_REQUIRED, Selection
from oco_l3.soundings import MODE_GLINT, MODE_NADIR, MODE_SAM, MODE_TARGET, MODE_TRANSITION, Soundings

#: SIF MeasurementMode code -> normalised (Lite FP) code.
SIF_TO_FP_MODE = np.array([MODE_NADIR, MODE_GLINT, MODE_TARGET, MODE_SAM, MODE_TRANSITION], dtype=np.int8)
#: Code given to SIF modes outside 0..4.
UNKNOWN_MODE = -1

SIF_BOOKKEEPING = frozenset({
    *SIF_REQUIRED, "Metadata/SoundingId", "Metadata/CollectionLabel", "sounding_dim", "sequences_dim",
    "vertex_dim",
}) - {"Quality_Flag"}

SIF_EPOCH = np.datetime64("1990-01-01T00:00:00", "ns")

_CORNERS = (
    ("Latitude_Corners", "Longitude_Corners"),
    ("Geolocation/footprint_latitude_vertices", "Geolocation/footprint_longitude_vertices"),
)


def map_modes(codes: np.ndarray) -> np.ndarray:
    """SIF MeasurementMode codes to the FP table; unknown codes become :data:`UNKNOWN_MODE`."""
    known = (codes >= 0) & (codes < SIF_TO_FP_MODE.size)
    return np.where(known, SIF_TO_FP_MODE[np.clip(codes, 0, SIF_TO_FP_MODE.size - 1)], UNKNOWN_MODE).astype(np.int8)


def _corners(src: Source, n: int) -> tuple[np.ndarray, np.ndarray]:
    for lat_key, lon_key in _CORNERS:
        if get_dataset(src, lat_key) is not None:
            return read_vertices(src, lat_key, n), read_vertices(src, lon_key, n)
    raise src.mismatch("missing /Latitude_Corners")


def _targets(src: Source, n: int) -> tuple[np.ndarray, np.ndarray]:
    index = read_int(src, require(src, "Sequences/SequencesIndex"), "Sequences/SequencesIndex", (n,))
    ids = read_strings(src, require(src, "Sequences/SequencesId"), "Sequences/SequencesId")
    names_ds = get_dataset(src, "Sequences/SequencesName")
    names = read_strings(src, names_ds, "Sequences/SequencesName", ids.size) if names_ds is not None else ids
    ids, names = normalise_ids(ids), normalise_ids(names)
    if ids.size == 0:
        none = np.full(n, "none")
        return none, none
    valid = (index >= 0) & (index < ids.size)
    safe = np.clip(index, 0, ids.size - 1)
    return np.where(valid, ids[safe], "none"), np.where(valid, names[safe], "none")


def read_sif(src: Source, selection: Selection) -> Soundings:
    """Read one OCO-3 Lite SIF granule."""
    lat_ds = require(src, "Latitude")
    if len(lat_ds.shape) != 1:
        raise src.mismatch(f"/Latitude has shape {tuple(lat_ds.shape)}, expected (N,)")
    n = int(lat_ds.shape[0])
    lat = read_float(src, lat_ds, "Latitude", (n,)).astype(np.float64)
    lon = read_float(src, require(src, "Longitude"), "Longitude", (n,)).astype(np.float64)
    vlat, vlon = _corners(src, n)
    seconds = read_float(src, require(src, "Delta_Time"), "Delta_Time", (n,))
    qf = read_int(src, require(src, "Quality_Flag"), "Quality_Flag", (n,))
    codes = read_int(src, require(src, "Metadata/MeasurementMode"), "Metadata/MeasurementMode", (n,))
    target_id, target_name = _targets(src, n)
    soundings = Soundings(
        mission="oco3_sif",
        latitude=lat,
        longitude=lon,
        vertex_latitude=vlat,
        vertex_longitude=vlon,
        time=seconds_to_datetime64(seconds, SIF_EPOCH),
        mode=map_modes(codes),
        target_id=target_id,
        target_name=target_name,
        good=(qf == 0) | (qf == 1),
        variables=read_science(src, selection, n, SIF_BOOKKEEPING),
        source=src.name,
    )
    return drop_bad_geolocation(soundings)
