from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oco_l3.captures import MAX_INTERRUPTION, split_captures
from oco_l3.soundings import MODE_GLINT, MODE_NADIR, MODE_SAM, MODE_TARGET, Soundings
from oco_l3.targets import BBox, Target

T0 = np.datetime64("2020-03-03T10:00:00", "ns")

TARGETS = {
    "fossil0001": Target("fossil0001", "A", 10.0, 20.0, BBox(8.5, 18.5, 11.5, 21.5)),
    "volcano0002": Target("volcano0002", "B", 30.0, -5.0, BBox(28.5, -6.5, 31.5, -3.5)),
}


def make(modes: list[int], tids: list[str], mission: str = "oco3", lat: float = 20.0, lon: float = 10.0) -> Soundings:
    n = len(modes)
    la = np.full(n, lat)
    lo = np.full(n, lon) + np.arange(n) * 1e-3
    return Soundings(
        mission=mission,  # type: ignore[arg-type]
        latitude=la,
        longitude=lo,
        vertex_latitude=np.repeat(la[:, None], 4, 1),
        vertex_longitude=np.repeat(lo[:, None], 4, 1),
        time=T0 + np.arange(n) * np.timedelta64(300, "ms"),
        mode=np.asarray(modes, dtype=np.int8),
        target_id=np.asarray(tids, dtype=str),
        target_name=np.asarray(tids, dtype=str),
        good=np.ones(n, bool),
        source="test.nc4",
    )


def test_runs_split_on_target_and_mode() -> None:
    s = make([4, 4, 4, 2, 2, 0, 0, 0, 4, 4], ["fossil0001"] * 3 + ["fossil0001"] * 2 + ["none"] * 3 + ["volcano0002"] * 2)
    res = split_captures(s, TARGETS)
    assert [(c.target.id, c.mode, c.n_soundings) for c in res.captures] == [
        ("fossil0001", "sam", 3),
        ("fossil0001", "target", 2),
        ("volcano0002", "sam", 2),
    ]
    assert res.captures[0].start_time == T0
    assert res.captures[2].start_time == s.time[8]


@pytest.mark.parametrize("gap", [1, 2])
def test_short_interruption_of_another_mode_is_one_capture(gap: int) -> None:
    modes = [4] * 5 + [MODE_GLINT] * gap + [4] * 5
    s = make(modes, ["fossil0001"] * len(modes))
    res = split_captures(s, TARGETS)
    assert len(res.captures) == 1
    idx = res.captures[0].index
    assert idx.tolist() == list(range(5)) + list(range(5 + gap, 10 + gap))  # interruption excluded


def test_long_interruption_splits() -> None:
    gap = MAX_INTERRUPTION + 1
    modes = [4] * 5 + [MODE_NADIR] * gap + [4] * 5
    res = split_captures(make(modes, ["fossil0001"] * len(modes)), TARGETS)
    assert len(res.captures) == 2


def test_same_mode_other_target_is_not_an_interruption() -> None:
    tids = ["fossil0001"] * 4 + ["volcano0002"] + ["fossil0001"] * 4
    res = split_captures(make([4] * 9, tids), TARGETS)
    assert [c.target.id for c in res.captures] == ["fossil0001", "volcano0002", "fossil0001"]


def test_missing_and_unknown_targets_are_skipped_with_named_warning() -> None:
    tids = ["Missing"] * 3 + ["none"] * 3 + ["unknown042"] * 3 + ["fossil0001"] * 3
    res = split_captures(make([4] * 3 + [2] * 3 + [4] * 3 + [4] * 3, tids), TARGETS)
    assert [c.target.id for c in res.captures] == ["fossil0001"]
    assert len(res.skipped) == 3
    assert "'Missing'" in res.skipped[0] and "'unknown042'" in res.skipped[2]


def _capture_ids(res: object) -> list[tuple[str, str, list[int]]]:
    return [(c.target.id, c.mode, c.index.tolist()) for c in res.captures]  # type: ignore[attr-defined]


@pytest.mark.parametrize("no_id", ["none", "Missing", ""])
@pytest.mark.parametrize("mode", [MODE_SAM, MODE_TARGET])
def test_soundings_without_target_id_inside_a_run_belong_to_it(no_id: str, mode: int) -> None:
    # Issue 13 item 3: 3 soundings tagged 'none' in the middle of a 100-sounding SAM made two half captures.
    tids = ["fossil0001"] * 100
    tids[48:51] = [no_id] * 3
    res = split_captures(make([mode] * 100, tids), TARGETS)
    assert _capture_ids(res) == [("fossil0001", "sam" if mode == MODE_SAM else "target", list(range(100)))]
    assert res.skipped == ()


def test_soundings_without_target_id_at_the_start_or_end_of_a_run_belong_to_it() -> None:
    modes = [MODE_GLINT] * 3 + [4] * 20 + [MODE_NADIR] * 5 + [4] * 20 + [MODE_GLINT] * 2
    tids = ["none"] * 3 + ["none"] * 4 + ["fossil0001"] * 16 + ["none"] * 5 + ["volcano0002"] * 18 + ["none"] * 4
    res = split_captures(make(modes, tids), TARGETS)
    assert _capture_ids(res) == [("fossil0001", "sam", list(range(3, 23))),
                                 ("volcano0002", "sam", list(range(28, 48)))]
    # ... also across a time gap: the 'none' soundings after the gap start a run of their own, which is skipped
    s = make([4] * 10, ["fossil0001"] * 5 + ["none"] * 5)
    later = s.time.copy()
    later[7:] += np.timedelta64(90, "m")
    res = split_captures(replace(s, time=later), TARGETS)
    assert _capture_ids(res) == [("fossil0001", "sam", list(range(7)))]
    assert len(res.skipped) == 1 and "'none'" in res.skipped[0]


def test_soundings_without_target_id_between_two_targets_belong_to_neither() -> None:
    tids = ["fossil0001"] * 10 + ["none"] * 3 + ["volcano0002"] * 10
    res = split_captures(make([4] * 23, tids), TARGETS)
    assert _capture_ids(res) == [("fossil0001", "sam", list(range(10))), ("volcano0002", "sam", list(range(13, 23)))]
    assert len(res.skipped) == 1 and "'none'" in res.skipped[0]
    # Of another mode, they are an interruption (one or two) or a split (more), never part of the run.
    tids = ["fossil0001"] * 10 + ["none"] * 2 + ["fossil0001"] * 10
    res = split_captures(make([4] * 10 + [MODE_TARGET] * 2 + [4] * 10, tids), TARGETS)
    assert _capture_ids(res) == [("fossil0001", "sam", list(range(10)) + list(range(12, 22)))]


def test_run_of_unidentified_soundings_beside_an_interruption_joins_the_run() -> None:
    modes = [4] * 10 + [MODE_GLINT] + [4] * 13
    tids = ["fossil0001"] * 10 + ["none"] + ["none"] * 3 + ["fossil0001"] * 10
    res = split_captures(make(modes, tids), TARGETS)
    assert _capture_ids(res) == [("fossil0001", "sam", list(range(10)) + list(range(11, 24)))]


def test_oco2_nearest_target_and_bbox_check() -> None:
    inside = make([MODE_TARGET] * 4, ["none"] * 4, mission="oco2", lat=-5.2, lon=29.9)
    res = split_captures(inside, TARGETS)
    assert [c.target.id for c in res.captures] == ["volcano0002"]
    outside = make([MODE_TARGET] * 4, ["none"] * 4, mission="oco2", lat=-10.0, lon=29.9)
    res = split_captures(outside, TARGETS)
    assert res.captures == () and "volcano0002" in res.skipped[0]


def test_time_gap_splits_a_run() -> None:
    s = make([4] * 8, ["fossil0001"] * 8)
    later = s.time.copy()
    later[4:] += np.timedelta64(90, "m")
    from dataclasses import replace

    res = split_captures(replace(s, time=later), TARGETS)
    assert [c.index.tolist() for c in res.captures] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert res.captures[1].start_time == later[4]


def test_oco2_sam_mode_is_not_a_capture() -> None:
    res = split_captures(make([MODE_SAM] * 4, ["none"] * 4, mission="oco2"), TARGETS)
    assert res.captures == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, 3, 4]), st.sampled_from(["fossil0001", "volcano0002", "none", "x"])),
                min_size=0, max_size=60))
def test_fuzz_splitter_invariants(seq: list[tuple[int, str]]) -> None:
    s = make([m for m, _ in seq], [t for _, t in seq])
    res = split_captures(s, TARGETS)
    seen: set[int] = set()
    for c in res.captures:
        idx = c.index.tolist()
        assert idx == sorted(idx) and len(idx) > 0
        assert not seen.intersection(idx), "a sounding belongs to two captures"
        seen.update(idx)
        # every sounding of a capture has the capture's mode, and its target or no target id ("none")
        want_mode = MODE_SAM if c.mode == "sam" else MODE_TARGET
        assert all(seq[i][0] == want_mode and seq[i][1] in (c.target.id, "none") for i in idx)
        assert any(seq[i][1] == c.target.id for i in idx)
        # a "none" sounding in a capture is joined to one of the capture's own soundings by "none" soundings
        for i in idx:
            if seq[i][1] == "none":
                left = next((j for j in range(i - 1, -1, -1) if seq[j] != (want_mode, "none")), None)
                right = next((j for j in range(i + 1, len(seq)) if seq[j] != (want_mode, "none")), None)
                touching = [j for j in (left, right) if j is not None and seq[j] == (want_mode, c.target.id)]
                assert touching and all(j in idx for j in touching)
        assert c.start_time == s.time[idx[0]]
        # gaps inside a capture are short interruptions of another mode
        for a, b in zip(idx, idx[1:], strict=False):
            if b - a > 1:
                assert b - a - 1 <= MAX_INTERRUPTION
                assert all(seq[j][0] != want_mode for j in range(a + 1, b))
    # every SAM/target sounding with a known target is in some capture, and so is every "none" sounding of that
    # mode between two soundings of one target (nothing but "none" of the mode between them)
    for i, (m, t) in enumerate(seq):
        if m in (MODE_SAM, MODE_TARGET) and t in TARGETS:
            assert i in seen
        if m in (MODE_SAM, MODE_TARGET) and t == "none":
            left = next((j for j in range(i - 1, -1, -1) if seq[j] != (m, "none")), None)
            right = next((j for j in range(i + 1, len(seq)) if seq[j] != (m, "none")), None)
            if left is not None and right is not None and seq[left] == seq[right] and seq[left][0] == m \
                    and seq[left][1] in TARGETS:
                assert i in seen


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0, 1, 2, 3, 4]), st.sampled_from(["fossil0001", "none", "x"]), st.booleans()),
             min_size=0, max_size=60),
    st.sampled_from(["oco3", "oco2"]),
)
def test_capture_runs_equal_a_plain_loop(seq: list[tuple[int, str, bool]], mission: str) -> None:
    from oco_l3.captures import MAX_GAP, Run, capture_runs, find_runs

    s = make([m for m, _, _ in seq], [t for _, t, _ in seq], mission=mission)
    # Time gaps longer than MAX_GAP where the third item says so.
    steps = np.array([MAX_GAP + np.timedelta64(1, "s") if gap else np.timedelta64(300, "ms") for _, _, gap in seq])
    s = replace(s, time=T0 + np.cumsum(steps.astype("timedelta64[ns]")) if seq else s.time)
    segment, keys = 0, []
    for i, (m, t, gap) in enumerate(seq):
        segment += bool(gap and i > 0)
        wanted = (MODE_TARGET,) if mission == "oco2" else (MODE_SAM, MODE_TARGET)
        keys.append((m, "" if mission == "oco2" else t, segment) if m in wanted else None)
    expected = find_runs(keys)
    assert capture_runs(s) == [Run(r.key, r.start, r.stop) for r in expected]


@pytest.mark.parametrize("mission", ["oco3", "oco3_sif"])
def test_sample_granule_sam_with_none_ids_is_one_capture(tmp_path: object, mission: str) -> None:
    # The case in the real layouts: 3 soundings tagged 'none' (FP target_id; SIF: a negative
    # SequencesIndex) in a 100-sounding SAM.
    import datetime as dt
    from pathlib import Path

    from oco_l3 import sample_data as sd
    from oco_l3.readers import read_granule
    from oco_l3.targets import load_targets

    day = dt.date(2021, 6, 1)
    spec = sd.CaptureSpec("fossil0005", "sam", 100, dt.datetime(2021, 6, 1, 3, 10), unidentified=3)
    path = sd.write_granule(Path(str(tmp_path)) / sd.sample_filename(mission, day), mission, day, [spec],  # type: ignore[arg-type]
                            n_background=80)
    s = read_granule(path)
    assert (s.target_id == "none").sum() == 80 + 3
    res = split_captures(s, load_targets())
    assert [(c.target.id, c.n_soundings) for c in res.captures] == [("fossil0005", 100)]
    assert res.skipped == ()
