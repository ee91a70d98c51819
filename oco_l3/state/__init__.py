"""The state table: what has been seen, what is done, what failed, what is a known gap.

SQLAlchemy 2 Core on SQLite (default: a file in the output root) or PostgreSQL (``postgresql+psycopg://...``).
The schema is migrated with Alembic: the migrations ship in ``oco_l3/state/migrations/versions`` and
:func:`open_state` applies the missing ones in one transaction, so an old database upgrades itself on first open
(one made before Alembic, with the hand-written ``schema_version`` table, is stamped first).

A (mission, day) row has status ``waiting | done | failed | gap`` (ICESat-2 product days also ``empty``). A day is
*ready* when every configured mission has a granule or is expected absent (:func:`oco_l3.gaps.expected_absent`).
Rows become ``done`` only after the caller has committed the outputs and read them back; every status change is
its own transaction. No secret is ever stored: run parameters are scrubbed first.

Table ``claims`` keeps two runs on the same outputs from doing the same work at once: a run takes a lease on each
unit of work (a (mission, day) granule, or a global day) before it starts it, renews its leases while it runs
(:func:`held_claims`) and releases each when it is recorded. A killed run's leases lapse after ``lease_s``.

The modules behind this one: ``_schema`` (tables, opening, migrations), ``_rows`` (writing), ``_planning`` (ready
days, daily runs), ``_claims``, ``_report`` (reading for people), ``_products`` (ICESat-2 results).
"""

from oco_l3.state._claims import CLAIM_LEASE_S, ClaimHolder, claim, held_claims, release_claims, renew_claims
from oco_l3.state._planning import (
    DailyDays,
    DayPlan,
    daily_days,
    first_waiting_day,
    granule_key,
    last_done_day,
    plan_days,
    plan_ready_days,
    waiting_days,
)
from oco_l3.state._products import record_product_results, record_product_run
from oco_l3.state._report import failed_rows, format_status, status_command, status_rows
from oco_l3.state._rows import (
    GranuleOutcome,
    finish_run,
    mark_done,
    mark_failed,
    mark_gap,
    mark_running,
    mark_waiting,
    record_gaps,
    record_granules,
    record_outcomes,
    start_run,
)
from oco_l3.state._schema import (
    SCHEMA_REVISION,
    STATE_FILE,
    STATUSES,
    State,
    Status,
    claims,
    day_status,
    default_state_url,
    gaps_table,
    granules,
    metadata,
    open_state,
    runs,
    schema_revision,
    upgrade_schema,
)

__all__ = [
    "CLAIM_LEASE_S", "SCHEMA_REVISION", "STATE_FILE", "STATUSES", "ClaimHolder", "DailyDays", "DayPlan",
    "GranuleOutcome", "State", "Status", "claim", "claims", "daily_days", "day_status", "default_state_url",
    "failed_rows", "finish_run", "first_waiting_day", "format_status", "gaps_table", "granule_key", "granules",
    "held_claims", "last_done_day", "mark_done", "mark_failed", "mark_gap", "mark_running", "mark_waiting",
    "metadata", "open_state", "plan_days", "plan_ready_days", "record_gaps", "record_granules", "record_outcomes",
    "record_product_results", "record_product_run", "release_claims", "renew_claims", "runs", "schema_revision",
    "start_run", "status_command", "status_rows", "upgrade_schema", "waiting_days",
]
