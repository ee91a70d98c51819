"""Claims: a lease per unit of work, so that two runs on the same outputs never do the same work at once."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from oco_l3.state._rows import _insert
from oco_l3.state._schema import State, _now, claims

log = logging.getLogger("oco_l3.state")

#: Default lease of a claim (seconds); a holder renews it every third of that.
CLAIM_LEASE_S = float(os.environ.get("OCO_L3_CLAIM_LEASE_SECONDS", "300"))


@dataclass(frozen=True)
class ClaimHolder:
    key: str
    run_id: int | None
    expires_at: dt.datetime


def claim(state: State, keys: Sequence[str], owner: str, run_id: int | None = None,
          lease_s: float = CLAIM_LEASE_S) -> dict[str, ClaimHolder]:
    """Take a lease on each key that no other owner holds (or whose lease ended); one transaction.

    Returns the keys held by someone else, with their holder; every other key is now ``owner``'s.
    """
    if not keys:
        return {}
    now = _now()
    until = now + dt.timedelta(seconds=lease_s)
    busy: dict[str, ClaimHolder] = {}
    with state.engine.begin() as conn:
        for key in keys:
            stmt = _insert(conn, claims).values(key=key, owner=owner, run_id=run_id, expires_at=until)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["key"],
                set_={"owner": stmt.excluded.owner, "run_id": stmt.excluded.run_id,
                      "expires_at": stmt.excluded.expires_at},
                where=sa.or_(claims.c.expires_at < now, claims.c.owner == owner)))
        for i in range(0, len(keys), 500):
            rows = conn.execute(sa.select(claims).where(claims.c.key.in_(list(keys[i:i + 500]))))
            busy.update({r.key: ClaimHolder(r.key, r.run_id, r.expires_at) for r in rows if r.owner != owner})
    return busy


def renew_claims(state: State, owner: str, lease_s: float = CLAIM_LEASE_S) -> int:
    """Extend every lease ``owner`` holds; the number renewed."""
    with state.engine.begin() as conn:
        result = conn.execute(sa.update(claims).where(claims.c.owner == owner)
                              .values(expires_at=_now() + dt.timedelta(seconds=lease_s)))
        return int(result.rowcount or 0)


def release_claims(state: State, owner: str, keys: Sequence[str] | None = None) -> None:
    """Drop ``owner``'s leases (only ``keys`` when given)."""
    query = sa.delete(claims).where(claims.c.owner == owner)
    if keys is not None:
        query = query.where(claims.c.key.in_(list(keys)))
    with state.engine.begin() as conn:
        conn.execute(query)


@contextmanager
def held_claims(state: State, owner: str, lease_s: float = CLAIM_LEASE_S) -> Iterator[None]:
    """Renew ``owner``'s leases every third of ``lease_s`` while the block runs; release them all at the end."""
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(lease_s / 3):
            try:
                renew_claims(state, owner, lease_s)
            except sa.exc.SQLAlchemyError as exc:  # the next beat tries again; a lapsed lease is only lost work
                log.warning("claim renewal failed: %s", type(exc).__name__)

    beat = threading.Thread(target=heartbeat, name="oco-l3-claims", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=10)
        release_claims(state, owner)
