"""Position: back-project the two marked regions with the re-read depth and intrinsics
(metric) or use pixel x and normalised depth (image plane), decide which offsets count,
and turn them into the camera's own direction words with a hand-written table."""

from __future__ import annotations

import re

import numpy as np

from .common import Context, Fail, NotCheckable
from .depth import R_MAX_DEFAULT, need_params, regions_and_image

LETTERS = "ABCD"
# the word an offset along one image axis (x: right in the image, z: away from the
# viewer) gets for a camera facing each way
WORDS = {
    "away": {("x", 1): "Right", ("x", -1): "Left", ("z", 1): "Front", ("z", -1): "Back"},
    "toward": {("x", 1): "Left", ("x", -1): "Right", ("z", 1): "Back", ("z", -1): "Front"},
    "left": {("x", 1): "Back", ("x", -1): "Front", ("z", 1): "Right", ("z", -1): "Left"},
    "right": {("x", 1): "Front", ("x", -1): "Back", ("z", 1): "Left", ("z", -1): "Right"},
}
SINGLE = {"Left", "Right", "Front", "Back"}
BOTH = {"Left-Front", "Right-Front", "Right-Back", "Left-Back"}
_VARIANT = re.compile(r"^(auto|image|metric)(?:-x([1-4](?:\.\d)?))?(-public)?$")


def _counts(a, b, thr) -> bool:
    gap = max(a[0], b[0]) - min(a[1], b[1])
    spread = max(a[1], b[1]) - min(a[0], b[0])
    if not (gap > thr or spread <= thr):
        raise Fail("ambiguity rule: an offset is too close to its threshold")
    return gap > thr


def _text(facing: str, sx: int, sz: int) -> str:
    words = []
    if sx:
        words.append(WORDS[facing][("x", sx)])
    if sz:
        words.append(WORDS[facing][("z", sz)])
    lateral = [w for w in words if w in ("Left", "Right")]
    ahead = [w for w in words if w in ("Front", "Back")]
    return "-".join(lateral + ahead)


def validate(ctx: Context) -> str:
    params = need_params(ctx)
    m = _VARIANT.match(ctx.record.variant or "")
    if not m:
        raise NotCheckable(f"unknown position variant {ctx.record.variant!r}")
    item, reg = regions_and_image(ctx, params, float(params.get("r_max", R_MAX_DEFAULT)))
    if sorted(reg) != [1, 2]:
        raise Fail(f"marker labels {sorted(reg)}, expected 1 and 2")
    cam = int(params.get("camera_label", 0))
    if cam not in (1, 2):
        raise Fail("meta has no camera label")
    facing = params.get("facing")
    if facing not in WORDS:
        raise Fail(f"unknown facing {facing!r}")
    metric_ok = item.depth_kind == "metric" and item.intrinsics is not None
    mode = {"image": "image", "metric": "metric" if metric_ok else None, "auto": "metric" if metric_ok else "image"}[m.group(1)]
    if mode is None:
        raise Fail("metric variant without metric depth and intrinsics")
    c, t = reg[cam], reg[3 - cam]
    if mode == "image":
        thr = params.get("thresholds") or {}
        ref_w, ref_px = thr.get("reference_width", 1600), thr.get("reference_lateral_px", 150.0)
        thr_x = ref_px if thr.get("absolute") else ref_px * item.width / ref_w
        thr_z = float(thr.get("depth", 0.25))
        lat_c, lat_t = (c["u"], c["u"]), (t["u"], t["u"])
        dep_c, dep_t = (c["n"].min(), c["n"].max()), (t["n"].min(), t["n"].max())
        dx = t["u"] - c["u"]
        dz = np.median(t["n"]) - np.median(c["n"])
    else:
        stored = params.get("intrinsics")
        if stored is not None and not np.allclose(stored, item.intrinsics, rtol=1e-9):
            raise Fail("intrinsics in meta differ from the source's")
        fx, _, cx, _ = item.intrinsics

        def x_range(r):
            a = (r["u"] - cx) / fx
            return tuple(sorted((a * r["raw"].min(), a * r["raw"].max())))

        lat_c, lat_t = x_range(c), x_range(t)
        dep_c, dep_t = (c["raw"].min(), c["raw"].max()), (t["raw"].min(), t["raw"].max())
        zbar = (dep_c[0] + dep_c[1] + dep_t[0] + dep_t[1]) / 4
        thr = params.get("thresholds") or {}
        (lat_floor, lat_share), (dep_floor, dep_share) = thr.get("lateral_rule", (0.5, 0.10)), thr.get("depth_rule", (0.5, 0.15))
        thr_x, thr_z = max(lat_floor, lat_share * zbar), max(dep_floor, dep_share * zbar)
        zc, zt = np.median(c["raw"]), np.median(t["raw"])
        dx = (t["u"] - cx) * zt / fx - (c["u"] - cx) * zc / fx
        dz = zt - zc
    lat = _counts(lat_c, lat_t, thr_x)
    dep = _counts(dep_c, dep_t, thr_z)
    if not (lat or dep):
        raise Fail("ambiguity rule: no offset counts")
    text = _text(facing, int(np.sign(dx)) if lat else 0, int(np.sign(dz)) if dep else 0)
    options = ctx.record.options or params.get("options")
    pool = BOTH if (lat and dep) else SINGLE
    if not options or len(options) != 4 or set(options) != pool:
        raise Fail(f"options {options!r} are not the {'combined' if lat and dep else 'single'} directions")
    return LETTERS[list(options).index(text)]
