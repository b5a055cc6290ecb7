"""RGB-D sources: pairing images with depth files, and loading a pair into one :class:`Item`.

Loading (:func:`load_rgbd_item`)
--------------------------------
The RGB is read by :func:`.images.load_item`, unchanged, so an RGB-D source yields the same
pixels as the same file read as a plain image. The depth file is read by the reader for its
format (see :mod:`.depth_formats`), then:

1. Invalid pixels are the union of the format's own convention (0 = missing, mask file,
   disparity <= 0), NaN/inf, and non-positive depth. Negative depth: see
   :data:`NEGATIVE_TOLERANCE` below.
2. Disparity is turned into depth: ``fx * baseline / (d + doffs)`` (metres, kind
   ``metric``) when ``SourceRef.intrinsics`` and ``SourceRef.baseline`` are known, otherwise
   ``1 / (d + doffs)`` (kind ``order``: nearer is smaller, nothing more). ``fx`` and
   ``doffs`` (0 unless given) are in pixels of the RGB file and are rescaled to the
   disparity map's own grid first.
3. The map is refused if no pixel is valid (``depth_all_invalid``), if fewer than
   ``min_valid_fraction`` (5 %) are valid (``depth_too_few_valid``) or if all valid pixels
   hold one value (``depth_constant``).
4. The map is put on the item's pixel grid. The depth grid must have the RGB file's aspect
   ratio within :data:`ASPECT_TOLERANCE` (1 %), else ``depth_shape_mismatch``; any size
   difference (another resolution on disk, or the RGB downscaled by ``LoadOptions``) is
   bridged with nearest-neighbour sampling, which never invents depth values between a
   foreground and a background pixel. ``info['depth_resampled']`` records ``from``/``to``.
5. ``SourceRef.intrinsics`` (pixels of the RGB file) are scaled to the item's grid with
   the pixel-centre convention ``c' = (c + 0.5) * s - 0.5``, ``f' = f * s``.

An RGB file that carries an EXIF orientation other than "normal" is refused with
``depth_orientation_mismatch``: the RGB is shown rotated but we cannot know whether the
depth file was saved on the stored or on the displayed grid, so we do not guess.

Every depth problem raises :class:`SourceSkip` with a reason starting with ``depth_``;
problems with the RGB raise the plain image reasons of :func:`load_item`.

Negative depth
~~~~~~~~~~~~~~
Negative numbers cannot be depth. When they are all one value (a sentinel such as -1)
they are read as "missing". Otherwise a few (at most 1 % of the finite pixels: sensor or
interpolation noise) are marked invalid and counted in ``info['depth_negative_invalid']``;
more than that means the file does not hold depth in the assumed format (e.g. a signed
or log encoding), and the map is refused as ``depth_negative`` rather than silently using
its positive half. Disparity is exempt: disparity <= 0 simply means "no match".

Skip reasons (all depth reasons start with ``depth_``)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``depth_not_found`` (depth or mask file missing, or no depth named), ``depth_unreadable``
(corrupt npy/npz/h5/png/pfm), ``depth_missing_key`` (h5 without ``depth``, npz without a
known array), ``depth_bad_dtype`` (non-numeric, object, complex; 8-bit PNG where 16-bit is
required), ``depth_bad_shape`` (not HxW/HxWx1, mask of another shape),
``depth_too_many_pixels``, ``depth_unknown_format``, ``depth_h5py_not_installed``,
``depth_all_invalid``, ``depth_too_few_valid``, ``depth_constant``, ``depth_negative``,
``depth_shape_mismatch`` (aspect ratio), ``depth_orientation_mismatch`` (EXIF-rotated RGB),
``depth_bad_intrinsics`` (see :func:`check_intrinsics`: not four finite numbers, a focal
length outside :data:`FOCAL_RANGE` times the image's longer side, or a principal point
more than :data:`PRINCIPAL_MARGIN` of the image size outside it), ``depth_overflow``
(disparity so small, or ``fx * baseline`` so large, that depth is not a finite float32).
The depth or mask path must be a regular file (a FIFO is never opened: ``depth_not_found``).

The RGB of an item whose depth is refused still serves the depth-free tasks (the engine
retries it as a plain image).

Discovery (:func:`discover_rgbd`)
---------------------------------
See the function's docstring: ``.jsonl`` manifests and folder auto-pairing.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .base import Item, SourceRef, SourceSkip, display_path
from .depth_formats import (
    DEPTH_FORMATS,
    H5_EXTENSIONS,
    RawDepth,
    _require_file,
    mask_candidates,
    png_is_16bit,
    read_depth_file,
    sniff_format,
)
from .files import (
    IMAGE_EXTENSIONS,
    LIST_EXTENSIONS,
    InputError,
    SeenFiles,
    _missing_input,
    read_list_file,
    source_kind_of,
    walk_folders,
)
from .images import LoadOptions, load_item
from .video import VIDEO_EXTENSIONS

MIN_VALID_FRACTION = 0.05
"""Depth maps with fewer valid pixels than this fraction are refused."""
ASPECT_TOLERANCE = 0.01
"""Relative difference of width/height ratios up to which a depth map is resampled."""
NEGATIVE_TOLERANCE = 0.01
"""Largest fraction of finite pixels that may be negative (they become invalid)."""
DEPTH_KINDS = ("metric", "relative", "order")
FOCAL_RANGE = (0.05, 100.0)
"""Accepted focal lengths (fx, fy), as multiples of the image's longer side in pixels: from a
wide fisheye (about 0.15) to a long telephoto with margin both ways."""
PRINCIPAL_MARGIN = 0.5
"""How far outside the image the principal point may lie, as a fraction of its width
(cx) or height (cy): ``-m*W <= cx <= (1+m)*W``."""


# ============================================================================ loading


def _nearest(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D array to h x w (pixel centres aligned)."""
    sh, sw = a.shape
    rows = np.minimum(((np.arange(h) + 0.5) * (sh / h)).astype(np.intp), sh - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * (sw / w)).astype(np.intp), sw - 1)
    return a[rows[:, None], cols[None, :]]


def scale_intrinsics(
    intrinsics: tuple[float, float, float, float], sx: float, sy: float
) -> tuple[float, float, float, float]:
    """Intrinsics of an image resized by (sx, sy), pixel centres at integer coordinates."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    return (fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5)


def _handle_negatives(raw: RawDepth, path: str, valid: np.ndarray, info: dict) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        neg = raw.values < 0
    if not neg.any():  # the usual case: one cheap pass
        return valid
    neg &= valid
    n_neg = int(np.count_nonzero(neg))
    if not n_neg:
        return valid
    negatives = raw.values[neg]
    if float(negatives.min()) == float(negatives.max()):
        info["depth_negative_sentinel"] = float(negatives[0])
    else:
        n_finite = int(np.count_nonzero(valid))
        if n_neg > NEGATIVE_TOLERANCE * n_finite:
            raise SourceSkip(
                "depth_negative", path,
                f"{n_neg} of {n_finite} finite pixels are negative ({n_neg / n_finite:.1%})",
            )
        info["depth_negative_invalid"] = n_neg
    return valid & ~neg


def _check_validity(depth: np.ndarray, valid: np.ndarray, path: str, min_fraction: float) -> None:
    """``depth`` holds NaN wherever ``valid`` is False."""
    n_valid = int(np.count_nonzero(valid))
    total = int(valid.size)
    if n_valid == 0:
        raise SourceSkip("depth_all_invalid", path, "no valid depth pixel")
    if n_valid < min_fraction * total:
        raise SourceSkip(
            "depth_too_few_valid", path, f"{n_valid / total:.2%} valid, below {min_fraction:.0%}"
        )
    lo = float(np.nanmin(depth))
    hi = float(np.nanmax(depth))
    if hi - lo <= 1e-6 * max(abs(hi), abs(lo)):
        raise SourceSkip("depth_constant", path, f"every valid pixel is {lo:g}")


def _nan_where_invalid(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float32 copy of ``depth`` (or ``depth`` itself when it is a float32 array we may
    write to) with NaN wherever ``valid`` is False."""
    if depth.dtype == np.float32 and depth.flags.writeable and depth.flags.c_contiguous:
        np.copyto(depth, np.float32(np.nan), where=~valid)
        return depth
    return np.where(valid, depth, np.float32(np.nan)).astype(np.float32, copy=False)


def _disparity_to_depth(
    raw: RawDepth, valid: np.ndarray, ref: SourceRef, file_w: int, info: dict
) -> tuple[np.ndarray, np.ndarray, str]:
    d = raw.values
    sx = raw.shape[1] / float(file_w)  # disparity-map pixels per RGB-file pixel
    doffs = ref.disparity_offset or 0.0
    denom = d + np.float32(doffs * sx)
    with np.errstate(invalid="ignore"):
        valid = valid & (denom > 0)
    safe = np.where(valid, denom, np.float32(1.0))
    if ref.intrinsics is not None and ref.baseline is not None:
        fx = float(ref.intrinsics[0]) * sx
        with np.errstate(over="ignore", divide="ignore"):  # overflow: depth_overflow
            depth = (np.float32(fx * float(ref.baseline)) / safe).astype(np.float32)
        info["depth_conversion"] = {
            "from": "disparity", "formula": "fx*baseline/(d+doffs)",
            "fx": fx, "baseline": float(ref.baseline), "doffs": doffs * sx,
        }
        kind = "metric"
    else:
        with np.errstate(over="ignore", divide="ignore"):  # overflow: depth_overflow
            depth = (np.float32(1.0) / safe).astype(np.float32)
        info["depth_conversion"] = {"from": "disparity", "formula": "1/(d+doffs)", "doffs": doffs * sx,
                                    "why": "no intrinsics/baseline: only the order is known"}
        kind = "order"
    return depth, valid, kind


def _intrinsics_ok(intrinsics) -> bool:
    try:
        vals = [float(v) for v in intrinsics]
    except (TypeError, ValueError, OverflowError):
        return False
    return len(vals) == 4 and all(math.isfinite(v) for v in vals) and vals[0] > 0 and vals[1] > 0


def check_intrinsics(intrinsics, width: int, height: int) -> str | None:
    """Why pinhole ``intrinsics`` (fx, fy, cx, cy, pixels of a ``width`` x ``height`` image)
    cannot be this image's camera, or None when they can (see :data:`FOCAL_RANGE`,
    :data:`PRINCIPAL_MARGIN`)."""
    if not _intrinsics_ok(intrinsics):
        return "intrinsics must be four finite numbers with fx, fy > 0"
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    side = float(max(width, height))
    lo, hi = FOCAL_RANGE[0] * side, FOCAL_RANGE[1] * side
    for name, f in (("fx", fx), ("fy", fy)):
        if not lo <= f <= hi:
            return f"{name}={f:g} outside [{lo:g}, {hi:g}] ({FOCAL_RANGE[0]:g}-{FOCAL_RANGE[1]:g} x the longer side {side:g} px)"
    m = PRINCIPAL_MARGIN
    for name, c, size in (("cx", cx, width), ("cy", cy, height)):
        if not -m * size <= c <= (1 + m) * size:
            return f"{name}={c:g} outside [{-m * size:g}, {(1 + m) * size:g}] for an image of {width}x{height}"
    return None


def load_rgbd_item(
    ref: SourceRef,
    options: LoadOptions = LoadOptions(),  # noqa: B008 (frozen: one shared default is safe)
    *,
    min_valid_fraction: float = MIN_VALID_FRACTION,
) -> Item:
    """Read the RGB of ``ref`` like :func:`load_item`, then attach its depth (see the module
    docstring). Raises :class:`SourceSkip`: image reasons for the RGB, ``depth_*`` reasons
    for the depth."""
    item = load_item(ref, options)
    info = item.info
    depth_path = ref.depth
    if not depth_path:
        raise SourceSkip("depth_not_found", ref.path, "the source names no depth file")
    depth_path = os.path.abspath(depth_path)
    _require_file(depth_path)  # before any sniffing: a FIFO must never be opened
    if ref.mask:
        _require_file(os.path.abspath(ref.mask), "mask")
    if info.get("exif_orientation") not in (None, 1):
        raise SourceSkip(
            "depth_orientation_mismatch", depth_path,
            f"the RGB file has EXIF orientation {info['exif_orientation']}; the depth grid is ambiguous",
        )
    if ref.intrinsics is not None:
        file_w, file_h = info.get("file_size", [item.width, item.height])
        why = check_intrinsics(ref.intrinsics, file_w, file_h)
        if why:
            raise SourceSkip("depth_bad_intrinsics", depth_path, f"intrinsics {list(ref.intrinsics)!r}: {why}")
    fmt = ref.depth_format or sniff_format(depth_path, ref.mask)
    if fmt not in DEPTH_FORMATS:
        raise SourceSkip("depth_unknown_format", depth_path, f"unknown depth_format {fmt!r}")
    raw = read_depth_file(depth_path, fmt, mask_path=ref.mask, scale=ref.depth_scale, max_pixels=options.max_pixels)

    notes: dict[str, Any] = {"depth_format": fmt, "depth_file_size": [raw.shape[1], raw.shape[0]]}
    notes.update(raw.notes)
    finite = np.isfinite(raw.values)
    valid = raw.valid & finite
    if raw.kind != "disparity":
        valid = _handle_negatives(raw, depth_path, valid, notes)
        with np.errstate(invalid="ignore"):
            valid &= raw.values > 0

    file_w, file_h = info.get("file_size", [item.width, item.height])
    dh, dw = raw.shape
    if (dh, dw) != (file_h, file_w):
        ratio = (dw / dh) / (file_w / file_h)
        if abs(ratio - 1.0) > ASPECT_TOLERANCE:
            raise SourceSkip(
                "depth_shape_mismatch", depth_path,
                f"depth {dw}x{dh} vs image {file_w}x{file_h}: aspect ratios differ by {abs(ratio - 1):.1%}",
            )

    if raw.kind == "disparity":
        depth, valid, kind = _disparity_to_depth(raw, valid, ref, file_w, notes)
        with np.errstate(invalid="ignore"):
            overflow = valid & ~np.isfinite(depth)
        if overflow.any():
            n = int(np.count_nonzero(overflow))
            raise SourceSkip(
                "depth_overflow", depth_path,
                f"{n} valid disparity pixel(s) give a depth that is not a finite float32 "
                f"({notes['depth_conversion']['formula']})",
            )
    else:
        depth, kind = raw.values, raw.kind
    depth = _nan_where_invalid(depth, valid)  # the readers hand over arrays of their own
    _check_validity(depth, valid, depth_path, min_valid_fraction)

    h, w = item.height, item.width
    if (dh, dw) != (h, w):
        depth = _nearest(depth, h, w)
        valid = _nearest(valid, h, w)
        notes["depth_resampled"] = {"from": [dw, dh], "to": [w, h], "method": "nearest"}
        if not valid.any():
            raise SourceSkip("depth_all_invalid", depth_path, "no valid pixel left after resampling")

    depth = np.ascontiguousarray(depth)
    valid = np.ascontiguousarray(valid, dtype=bool)
    depth.setflags(write=False)
    valid.setflags(write=False)

    intrinsics = None
    if ref.intrinsics is not None:
        sx, sy = w / float(file_w), h / float(file_h)
        intrinsics = scale_intrinsics(ref.intrinsics, sx, sy)
        if (sx, sy) != (1.0, 1.0):
            notes["intrinsics_scale"] = [sx, sy]
    notes["depth_valid_fraction"] = round(np.count_nonzero(valid) / valid.size, 6)
    info.update(notes)
    item.depth = depth
    item.mask = valid
    item.depth_kind = kind
    item.depth_path = display_path(ref.depth_name or depth_path)
    item.intrinsics = intrinsics
    if ref.pair is not None:
        from .posed import attach_pair

        attach_pair(item, ref, options)
    return item


# ============================================================================ discovery


class DiscoveryReport(Counter):
    """The ignored-input counter of :func:`discover_rgbd` (reason -> count), plus
    ``details``: reason -> a few human-readable places (``pairs.jsonl:7 (not JSON)``)."""

    MAX_DETAILS = 20

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.details: dict[str, list[str]] = {}

    def note(self, reason: str, where: str) -> None:
        self[reason] += 1
        lst = self.details.setdefault(reason, [])
        if len(lst) < self.MAX_DETAILS:
            lst.append(where)


@dataclass(frozen=True)
class _Partner:
    depth: str
    fmt: str
    mask: str | None = None


_RGB_TOKENS = ("img", "image", "rgb", "color")
_DEPTHLIKE_EXTENSIONS = frozenset({".npy", ".npz", ".pfm"}) | H5_EXTENSIONS


def _substitute_last(stem: str, token: str, by: str) -> str | None:
    i = stem.rfind(token)
    if i < 0:
        return None
    return stem[:i] + by + stem[i + len(token):]


def _is_depth_png(folder: str, name: str) -> bool:
    """A 16-bit PNG whose name says depth/disparity: a depth file, never an image."""
    stem, ext = os.path.splitext(name)
    low = stem.lower()
    return ext.lower() == ".png" and ("depth" in low or "disp" in low) and png_is_16bit(os.path.join(folder, name))


def _candidates(folder: str, image: str, names: set[str], depth_pngs: set[str]) -> dict[str, _Partner]:
    """Depth files that follow a naming convention for ``image`` and exist in ``names``."""
    stem = os.path.splitext(image)[0]
    depth_stems = [stem + "_depth"]
    disp_stems = [stem + "_disp", stem + "_disparity"]
    for tok in _RGB_TOKENS:
        for by, bucket in (("depth", depth_stems), ("disp", disp_stems)):
            s = _substitute_last(stem, tok, by)
            if s and s not in bucket:
                bucket.append(s)
    found: dict[str, _Partner] = {}

    def npy_partner(name: str) -> _Partner:
        path = os.path.join(folder, name)
        mask = next((os.path.basename(m) for m in mask_candidates(path) if os.path.basename(m) in names), None)
        return _Partner(name, "diode" if mask else "npy", mask)

    for d in depth_stems:  # DIODE / sample-repo npy, MegaDepth h5, NYU 16-bit png
        if d + ".npy" in names:
            found[d + ".npy"] = npy_partner(d + ".npy")
        for ext in H5_EXTENSIONS:
            if d + ext in names:
                found[d + ext] = _Partner(d + ext, "megadepth")
        if d + ".png" in depth_pngs:
            found[d + ".png"] = _Partner(d + ".png", "png16")
    for ext in sorted(H5_EXTENSIONS):  # MegaDepth: X.jpg + X.h5
        if stem + ext in names:
            found[stem + ext] = _Partner(stem + ext, "megadepth")
    for d in disp_stems:
        for ext in (".npz", ".npy", ".pfm"):
            if d + ext in names:
                found[d + ext] = _Partner(d + ext, "disparity")
        if d + ".png" in depth_pngs:
            found[d + ".png"] = _Partner(d + ".png", "disparity")
    found.pop(image, None)
    return found


def _pair_folder(
    folder: str, names: list[str], report: DiscoveryReport | None
) -> tuple[list[str], dict[str, _Partner]]:
    """Pair the files of one folder. Returns the image names (depth PNGs excluded) in sorted
    order and the unambiguous pairs image -> partner. When ``report`` is given, files that
    are neither images nor used as depth/mask are counted there."""
    nameset = set(names)
    depth_pngs = {n for n in names if _is_depth_png(folder, n)}
    images = sorted(n for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS and n not in depth_pngs)
    claims: dict[str, list[str]] = {}
    wanted: dict[str, _Partner] = {}
    for img in images:
        cands = _candidates(folder, img, nameset, depth_pngs)
        if len(cands) > 1:
            if report is not None:
                report.note("ambiguous_depth_pair", f"{os.path.join(folder, img)} ({', '.join(sorted(cands))})")
            continue
        if cands:
            partner = next(iter(cands.values()))
            wanted[img] = partner
            claims.setdefault(partner.depth, []).append(img)
    pairs: dict[str, _Partner] = {}
    for img, partner in wanted.items():
        rivals = claims[partner.depth]
        if len(rivals) > 1:
            if report is not None:
                where = os.path.join(folder, partner.depth)
                report.note("ambiguous_depth_pair", f"{where} (claimed by {', '.join(rivals)})")
            continue
        pairs[img] = partner
    if report is not None:
        used = {p.depth for p in pairs.values()} | {p.mask for p in pairs.values() if p.mask}
        image_set = set(images)
        for n in sorted(names):
            if n in image_set or n in used:
                continue
            ext = os.path.splitext(n)[1].lower()
            if n in depth_pngs or ext in _DEPTHLIKE_EXTENSIONS:
                report.note("unpaired_depth_file", os.path.join(folder, n))
            elif ext in VIDEO_EXTENSIONS:
                pass  # a video: discover_rgbd takes it as a ``video`` source
            else:
                report["not_an_image_extension"] += 1
    return images, pairs


def _ref_for(path: str, sid: str, partner: _Partner | None) -> SourceRef:
    if partner is None:
        return SourceRef(id=sid, path=path)
    folder = os.path.dirname(path)
    return SourceRef(
        id=sid, path=path, kind="rgbd",
        depth=os.path.join(folder, partner.depth),
        mask=os.path.join(folder, partner.mask) if partner.mask else None,
        depth_format=partner.fmt,
    )


def _single_file_partner(path: Path) -> _Partner | None:
    folder = str(path.parent)
    try:
        names = [n for n in os.listdir(folder) if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))]
    except OSError:
        return None
    _, pairs = _pair_folder(folder, names, None)
    return pairs.get(path.name)


_MANIFEST_KEYS = frozenset(
    {"rgb", "depth", "mask", "depth_format", "intrinsics", "depth_scale", "baseline", "id",
     "disparity_offset", "doffs", "pose", "pair"}
)


def _positive_number(entry: dict, key: str) -> float | None:
    v = entry.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{key} must be a positive number, got {v!r}")
    return float(v)


def _parse_manifest_entry(entry: Any, base: Path) -> tuple[SourceRef, list[str]]:
    """One manifest object -> a ref (id left empty when not given) and its unknown keys."""
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 (the caller reports ValueErrors per entry)
    rgb = entry.get("rgb")
    if not isinstance(rgb, str) or not rgb.strip():
        raise ValueError("'rgb' must be a non-empty path string")

    def resolve(p: str) -> str:
        q = Path(os.path.expanduser(p))
        return os.path.abspath(q if q.is_absolute() else base / q)

    depth = entry.get("depth")
    if depth is not None and (not isinstance(depth, str) or not depth.strip()):
        raise ValueError("'depth' must be a path string or null")
    mask = entry.get("mask")
    if mask is not None and (not isinstance(mask, str) or not mask.strip()):
        raise ValueError("'mask' must be a path string or null")
    fmt = entry.get("depth_format")
    if fmt is not None and fmt not in DEPTH_FORMATS:
        raise ValueError(f"depth_format {fmt!r} is not one of {', '.join(DEPTH_FORMATS)}")
    intr = entry.get("intrinsics")
    if intr is not None:
        if (not isinstance(intr, list) or len(intr) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in intr)
                or intr[0] <= 0 or intr[1] <= 0):
            raise ValueError("intrinsics must be [fx, fy, cx, cy] with fx, fy > 0")
        intr = tuple(float(v) for v in intr)
    scale = _positive_number(entry, "depth_scale")
    baseline = _positive_number(entry, "baseline")
    doffs_key = "disparity_offset" if "disparity_offset" in entry else "doffs"
    doffs = entry.get(doffs_key)
    if doffs is not None and (
        isinstance(doffs, bool) or not isinstance(doffs, (int, float)) or not math.isfinite(doffs)
    ):
        raise ValueError(f"{doffs_key} must be a number")
    sid = entry.get("id")
    if sid is not None and (not isinstance(sid, str) or not sid.strip()):
        raise ValueError("'id' must be a non-empty string")
    if depth is None and any(entry.get(k) is not None for k in ("mask", "depth_format")):
        raise ValueError("'mask'/'depth_format' given without 'depth'")
    unknown = sorted(k for k in entry if k not in _MANIFEST_KEYS)
    kwargs: dict[str, Any] = {"id": sid or "", "path": resolve(rgb)}
    if depth is not None:
        kwargs.update(
            kind="rgbd", depth=resolve(depth), mask=resolve(mask) if mask else None,
            depth_format=fmt, depth_scale=scale, intrinsics=intr, baseline=baseline,
        )
        if doffs is not None:
            kwargs["disparity_offset"] = float(doffs)
    return SourceRef(**kwargs), unknown


def _with_pair(ref: SourceRef, entry: dict, base: Path, report: DiscoveryReport, where: str
               ) -> tuple[SourceRef, list[str]]:
    """``ref`` with the line's ``pose`` and ``pair`` (:mod:`.posed`). A pose that cannot be
    used is noted by its reason (``pose_...``) and the line kept without its pair; a
    malformed ``pair`` is a ValueError (a bad line)."""
    from .posed import PoseProblem, parse_pair

    def resolve(p: str) -> str:
        q = Path(os.path.expanduser(p))
        return os.path.abspath(q if q.is_absolute() else base / q)

    try:
        pose, pair, unknown = parse_pair(entry, base, resolve)
    except PoseProblem as exc:
        report.note(exc.reason, f"{where} ({exc.detail})")
        return ref, []
    return replace(ref, pose=pose, pair=pair), unknown


def _read_manifest(path: Path, report: DiscoveryReport) -> list[tuple[SourceRef, str, str]]:
    """Manifest entries as (ref, default id, ``file:line``); bad lines are noted, not fatal."""
    base = path.parent
    out = []
    where_file = display_path(str(path))
    try:
        fh = open(path, "rb")  # noqa: SIM115 (opened apart from the with: its own error message)
    except OSError as exc:
        raise InputError(f"cannot read manifest {where_file}: {exc.strerror or exc}") from None
    with fh:
        for lineno, bline in enumerate(fh, 1):
            # JSON is UTF-8; other bytes are kept (surrogateescape) so that a path written
            # with a non-UTF-8 file name's bytes names that file
            text = bline.decode("utf-8", "surrogateescape").strip()
            if not text or text.startswith("#"):
                continue
            try:
                entry = json.loads(text)
                ref, unknown = _parse_manifest_entry(entry, base)
                ref, pair_unknown = _with_pair(ref, entry, base, report, display_path(f"{path}:{lineno}"))
                unknown += pair_unknown
            except (ValueError, TypeError, OverflowError) as exc:  # JSONDecodeError is a ValueError; huge ints overflow
                report.note("manifest_bad_line", display_path(f"{path}:{lineno} ({exc})"))
                continue
            for key in unknown:
                report.note("manifest_unknown_key", display_path(f"{path}:{lineno} ({key})"))
            rgb = entry["rgb"]
            default_id = rgb if not os.path.isabs(os.path.expanduser(rgb)) else os.path.basename(rgb)
            out.append((ref, Path(os.path.normpath(default_id)).as_posix(), display_path(f"{path}:{lineno} ({rgb})")))
    if not out:
        raise InputError(f"manifest {path} has no usable line")
    return out


def discover_rgbd(inputs: list[str]) -> tuple[list[SourceRef], DiscoveryReport]:
    """Like :func:`.files.discover`, plus depth: returns refs (``kind="rgbd"`` where a depth
    file belongs to the image, ``kind="image"`` otherwise) and a :class:`DiscoveryReport`
    counter of ignored inputs.

    - ``X.jsonl``: a manifest, one JSON object per line with ``rgb`` (required), ``depth``,
      ``mask``, ``depth_format``, ``intrinsics`` ([fx, fy, cx, cy] in pixels of the RGB
      file), ``depth_scale``, ``baseline`` (metres), ``disparity_offset`` (alias ``doffs``),
      ``id``, and for posed pairs ``pose`` and ``pair`` (:mod:`.posed`: a second view with
      both camera-to-world poses; a pose that cannot be used is counted by its ``pose_...``
      reason and the line kept without its pair). Paths are relative to the manifest's
      folder. Blank lines and ``#`` lines are
      skipped; a malformed line is counted as ``manifest_bad_line`` (with its line number in
      ``details``) and the rest is used; unknown keys are counted as
      ``manifest_unknown_key``. Missing files are kept and become ``not_found`` /
      ``depth_not_found`` skips when loaded. Default id: the ``rgb`` path as written. A
      line whose ``rgb`` names a file already taken (the same path, or another link to
      it) is counted as ``duplicate_rgb``. Lines are decoded as UTF-8 with
      ``surrogateescape``: bytes that are not UTF-8 name the file with those bytes.
    - a folder: searched like :func:`.files.discover` (same ids, same order); in each
      sub-folder an image ``X.<ext>`` is paired with a depth file when exactly one of these
      exists and no other image claims it:
      ``X_depth.npy`` (+ mask ``X_depth_mask.npy``: DIODE), ``X.h5`` / ``X_depth.h5``
      (MegaDepth), ``X_depth.png`` 16-bit (NYU style), ``X_disp.{npz,npy,pfm,png}``
      (disparity), and the same with ``img``/``image``/``rgb``/``color`` in the stem
      replaced by ``depth`` (or ``disp``), e.g. ``RGB-D_img1.jpg`` + ``RGB-D_depth1.h5``.
      Two candidates for one image, or one depth file wanted by two images, leave the images
      plain (``ambiguous_depth_pair``). A 16-bit PNG with ``depth`` or ``disp`` in its name
      is a depth file, never an image; unused depth files count as ``unpaired_depth_file``.
    - folders are walked as described in :mod:`.files` (each real folder once, FIFOs and
      other non-regular files counted as ``not_a_regular_file`` and never opened,
      ``unreadable_folder``, ``repeated_folder``, ``broken_link``, ``duplicate_file``).
    - videos (``.mp4``, ``.webm``, ``.mkv``, ``.mov``, ``.m4v``) in a folder, listed or
      given alone become refs of kind ``video`` (after the images of their folder);
    - a single image file is paired the same way with the files beside it; list files
      (``.txt``/``.lst``/``.list``) are read as by :func:`.files.discover`, each listed
      image then paired like a single file.
    """
    report = DiscoveryReport()
    refs: list[SourceRef] = []
    seen = SeenFiles()
    used_ids: Counter = Counter()

    def add(ref: SourceRef, sid: str, note=report.note) -> bool:
        key = os.path.abspath(ref.path)
        if not seen.first(key, note):
            return False
        used_ids[sid] += 1
        if used_ids[sid] > 1:
            sid = f"{sid}#{used_ids[sid]}"
        refs.append(_with_id(ref, sid, key))
        return True

    def add_file(p: Path, sid: str) -> None:
        if source_kind_of(str(p)) == "video":
            add(SourceRef(id=sid, path=os.path.abspath(p), kind="video"), sid)
            return
        partner = _single_file_partner(p) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS else None
        add(_ref_for(os.path.abspath(p), sid, partner), sid)

    for raw in inputs:
        p = Path(os.path.expanduser(str(raw)))
        if p.is_dir():
            root_name = p.resolve().name or "input"
            for dirpath, names in walk_folders(p, report.note):
                images, pairs = _pair_folder(dirpath, names, report)
                for img in images:
                    f = Path(dirpath) / img
                    sid = f"{root_name}/{f.relative_to(p).as_posix()}"
                    add(_ref_for(os.path.abspath(f), sid, pairs.get(img)), sid)
                for vid in sorted(n for n in names if source_kind_of(n) == "video"):
                    f = Path(dirpath) / vid
                    sid = f"{root_name}/{f.relative_to(p).as_posix()}"
                    add(SourceRef(id=sid, path=os.path.abspath(f), kind="video"), sid)
        elif p.is_file():
            suffix = p.suffix.lower()
            if suffix == ".jsonl":
                for ref, default_id, where in _read_manifest(p, report):
                    if not add(ref, ref.id or default_id, None):
                        report.note("duplicate_rgb", where)
            elif suffix in LIST_EXTENSIONS:
                for f in read_list_file(p):
                    add_file(f, f.name)
            else:
                add_file(p, p.name)
        else:
            _missing_input(p, raw)
    return refs, report


def _with_id(ref: SourceRef, sid: str, path: str) -> SourceRef:
    return replace(ref, id=sid, path=path)
