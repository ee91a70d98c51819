"""Task runner by configuration: Prefect's thread pool by default, Dask when a cluster address is given.

``OCO_L3_THREADS`` (default 2) is how many granules the thread runner processes at once. Each granule runs in a
worker process (:mod:`oco_l3.process_pool`, no Prefect in it) while its task's thread waits for it, so the flow's
process holds only Prefect and the bookkeeping, and two granules at once keep two cores busy without sharing a
GIL (as ``oco-l3 run`` does with ``max-workers: 2``); each more granule at once adds a worker process's memory.

``OCO_L3_DASK_ADDRESS`` (deployment job variable, or ``--dask-address`` on the CLI) points the per-granule fan-out
at a running ``dask.distributed`` scheduler (``dask scheduler`` + ``dask worker`` processes, Coiled, ...): the
tasks then run on its workers, each granule in a worker process of the Dask worker that took its task, and the
flow's process only orchestrates. A Dask worker runs as many granules at once as it has threads: start
``dask worker ADDRESS --nthreads 1`` once per core (or ``--nworkers N --nthreads 1``).
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_THREADS = 2


def task_runner(dask_address: str | None = None) -> Any:
    address = dask_address or os.environ.get("OCO_L3_DASK_ADDRESS") or None
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=int(os.environ.get("OCO_L3_THREADS", str(DEFAULT_THREADS))))
