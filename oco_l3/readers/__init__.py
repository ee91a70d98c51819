"""Readers of the OCO L2 Lite products: one granule -> one :class:`~oco_l3.soundings.Soundings`.

``read_granule(path, selection)`` opens the file with h5py, hands it to its product's reader (the
:class:`~oco_l3.missions.Reader` named by the product's :class:`~oco_l3.missions.MissionSpec`: ``fp.read_fp`` for
Lite FP, ``sif.read_sif`` for Lite SIF), which reads only the datasets the product needs plus the selected science
variables, and returns the tidy table. ``path`` is a local path or an open binary file object
(a remote granule read in place, :class:`oco_l3.remote.RemoteFile`, named by its ``name``): h5py then reads only
the metadata and the chunks of those datasets through it. The mission comes from the file name
(:func:`parse_granule_name`), or from the content when the name is not a Lite name.

Errors are one line and name the file: :class:`GranuleUnreadable` (empty, truncated, not HDF5, not netCDF-4) and
:class:`GranuleSchemaMismatch` (a needed group or variable is missing or of the wrong shape or type). Soundings
with missing or out-of-range coordinates are dropped with a warning instead of failing the granule.

Science variables are the per-sounding numeric 1-D variables (shape ``(N,)``) of the root and every group,
except bookkeeping (sounding ids, coordinates, corners, time, mode, target, dimension variables). Floats hold NaN
where the file held its ``missing_value``/``_FillValue``; integers keep their dtype and report their fill in
``Variable.fill`` (the declared fill, or the dtype's minimum (signed) / maximum (unsigned) when none is declared
or it does not fit the dtype).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import h5py

from oco_l3._h5index import Planner
from oco_l3.errors import GranuleNameUnrecognised, GranuleUnreadable, OcoL3Error
from oco_l3.missions import MISSIONS, by_naming, mission_spec
from oco_l3.readers._hdf import Source, global_attrs
from oco_l3.readers.naming import GranuleName, granule_filename, parse_granule_name
from oco_l3.readers.selection import Selection, required_keys, selection_from_config
from oco_l3.soundings import Soundings

__all__ = [
    "GranuleName", "Selection", "detect_mission", "granule_filename", "parse_granule_name", "read_granule",
    "required_keys", "selection_from_config",
]

log = logging.getLogger(__name__)


def _open_problem(exc: OSError, path: Path) -> str:
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or "No such file" in text:
        return "no such file"
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return "is a directory"
    if "truncated" in text:
        return "truncated file (HDF5 end-of-file address beyond the file size)"
    if "signature" in text or "not an HDF5" in text.lower():
        return "not an HDF5/netCDF-4 file"
    return f"cannot open as HDF5/netCDF-4 ({text.splitlines()[0][:100] if text else type(exc).__name__})"


def _open(path: Path, name: str) -> h5py.File:
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise GranuleUnreadable(f"{name}: empty file (0 bytes)")
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise GranuleUnreadable(f"{name}: {_open_problem(exc, path)}") from None


def _open_fileobj(fileobj: Any, name: str) -> h5py.File:
    """An open binary file object (read in place) as an h5py file; problems named like :func:`_open`'s."""
    if getattr(fileobj, "size", None) == 0:
        raise GranuleUnreadable(f"{name}: empty file (0 bytes)")
    try:
        return h5py.File(fileobj, "r")
    except OSError as exc:
        raise GranuleUnreadable(f"{name}: {_open_problem(exc, Path(PurePosixPath(name).name))}") from None


def open_h5(source: str | os.PathLike[str] | Any) -> tuple[h5py.File, str]:
    """``source`` (a local path or an open binary file object) as an h5py file, and the name to report it by."""
    if hasattr(source, "read") and hasattr(source, "seek"):
        name = str(getattr(source, "name", "") or repr(source))
        return _open_fileobj(source, name), name
    return _open(Path(source), str(source)), str(source)


def open_source(source: str | os.PathLike[str] | Any) -> Source:
    """``source`` opened as a :class:`Source` (with a fetch planner when it is a file read in place)."""
    f, name = open_h5(source)
    try:
        return Source(f, name, Planner.of(f, source))
    except BaseException:
        f.close()
        raise


def _is_netcdf4(f: h5py.File) -> bool:
    return "_NCProperties" in f.attrs or "sounding_id" in f or "sounding_dim" in f


def detect_mission(f: h5py.File) -> str:
    """The mission of an open Lite granule from its content: the layout (Lite SIF: ``Delta_Time``,
    ``sounding_dim``; else Lite FP) and the platform (OCO-2: a ``footprints`` dimension or OCO-2 in the
    platform/sensor attributes; else OCO-3), looked up in the registry by file-name convention."""
    kind = "SIF" if "Delta_Time" in f or "sounding_dim" in f or "Sequences" in f else "CO2"
    platform = " ".join(str(v) for k, v in global_attrs(Source(f, "")).items() if k.lower() in ("platform", "sensor"))
    oco2 = "footprints" in f or "OCO-2" in platform.upper() or "OCO2" in platform.upper()
    spec = by_naming("oco2" if oco2 else "oco3", kind)
    return spec.key if spec is not None else next(iter(MISSIONS))


def _mission_from_name(name: str) -> str | None:
    try:
        return parse_granule_name(PurePosixPath(name).name).mission
    except GranuleNameUnrecognised:
        return None


def read_granule(
    path: str | os.PathLike[str] | Any, selection: Selection | None = None, mission: str | None = None
) -> Soundings:
    """Read one granule of any registered product (Lite FP or Lite SIF, OCO-2 or OCO-3) into a :class:`Soundings`.

    ``path`` is a local path or an open binary file object (see the module docstring). ``mission`` defaults to the
    one in the file name, else to the one the content shows. ``selection`` defaults to every science variable.
    ``Soundings.source`` is the file's base name.
    """
    selection = selection if selection is not None else Selection.default()
    src = open_source(path)
    f, name = src.file, src.name
    mission = mission or _mission_from_name(name)
    with f:
        try:
            if not _is_netcdf4(f):
                raise GranuleUnreadable(f"{name}: an HDF5 file but not a netCDF-4 Lite granule")
            soundings = mission_spec(mission or detect_mission(f)).read(src, selection)
        except OcoL3Error:
            raise
        except OSError as exc:
            raise GranuleUnreadable(f"{name}: read error ({str(exc).splitlines()[0][:100]})") from None
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
            raise GranuleUnreadable(f"{name}: cannot decode ({type(exc).__name__}: {str(exc)[:100]})") from None
    return replace(soundings, source=PurePosixPath(name).name)
