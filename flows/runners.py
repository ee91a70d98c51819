"""Task runner by configuration: Prefect's thread pool by default, Dask when a cluster address is given.

``OCO_L3_DASK_ADDRESS`` (deployment job variable, or ``--dask-address`` on the CLI) points the per-granule fan-out
at a running ``dask.distributed`` scheduler (a LocalCluster, Coiled, ...). ``OCO_L3_THREADS`` sizes the thread pool.
"""

from __future__ import annotations

import os
from typing import Any


def task_runner(dask_address: str | None = None) -> Any:
    address = dask_address or os.environ.get("OCO_L3_DASK_ADDRESS") or None
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=int(os.environ.get("OCO_L3_THREADS", "4")))
