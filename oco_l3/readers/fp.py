"""OCO-2 / OCO-3 L2 Lite FP (``*_LtCO2_*.nc4``) -> :class:`Soundings` (formats.md section 1).

Root ``latitude``, ``longitude``, ``vertex_latitude/longitude`` (N, 4), ``time`` (seconds since 1970-01-01),
``xco2_quality_flag`` (0 = good); ``/Sounding/operation_mode`` (0 ND, 1 GL, 2 TG, 3 XS, 4 SAM, already the
normalised table) and ``/Sounding/target_id``/``target_name`` (strings; required when the product's captures take
their target from the file, ``spec.targets == "id"`` (OCO-3); OCO-2 files may lack them: ``"none"``).
"""

from __future__ import annotations

import numpy as np

from oco_l3.missions import FP_TARGET_IDS, LITE_FP_REQUIRED, MissionSpec
from oco_l3.readers._hdf import (
    Source,
    get_dataset,
    normalise_ids,
    read_float,
    read_int,
    read_strings_where,
    read_vertices,
    require,
    row_runs,
)
from oco_l3.readers.science import (
    drop_bad_geolocation,
    pick_science,
    read_science,
    science_keys,
    seconds_to_datetime64,
    will_read,
)
from oco_l3.readers.selection import Selection
from oco_l3.soundings import MODE_SAM, MODE_TARGET, Soundings

#: Root and /Sounding datasets that are bookkeeping, never science outputs.
FP_BOOKKEEPING = frozenset({
    *LITE_FP_REQUIRED, *FP_TARGET_IDS, "sounding_id", "date", "source_files", "file_index", "levels", "bands",
    "vertices", "footprints", "epoch_dimension",
}) - {"xco2_quality_flag"}

#: The numeric datasets every read needs (prefetched with the science variables when read in place).
FP_NUMERIC = LITE_FP_REQUIRED

#: The string datasets of a capture's target (read only for target- and SAM-mode soundings).
TARGET_KEYS = ("Sounding/target_id", "Sounding/target_name")

UNIX_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")


def _targets(src: Source, n: int, mode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target ids and names; read only for target- and SAM-mode soundings, the only ones a capture (or the global
    product) takes an id from: ``"none"`` for the others. The strings are a large part of a Lite file (one heap
    object per sounding), so a granule read in place skips those of the nadir and glint soundings."""
    ids_ds = get_dataset(src, "Sounding/target_id")
    names_ds = get_dataset(src, "Sounding/target_name")
    wanted = np.isin(mode, (MODE_SAM, MODE_TARGET))
    src.prefetch_rows(TARGET_KEYS, row_runs(wanted))
    none = np.full(n, "none")
    ids = normalise_ids(read_strings_where(src, ids_ds, "Sounding/target_id", wanted, "none")) \
        if ids_ds is not None else none
    names = normalise_ids(read_strings_where(src, names_ds, "Sounding/target_name", wanted, "none")) \
        if names_ds is not None else ids
    return ids, names


def _target_runs(mode: np.ndarray) -> list[tuple[int, int]]:
    """The row runs :func:`_targets` reads (for a read in place, fetched with the headers)."""
    return row_runs(np.isin(np.asarray(mode).ravel(), (MODE_SAM, MODE_TARGET)))


def read_fp(src: Source, spec: MissionSpec, selection: Selection) -> Soundings:
    """Read one Lite FP granule of the product ``spec`` (the :class:`~oco_l3.missions.Reader` protocol); OCO-3
    files must carry target ids, OCO-2 files may not."""
    src.prefetch_headers(data=will_read(src, selection, FP_BOOKKEEPING, (*FP_NUMERIC, spec.post_qf.variable)),
                         rows_after=("Sounding/operation_mode", _target_runs, TARGET_KEYS))
    lat_ds = require(src, "latitude")
    if len(lat_ds.shape) != 1:
        raise src.mismatch(f"/latitude has shape {tuple(lat_ds.shape)}, expected (N,)")
    n = int(lat_ds.shape[0])
    science = pick_science(src, selection, n, FP_BOOKKEEPING)
    src.prefetch([*FP_NUMERIC, spec.post_qf.variable, *science_keys(science)])
    lat = read_float(src, lat_ds, "latitude", (n,)).astype(np.float64)
    lon = read_float(src, require(src, "longitude"), "longitude", (n,)).astype(np.float64)
    seconds = read_float(src, require(src, "time"), "time", (n,))
    qf = read_int(src, require(src, spec.post_qf.variable), spec.post_qf.variable, (n,))
    mode = spec.modes.normalise(read_int(src, require(src, "Sounding/operation_mode"), "Sounding/operation_mode", (n,)))
    if spec.targets == "id":
        require(src, "Sounding/target_id")
    target_id, target_name = _targets(src, n, mode)
    soundings = Soundings(
        mission=spec.key,
        latitude=lat,
        longitude=lon,
        vertex_latitude=read_vertices(src, "vertex_latitude", n),
        vertex_longitude=read_vertices(src, "vertex_longitude", n),
        time=seconds_to_datetime64(seconds, UNIX_EPOCH),
        mode=mode,
        target_id=target_id,
        target_name=target_name,
        good=spec.post_qf.mask(qf),
        variables=read_science(src, science, n),
        source=src.name,
    )
    return drop_bad_geolocation(soundings)
