"""Angles on a circle: which variables are azimuths, and how they are interpolated without crossing 0/360 the long way.

An azimuth of 359 degrees next to one of 1 degree must interpolate to about 0, never to 180. A variable is
*circular* when

* its name (without the group) is in :data:`CIRCULAR_NAMES` (the Lite FP azimuths), or
* its units say degrees (:data:`DEGREE_UNITS`) and its name contains ``azimuth``.

Zenith angles are not circular (they live in 0..180 and never wrap). Circular variables are interpolated as their
sine and cosine (two ordinary float columns, through the same triangulation and method as every other variable),
and the angle is ``atan2(sin, cos)`` put back into the variable's range: ``[0, 360)``, or ``[-180, 180)`` when the
capture holds a negative value of it. Under ``nearest`` they take the nearest sounding's value like any variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Variables (names without their group) that are angles on a circle whatever their attributes say.
CIRCULAR_NAMES = frozenset({"solar_azimuth_angle", "sensor_azimuth_angle", "pma_azimuth_angle"})
#: Units that say "degrees" (CF and the Lite products' spellings).
DEGREE_UNITS = frozenset({"degrees", "degree", "deg", "degrees_east", "degrees_clockwise"})


def is_circular(name: str, attrs: Mapping[str, Any]) -> bool:
    """True for an angle on a circle (see the module docstring); ``name`` may carry its group (``Sounding/x``)."""
    base = name.rsplit("/", 1)[-1]
    if base in CIRCULAR_NAMES:
        return True
    units = str(attrs.get("units", "")).strip().lower()
    return units in DEGREE_UNITS and "azimuth" in base.lower()


def circular_start(values: np.ndarray) -> float:
    """The start of the range the angles ``values`` (degrees, NaN = missing) are written in: -180 when any is
    negative, else 0."""
    finite = values[np.isfinite(values)]
    return -180.0 if finite.size and float(finite.min()) < 0 else 0.0


def to_components(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sin, cos)`` of angles in degrees (NaN stays NaN)."""
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.sin(rad), np.cos(rad)


def from_components(sin: np.ndarray, cos: np.ndarray, start: float, dtype: type = np.float64) -> np.ndarray:
    """The angle (degrees, in ``[start, start + 360)`` also after rounding to ``dtype``) of interpolated
    ``sin``/``cos`` components."""
    angle = np.rad2deg(np.arctan2(np.asarray(sin, np.float64), np.asarray(cos, np.float64)))  # (-180, 180]
    out: np.ndarray = ((angle - start) % 360.0 + start).astype(dtype)
    out[out >= start + 360.0] = start  # 359.99999997 rounds up to 360 in float32
    return out
