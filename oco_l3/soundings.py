"""The tidy sounding table that every OCO reader returns.

One :class:`Soundings` holds one granule (or part of one) of one mission as plain NumPy arrays of equal length N.
Operation modes are normalised to the Lite FP codes (:data:`MODE_SAM`, :data:`MODE_TARGET`, ...), whatever the
product's own code table (:class:`oco_l3.missions.ModeTable`), so capture splitting does not need to know it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from oco_l3.missions import (  # noqa: F401 - the normalised mode codes, re-exported
    MODE_GLINT,
    MODE_NADIR,
    MODE_SAM,
    MODE_TARGET,
    MODE_TRANSITION,
)

#: A key of :data:`oco_l3.missions.MISSIONS` (``oco3``, ``oco2``, ``oco3_sif``, ``oco2_sif``).
Mission = str

#: Target ids that mean "no target".
NO_TARGET = frozenset({"", "none", "None", "Missing", "missing", "NONE", "MISSING"})


@dataclass(frozen=True)
class Variable:
    """One selected science variable, per sounding.

    ``group`` is the source group without slashes (``""`` for the root, ``"Retrieval"`` for ``/Retrieval``).
    Floating variables hold NaN where the file held its fill value. Integer/flag variables keep their integer
    dtype; ``fill`` is the value that marks missing data (also used as the output fill value), and they are
    always gridded by nearest neighbour.
    """

    group: str
    name: str
    values: np.ndarray
    attrs: Mapping[str, Any] = field(default_factory=dict)
    fill: int | None = None

    @property
    def key(self) -> str:
        """``name`` for root variables, ``group/name`` otherwise (the Zarr path)."""
        return f"{self.group}/{self.name}" if self.group else self.name

    @property
    def is_integer(self) -> bool:
        return bool(np.issubdtype(self.values.dtype, np.integer) or self.values.dtype == np.bool_)

    def take(self, index: np.ndarray) -> Variable:
        return replace(self, values=self.values[index])


@dataclass(frozen=True)
class Soundings:
    """A table of N soundings of one mission.

    ``time`` is ``datetime64[ns]`` UTC. ``good`` is the post-QF mask (the product's
    :attr:`~oco_l3.missions.MissionSpec.post_qf` rule: FP ``xco2_quality_flag == 0``, SIF ``Quality_Flag in
    {0, 1}``). ``target_id``/``target_name`` are unicode arrays (``"none"`` where the file has no target).
    ``source`` names the granule(s) the table came from.
    """

    mission: Mission
    latitude: np.ndarray
    longitude: np.ndarray
    vertex_latitude: np.ndarray
    vertex_longitude: np.ndarray
    time: np.ndarray
    mode: np.ndarray
    target_id: np.ndarray
    target_name: np.ndarray
    good: np.ndarray
    variables: tuple[Variable, ...] = ()
    source: str = ""

    def __len__(self) -> int:
        return int(self.latitude.shape[0])

    def take(self, index: np.ndarray) -> Soundings:
        """The soundings at ``index`` (an integer or boolean array), every column alike."""
        return replace(
            self,
            latitude=self.latitude[index],
            longitude=self.longitude[index],
            vertex_latitude=self.vertex_latitude[index],
            vertex_longitude=self.vertex_longitude[index],
            time=self.time[index],
            mode=self.mode[index],
            target_id=self.target_id[index],
            target_name=self.target_name[index],
            good=self.good[index],
            variables=tuple(v.take(index) for v in self.variables),
        )

    def variable(self, key: str) -> Variable:
        for v in self.variables:
            if v.key == key:
                return v
        raise KeyError(key)
