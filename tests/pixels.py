"""Independent re-derivation helpers: read a generated dataset and recover each answer
from the output pixels and the source file alone (never from ``meta``)."""

from __future__ import annotations

import glob
import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

# input roots of the datasets read so far (manifest source_roots): sources are stored as
# "<root label>/<path inside the root>", and load_source reads them through these
ROOTS: dict[str, str] = {}


def read_rows(out_dir) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(str(out_dir), "data", "*.parquet"))):
        rows.extend(pq.read_table(path).to_pylist())
    manifest = os.path.join(str(out_dir), "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as fh:
            ROOTS.update(json.load(fh).get("source_roots") or {})  # the dataset read last wins
    return rows


def decode(cell: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB"))


def load_source(path: str) -> np.ndarray:
    from spatial_ssrl.sources.naming import resolve

    with Image.open(resolve(path, ROOTS)) as im:
        return np.asarray(im.convert("RGB"))


def source_rgb(path: str) -> np.ndarray:
    """A sample's ``source`` as RGB: a built-in procedural scene rendered again, or a file."""
    if path.startswith("procedural:"):
        from spatial_ssrl.sources import SourceRef, load_source_item

        return load_source_item(SourceRef(path, path, kind="procedural")).rgb
    return load_source(path)


def interior_mask(ph: int, pw: int, mirror: int | None = None) -> np.ndarray:
    """True on a cell's pixels away from its border band and its top-left label corner
    (and, with ``mirror`` 0/1, away from where a flip would carry that corner)."""
    m = np.ones((ph, pw), dtype=bool)
    band = max(4, round(0.02 * min(ph, pw)))
    m[:band], m[-band:], m[:, :band], m[:, -band:] = False, False, False, False
    corner = int(np.ceil(0.3 * min(ph, pw)))
    m[:corner, :corner] = False
    if mirror == 0:
        m[-corner:, :corner] = False
    elif mirror == 1:
        m[:corner, -corner:] = False
    return m


def cells(img: np.ndarray, rows: int, cols: int) -> list[np.ndarray]:
    ph, pw = img.shape[0] // rows, img.shape[1] // cols
    return [img[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw] for i in range(rows) for j in range(cols)]


def black_square(masked: np.ndarray, source: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left (x, y) of the side x side all-black window outside which ``masked`` equals
    ``source``: the region that was cut out."""
    zero = np.all(masked == 0, axis=2).astype(np.int64)
    ii = np.pad(zero.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    win = ii[side:, side:] - ii[:-side, side:] - ii[side:, :-side] + ii[:-side, :-side]
    differs = np.any(masked != source, axis=2)
    found = []
    for y, x in zip(*np.nonzero(win == side * side)):
        outside = differs.copy()
        outside[y:y + side, x:x + side] = False
        if not outside.any():
            found.append((int(x), int(y)))
    assert len(found) >= 1, "no black square explains the difference to the source"
    return found[0]
