"""The Zarr v2 output opens with a reader of the zarr 2.x line (Apache SDAP runs zarr 2): a separate environment
(tests/services/zarr2.py) runs tests/zarr2_read.py on the target stores of a real ``oco-l3 run``, a global store and
an ICESat-2 store; every array of every group must decode there to exactly what zarr-python 3 reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from oco_l3.cli import main as cli_main
from tests.test_crash_safety import DAY0, SMALL, small_day, write_config
from tests.test_zarr_v3 import global_pair, icesat2_pair  # noqa: F401 -- module fixtures shared with the v3 tests

SCRIPT = Path(__file__).with_name("zarr2_read.py")


@pytest.fixture(scope="module")
def run_stores(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The four target stores (pre/post QF x two targets) of ``oco-l3 run`` on one small SYNTHETIC day."""
    base = tmp_path_factory.mktemp("run")
    config = write_config(base / "run.yaml", [small_day(base / "in", DAY0)], {"local": str(base / "out")}, **SMALL)
    assert cli_main(["run", "-i", str(config)]) == 0
    stores = sorted(str(p) for p in (base / "out").glob("*/*/*.zarr"))
    assert len(stores) == 4, stores
    return stores


def read_with_zarr2(python: str, stores: list[str], out: Path) -> dict[str, Any]:
    request = out / "request.json"
    request.write_text(json.dumps({"stores": stores}))
    proc = subprocess.run([python, str(SCRIPT), str(request), str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout))


def test_v2_output_opens_with_zarr_2(zarr2_python: str, run_stores: list[str], global_pair: tuple[str, str],  # noqa: F811
                                     icesat2_pair: tuple[str, str], tmp_path: Path) -> None:  # noqa: F811
    stores = [*run_stores, global_pair[0], icesat2_pair[0]]
    seen = read_with_zarr2(zarr2_python, stores, tmp_path)
    assert seen["zarr"].startswith("2.18."), seen["zarr"]
    for path, found in zip(stores, seen["stores"], strict=True):
        mine = zarr.open_consolidated(path, mode="r", zarr_format=2)
        arrays = {name: arr for name, arr in mine.arrays()} | {
            f"{g}/{name}": arr for g, grp in mine.groups() for name, arr in grp.arrays()}
        assert sorted(found["arrays"]) == sorted(arrays), path
        assert sorted(found["groups"]) == sorted(g for g, _ in mine.groups()), path
        for name, arr in arrays.items():
            info = found["arrays"][name]
            values = np.load(info["file"])
            assert info["dtype"] == arr.dtype.str and info["shape"] == list(arr.shape), (path, name)
            np.testing.assert_array_equal(values, arr[...], err_msg=f"{path}: {name}")
            assert info["dims"] == arr.attrs["_ARRAY_DIMENSIONS"], (path, name)
        data = [n for n, a in arrays.items() if a.ndim == 3]
        assert data and all(found["arrays"][n]["dims"][0] == "time" for n in data), path
        # not vacuous: the data arrays hold values (not only fill)
        assert any(np.isfinite(np.load(found["arrays"][n]["file"]).astype(float)).any() for n in data), path
