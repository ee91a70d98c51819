"""OCO-3 / OCO-2 L2 Lite SIF (``*_LtSIF_*.nc4``, B10+ "Metadata" layout) -> :class:`Soundings` (formats.md 2).

Dimension ``sounding_dim``; root ``Latitude``, ``Longitude``, ``Latitude_Corners``/``Longitude_Corners`` (N, 4),
``Delta_Time`` (seconds since 1990-01-01 UTC -- always decoded numerically from that epoch, whatever its units
attribute says), ``Quality_Flag`` (0 best, 1 good, 2 bad, -1 not investigated; good per the spec's post-QF rule,
0 or 1); ``/Metadata/MeasurementMode`` (0 ND, 1 GL, 2 TG, 3 SAM, 4 XS, normalised with the spec's mode table);
targets from ``/Sequences``: ``SequencesId[SequencesIndex]``, ``"none"`` where the index is negative or out of
range. ``/Sequences`` is required when the product's captures take their target from the file
(``spec.targets == "id"``, OCO-3); otherwise (OCO-2, whose captures go to the nearest target) it is read when
present, like the Lite FP reader's ``/Sounding/target_id``.
"""

from __future__ import annotations

import numpy as np

from oco_l3.missions import LITE_SIF_REQUIRED, SIF_TARGET_IDS, MissionSpec
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
from oco_l3.readers.science import (
    drop_bad_geolocation,
    pick_science,
    read_science,
    science_keys,
    seconds_to_datetime64,
)
from oco_l3.readers.selection import Selection
from oco_l3.soundings import Soundings

#: Datasets of the layout that are bookkeeping, never science outputs.
SIF_BOOKKEEPING = frozenset({
    *LITE_SIF_REQUIRED, *SIF_TARGET_IDS, "Metadata/SoundingId", "Metadata/CollectionLabel", "sounding_dim",
    "sequences_dim", "vertex_dim",
}) - {"Quality_Flag"}

SIF_EPOCH = np.datetime64("1990-01-01T00:00:00", "ns")

_CORNERS = (
    ("Latitude_Corners", "Longitude_Corners"),
    ("Geolocation/footprint_latitude_vertices", "Geolocation/footprint_longitude_vertices"),
)


def _corners(src: Source, n: int) -> tuple[np.ndarray, np.ndarray]:
    for lat_key, lon_key in _CORNERS:
        if get_dataset(src, lat_key) is not None:
            return read_vertices(src, lat_key, n), read_vertices(src, lon_key, n)
    raise src.mismatch("missing /Latitude_Corners")


def _targets(src: Source, n: int, required: bool) -> tuple[np.ndarray, np.ndarray]:
    if not required and get_dataset(src, "Sequences/SequencesIndex") is None:
        none = np.full(n, "none")
        return none, none
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


def read_sif(src: Source, spec: MissionSpec, selection: Selection) -> Soundings:
    """Read one Lite SIF granule of the product ``spec`` (the :class:`~oco_l3.missions.Reader` protocol)."""
    src.prefetch_headers()
    lat_ds = require(src, "Latitude")
    if len(lat_ds.shape) != 1:
        raise src.mismatch(f"/Latitude has shape {tuple(lat_ds.shape)}, expected (N,)")
    n = int(lat_ds.shape[0])
    science = pick_science(src, selection, n, SIF_BOOKKEEPING)
    corners = [k for pair in _CORNERS for k in pair]
    src.prefetch([*LITE_SIF_REQUIRED, *corners, *science_keys(science)])
    lat = read_float(src, lat_ds, "Latitude", (n,)).astype(np.float64)
    lon = read_float(src, require(src, "Longitude"), "Longitude", (n,)).astype(np.float64)
    vlat, vlon = _corners(src, n)
    seconds = read_float(src, require(src, "Delta_Time"), "Delta_Time", (n,))
    qf = read_int(src, require(src, spec.post_qf.variable), spec.post_qf.variable, (n,))
    codes = read_int(src, require(src, "Metadata/MeasurementMode"), "Metadata/MeasurementMode", (n,))
    target_id, target_name = _targets(src, n, spec.targets == "id")
    soundings = Soundings(
        mission=spec.key,
        latitude=lat,
        longitude=lon,
        vertex_latitude=vlat,
        vertex_longitude=vlon,
        time=seconds_to_datetime64(seconds, SIF_EPOCH),
        mode=spec.modes.normalise(codes),
        target_id=target_id,
        target_name=target_name,
        good=spec.post_qf.mask(qf),
        variables=read_science(src, science, n),
        source=src.name,
    )
    return drop_bad_geolocation(soundings)
