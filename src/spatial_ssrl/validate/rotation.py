"""Rotation: find where the shown square sits in the source and which turn puts it back.

Works from the image, the source, the variant, the options and (patch variants) the patch
label named in the question, so it needs no meta and serves every export format. Whole
image: each of the four turns is undone in turn and the result searched for along the
source; exactly one turn may match. Patch grid: the unturned cells locate the grid in the
source, then the named cell is compared with the source cell turned each way.
"""

from __future__ import annotations

import re

import numpy as np

from ..checks import mad as thumb_mad
from ..checks import thumbnail
from .common import Context, Fail, NotCheckable, grid_cells, interior_mask, mad, matches

LETTERS = "ABCD"
_PATCH_VARIANT = re.compile(r"^patch-(\d)x(\d)$")
_NAMED_PATCH = re.compile(r"patch labeled (\d+) may have been rotated")
PROBES = 24  # probe pixels per side of the locating grid (at most PROBES**2 probes)


def _degrees(option: str) -> int | None:
    """The clockwise turn an option text describes (None when it names none)."""
    text = " ".join(option.lower().split())
    if text == "not rotated":
        return 0
    if "180" in text:
        return 180
    if "90" in text and ("counterclockwise" in text or "anticlockwise" in text or "counter-clockwise" in text):
        return 270
    if "90" in text and "clockwise" in text:
        return 90
    return None


def _undo(a: np.ndarray, degrees: int) -> np.ndarray:
    """Undo a clockwise turn: turn counter-clockwise by the same angle."""
    return np.rot90(a, k=degrees // 90)


def _turn(a: np.ndarray, degrees: int) -> np.ndarray:
    return np.rot90(a, k=-(degrees // 90))


def _locate(src: np.ndarray, tmpl: np.ndarray, mask: np.ndarray, lossless: bool, tol: float,
            keep: int = 4) -> list[tuple[float, int, int]]:
    """Offsets (y, x) where ``tmpl`` lies in ``src`` on ``mask``: a sparse grid of probe
    pixels is compared at every offset, the closest few are then compared in full.
    Returns ``(mad, y, x)`` of the offsets under ``tol``, best first."""
    h, w = tmpl.shape[:2]
    H, W = src.shape[:2]
    if h > H or w > W:
        return []
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return []
    step = max(1, ys.size // (PROBES * PROBES))
    ys, xs = ys[::step], xs[::step]
    vals = tmpl[ys, xs].astype(np.int16)
    oy = np.arange(H - h + 1)
    ox = np.arange(W - w + 1)
    dist = np.empty((oy.size, ox.size), dtype=np.float32)
    if oy.size <= ox.size:  # loop over the shorter axis of offsets, vectorise the longer
        for i, y in enumerate(oy):
            got = src[y + ys[None, :], ox[:, None] + xs[None, :]].astype(np.int16)
            dist[i] = np.abs(got - vals[None]).mean(axis=(1, 2))
    else:
        for j, x in enumerate(ox):
            got = src[oy[:, None] + ys[None, :], x + xs[None, :]].astype(np.int16)
            dist[:, j] = np.abs(got - vals[None]).mean(axis=(1, 2))
    flat = np.argsort(dist, axis=None, kind="stable")[:keep]
    found = []
    for f in flat:
        y, x = divmod(int(f), ox.size)
        if lossless and dist[y, x] > 0:
            continue
        d = mad(src[y:y + h, x:x + w], tmpl, mask)
        if d < tol:
            found.append((d, y, x))
    return sorted(found)


def _turns_offered(ctx: Context, n: int) -> list[int]:
    opts = ctx.record.options
    if not opts:
        raise Fail("no options stored: the letters cannot be mapped to turns")
    turns = [_degrees(str(o)) for o in opts]
    if None in turns:
        raise Fail(f"option {opts[turns.index(None)]!r} names no turn")
    expected = {0, 180} if n == 2 else {0, 90, 180, 270}
    if len(turns) != n or set(turns) != expected:
        raise Fail(f"options {opts!r} are not the {n} turns of the variant")
    return turns


def _symmetric(square: np.ndarray, others: tuple[int, ...], limit: float) -> bool:
    t = thumbnail(square)
    return min(thumb_mad(t, _turn(t, d)) for d in others) < limit


def validate(ctx: Context) -> str:
    variant = ctx.record.variant or ""
    if variant in ("2-way", "4-way"):
        return _whole(ctx, 2 if variant == "2-way" else 4)
    m = _PATCH_VARIANT.match(variant)
    if not m:
        raise NotCheckable(f"unknown rotation variant {variant!r}")
    return _patch(ctx, int(m.group(1)), int(m.group(2)))


def _whole(ctx: Context, n: int) -> str:
    turns = _turns_offered(ctx, n)
    out = ctx.image(0)
    src = ctx.item().rgb
    side = min(src.shape[:2])
    if out.shape[:2] != (side, side):
        raise Fail(f"image is {out.shape[1]}x{out.shape[0]}, expected the {side}x{side} square of the source")
    lossless, tol = ctx.lossless(0), ctx.tol(0)
    mask = np.ones((side, side), dtype=bool)
    best = []
    where = {}
    for t in (0, 90, 180, 270):
        hits = _locate(src, np.ascontiguousarray(_undo(out, t)), mask, lossless, tol)
        best.append(hits[0][0] if hits else float("inf"))
        if hits:
            where[t] = hits[0][1:]
    fits = matches(best, tol, lossless)
    if len(fits) != 1:
        raise Fail(f"{'no' if not fits else 'more than one'} turn of the image matches a square of the source")
    turn = (0, 90, 180, 270)[fits[0]]
    if turn not in turns:
        raise Fail(f"the image is turned {turn} degrees, which no option offers")
    y, x = where[turn]
    if _symmetric(src[y:y + side, x:x + side], (180,) if n == 2 else (90, 180), ctx.thresholds.rotation_symmetry):
        raise Fail("ambiguity rule: the square looks alike under a turn")
    return LETTERS[turns.index(turn)]


def _patch(ctx: Context, rows: int, cols: int) -> str:
    turns = _turns_offered(ctx, 4)
    named = _NAMED_PATCH.findall(ctx.record.problem or "")
    if len(set(named)) != 1:
        raise Fail("the question names no single patch")
    k = int(named[0])
    n = rows * cols
    if not 0 <= k < n:
        raise Fail(f"the question names patch {k}, the grid has {n}")
    out = ctx.image(0)
    src = ctx.item().rgb
    s = min(src.shape[0] // rows, src.shape[1] // cols)
    if out.shape[:2] != (rows * s, cols * s):
        raise Fail(f"image is {out.shape[1]}x{out.shape[0]}, expected {cols * s}x{rows * s} "
                   f"({rows}x{cols} square cells of {s} px) from the source")
    lossless, tol = ctx.lossless(0), ctx.tol(0)
    plain = interior_mask(s, s)
    mask = np.zeros(out.shape[:2], dtype=bool)
    for j in range(n):
        if j != k:
            i, c = divmod(j, cols)
            mask[i * s:(i + 1) * s, c * s:(c + 1) * s] = plain
    hits = _locate(src, out, mask, lossless, tol)
    if not hits:
        raise Fail("the cells other than the named one do not match the source anywhere")
    _, y, x = hits[0]
    region = src[y:y + rows * s, x:x + cols * s]
    shown, orig = grid_cells(out, rows, cols)[k], grid_cells(region, rows, cols)[k]
    dists = [mad(shown, _turn(orig, t), plain) for t in (0, 90, 180, 270)]
    fits = matches(dists, tol, lossless)
    if len(fits) != 1:
        raise Fail(f"patch {k}: {'no' if not fits else 'more than one'} turn of the source cell matches it")
    turn = (0, 90, 180, 270)[fits[0]]
    if _symmetric(orig, (90, 180), ctx.thresholds.rotation_symmetry):
        raise Fail("ambiguity rule: the patch looks alike under a turn")
    return LETTERS[turns.index(turn)]
