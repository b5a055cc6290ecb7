"""Shuffle: reassemble the displayed patches against the source and read the order."""

from __future__ import annotations

import re

import numpy as np

from ..checks import grid_thumbnails, min_pairwise_mad
from .common import (
    Context,
    Fail,
    NotCheckable,
    interior_mask,
    matches,
    shown_and_source_cells,
)

_VARIANT = re.compile(r"^(\d+)x(\d+)(-masked)?$")


def validate(ctx: Context) -> str:
    m = _VARIANT.match(ctx.record.variant or "")
    if not m:
        raise NotCheckable(f"unknown shuffle variant {ctx.record.variant!r}")
    rows, cols, masked = int(m.group(1)), int(m.group(2)), bool(m.group(3))
    n = rows * cols
    shown, orig, src = shown_and_source_cells(ctx, rows, cols)
    ph, pw = shown[0].shape[:2]
    mask = interior_mask(ph, pw)
    tol = ctx.tol(0)
    a = [c[mask].astype(np.int16) for c in shown]
    b = [c[mask].astype(np.int16) for c in orig]
    dist = np.array([[float(np.mean(np.abs(a[k] - b[p]))) for p in range(n)] for k in range(n)])
    lossless = ctx.lossless(0)
    white = [k for k in range(n) if (np.all(a[k] == 255) if lossless else float(a[k].mean()) >= 245)]
    perm: dict[int, int] = {}  # displayed cell -> original patch
    blank = []
    for k in range(n):
        cand = matches(dist[k], tol, lossless)
        if len(cand) > 1:
            raise Fail(f"shown patch {k} matches source patches {cand}: ambiguous")
        if cand:
            perm[k] = cand[0]
        elif k in white and masked:
            blank.append(k)
        else:
            raise Fail(f"shown patch {k} matches no source patch")
    if len(set(perm.values())) != len(perm):
        raise Fail("two shown patches match the same source patch")
    if masked:
        if len(blank) != 1:
            raise Fail(f"masked variant shows {len(blank)} white unmatched patches, expected 1")
        (missing,) = set(range(n)) - set(perm.values())
        perm[blank[0]] = missing
    elif len(perm) != n:
        raise Fail("not every patch is shown")
    inverse = {p: k for k, p in perm.items()}
    if all(perm[k] == k for k in range(n)):
        raise Fail("the patches are shown in their original order: not shuffled")
    derived = "-".join(str(inverse[p]) for p in range(n))
    # ambiguity rule: no two (displayed) patches near-identical on thumbnails
    thumbs = grid_thumbnails(src, rows, cols)
    if masked:
        thumbs[perm[blank[0]]] = np.full_like(thumbs[0], 255)
    if min_pairwise_mad(thumbs) < ctx.thresholds.near_identical:
        raise Fail("ambiguity rule: two patches are near-identical")
    return derived
