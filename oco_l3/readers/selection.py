"""Which science variables a reader returns: ``exclude-groups``, ``drop-dims`` and the explicit variable list.

Keys are ``name`` for root variables and ``Group/name`` (no leading slash) otherwise; groups are named without
slashes and ``""`` is the root.

Rules (decided for oco-l3):

* ``exclude-groups`` removes the *science variables* of a group from the output. The variables the product itself
  needs (coordinates, time, mode, target, quality flag) are read whatever the selection, so excluding ``/Sounding``
  is fine.
* ``drop-dims`` removes single variables. Dropping a variable the product needs is a configuration error
  (:class:`ConfigInvalid` naming the key), because the user asked for something that cannot be honoured.
* ``variables`` (the later config's explicit per-mission list), when given, is the complete list of science
  variables wanted; ``exclude-groups`` and ``drop-dims`` still apply to it. Listed variables that a granule lacks
  are skipped with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from oco_l3.config import RunConfig
from oco_l3.errors import ConfigInvalid
from oco_l3.missions import mission_spec


def required_keys(mission: str) -> tuple[str, ...]:
    """The datasets the mission's reader cannot do without (:attr:`~oco_l3.missions.MissionSpec.required`)."""
    return mission_spec(mission).required


def norm_group(group: str) -> str:
    return group.strip().strip("/")


def norm_key(key: str) -> str:
    return key.strip().strip("/")


@dataclass(frozen=True)
class Selection:
    """The science-variable selection of a read (see the module docstring for the rules)."""

    exclude_groups: frozenset[str] = frozenset()
    drop: frozenset[str] = frozenset()
    variables: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_groups", frozenset(norm_group(g) for g in self.exclude_groups))
        object.__setattr__(self, "drop", frozenset(norm_key(k) for k in self.drop))
        if self.variables is not None:
            object.__setattr__(self, "variables", tuple(dict.fromkeys(norm_key(k) for k in self.variables)))

    @classmethod
    def default(cls) -> Selection:
        """Every per-sounding science variable of every group."""
        return cls()

    def wants(self, group: str, name: str) -> bool:
        """Whether a science variable passes ``exclude-groups`` and ``drop-dims``."""
        key = f"{group}/{name}" if group else name
        return group not in self.exclude_groups and key not in self.drop


def selection_from_config(config: RunConfig, mission: str) -> Selection:
    """The selection of ``config`` for ``mission``; :class:`ConfigInvalid` if ``drop-dims`` drops a needed variable."""
    for group in config.exclude_groups:
        if not group.strip() or "\x00" in group:
            raise ConfigInvalid(f"exclude-groups: {group[:60]!r} is not a group name")
    drop = frozenset(ref.key for ref in config.drop_dims)
    needed = set(required_keys(mission))
    for ref in config.drop_dims:
        if ref.key in needed:
            raise ConfigInvalid(
                f"drop-dims: /{ref.key} is needed by the {mission} reader and cannot be dropped"
            )
    variables = None
    if config.variables is not None:
        refs = config.variables.get(mission)
        variables = tuple(ref.key for ref in refs) if refs is not None else None
    return Selection(exclude_groups=frozenset(config.exclude_groups), drop=drop, variables=variables)
