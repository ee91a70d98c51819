"""Output paths built from names that come from data or config, safely.

Every component taken from a granule or a target file (target ids, naming, mission) must be one safe path
component (:func:`oco_l3.targets.is_safe_id`) and the joined path must stay under its root, else
:class:`~oco_l3.errors.UnsafePath` is raised naming the value.
"""

from __future__ import annotations

import os
import posixpath

import numpy as np

from oco_l3.errors import UnsafePath
from oco_l3.missions import MISSIONS
from oco_l3.targets import is_safe_id

_MAX_SHOWN = 60


def _shown(value: str) -> str:
    """A value made safe for a one-line message: truncated, control characters (NUL...) escaped."""
    text = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "..."
    return text.encode("unicode_escape").decode("ascii")


def _is_url(root: str) -> bool:
    return "://" in root


def check_component(part: str) -> None:
    """Raise :class:`UnsafePath` unless ``part`` is one safe path component."""
    _check_part(part)


def _check_part(part: str) -> None:
    if not isinstance(part, str) or not is_safe_id(part):
        raise UnsafePath(f"path component '{_shown(str(part))}' is not a safe name (letters, digits, _ - . + only)")


def safe_join(root: str, *parts: str) -> str:
    """``root/part/...`` where each part is one safe component and the result stays under ``root``.

    ``root`` is trusted (it comes from the operator); it may be a local path or an ``s3://bucket/prefix`` URL.
    For local roots symlinks are resolved, so a link inside the root pointing outside is refused too.
    """
    for part in parts:
        _check_part(part)
    if _is_url(root):
        scheme, rest = root.split("://", 1)
        base = posixpath.normpath("/" + rest.strip("/"))
        joined = posixpath.normpath(posixpath.join(base, *parts))
        if not (joined == base or joined.startswith(base.rstrip("/") + "/")):
            raise UnsafePath(f"path '{_shown('/'.join(parts))}' leaves the output root")
        return f"{scheme}://{joined.lstrip('/')}"
    base = os.path.realpath(root)
    joined = os.path.realpath(os.path.join(base, *parts))
    if os.path.commonpath([base, joined]) != base:
        raise UnsafePath(f"path '{_shown('/'.join(parts))}' leaves the output root")
    return joined


def target_store_path(root: str, mission: str, naming: str, target_id: str) -> str:
    """``<root>/<mission>/<naming>/<target_id>.zarr`` (``naming`` may itself end with ``.zarr``)."""
    _check_part(target_id)
    name = target_id if target_id.endswith(".zarr") else f"{target_id}.zarr"
    return safe_join(root, mission, naming, name)


def _time_text(time: np.datetime64) -> str:
    text = str(np.asarray(time).astype("datetime64[s]"))  # YYYY-mm-ddTHH:MM:SS
    return text.replace(":", "") + "Z"


def cog_name(mission: str, target_id: str, time: np.datetime64, qf_filtered: bool, key: str) -> str:
    """``{cog_prefix}_{target}_{%Y-%m-%dT%H%M%SZ}_{filtered|unfiltered}_{[Group.]var}.tif`` (the mission's
    :attr:`~oco_l3.missions.MissionSpec.cog_prefix`: ``oco3-co2``, ``oco2-co2``, ``oco3-sif``, ``oco2-sif``)."""
    if mission not in MISSIONS:
        raise UnsafePath(f"mission '{_shown(mission)}' is not one of {sorted(MISSIONS)}")
    _check_part(target_id)
    var = key.replace("/", ".")
    _check_part(var)
    qf = "filtered" if qf_filtered else "unfiltered"
    return f"{MISSIONS[mission].cog_prefix}_{target_id}_{_time_text(time)}_{qf}_{var}.tif"
