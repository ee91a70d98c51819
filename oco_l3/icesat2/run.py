"""``run_icesat2(config)``: the CLI/flow entry point for the ICESat-2 products."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oco_l3.icesat2.config import CanopyConfig, LandIceConfig, SeaIceConfig, parse_icesat2_config
from oco_l3.icesat2.results import Icesat2Result


def run_icesat2(config: SeaIceConfig | LandIceConfig | CanopyConfig | dict[str, Any] | str | Path
                ) -> list[Icesat2Result]:
    """Run one product config (a parsed model, a decoded YAML mapping or a YAML path).

    Returns one :class:`Icesat2Result` per input file, in input order: ``ok`` and a one-line ``message``
    (the error for a skipped granule), segments kept, UTC days touched and the outputs written.
    A bad granule never stops the others; a bad config raises :class:`~oco_l3.errors.ConfigInvalid`.
    """
    if isinstance(config, str | Path):
        from oco_l3.config import read_yaml

        config = parse_icesat2_config(read_yaml(config), str(config))
    elif isinstance(config, dict):
        config = parse_icesat2_config(config)
    if isinstance(config, SeaIceConfig):
        from oco_l3.icesat2.seaice import run_seaice

        return run_seaice(config)
    if isinstance(config, LandIceConfig):
        from oco_l3.icesat2.landice import run_landice

        return run_landice(config)
    from oco_l3.icesat2.canopy import run_canopy

    return run_canopy(config)
