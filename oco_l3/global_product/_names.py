"""Names of the global product's variables: the mission prefixes, the per-cell layers and their attributes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from oco_l3.missions import MISSIONS, mission_spec
from oco_l3.soundings import Mission

QF = Literal["pre", "post"]
#: The variable prefix per mission (``OCO3_global``, ...: each spec's ``global_prefix``).
PREFIX: Mapping[str, str] = {key: spec.global_prefix for key, spec in MISSIONS.items()}
#: Missions that get the per-cell target id / target type / operation mode layers.
LAYER_MISSIONS: tuple[Mission, ...] = tuple(key for key, spec in MISSIONS.items() if spec.global_layers)
TYPE_CODES: Mapping[str, int] = {"fossil": 1, "ecostress": 2, "sif": 3, "volcano": 4, "tccon": 5, "other": 6}
LAYER_FILL = -1
COORDS = ("time", "latitude", "longitude")


def output_key(mission: str, key: str) -> str:
    """``xco2`` -> ``OCO3_global_xco2``; ``Retrieval/psurf`` -> ``Retrieval/OCO3_global_psurf``."""
    group, _, name = key.rpartition("/")
    out = f"{PREFIX[mission]}_{name}"
    return f"{group}/{out}" if group else out


def layer_keys(mission: str) -> dict[str, str]:
    """The per-cell layer keys of ``mission`` (empty for missions without layers)."""
    if mission not in LAYER_MISSIONS:
        return {}
    p = PREFIX[mission]
    return {"target_id": f"{p}_target_id", "target_type": f"{p}_target_type", "operation_mode": f"{p}_operation_mode"}


def _layer_attrs(mission: str) -> dict[str, dict[str, Any]]:
    name = mission_spec(mission).name
    keys = layer_keys(mission)
    return {
        keys["target_id"]: {
            "long_name": f"{name} target (or SAM) id of the capture in the cell",
            "comment": "value i is the target id target_ids[i]; -1 where there is no capture",
            "units": "1", "target_ids": [],
        },
        keys["target_type"]: {
            "long_name": f"{name} target type: 1=fossil, 2=ecostress, 3=sif, 4=volcano, 5=tccon, 6=other",
            "flag_values": list(TYPE_CODES.values()), "flag_meanings": " ".join(TYPE_CODES), "units": "1",
        },
        keys["operation_mode"]: {
            "long_name": f"{name} operation mode of the nearest sounding: 2=Target, 4=Snapshot Area Map",
            "flag_values": [2, 4], "flag_meanings": "target snapshot_area_map", "units": "1",
        },
    }
