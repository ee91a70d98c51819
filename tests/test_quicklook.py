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


# --- the capture quick-look: pre/post side by side, one colour scale, footprints, coastlines -------------------
LA = GridSpec(BBox(-119.7, 32.5, -116.7, 35.5), 60, 60)  # the Los Angeles coast
OCEAN = GridSpec(BBox(-150.0, 0.0, -147.0, 3.0), 60, 60)  # open Pacific: no coast, no border


def _panel_pixels(img: np.ndarray, panel: int) -> np.ndarray:
    """The plot area of panel 0 (left) or 1 (right), from the fixed layout of capture_quicklook_png."""
    h, w = img.shape[:2]
    x0, x1 = (0.1, 0.43) if panel == 0 else (0.52, 0.85)
    return img[int(0.2 * h) : int(0.8 * h), int(x0 * w) : int(x1 * w), :3]


def _dark(pixels: np.ndarray) -> int:
    return int((pixels.max(axis=-1) < 0.3).sum())


def test_capture_quicklook_one_colour_scale(tmp_path: Path) -> None:
    from oco_l3.quicklook import capture_quicklook_png

    pre = np.zeros(OCEAN.shape)
    post = np.ones(OCEAN.shape)  # one scale: pre is the low end of viridis (purple), post the high end (yellow)
    img = mpimg.imread(capture_quicklook_png(pre, post, OCEAN, str(tmp_path / "q.png"), "scale"))
    left, right = _panel_pixels(img, 0), _panel_pixels(img, 1)
    purple = np.median(left.reshape(-1, 3), axis=0)
    yellow = np.median(right.reshape(-1, 3), axis=0)
    assert purple[2] > 0.25 and purple[1] < 0.1  # viridis(0) = (0.27, 0.00, 0.33)
    assert yellow[0] > 0.9 and yellow[1] > 0.85 and yellow[2] < 0.2  # viridis(1) = (0.99, 0.91, 0.14)


def test_capture_quicklook_coastlines_and_footprints(tmp_path: Path) -> None:
    from oco_l3.quicklook import capture_quicklook_png
    from oco_l3.sounding_footprints import SoundingFootprints

    missing = np.full(LA.shape, np.nan)
    coast = mpimg.imread(capture_quicklook_png(missing, None, LA, str(tmp_path / "la.png"), "LA"))
    ocean = mpimg.imread(capture_quicklook_png(missing, None, OCEAN, str(tmp_path / "ocean.png"), "ocean"))
    assert _dark(_panel_pixels(coast, 0)) > 300 and _dark(_panel_pixels(ocean, 0)) == 0  # the coast is drawn
    # 100 footprints of 0.1 x 0.1 degree in the ocean box, half of them good: outlined on their own panel
    lat0, lon0 = np.meshgrid(0.5 + 0.2 * np.arange(10), -149.5 + 0.2 * np.arange(10), indexing="ij")
    vlat = np.stack([lat0, lat0, lat0 + 0.1, lat0 + 0.1], axis=-1).reshape(-1, 4)
    vlon = np.stack([lon0, lon0 + 0.1, lon0 + 0.1, lon0], axis=-1).reshape(-1, 4)
    good = np.arange(100) % 2 == 0
    fp = SoundingFootprints(vlat.astype(np.float32), vlon.astype(np.float32), good)
    img = mpimg.imread(capture_quicklook_png(missing, missing, OCEAN, str(tmp_path / "fp.png"), "fp", footprints=fp))
    pre_lines, post_lines = _dark(_panel_pixels(img, 0)), _dark(_panel_pixels(img, 1))
    grey = np.abs(_panel_pixels(img, 0) - 0.8).max(axis=-1) < 0.02
    assert pre_lines == 0 and grey.mean() < 0.97  # thin translucent outlines: never black, but drawn
    plain = _panel_pixels(ocean, 0)
    assert np.abs(_panel_pixels(img, 0) - plain).max() > 0.05 and post_lines == 0
    diff_pre = (np.abs(_panel_pixels(img, 0) - plain).max(axis=-1) > 0.05).sum()
    diff_post = (np.abs(_panel_pixels(img, 1) - _panel_pixels(ocean, 1)).max(axis=-1) > 0.05).sum()
    assert 0 < diff_post < diff_pre  # the post-QF panel outlines the 50 good footprints, the pre-QF one all 100


def test_polar_quicklook(tmp_path: Path) -> None:
    from oco_l3.icesat2.grids import resolve_grid
    from oco_l3.icesat2.writers import write_quicklook

    grid = resolve_grid("ease2-north-25km")
    values = np.full(grid.shape, np.nan)
    values[grid.ny // 2 - 10 : grid.ny // 2 + 10, grid.nx // 2 - 10 : grid.nx // 2 + 10] = 1.0  # 500 km at the pole
    path = write_quicklook(tmp_path / "polar.png", grid, values, "polar")
    img = mpimg.imread(path)[..., :3]
    land = (np.abs(img - 0.85).max(axis=-1) < 0.02).mean()
    data = (np.abs(img - np.array([0.128, 0.567, 0.551])).max(axis=-1) < 0.03).mean()  # constant: viridis(0.5)
    assert land > 0.03 and data > 0.02  # the data, and Greenland, Canada and Svalbard in grey around it
