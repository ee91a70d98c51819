"""ICESat-2 flows: ``icesat2_process_files`` (the ``input.files`` of a product config) and ``icesat2_discover``
(CMR search from the config's ``search:`` section; no login is needed to search). Recipes, one task a line.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped

from flows._settle import reason, settle
from flows.runners import task_runner
from oco_l3.icesat2.results import Icesat2Result
from oco_l3.icesat2.run import GranuleExtract
from tasks.icesat2 import as_dict, discover_granules, extract_granule, grid_days, load_icesat2_config

RUNNER = task_runner()


@flow(name="icesat2-process-files", task_runner=RUNNER)
def icesat2_process_files(config: str) -> dict[str, Any]:
    """Extract every input granule in parallel, then bin and write the days; one result per input."""
    cfg = load_icesat2_config(config)
    files = list(cfg.input.files)
    extracted, errors = settle(extract_granule.map(unmapped(cfg), files))
    extracts = [extracted.get(i) or GranuleExtract(Icesat2Result(files[i], cfg.product, False, reason(errors[i])))
                for i in range(len(files))]
    results = grid_days(cfg, extracts)
    return {"product": cfg.product, "ok": sum(r.ok for r in results), "failed": sum(not r.ok for r in results),
            "results": [as_dict(r) for r in results]}


@flow(name="icesat2-discover", task_runner=RUNNER)
def icesat2_discover(config: str) -> list[dict[str, Any]]:
    """The CMR granules the config's ``search:`` finds (narrowed by RGTs when a tracks file is given)."""
    cfg = load_icesat2_config(config)
    return [{"name": r.name, "rgt": r.rgt, "urls": list(r.urls)} for r in discover_granules(cfg)]
