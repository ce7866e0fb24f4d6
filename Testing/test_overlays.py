"""Quick-look PNGs: windowed grey image, one-pixel outlines in the given colours, title band above."""

from __future__ import annotations

import numpy as np
from PIL import Image

from smartimaging.overlays import TITLE_PX, outline_png


def test_outline_png_draws_the_mask_boundary_only(tmp_path):
    image = np.tile(np.linspace(0, 100, 40), (20, 1))  # dark left, bright right
    mask = np.zeros((20, 40), bool)
    mask[5:15, 10:30] = True
    outline_png(image, [(mask, (255, 0, 0))], tmp_path / "o.png", "title", width=80, window=(0, 100))
    png = np.asarray(Image.open(tmp_path / "o.png").convert("RGB"))
    assert png.shape == (40 + TITLE_PX + 6, 80, 3)
    picture = png[TITLE_PX + 6:]
    red = np.all(picture == (255, 0, 0), axis=2)
    rows, cols = np.nonzero(red)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 29, 20, 59)  # the mask ×2, its edge only
    assert not red[12:28, 22:58].any()
    assert picture[20, 5, 0] < 40 and picture[20, 75, 0] > 215  # windowed grey, left to right
    dark = np.asarray(Image.open(tmp_path / "o.png").convert("L"))[: TITLE_PX + 6]
    assert dark.min() < 128  # the title is drawn


def test_dark_is_high_inverts_the_grey(tmp_path):
    outline_png(np.tile(np.linspace(0, 1, 10), (10, 1)), [], tmp_path / "o.png", "", width=10, window=(0, 1),
                dark_is_high=True)
    picture = np.asarray(Image.open(tmp_path / "o.png").convert("L"))[TITLE_PX + 6:]
    assert picture[5, 0] == 255 and picture[5, 9] == 0
