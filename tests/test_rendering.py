"""Labels stay legible at any resolution and cover little of a patch."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ssrl.sources import Item
from spatial_ssrl.tasks import make_task


def _labelled_vs_plain(h, w, variant="2x2"):
    """Render a shuffle sample and the same arrangement without overlay; return both and
    the grid shape."""
    rng = np.random.default_rng(h * 7 + w)
    rgb = rng.integers(40, 216, size=(h, w, 3), dtype=np.uint8)  # mid-range noise: labels are black/white
    item = Item(id="noise", rgb=rgb)
    task = make_task("shuffle", variant)
    params = task.make_params(np.random.default_rng(0), item)
    out = task.render(item, params).images[0]
    rows, cols = task.rows, task.cols
    ph, pw = h // rows, w // cols
    plain = np.empty_like(out)
    labels = [int(x) for x in task.answer(params).split("-")]
    for p, k in enumerate(labels):  # put original patch p where the answer says it is shown
        i, j = divmod(k, cols)
        pi, pj = divmod(p, cols)
        plain[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw] = rgb[pi * ph:(pi + 1) * ph, pj * pw:(pj + 1) * pw]
    return out, plain, rows, cols, ph, pw


@pytest.mark.parametrize("h, w, variant", [(120, 160, "2x2"), (480, 640, "2x2"), (3000, 4000, "2x2"),
                                           (480, 640, "1x4"), (900, 300, "4x1")])
def test_label_height_and_coverage(h, w, variant):
    out, plain, rows, cols, ph, pw = _labelled_vs_plain(h, w, variant)
    short = min(ph, pw)
    for k in range(rows * cols):
        i, j = divmod(k, cols)
        cell_out = out[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw]
        cell_plain = plain[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw]
        changed = np.any(cell_out != cell_plain, axis=2)
        band = max(2, round(short / 200))
        changed[:band], changed[-band:], changed[:, :band], changed[:, -band:] = False, False, False, False
        ys, xs = np.nonzero(changed)
        assert len(ys), "no label drawn"
        # the label sits in the top-left corner and is at least a tenth of the patch tall
        assert ys.max() < ph / 2 and xs.max() < pw / 2
        height = ys.max() - ys.min() + 1
        assert height >= short / 10, (height, short)
        assert changed.mean() <= 0.05, changed.mean()
        # outlined: both near-white and near-black pixels are present in the label
        label_px = cell_out[changed]
        assert (label_px.min(axis=1) > 230).any() and (label_px.max(axis=1) < 25).any()


def test_borders_are_drawn():
    out, plain, rows, cols, ph, pw = _labelled_vs_plain(480, 640)
    assert np.all(out[0, :] == (255, 0, 0)) and np.all(out[:, 0] == (255, 0, 0))
    assert np.all(out[ph, 5:-5] == (255, 0, 0))  # the top edge of the second row
