"""What the preview embeds for a stored image: its bytes, or a downscaled JPEG copy."""

from __future__ import annotations

import io
from dataclasses import dataclass

DEFAULT_MAX_SIDE = 512  # longest displayed side; 0 embeds the stored bytes unchanged
JPEG_QUALITY = 85  # of the downscaled display copies


def mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


@dataclass
class Shown:
    data: bytes  # the bytes embedded in the page
    size: tuple[int, int] | None  # the stored image's pixel size (None: Pillow cannot read it)
    shown: tuple[int, int] | None = None  # the embedded copy's size when downscaled
    note: str | None = None  # why a too-large image is embedded unchanged


def _flatten_for_jpeg(im):
    """``im`` as RGB or L, transparent parts over white."""
    from PIL import Image

    if im.mode in ("RGB", "L"):
        return im
    if im.mode in ("RGBA", "LA", "RGBa", "La", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return im.convert("RGB")


def _downscaled(im, max_side: int):
    """A copy of the open image ``im`` whose longer side is ``max_side``, ready to save as JPEG."""
    from PIL import Image, ImageOps

    if im.mode.startswith("I;16"):
        import numpy as np

        # browsers show 16-bit PNGs by their high byte; do the same
        im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8), "L")
    elif im.mode in ("I", "F"):
        im = im.convert("L")
    elif im.mode in ("1", "P", "PA"):
        # palette images resample only by NEAREST; give LANCZOS real colours
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    # thumbnail keeps the aspect ratio within max_side x max_side; it decodes JPEGs at a
    # reduced scale (draft) and reduces by whole factors before the LANCZOS pass
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    im = ImageOps.exif_transpose(im) or im  # browsers honour the orientation of the original
    return _flatten_for_jpeg(im)


def display_image(data: bytes, max_side: int) -> Shown:
    """What to embed for one stored image: its own bytes, or a JPEG copy downscaled so the
    longer side is ``max_side`` when it is larger than that (``max_side=0``: never)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            if max_side <= 0 or max(size) <= max_side:
                return Shown(data, size)
            try:
                small = _downscaled(im, max_side)
                buf = io.BytesIO()
                small.save(buf, format="JPEG", quality=JPEG_QUALITY)
            except Exception as exc:  # noqa: BLE001 - the original is shown instead
                return Shown(data, size, note=f"not downscaled ({type(exc).__name__})")
            return Shown(buf.getvalue(), size, shown=small.size)
    except Exception:  # noqa: BLE001 - shown as "unreadable" on the page
        return Shown(data, None)
