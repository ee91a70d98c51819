"""A static STAC catalogue of every product, written at the output root beside the stores (see README).

Public API (the hooks the writers call right after a commit or an export has succeeded):

* :func:`oco_l3.stac.oco.record_store_commit` / :func:`oco_l3.stac.oco.record_cogs` -- target-focused product
* :func:`oco_l3.stac.global_day.record_global_day` -- global daily product
* :func:`oco_l3.stac.icesat2.record_icesat2_day` -- ICESat-2 daily grids
* :func:`updating` -- runs one of them; a catalogue failure is logged, never fails the data it describes (the
  catalogue is derived from the committed stores, and the next update of the collection repairs it)

Layout and concurrency: :mod:`oco_l3.stac.catalogue`; the items: :mod:`oco_l3.stac.items`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from oco_l3.errors import one_line

log = logging.getLogger(__name__)


def updating(what: str, fn: Callable[..., Any], *args: Any) -> bool:
    """Run the catalogue update ``fn(*args)``; on failure log one line naming ``what`` and return False."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the data is committed; the catalogue is repaired by the next update
        log.debug("catalogue update failed", exc_info=True)
        log.warning("STAC catalogue not updated for %s: %s", what, one_line(exc))
        return False
    return True
