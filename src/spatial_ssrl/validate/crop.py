"""Crop: locate the blacked square in the masked image and find the option equal to the
source's pixels there."""

from __future__ import annotations

import numpy as np

from ..checks import mad as thumb_mad
from ..checks import thumbnail
from .common import Context, Fail, mad, matches

LETTERS = "ABCDE"
MAX_CANDIDATES = 64


def _black_windows(masked: np.ndarray, src: np.ndarray, side: int, lossless: bool) -> list[tuple[int, int]]:
    """Top-left corners (x, y) of side x side windows that are black in ``masked`` and
    cover every pixel where ``masked`` differs from the source (JPEG: the windows closest
    to all black, among those at least 90 % dark)."""
    diff = np.abs(masked.astype(np.int16) - src.astype(np.int16)).max(axis=2)
    ys, xs = np.nonzero(diff > (0 if lossless else 64))
    if ys.size == 0:
        raise Fail("masked image equals the source: nothing is blacked out")
    h, w = masked.shape[:2]
    if lossless:
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
        if y1 - y0 >= side or x1 - x0 >= side:
            return []
        # only windows starting in [y1 - side + 1, y0] x [x1 - side + 1, x0] can cover them
        oy, ox = max(0, y1 - side + 1), max(0, x1 - side + 1)
        ey, ex = min(h, y0 + side), min(w, x0 + side)
    else:
        oy, ox, ey, ex = 0, 0, h, w
    dark = np.all(masked[oy:ey, ox:ex] <= (0 if lossless else 40), axis=2)
    if dark.shape[0] < side or dark.shape[1] < side:
        return []
    win = _window_sums(dark, side)
    if lossless:
        wy, wx = np.nonzero(win >= side * side)
        return [(int(x) + ox, int(y) + oy) for y, x in zip(wy[:MAX_CANDIDATES], wx[:MAX_CANDIDATES])]
    # JPEG: among mostly dark windows, those covering the most changed pixels, darkest first
    ok = win >= 0.9 * side * side
    if not ok.any():
        return []
    cover = np.where(ok, _window_sums(diff > 64, side), -1)
    ok &= cover >= cover.max() - 2 * side
    wy, wx = np.nonzero(ok)
    order = np.argsort(-win[wy, wx], kind="stable")[:MAX_CANDIDATES]
    return [(int(wx[i]), int(wy[i])) for i in order]


def _window_sums(a: np.ndarray, side: int) -> np.ndarray:
    """Sum of ``a`` over every side x side window (indexed by its top-left corner)."""
    ii = np.pad(a.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return ii[side:, side:] - ii[:-side, side:] - ii[side:, :-side] + ii[:-side, :-side]


def _n_options(variant: str | None) -> int:
    head = (variant or "").split("-", 1)[0]
    if not head.isdigit() or not 2 <= int(head) <= len(LETTERS):
        raise Fail(f"unknown crop variant {variant!r}")
    return int(head)


def validate(ctx: Context) -> str:
    rec = ctx.record
    n = _n_options(rec.variant)
    letters = LETTERS[:n]
    if len(rec.images) != n + 1:
        raise Fail(f"{len(rec.images)} images, expected {n + 1} (masked image and {n} options)")
    if rec.options is not None and list(rec.options) != list(letters):
        raise Fail(f"options {rec.options!r}, expected {letters[0]}-{letters[-1]}")
    masked = ctx.image(0)
    src = ctx.item().rgb
    if masked.shape != src.shape:
        raise Fail(f"masked image is {masked.shape[1]}x{masked.shape[0]}, source {src.shape[1]}x{src.shape[0]}")
    side = min(src.shape[:2]) // 2
    windows = _black_windows(masked, src, side, ctx.lossless(0))
    if not windows:
        raise Fail("no blacked square of the crop's size explains the masked image")
    options = [ctx.image(i) for i in range(1, n + 1)]
    for i, opt in enumerate(options):
        if opt.shape != (side, side, 3):
            raise Fail(f"option {LETTERS[i]} is {opt.shape[1]}x{opt.shape[0]}, expected {side}x{side}")
    tol = max(ctx.tol(i) for i in range(1, n + 1))
    lossless = all(ctx.lossless(i) for i in range(n + 1))
    dists = [float("inf")] * n
    truth_at = [None] * n
    for x, y in windows:
        truth = src[y:y + side, x:x + side]
        for i, opt in enumerate(options):
            d = mad(opt, truth)
            if lossless and d < tol:  # every window explaining the mask counts
                truth_at[i] = truth_at[i] if truth_at[i] is not None else truth
                dists[i] = min(dists[i], d)
            elif not lossless and d < dists[i]:
                dists[i], truth_at[i] = d, truth
    letters = {LETTERS[i] for i in matches(dists, tol, lossless)}
    truth_of = {LETTERS[i]: truth_at[i] for i in range(n)}
    if not letters:
        raise Fail("no option equals the source's pixels under the black square")
    if len(letters) > 1:
        raise Fail(f"options {sorted(letters)} all equal the source crop: ambiguous")
    (letter,) = letters
    t = thumbnail(truth_of[letter])
    for i, opt in enumerate(options):
        if LETTERS[i] != letter and thumb_mad(t, thumbnail(opt)) < ctx.thresholds.crop_distractor - 1.0:
            raise Fail(f"ambiguity rule: option {LETTERS[i]} is near-identical to the true crop")
    return letter
