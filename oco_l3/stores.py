"""Target-store names, kept importable here: the implementation is the store package :mod:`oco_l3.zarr_store`."""

from oco_l3.zarr_store import (
    CommitResult,
    SliceData,
    StoreLock,
    open_store,
    read_back,
    recover_store,
    upsert_slices,
)
from oco_l3.zarr_store.slices import COORDS, DEFAULT_CHUNKING

__all__ = ["COORDS", "DEFAULT_CHUNKING", "CommitResult", "SliceData", "StoreLock", "open_store", "read_back",
           "recover_store", "upsert_slices"]
