"""Reading the state table for people: status rows as plain dicts, the text table of ``oco-l3 status``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from oco_l3.state._schema import STATUSES, State, day_status, default_state_url, open_state


def _row_dict(row: Any) -> dict[str, Any]:
    return {
        "mission": row.mission, "day": row.day.isoformat(), "status": row.status, "granule": row.granule,
        "captures": row.captures, "targets": row.targets, "outputs": json.loads(row.outputs or "[]"),
        "attempts": row.attempts, "duration_s": row.duration_s, "last_error": row.last_error,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def status_rows(state: State, start: dt.date | None = None, end: dt.date | None = None) -> list[dict[str, Any]]:
    """The (mission, day) rows as plain dicts, ordered by day then mission."""
    query = sa.select(day_status).order_by(day_status.c.day, day_status.c.mission)
    if start is not None:
        query = query.where(day_status.c.day >= start)
    if end is not None:
        query = query.where(day_status.c.day <= end)
    with state.engine.connect() as conn:
        return [_row_dict(r) for r in conn.execute(query)]


def format_status(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of status rows (for ``oco-l3 status``)."""
    head = ("day", "mission", "status", "captures", "targets", "attempts", "note")
    lines = [(r["day"], r["mission"], r["status"], str(r["captures"]), str(r["targets"]), str(r["attempts"]),
              r["last_error"] or "") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)][:-1]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"  # the note, whole, last
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    footer = ", ".join(f"{n} {s}" for s, n in counts.items())
    return "\n".join([fmt.format(*head), *(fmt.format(*line) for line in lines), footer])


def status_command(config: Any, as_json: bool = False) -> str:
    """The output of ``oco-l3 status``: the state table as text or JSON (no Prefect needed)."""
    state = open_state(default_state_url(config))
    try:
        rows = status_rows(state)
    finally:
        state.close()
    return json.dumps(rows, indent=2) if as_json else format_status(rows)


def failed_rows(state: State, missions: Sequence[str], start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """The ``failed`` (mission, day) rows in ``start..end`` (what a run skips unless reprocessing)."""
    query = (sa.select(day_status).where(day_status.c.status == "failed", day_status.c.day.between(start, end),
                                         day_status.c.mission.in_(list(missions)))
             .order_by(day_status.c.day, day_status.c.mission))
    with state.engine.connect() as conn:
        return [_row_dict(r) for r in conn.execute(query)]
