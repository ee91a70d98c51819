"""Safe output paths: hostile components never leave the root."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from oco_l3.errors import UnsafePath
from oco_l3.paths import cog_name, safe_join, target_store_path


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "a\x00b", "x" * 200, "/etc", "", ".hidden", "a b", "$(rm)",
                                 "a;b", "a\\b", "~root"])
def test_safe_join_rejects(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UnsafePath) as info:
        safe_join(str(tmp_path), "ok", bad)
    message = str(info.value)
    assert "\x00" not in message and len(message) < 200 and "\n" not in message


def test_nul_is_shown_escaped(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath, match=r"a\\x00b"):
        safe_join(str(tmp_path), "a\x00b")


def test_safe_join_local_and_s3(tmp_path: Path) -> None:
    assert safe_join(str(tmp_path), "oco3", "t.zarr") == os.path.join(os.path.realpath(tmp_path), "oco3", "t.zarr")
    assert safe_join("s3://bucket/pre/fix/", "oco3", "t.zarr") == "s3://bucket/pre/fix/oco3/t.zarr"


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafePath):
        safe_join(str(root), "link", "x")


def test_target_store_path(tmp_path: Path) -> None:
    root = os.path.realpath(tmp_path)
    assert target_store_path(str(tmp_path), "oco3", "pre_qf", "fossil0001") == f"{root}/oco3/pre_qf/fossil0001.zarr"
    assert target_store_path(str(tmp_path), "oco3", "pre.zarr", "t.zarr") == f"{root}/oco3/pre.zarr/t.zarr"
    with pytest.raises(UnsafePath):
        target_store_path(str(tmp_path), "oco3", "pre", "../../etc")


def test_cog_name() -> None:
    t = np.datetime64("2021-03-04T05:06:07.891", "ns")
    assert cog_name("oco3", "fossil0001", t, True, "xco2") == "oco3-co2_fossil0001_2021-03-04T050607Z_filtered_xco2.tif"
    assert cog_name("oco2", "t1", t, False, "Retrieval/psurf") == "oco2-co2_t1_2021-03-04T050607Z_unfiltered_Retrieval.psurf.tif"
    assert cog_name("oco3_sif", "s", t, True, "Daily_SIF_757nm").startswith("oco3-sif_s_")
    with pytest.raises(UnsafePath):
        cog_name("oco3", "a/b", t, True, "xco2")
    with pytest.raises(UnsafePath):
        cog_name("oco9", "a", t, True, "xco2")
