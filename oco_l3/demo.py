"""``oco-l3 demo``: SYNTHETIC sample days through the whole product, with the embedded defaults.

Writes a local granule tree of synthetic days (clearly labelled SYNTHETIC in every file), a run config that uses
it, then runs the product: through the Prefect backfill flow (``engine="flow"``: local source, SQLite state,
ephemeral Prefect) or straight through the library (``engine="library"``). Prints what it wrote.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from oco_l3.missions import DEFAULT_MISSIONS, MISSIONS

DEMO_START = dt.date(2020, 3, 3)


def _ref(key: str) -> dict[str, str]:
    group, _, name = key.rpartition("/")
    return {"group": f"/{group}", "name": name}


#: A small selection keeps the demo quick while showing root and group variables (the later config's form): each
#: default mission's key variables.
DEMO_VARIABLES = {m: [_ref(k) for k in MISSIONS[m].key_variables] for m in DEFAULT_MISSIONS}


def demo_config(out: Path, granules: list[str] | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "output": {
            "local": str(out / "zarr"),
            "naming": {"pre_qf": "pre_qf", "post_qf": "post_qf"},
            "cog": {"output": {"local": str(out / "cog")}},
        },
        "grid": {"latitude": 400, "longitude": 400, "method": "cubic"},
        "variables": DEMO_VARIABLES,
        "search": {"source": "local", "local": str(out / "granules"), "missions": list(DEFAULT_MISSIONS)},
        "state": {"url": f"sqlite:///{out / 'oco-l3-state.db'}"},
    }
    if granules is not None:
        cfg["input"] = {"files": granules}
    return cfg


def write_demo_inputs(out: Path, days: int) -> tuple[Path, list[str]]:
    from oco_l3.sample_data import write_sample_tree

    tree = write_sample_tree(out / "granules", DEMO_START, DEMO_START + dt.timedelta(days=days - 1))
    files = [str(p) for day in sorted(tree) for p in tree[day].values()]
    config_path = out / "demo-config.yml"
    config_path.write_text(
        "# oco-l3 demo run config (inputs are SYNTHETIC sample data written by `oco-l3 demo`)\n"
        + yaml.safe_dump(demo_config(out, files), sort_keys=False)
    )
    return config_path, files


def _print_outputs(out: Path) -> None:
    stores = sorted(p for p in (out / "zarr").glob("*/*/*.zarr"))
    cogs = sorted((out / "cog").glob("*.tif"))
    pngs = sorted((out / "quicklook").glob("*.png"))
    print(f"\nZarr stores ({len(stores)}) under {out / 'zarr'}:")
    for s in stores:
        print(f"  {s.relative_to(out)}")
    print(f"COGs: {len(cogs)} under {out / 'cog'}")
    print(f"Quick-look PNGs ({len(pngs)}), one per capture:")
    for p in pngs:
        print(f"  {p}")


def run_demo(out: str, days: int = 3, engine: str = "flow",
             commands: Mapping[str, Callable[[argparse.Namespace], int]] | None = None) -> int:
    """Write SYNTHETIC sample days under ``out`` and run the product on them."""
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_path, files = write_demo_inputs(root, days)
    print(f"Wrote {len(files)} SYNTHETIC sample granules ({days} days) under {root / 'granules'}")
    print(f"Run config: {config_path}")
    os.environ.setdefault("OCO_L3_QUICKLOOK_DIR", str(root / "quicklook"))
    end = DEMO_START + dt.timedelta(days=days - 1)
    if engine == "flow" and commands and "backfill" in commands:
        rc = commands["backfill"](argparse.Namespace(
            input=str(config_path), start=DEMO_START.isoformat(), end=end.isoformat(), reprocess=False, json=False,
            verbose=0, quicklooks=str(root / "quicklook"),
        ))
        if "status" in commands:
            print("\nState table:")
            commands["status"](argparse.Namespace(input=str(config_path), json=False, verbose=0))
    else:
        if engine == "flow":
            print("(Prefect flows are not installed; running through the library)")
        from oco_l3.cli import _summary, run_days
        from oco_l3.config import load_config

        rc = _summary(run_days(load_config(config_path), str(root / "quicklook")))
    _print_outputs(root)
    return rc
