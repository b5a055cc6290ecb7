"""Shared pieces of the validators: outcomes, image decoding, source re-reading and
pixel comparisons. Nothing here calls a task's ``render`` or ``answer``."""

from __future__ import annotations

import io
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..checks import AmbiguityThresholds
from ..sources import LoadOptions, SourceRef, SourceSkip, load_item, load_source_item
from ..sources.naming import resolve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Mean absolute difference (0-255) under which two patches are the same pixels: exact
# for lossless images, with room for JPEG artefacts otherwise.
LOSSLESS_TOL = 0.5
LOSSY_TOL = 10.0
LOSSY_MARGIN = 4.0


class Fail(Exception):
    """The sample's stored answer (or an image) disagrees with what the pixels show."""


class NotCheckable(Exception):
    """The sample cannot be re-derived here (the reason says what is missing)."""


@dataclass
class Context:
    """What one sample's validator may use: the record, its params (None without meta),
    the re-read source, thresholds, and notes on what could not be checked."""

    record: Any
    params: dict | None
    meta: dict | None
    sources: SourceCache
    thresholds: AmbiguityThresholds
    format: str = "canonical"
    jpeg_quality: int = 95
    notes: list[str] = field(default_factory=list)

    def image(self, i: int) -> np.ndarray:
        return decode(self.record, i)

    def lossless(self, i: int) -> bool:
        data = self.record.images[i] if i < len(self.record.images) else None
        return bool(data) and data[:8] == PNG_MAGIC

    def tol(self, i: int) -> float:
        return LOSSLESS_TOL if self.lossless(i) else LOSSY_TOL

    def item(self, need_depth: bool = False):
        return self.sources.item(self.record, self.meta, need_depth)


def decode(record, i: int) -> np.ndarray:
    if i >= len(record.images) or record.images[i] is None:
        err = record.image_errors[i] if i < len(record.image_errors) else None
        raise Fail(f"image {i + 1} missing" + (f" ({err})" if err else ""))
    try:
        with Image.open(io.BytesIO(record.images[i])) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a broken image
        raise Fail(f"image {i + 1} cannot be decoded ({type(exc).__name__})") from None


def parse_meta(record) -> dict | None:
    if not record.meta:
        return None
    try:
        meta = json.loads(record.meta)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


class SourceCache:
    """Re-reads sources (files or procedural scenes) with the run's load options, keeping
    the last few (samples of one source usually sit together)."""

    def __init__(self, load: LoadOptions, size: int = 6, roots: dict[str, str] | None = None,
                 dataset_dir: str | None = None):
        self.load = load
        self.size = size
        self.roots = roots  # the manifest's source_roots: stored names are relative to them
        self.dataset_dir = dataset_dir
        self._cache: OrderedDict = OrderedDict()

    def item(self, record, meta: dict | None, need_depth: bool):
        source = record.source
        if not source:
            raise NotCheckable("no source recorded")
        depth_path = None
        if need_depth and not source.startswith("procedural:"):
            depth_path = record.depth_source or (meta or {}).get("depth_source") \
                or ((meta or {}).get("params") or {}).get("depth_source")
            if not depth_path:
                raise NotCheckable("no depth source recorded")
        # a procedural scene always comes with its depth: one entry serves every task
        key = (source, depth_path, need_depth and depth_path is not None)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._load(source, depth_path, meta or {})
            self._cache[key] = hit
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        if isinstance(hit, Exception):
            raise hit
        return hit

    def _load(self, source: str, depth_path: str | None, meta: dict):
        if not source.startswith("procedural:"):
            source = resolve(source, self.roots, self.dataset_dir)
            depth_path = resolve(depth_path, self.roots, self.dataset_dir)
        try:
            if source.startswith("procedural:"):
                return load_source_item(SourceRef(source, source, kind="procedural"), self.load)
            if depth_path is None:
                return load_item(SourceRef(source, source), self.load)
            params = meta.get("params") or {}
            conv = meta.get("depth_conversion") or {}
            intr = params.get("intrinsics")
            resize = meta.get("resize")
            if intr is not None and resize:
                sx, sy = resize["scale"]
                # undo the loader's pixel-centre scaling (c' = (c + 0.5) s - 0.5, f' = f s)
                intr = [intr[0] / sx, intr[1] / sy, (intr[2] + 0.5) / sx - 0.5, (intr[3] + 0.5) / sy - 0.5]
            ref = SourceRef(source, source, kind="rgbd", depth=depth_path,
                            depth_format=meta.get("depth_format"), depth_scale=meta.get("depth_scale"),
                            intrinsics=tuple(intr) if intr is not None else None,
                            baseline=conv.get("baseline"), disparity_offset=conv.get("doffs"))
            return load_source_item(ref, self.load)
        except SourceSkip as exc:
            return NotCheckable(f"source cannot be re-read: {exc.reason}")
        except Exception as exc:  # noqa: BLE001
            return NotCheckable(f"source cannot be re-read: {type(exc).__name__}: {exc}")


def mad(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference (0-255), over ``mask`` when given."""
    if a.shape != b.shape:
        return float("inf")
    if mask is not None:
        a, b = a[mask], b[mask]
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def matches(dists, tol: float, lossless: bool) -> list[int]:
    """Indices whose distance says "same pixels": below ``tol`` when lossless; for JPEG,
    the best one when below ``tol`` together with any others within a margin of it (so a
    second near-equal candidate shows up as ambiguous)."""
    d = [float(v) for v in dists]
    if lossless:
        return [i for i, v in enumerate(d) if v < tol]
    best = min(d)
    if best >= tol:
        return []
    return [i for i, v in enumerate(d) if v < best + max(LOSSY_MARGIN, best)]


def shown_and_source_cells(ctx, rows: int, cols: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The cells of the rendered grid image and of the source cropped to the grid, and that
    cropped source; fails when the image is not the source's grid size."""
    out = ctx.image(0)
    full = ctx.item().rgb
    H, W = full.shape[0] // rows * rows, full.shape[1] // cols * cols
    if out.shape[:2] != (H, W):
        raise Fail(f"image is {out.shape[1]}x{out.shape[0]}, expected {W}x{H} from the source")
    src = full[:H, :W]
    return grid_cells(out, rows, cols), grid_cells(src, rows, cols), src


def grid_cells(img: np.ndarray, rows: int, cols: int) -> list[np.ndarray]:
    ph, pw = img.shape[0] // rows, img.shape[1] // cols
    return [img[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw] for i in range(rows) for j in range(cols)]


def interior_mask(ph: int, pw: int, mirror: int | None = None) -> np.ndarray:
    """True away from a cell's border band and its top-left label corner (and, with
    ``mirror`` 0/1, from where a vertical/horizontal flip carries that corner)."""
    m = np.ones((ph, pw), dtype=bool)
    band = max(4, round(0.02 * min(ph, pw)))
    m[:band], m[-band:], m[:, :band], m[:, -band:] = False, False, False, False
    corner = math.ceil(0.3 * min(ph, pw))
    m[:corner, :corner] = False
    if mirror == 0:
        m[-corner:, :corner] = False
    elif mirror == 1:
        m[:corner, -corner:] = False
    return m


def check_marked_image(out: np.ndarray, src: np.ndarray, markers: dict[int, tuple[int, int]],
                       radius: int, inner: int, jpeg_quality: int | None = None) -> None:
    """The marked image keeps the source's grid, equals the source away from the markers
    (lossless: exactly outside the marker discs; JPEG: equal to the source encoded at the
    same quality outside the 16 px coding blocks the markers touch), and shows a ring of
    light/dark ink at every marker."""
    if out.shape != src.shape:
        raise Fail(f"image is {out.shape[1]}x{out.shape[0]}, source {src.shape[1]}x{src.shape[0]}")
    h, w = out.shape[:2]
    ref = src
    inside = np.zeros((h, w), dtype=bool)
    r = radius + 2
    if jpeg_quality is not None:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(src)).save(buf, "JPEG", quality=int(jpeg_quality))
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        for x, y in markers.values():
            inside[max(0, (y - r) // 16 * 16):(y + r) // 16 * 16 + 16,
                   max(0, (x - r) // 16 * 16):(x + r) // 16 * 16 + 16] = True
    else:
        for x, y in markers.values():
            y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            inside[y0:y1, x0:x1] |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    outside = np.abs(out.astype(np.int16) - ref.astype(np.int16)).max(axis=2)[~inside]
    limit = 0 if jpeg_quality is None else 8
    if outside.size and float(np.mean(outside > limit)) > (0 if jpeg_quality is None else 2e-4):
        raise Fail("image differs from the source away from the markers")
    for label, (x, y) in markers.items():
        y0, y1, x0, x1 = max(0, y - radius), min(h, y + radius + 1), max(0, x - radius), min(w, x + radius + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = (yy - y) ** 2 + (xx - x) ** 2
        ring = (d2 >= (inner + 1) ** 2) & (d2 <= (radius - 1) ** 2)
        px = out[y0:y1, x0:x1][ring].astype(np.int16)
        ink = (px.max(axis=1) < 80) | (px.min(axis=1) > 175)
        if px.size == 0 or float(ink.mean()) < 0.8:
            raise Fail(f"no marker ring drawn at marker {label} ({x}, {y})")
