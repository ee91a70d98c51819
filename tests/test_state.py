"""State table: schema version, planning ready days, status transitions; on SQLite and the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from oco_l3 import state as st
from oco_l3.config import parse_config
from oco_l3.gaps import Gap
from oco_l3.sources import GranuleRef
from oco_l3.state._rows import _set_status

D = dt.date


def ref(mission: str, day: dt.date, production: str = "240915205334", size: int = 100) -> GranuleRef:
    kind, plat = ("SIF", "oco3") if mission == "oco3_sif" else ("CO2", mission)
    name = f"{plat}_Lt{kind}_{day:%y%m%d}_B11072Ar_{production}s.nc4"
    return GranuleRef(mission, day, f"/data/{mission}/{name}", size, "MD5:abc", name)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def state(request: pytest.FixtureRequest, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_db")
    s = st.open_state(url)
    yield s
    s.close()


MISSIONS = ("oco3", "oco2", "oco3_sif")
GAP = (Gap("oco3", D(2023, 11, 13), D(2024, 7, 16)), Gap("oco3_sif", D(2023, 11, 13), D(2024, 7, 16)))


def test_schema_revision_recorded_and_reopen_is_idempotent(state: st.State) -> None:
    assert st.schema_revision(state) == st.SCHEMA_REVISION
    tables = set(sa.inspect(state.engine).get_table_names())
    assert {"granules", "day_status", "gaps", "runs", "claims", "alembic_version"} <= tables
    assert "schema_version" not in tables
    again = st.open_state(state.url)
    assert st.schema_revision(again) == st.SCHEMA_REVISION
    again.close()


def _legacy_v1(url: str) -> None:
    """A state database as the hand-written migrator of version 1 left it (before claims and Alembic), with a
    done day in it."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    for table in (st.granules, st.day_status, st.gaps_table, st.runs):
        table.to_metadata(meta)
    version = sa.Table("schema_version", meta, sa.Column("version", sa.Integer, nullable=False))
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(sa.insert(version).values(version=1))
        conn.execute(sa.insert(st.day_status).values(
            mission="oco3", day=D(2021, 12, 18), status="done", granule="g.nc4", captures=2, targets=2,
            outputs="[]", attempts=1, updated_at=dt.datetime(2021, 12, 19, tzinfo=dt.UTC)))
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def test_a_version_1_database_is_migrated_by_alembic_on_open(backend: str, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'v1.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_db")
    _legacy_v1(url)
    state = st.open_state(url)
    try:
        assert st.schema_revision(state) == st.SCHEMA_REVISION
        tables = set(sa.inspect(state.engine).get_table_names())
        assert "claims" in tables and "schema_version" not in tables
        (row,) = st.status_rows(state)
        assert (row["mission"], row["day"], row["status"], row["captures"]) == ("oco3", "2021-12-18", "done", 2)
        assert st.claim(state, ["oco3/2021-12-19"], "me") == {}  # the table version 2 added works
    finally:
        state.close()


def test_plan_ready_days_gap_waiting_and_ready(state: st.State) -> None:
    # 2023-11-12: all three present (ready); 11-13: oco3+sif in a known gap, oco2 present (ready);
    # 11-14: oco2 missing, nothing expected absent (waiting).
    refs = [ref(m, D(2023, 11, 12)) for m in MISSIONS] + [ref("oco2", D(2023, 11, 13))]
    refs += [ref("oco3", D(2023, 11, 14)), ref("oco3_sif", D(2023, 11, 14))]
    # inside the gap on 11-14 both oco3 granules exist anyway (present wins), oco2 is missing
    plans = st.plan_ready_days(state, refs, MISSIONS, GAP, D(2023, 11, 12), D(2023, 11, 14))
    assert [p.day for p in plans] == [D(2023, 11, 12), D(2023, 11, 13)]
    assert {m for m, _ in plans[1].absent} == {"oco3", "oco3_sif"}
    rows = {(r["mission"], r["day"]): r for r in st.status_rows(state)}
    assert rows[("oco3", "2023-11-13")]["status"] == "gap"
    assert "known gap 2023-11-13..2024-07-16" in rows[("oco3_sif", "2023-11-13")]["last_error"]
    assert rows[("oco2", "2023-11-14")]["status"] == "waiting"
    assert rows[("oco3", "2023-11-14")]["status"] == "waiting"
    assert "waiting for oco2" in rows[("oco3", "2023-11-14")]["last_error"]


def test_before_mission_start_is_expected_absent(state: st.State) -> None:
    plans = st.plan_ready_days(state, [ref("oco2", D(2015, 1, 1))], MISSIONS, (), D(2015, 1, 1), D(2015, 1, 1))
    assert len(plans) == 1 and plans[0].ready
    assert dict(plans[0].absent)["oco3"] == "before mission start 2019-08-06"


def test_done_and_failed_are_skipped_until_reprocess_or_new_production(state: st.State) -> None:
    day = D(2021, 3, 1)
    refs = [ref(m, day) for m in MISSIONS]
    run = st.start_run(state, "backfill", {"start": "2021-03-01", "password": "hunter2"})
    for r in refs[:2]:
        st.mark_running(state, r, run)
        st.mark_done(state, r, captures=2, targets=1, outputs=["/o/a.zarr", "/o/a.zarr"], duration_s=1.5)
    st.mark_running(state, refs[2], run)
    st.mark_failed(state, refs[2], "GranuleUnreadable: x.nc4: not HDF5\nTraceback ...")
    st.finish_run(state, run, {"done": 2, "failed": 1})

    assert st.plan_ready_days(state, refs, MISSIONS, (), day, day) == []
    again = st.plan_ready_days(state, refs, MISSIONS, (), day, day, reprocess=True)
    assert len(again[0].granules) == 3
    newer = ref("oco3_sif", day, production="250101000000")
    plans = st.plan_ready_days(state, [*refs[:2], newer], MISSIONS, (), day, day)
    assert [g.name for g in plans[0].granules] == [newer.name]

    rows = {r["mission"]: r for r in st.status_rows(state)}
    assert rows["oco3"]["status"] == "done" and rows["oco3"]["outputs"] == ["/o/a.zarr"]
    assert rows["oco3"]["attempts"] == 1 and rows["oco3"]["duration_s"] == 1.5
    assert rows["oco3_sif"]["status"] == "failed"
    assert rows["oco3_sif"]["last_error"] == "GranuleUnreadable: x.nc4: not HDF5"
    with state.engine.connect() as conn:
        params = conn.execute(sa.select(st.runs.c.parameters)).scalar_one()
    assert "hunter2" not in params and json.loads(params)["start"] == "2021-03-01"


def test_record_granules_counts_only_new(state: st.State) -> None:
    refs = [ref("oco3", D(2021, 3, 1)), ref("oco2", D(2021, 3, 1))]
    assert st.record_granules(state, refs) == 2
    assert st.record_granules(state, [*refs, ref("oco2", D(2021, 3, 2))]) == 1


def test_last_done_and_first_waiting(state: st.State) -> None:
    st.mark_done(state, ref("oco2", D(2021, 3, 1)), captures=0, targets=0, outputs=[])
    st.plan_ready_days(state, [ref("oco2", D(2021, 3, 3))], ["oco2", "oco3"], (), D(2021, 3, 3), D(2021, 3, 3))
    assert st.last_done_day(state) == D(2021, 3, 1)
    assert st.first_waiting_day(state) == D(2021, 3, 3)


def test_status_command_text_and_json(tmp_path: Path) -> None:
    config = parse_config({"input": {"files": []}, "output": {"local": str(tmp_path / "out")}})
    url = st.default_state_url(config)
    assert url == f"sqlite:///{(tmp_path / 'out' / 'oco-l3-state.db').resolve()}"
    s = st.open_state(url)
    st.mark_gap(s, "oco3", D(2024, 1, 1), "known gap 2023-11-13..2024-07-16")
    s.close()
    rows = json.loads(st.status_command(config, as_json=True))
    assert rows[0]["mission"] == "oco3" and rows[0]["status"] == "gap" and rows[0]["day"] == "2024-01-01"
    text = st.status_command(config)
    assert "2024-01-01" in text and "1 gap" in text


def test_state_url_from_config_wins(tmp_path: Path) -> None:
    config = parse_config({"input": {"files": []}, "output": {"local": str(tmp_path)},
                           "state": {"url": "sqlite:///elsewhere.db"}})
    assert st.default_state_url(config) == "sqlite:///elsewhere.db"


def test_unknown_status_rejected(state: st.State) -> None:
    with pytest.raises(ValueError, match="unknown status"), state.engine.begin() as conn:
        _set_status(conn, "oco3", D(2021, 1, 1), status="running")


def test_claims_one_owner_at_a_time_until_the_lease_ends(state: st.State) -> None:
    keys = ["oco2/2021-03-01", "oco3/2021-03-01"]
    assert st.claim(state, keys, "run-a", 1, lease_s=60) == {}
    busy = st.claim(state, keys + ["oco3/2021-03-02"], "run-b", 2, lease_s=60)
    assert set(busy) == set(keys) and {h.run_id for h in busy.values()} == {1}  # the third key is b's now
    assert st.claim(state, keys, "run-a", 1, lease_s=60) == {}  # the holder may take its own keys again
    st.release_claims(state, "run-a", keys[:1])
    assert set(st.claim(state, keys, "run-b", 2, lease_s=60)) == {keys[1]}
    # a holder that stops renewing (a killed run) loses its claim when the lease ends
    assert st.claim(state, ["oco2/2021-03-05"], "run-a", 1, lease_s=0.5) == {}
    assert set(st.claim(state, ["oco2/2021-03-05"], "run-b", 2)) == {"oco2/2021-03-05"}
    time.sleep(0.6)
    assert st.claim(state, ["oco2/2021-03-05"], "run-b", 2) == {}


def test_held_claims_renews_while_running_and_releases_at_the_end(state: st.State) -> None:
    with st.held_claims(state, "run-a", lease_s=0.6):
        assert st.claim(state, ["oco2/2021-03-01"], "run-a", 1, lease_s=0.6) == {}
        time.sleep(1.2)  # two leases long: only the heartbeat keeps it
        assert set(st.claim(state, ["oco2/2021-03-01"], "run-b", 2)) == {"oco2/2021-03-01"}
    assert st.claim(state, ["oco2/2021-03-01"], "run-b", 2) == {}


def test_daily_days_retries_old_waiting_days_oldest_first_plus_new_days(state: st.State) -> None:
    today = D(2024, 6, 10)
    st.mark_done(state, ref("oco2", D(2024, 6, 7)), captures=1, targets=1, outputs=[])
    for day in (D(2021, 1, 5), D(2021, 1, 6), D(2022, 7, 1), D(2024, 6, 9)):  # two and three years old, and new
        st.mark_waiting(state, ref("oco2", day), "no granule yet")
    days = st.daily_days(state, ["oco2"], today, lookback_days=30, max_retry_days=2)
    assert days.retry == (D(2021, 1, 5), D(2021, 1, 6)) and days.new == (D(2024, 6, 8), today)
    assert days.windows() == [(D(2021, 1, 5), D(2021, 1, 6)), (D(2024, 6, 8), today)]
    assert st.daily_days(state, ["oco2"], today).retry == (D(2021, 1, 5), D(2021, 1, 6), D(2022, 7, 1))
    assert st.daily_days(state, ["oco3"], today, lookback_days=3).new == (D(2024, 6, 7), today)


def test_status_text_shows_the_whole_reason(state: st.State) -> None:
    reason = "x.nc4: GranuleSchemaMismatch: " + "missing /Retrieval/psurf and more words " * 5 + "END"
    st.mark_failed(state, ref("oco2", D(2021, 3, 1)), reason)
    assert reason in st.format_status(st.status_rows(state))


def _open_and_close(url: str, barrier: object) -> None:
    barrier.wait(30)  # type: ignore[attr-defined]
    st.open_state(url).close()


def _race_open(urls: list[str]) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for url in urls:
        barrier = context.Barrier(4)
        workers = [context.Process(target=_open_and_close, args=(url, barrier)) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert [w.exitcode for w in workers] == [0, 0, 0, 0], url
        state = st.open_state(url)
        try:
            with state.engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            assert rows == [st.SCHEMA_REVISION]
            assert st.schema_revision(state) == st.SCHEMA_REVISION
        finally:
            state.close()


@pytest.mark.services
def test_processes_creating_a_postgres_schema_at_once_all_succeed(postgres_db: str) -> None:
    _race_open([postgres_db])


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Two deployments started together open a state database that does not exist yet: each process must find
    the schema created exactly once (before the fix one of them failed with 'table runs already exists')."""
    _race_open([f"sqlite:///{tmp_path / f'fresh-{attempt}.db'}" for attempt in range(3)])
