"""ICESat-2 product results recorded per (product, day): done, empty, waiting (a transient failure) or failed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from oco_l3.state._rows import _scrub, _set_status
from oco_l3.state._schema import State, _now, day_status, default_state_url, open_state, runs

log = logging.getLogger("oco_l3.state")


def _result_days(result: Any) -> tuple[dt.date, ...]:
    """The UTC days of a product result; for a failure without days, the start day in the granule's name."""
    if result.days:
        return tuple(sorted({dt.date.fromisoformat(d) for d in result.days}))
    if result.ok:
        return ()
    from oco_l3.icesat2.discovery import granule_day

    day = granule_day(str(result.input))
    return (day,) if day is not None else ()


def _one_line(text: str | None, default: str) -> str:
    return text.splitlines()[0][:500] if text and text.strip() else default


def _segments_on(result: Any, day: dt.date) -> int:
    """The segments a result kept on ``day`` (its ``segments_on`` split when it has one, else all of them)."""
    on = getattr(result, "segments_on", None)
    return int(on(day.isoformat())) if callable(on) else int(result.n_segments)


def _day_values(results: Sequence[Any], day: dt.date) -> dict[str, Any]:
    """The day_status values of one (product, day) from the results that touched it."""
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    names = sorted(Path(str(r.input)).name for r in results)
    label = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"
    captures = sum(_segments_on(r, day) for r in ok)
    warnings = [w for r in ok for w in getattr(r, "warnings", ())]
    note = f"warning: {warnings[0]}" + (f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else "") \
        if warnings else None
    status = ("failed" if any(not r.transient for r in bad) else "waiting") if bad else \
        ("done" if captures else "empty")
    values: dict[str, Any] = {
        "status": status, "granule": label[:255],
        "granule_key": hashlib.sha256("|".join(names).encode()).hexdigest()[:32],
        "captures": captures, "targets": 0,
        "outputs": json.dumps(sorted({str(o) for r in ok for o in r.outputs})),
        "last_error": _one_line(f"{Path(str(bad[0].input)).name}: {bad[0].message}", "failed") if bad else
        (_one_line(note, "") if note else None),
    }
    return values


def record_product_results(state: State, product: str, results: Iterable[Any],
                           parameters: Mapping[str, Any] | None = None) -> None:
    """Record the per-input results of a product run (ICESat-2 ``Icesat2Result``) per (product, day).

    ``product`` (``icesat2-seaice``, ...) goes in the ``mission`` column. A day is ``done`` when every granule
    that touched it is ok (``captures`` = segments binned on that day, ``outputs`` = their outputs), ``empty`` when
    they are ok but binned no segment that day (all filtered out: an empty slice was written), ``waiting`` when
    its only failures are transient (``Icesat2Result.transient``: the daily run retries it) and ``failed``
    otherwise (``last_error`` = the first failure, one line); a done or empty day keeps the first warning of its
    inputs in ``last_error`` (``warning: ...``); ``attempts`` goes up by one. A failed input whose day is
    unknown (no days, no date in its name) is kept in the run's summary only. One transaction.
    """
    results = list(results)
    by_day: dict[dt.date, list[Any]] = {}
    unplaced: list[Any] = []
    for r in results:
        days = _result_days(r)
        for day in days:
            by_day.setdefault(day, []).append(r)
        if not days:
            unplaced.append(r)
    summary = {"product": product, "inputs": len(results), "ok": sum(bool(r.ok) for r in results),
               "failed": sum(not r.ok for r in results), "days": len(by_day),
               "unplaced": [{"input": Path(str(r.input)).name, "ok": bool(r.ok), "error": None if r.ok else
                             _one_line(r.message, "failed")} for r in unplaced]}
    with state.engine.begin() as conn:
        run = conn.execute(sa.insert(runs).values(
            kind=product[:32], parameters=json.dumps(_scrub(dict(parameters or {}))), started_at=_now(),
            finished_at=_now(), summary=json.dumps(_scrub(summary))))
        run_id = run.inserted_primary_key[0] if run.inserted_primary_key else None
        for day, touching in sorted(by_day.items()):
            _set_status(conn, product, day, run_id=run_id, **_day_values(touching, day))
            conn.execute(sa.update(day_status).where(day_status.c.mission == product, day_status.c.day == day)
                         .values(attempts=day_status.c.attempts + 1))
    log.info("State: %s recorded %d days (%d inputs, %d failed, %d without a day)", product, len(by_day),
             len(results), summary["failed"], len(unplaced))


def record_product_run(config: Any, results: Iterable[Any]) -> None:
    """Open the config's state database (:func:`default_state_url`), record the results, close it."""
    state = open_state(default_state_url(config))
    try:
        record_product_results(state, str(config.product), results)
    finally:
        state.close()
