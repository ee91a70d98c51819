"""Quick-look PNGs: written, north-up, missing cells grey."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from oco_l3.grids import GridSpec
from oco_l3.quicklook import quicklook_png
from oco_l3.targets import BBox

GRID = GridSpec(BBox(10.0, 20.0, 12.0, 23.0), 60, 40)


def test_png_north_up_with_grey_missing(tmp_path: Path) -> None:
    arr = np.zeros(GRID.shape, dtype=np.float32)
    arr[GRID.n_lat // 2 :] = 1.0  # northern half high
    arr[: GRID.n_lat // 4] = np.nan  # southern quarter missing
    path = quicklook_png(arr, GRID, str(tmp_path / "q" / "x.png"), "synthetic test", units="ppm")
    img = mpimg.imread(path)
    assert img.shape[2] in (3, 4) and [p.name for p in (tmp_path / "q").iterdir()] == ["x.png"]
    # sample the plot column in the middle of the axes: top (north) is yellow-ish, bottom (south) is grey
    col = img.shape[1] * 45 // 100
    rows = np.nonzero(np.abs(img[:, col, :3] - np.array([0.8, 0.8, 0.8])).max(axis=1) < 0.02)[0]
    assert rows.size > 0 and rows.mean() > img.shape[0] * 0.6  # grey is at the bottom
    top = img[img.shape[0] * 20 // 100, col, :3]
    assert top[0] > 0.8 and top[1] > 0.8 and top[2] < 0.4  # viridis maximum (yellow) at the top


def test_all_missing_and_shape_check(tmp_path: Path) -> None:
    path = quicklook_png(np.full(GRID.shape, np.nan), GRID, str(tmp_path / "empty.png"), "empty")
    assert Path(path).stat().st_size > 0
    with pytest.raises(ValueError):
        quicklook_png(np.zeros((2, 2)), GRID, str(tmp_path / "bad.png"), "bad")
