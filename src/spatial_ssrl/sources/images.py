"""Loading one image file into an :class:`Item`, converting what can be converted and
raising :class:`SourceSkip` with a named reason for what cannot be used."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .base import Item, SourceRef, SourceSkip, display_path
from .fast_decode import decode_rgb

# Pillow refuses files whose header claims over 2 * Image.MAX_IMAGE_PIXELS pixels (and warns
# above it). That guard stays on for the whole process; only our own readers of inputs whose
# size they check against an explicit limit (LoadOptions.max_pixels, overlap's max_pixels)
# raise it, for the time they open and decode one file (pillow_pixel_limit).
_raised: list[int] = []
_raised_lock = threading.Lock()
_saved_limit: list = []


@contextlib.contextmanager
def pillow_pixel_limit(max_pixels: int):
    """Inside the block, Pillow opens files of up to ``max_pixels`` pixels: its bound is
    raised to that (never lowered; a bound the program turned off stays off) and put back
    when the last such block in the process ends. Callers check the size themselves and
    silence Pillow's warning."""
    with _raised_lock:
        if not _raised:
            _saved_limit[:] = [Image.MAX_IMAGE_PIXELS]
        _raised.append(int(max_pixels))
        if _saved_limit[0] is not None:
            Image.MAX_IMAGE_PIXELS = max(_saved_limit[0], *_raised)
    try:
        yield
    finally:
        with _raised_lock:
            _raised.remove(int(max_pixels))
            if not _raised:
                Image.MAX_IMAGE_PIXELS = _saved_limit.pop()
            elif _saved_limit[0] is not None:
                Image.MAX_IMAGE_PIXELS = max(_saved_limit[0], *_raised)


@dataclass(frozen=True)
class LoadOptions:
    min_side: int = 112
    """Images whose shorter side is below this are skipped (``too_small``)."""
    max_pixels: int = 100_000_000
    """Decompression-bomb guard: files claiming more pixels are skipped unread."""
    resize_max_pixels: int | None = 4_194_304
    """Larger images are downscaled (area filter) to at most this many pixels; None keeps
    the source grid. The default is the largest image size the paper trains on."""


def _to_rgb(img: Image.Image) -> tuple[np.ndarray, str | None]:
    """Return an HxWx3 uint8 array and the name of the conversion applied (or None)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img), None
    if mode in ("1", "L"):
        return np.asarray(img.convert("RGB")), "converted_grayscale"
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.float64)
        if mode == "I" and a.max(initial=0) <= 255 and a.min(initial=0) >= 0:
            g = a
        else:
            g = a / 257.0  # 16-bit range to 8-bit
        g = np.clip(np.rint(g), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2), "converted_16bit"
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        g = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2), "converted_float"
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        if not has_alpha:
            return np.asarray(img.convert("RGB")), "converted_palette"
        img = img.convert("RGBA")
        mode = "RGBA"
        conversion = "converted_palette"
    else:
        conversion = None
    if mode in ("RGBA", "LA", "La", "RGBa", "RGBX"):
        rgba = img.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] == 255:  # fully opaque: just drop alpha
            return np.asarray(rgba.convert("RGB")), conversion or "converted_alpha"
        a = np.asarray(rgba)
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        # composite on white so transparent parts are not arbitrary colours
        rgb = np.rint(a[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        return rgb, conversion or "converted_alpha"
    if mode == "CMYK":
        return np.asarray(img.convert("RGB")), "converted_cmyk"
    try:
        return np.asarray(img.convert("RGB")), f"converted_{mode.lower().replace(';', '')}"
    except (ValueError, OSError) as exc:
        raise SourceSkip("unsupported_mode", img.filename or "", f"mode {mode}: {exc}") from exc


def _resize_to_fit(rgb: np.ndarray, max_pixels: int) -> tuple[np.ndarray, dict | None]:
    h, w = rgb.shape[:2]
    if h * w <= max_pixels:
        return rgb, None
    scale = (max_pixels / float(h * w)) ** 0.5
    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
    out = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BOX))
    return out, {"from": [w, h], "to": [nw, nh], "scale": [nw / w, nh / h]}


def load_item(ref: SourceRef, options: LoadOptions = LoadOptions()) -> Item:
    """Read ``ref`` into an RGB item or raise :class:`SourceSkip` naming why it is unusable.

    Reasons for the file itself: ``not_found``, ``not_a_file`` (a folder, FIFO, socket or
    device: never opened, so a FIFO cannot hang the run), ``unreadable`` (permission
    denied), ``not_an_image``, ``too_many_pixels``, ``corrupt_or_truncated``,
    ``unsupported_mode``, ``too_small``.

    ``Item.path`` (the dataset's ``source`` column) is ``ref.name`` (a path relative to an
    input root, see :mod:`.naming`), else ``ref.path``, as valid UTF-8 text:
    undecodable file-name bytes are written ``\\xNN`` (see :func:`.base.display_path`).
    """
    path = ref.path
    if not os.path.exists(path):
        raise SourceSkip("not_found", path)
    if not os.path.isfile(path):
        raise SourceSkip("not_a_file", path)
    info: dict = {}
    try:
        with warnings.catch_warnings(), pillow_pixel_limit(options.max_pixels):
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                w, h = img.size
                if w * h > options.max_pixels:
                    raise SourceSkip(
                        "too_many_pixels", path, f"{w}x{h} > limit of {options.max_pixels} pixels"
                    )
                rgb = None
                # PNG: the fast path itself refuses files with an eXIf chunk (and
                # Pillow's getexif would decode the whole PNG to look for one)
                if img.mode == "RGB" and (img.format == "PNG" or (
                        img.format == "JPEG" and img.getexif().get(0x0112, 1) in (None, 1))):
                    rgb = decode_rgb(path, img)
                    conversion = None
                if rgb is None:
                    img.load()
                    orientation = img.getexif().get(0x0112, 1)
                    if orientation not in (None, 1):
                        img = ImageOps.exif_transpose(img)
                        info["exif_orientation"] = int(orientation)
                    rgb, conversion = _to_rgb(img)
    except SourceSkip:
        raise
    except UnidentifiedImageError as exc:
        raise SourceSkip("not_an_image", path, "not a readable image format") from exc
    except PermissionError as exc:
        raise SourceSkip("unreadable", path, f"permission denied: {exc.strerror or exc}") from exc
    except Image.DecompressionBombError as exc:
        raise SourceSkip("too_many_pixels", path, str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise SourceSkip("corrupt_or_truncated", path, str(exc).strip() or type(exc).__name__) from exc
    if conversion:
        info["conversion"] = conversion
    h, w = rgb.shape[:2]
    info["file_size"] = [int(w), int(h)]
    if min(h, w) < options.min_side:
        raise SourceSkip("too_small", path, f"{w}x{h}, shorter side below {options.min_side} px")
    if options.resize_max_pixels:
        rgb, resize = _resize_to_fit(rgb, options.resize_max_pixels)
        if resize:
            info["resize"] = resize
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    rgb.setflags(write=False)
    return Item(id=ref.id, rgb=rgb, path=display_path(ref.name or path), info=info, file=path)
