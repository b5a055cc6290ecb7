"""Flip: find the one patch that differs from the source and the flip that restores it."""

from __future__ import annotations

import re

from ..checks import grid_thumbnails
from ..checks import mad as thumb_mad
from .common import (
    Context,
    Fail,
    NotCheckable,
    interior_mask,
    mad,
    matches,
    shown_and_source_cells,
)


def _flip(a, direction: int):
    return a[::-1] if direction == 0 else a[:, ::-1]


def validate(ctx: Context) -> str:
    m = re.match(r"^(\d)x(\d)$", ctx.record.variant or "")
    if not m:
        raise NotCheckable(f"unknown flip variant {ctx.record.variant!r}")
    rows, cols = int(m.group(1)), int(m.group(2))
    n = rows * cols
    shown, orig, src = shown_and_source_cells(ctx, rows, cols)
    ph, pw = shown[0].shape[:2]
    plain = interior_mask(ph, pw)
    tol = ctx.tol(0)
    same = [mad(shown[k], orig[k], plain) for k in range(n)]
    k = int(max(range(n), key=lambda i: same[i]))
    others = [i for i in range(n) if i != k and same[i] >= tol]
    if others or same[k] < tol:
        changed = [i for i in range(n) if same[i] >= tol]
        raise Fail(f"{len(changed)} patches differ from the source, expected exactly 1")
    undo = [mad(_flip(shown[k], d), orig[k], interior_mask(ph, pw, mirror=d)) for d in (0, 1)]
    fits = matches(undo, tol, ctx.lossless(0))
    if len(fits) != 1 or undo[fits[0]] >= same[k]:
        raise Fail(f"patch {k}: {'no' if not fits else 'more than one'} flip restores the source")
    d = fits[0]
    t = grid_thumbnails(src, rows, cols)[k]
    if thumb_mad(t, _flip(t, d)) < ctx.thresholds.flip_symmetry:
        raise Fail("ambiguity rule: the flipped patch is near-symmetric")
    return f"{k}-{d}"
