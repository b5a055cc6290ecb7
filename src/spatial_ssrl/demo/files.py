"""The demo's own temporary folder and the bounds on what a visitor may upload.

Everything the app writes goes under one folder it creates (:class:`DemoFiles`): Gradio's
upload cache (``GRADIO_TEMP_DIR`` points there before the page is built), the images of
playground draws and the caches libraries would otherwise keep in the home or temp folder.
The folder is removed when the app stops. (A model given by Hub id is downloaded into the
Hugging Face cache, as everywhere else.)

Uploads are checked here before any pixel is decoded: the file's size on disk, then the
width and height its header declares (Pillow reads only the header on ``Image.open``). A
file whose header claims more pixels than :data:`MAX_UPLOAD_PIXELS` is refused unread, so a
decompression bomb (a few kilobytes that would inflate to gigabytes) costs nothing; Pillow's
own guard (``Image.MAX_IMAGE_PIXELS``) stays in force behind ours.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import warnings

from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""Largest file accepted (also handed to Gradio, which refuses larger uploads itself)."""
MAX_UPLOAD_PIXELS = 40_000_000
"""Largest image accepted, in pixels (width x height as the file's header declares)."""
MAX_IMAGES = 8
"""Most images in one question."""
MIN_SIDE = 16
"""Smallest side accepted, in pixels (the playground's tasks need more: see sources)."""


class UploadError(ValueError):
    """An upload that is refused; the message says why, in one line, for the page."""


def check_image_file(path: str, shown_name: str | None = None) -> tuple[int, int]:
    """Width and height of the image at ``path``, or :class:`UploadError` naming why the file
    is refused (too large on disk, not an image, more pixels than allowed, too small). Reads
    the header only."""
    name = shown_name or os.path.basename(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise UploadError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if size > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name}: {size / 2**20:.1f} MiB, larger than the {MAX_UPLOAD_BYTES // 2**20} MiB "
                          "this demo takes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise UploadError(f"{name}: refused, its header declares more pixels than Pillow's limit "
                          f"({2 * (Image.MAX_IMAGE_PIXELS or 0):,}): a decompression bomb?") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise UploadError(f"{name}: not an image this demo can read (PNG, JPEG, WebP, BMP, TIFF, GIF)") from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise UploadError(f"{name}: refused, its header declares {width}x{height} = {width * height:,} pixels, "
                          f"more than the {MAX_UPLOAD_PIXELS:,} this demo decodes (a decompression bomb?)")
    if min(width, height) < MIN_SIDE:
        raise UploadError(f"{name}: {width}x{height}, smaller than {MIN_SIDE} px on a side")
    return width, height


def open_image(path: str, shown_name: str | None = None) -> Image.Image:
    """The upload at ``path`` decoded as RGB, after :func:`check_image_file`."""
    name = shown_name or os.path.basename(path)
    check_image_file(path, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return img.convert("RGB")
    except Image.DecompressionBombError:
        raise UploadError(f"{name}: refused, it decodes to more pixels than Pillow allows: a decompression bomb?") \
            from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UploadError(f"{name}: the image is damaged or cut short ({type(exc).__name__})") from None


def upload_name(path: str) -> str:
    """What the page calls an uploaded file: its own name (Gradio keeps it as the last part
    of the path it stores the upload under)."""
    return os.path.basename(path) or path


class DemoFiles:
    """The app's temporary folder: created on construction, removed by :meth:`cleanup`
    (called at interpreter exit too). ``gradio`` is Gradio's cache (uploads, files handed to
    the page), ``draws`` holds the playground's images."""

    def __init__(self, parent: str | None = None):
        self.root = tempfile.mkdtemp(prefix="ssrl-demo-", dir=parent)
        self.gradio = os.path.join(self.root, "gradio")
        self.draws = os.path.join(self.root, "draws")
        os.makedirs(self.gradio)
        os.makedirs(self.draws)
        self._count = 0
        self._lock = threading.Lock()
        atexit.register(self.cleanup)

    CACHE_VARIABLES = ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
    """Caches that libraries under the demo write on their own (matplotlib's font list, which
    Gradio's event handling loads; torch's compiler caches, made when a model loads), sent
    here unless the user has put them elsewhere."""

    def claim_environment(self) -> None:
        """Point Gradio's upload cache here (read when the page and the server are made) and
        the caches above, so that serving the page writes nothing outside this folder."""
        os.environ["GRADIO_TEMP_DIR"] = self.gradio
        for name in self.CACHE_VARIABLES:
            if not os.environ.get(name):
                os.environ[name] = os.path.join(self.root, "caches", name.lower())

    def new_draw_folder(self) -> str:
        with self._lock:
            self._count += 1
            path = os.path.join(self.draws, f"{self._count:06d}")
        os.makedirs(path)
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
