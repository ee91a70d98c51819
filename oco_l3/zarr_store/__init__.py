"""Zarr stores: one transactional writer for every product (target, global, ICESat-2), locks and read-back.

Public API:

* :func:`upsert` -- insert or replace time slabs (:class:`Slab`) in a store laid out by a :class:`Layout`; the one
  write path (lock, recovery, writer, transaction). :func:`upsert_slices` is the target product's form
  (:class:`SliceData` capture slices on a target grid); the global product and the ICESat-2 grids build their
  slabs and layouts in :mod:`oco_l3.global_product` and :mod:`oco_l3.icesat2.writers`.
* :func:`open_store`, :func:`recover_store`, :func:`read_back` -- reading committed stores.
* :class:`StoreLock` -- the per-store writer lock (flock locally, conditional-write lease on S3).

Private modules: ``_codec`` (chunk and metadata encoding; the Zarr-format seam), ``_plan`` (pure time/row/chunk
planning), ``_writer`` (the writer), ``_txn`` (staging, manifest, apply, recovery), ``_objectstore`` (local disk
and S3 verbs), ``_lock``, ``_read``. See docs/architecture.md ("Store commits") and docs/guarantees.md.
"""

from oco_l3.zarr_store._codec import COMPRESSOR
from oco_l3.zarr_store._lock import StoreLock
from oco_l3.zarr_store._read import open_store, read_back, recover_store, zarr_source
from oco_l3.zarr_store._upsert import CommitResult, upsert
from oco_l3.zarr_store.layout import (
    Coordinate,
    Layout,
    Piece,
    Slab,
    StaticVariable,
    TimeAxis,
    VarSlice,
    to_us,
)
from oco_l3.zarr_store.slices import SliceData, lat_lon, target_layout, upsert_slices

__all__ = [
    "COMPRESSOR",
    "CommitResult",
    "Coordinate",
    "Layout",
    "Piece",
    "SliceData",
    "Slab",
    "StaticVariable",
    "StoreLock",
    "TimeAxis",
    "VarSlice",
    "lat_lon",
    "open_store",
    "read_back",
    "recover_store",
    "target_layout",
    "to_us",
    "upsert",
    "upsert_slices",
    "zarr_source",
]
