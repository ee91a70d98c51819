"""Task runner by configuration: Prefect's thread pool by default, Dask when a cluster address is given.

``OCO_L3_DASK_ADDRESS`` (deployment job variable, or ``--dask-address`` on the CLI) points the per-granule fan-out
at a running ``dask.distributed`` scheduler (``dask scheduler`` + ``dask worker`` processes, Coiled, ...): the
tasks then run on its workers and the flow's process only orchestrates. ``OCO_L3_THREADS`` (default 1) is how
many granules the thread runner processes at once in the flow's process: one granule already keeps two cores busy
(a capture's two QF passes in two threads beside a writer thread), and each more granule at once adds its memory
(about 150 MB for a busy day) for little time on two cores.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_THREADS = 1


def task_runner(dask_address: str | None = None) -> Any:
    address = dask_address or os.environ.get("OCO_L3_DASK_ADDRESS") or None
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=int(os.environ.get("OCO_L3_THREADS", str(DEFAULT_THREADS))))
