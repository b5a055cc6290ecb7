"""Near-duplicate search between training sources and benchmark images.

Training on a photo that a benchmark also shows (resized, re-encoded, the same shot) makes
the benchmark figure unreliable. This module hashes both sides with two 64-bit perceptual
hashes and lists the pairs whose hashes are within a Hamming distance.

Hashes (NumPy and Pillow only)
    The image is decoded once (JPEG through Pillow's DCT-domain downscale, ``draft``), EXIF
    orientation applied, transparency composited on white, converted to grey and reduced to
    a 32 x 32 area average.

    - ``phash``: the 8 x 8 lowest-frequency block of the orthonormal 2-D DCT-II of the
      32 x 32 grey image, one bit per coefficient above the block's median (plus 1% of the
      coefficients' RMS, so exact ties, as in symmetric patterns, stay 0 under noise);
    - ``dhash``: a 9 x 8 area average, one bit per horizontally adjacent pair whose left
      pixel is brighter than its right (by more than half a grey level).

    Images that cannot be used are skipped and counted with a reason: ``missing``,
    ``unreadable``, ``not_an_image``, ``corrupt``, ``too_large`` (header over
    ``max_pixels``), ``too_small`` (shorter side under ``min_side``), ``unsupported_mode``
    and ``flat`` (no detail: every such image would match every other).

Thresholds
    A pair is reported when ``phash`` distance <= ``max_distance`` (default 10) **and**
    ``dhash`` distance <= ``max_dhash_distance`` (default 12). Measured on 110 pictures (the
    scikit-image bundle, the shared fixtures, 40 LFW faces upscaled 4x, 40 procedural
    scenes), each also resized (0.25x, 0.5x, 2x), re-encoded (JPEG q50..95, WebP q80, grey,
    RGBA PNG), stretched (0.8 aspect), brightened, EXIF-rotated, cropped and mirrored:

    - copies (resize, re-encode, EXIF, brightness/contrast): phash at most 9 bits (one 25 px
      face upscaled then saved at q50: 15), 95th percentile <= 6; dhash at most 9;
    - different pictures (4.1M pairs, crops and mirrors of other pictures included):
      none within (10, 12); the closest are the Middlebury stereo pair (phash 4, dhash 18),
      synthetic rooms (9, 14); 1500 procedural scenes (1.1M pairs) give none within
      (10, 12) either;
    - a 95% centre crop is found 85% of the time, a 90% one 39%; a mirror or a larger
      crop is not a near duplicate to these hashes.

Search cost
    Everything is hashed once. The ``phash`` search then uses one of two exact methods
    (``method="auto"`` picks the cheaper from a count made beforehand):

    - ``index``: pigeonhole multi-index. Two hashes within distance ``d`` agree exactly on
      at least one of ``d + 1`` disjoint bit blocks, so each block's values are sorted on the
      benchmark side and looked up (``searchsorted``) for the training side; only those
      candidates get a full distance. Cost ~ ``(d+1) * (N + M) log M`` plus the candidates
      (for uniform hashes ``N * M * (d+1) / 2**(64/(d+1))``; real photos share blocks more);
    - ``brute``: XOR and popcount of every pair, in reused buffers of 1M pairs
      (``np.bitwise_count`` where NumPy has it, else a 16-bit lookup table), optionally over
      threads (NumPy releases the GIL). Cost ``N * M`` and nothing else: about 1.4 ns a
      pair on one core, 100k x 10k in ~1.4 s.

    Both give the same pairs; at ``d = 3`` the index does 100k x 10k in ~0.2 s. Hashing
    dominates: ~2-5 ms per JPEG photo (640 px to 1600 px, decoded at reduced scale), ~10 ms
    per 640 x 480 PNG, per core.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from struct import error as struct_error
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..sources.fast_decode import decode_rgb
from ..sources.images import pillow_pixel_limit

HASH_SIZE = 32
"""Side of the grey thumbnail the DCT is taken of."""
LOW_FREQ = 8
"""Side of the low-frequency DCT block kept (64 bits)."""

DEFAULT_MAX_DISTANCE = 10
"""``phash`` Hamming distance at or under which a pair can be reported (of 64 bits)."""
DEFAULT_MAX_DHASH_DISTANCE = 12
"""``dhash`` distance a reported pair must also be within (of 64 bits)."""

DEFAULT_MIN_SIDE = 32
"""Images whose shorter side is below this many pixels are skipped (``too_small``)."""
DEFAULT_MAX_PIXELS = 250_000_000
"""Files whose header claims more pixels are skipped unread (``too_large``)."""

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

_DRAFT_SIDE = 128  # JPEG: decode at the smallest DCT scale that keeps both sides >= this
_PHASH_TOL = 0.01  # of the AC coefficients' RMS, above the median
_DHASH_TOL = 0.5  # grey levels
_FLAT_STD = 1.0  # grey levels (0..255) of the 32 x 32 thumbnail under which an image is flat
_CHUNK_PAIRS = 1 << 22  # candidates per multi-index step
_BRUTE_CHUNK_PAIRS = 1 << 20  # pairs per brute-force step (8 MiB of uint64, reused)
_INDEX_COST = 16  # an indexed candidate costs about this many brute-force pairs

# Pillow's decompression-bomb bound stays on; _thumbnails raises it to max_pixels for the one
# file it opens (sources.images.pillow_pixel_limit), after which its header check applies.


class OverlapError(ValueError):
    """A usage problem (a folder that does not exist, an unreadable exclude list): the
    message is one line naming the file."""


class HashSkip(Exception):
    """An image that cannot be hashed; ``reason`` is one of the names in the module doc."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _dct_matrix(n: int = HASH_SIZE, k: int = LOW_FREQ) -> np.ndarray:
    """Rows 0..k-1 of the orthonormal DCT-II matrix of size n (``scipy.fft.dct(norm='ortho')``)."""
    x = np.arange(n)
    u = np.arange(k)[:, None]
    m = np.cos(np.pi * (2 * x[None, :] + 1) * u / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix()
_BITS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64))  # bit 63 first: row-major order


def _pack(bits: np.ndarray) -> int:
    """64 booleans (row-major) to an int, the first one the most significant bit."""
    return int(np.bitwise_or.reduce(np.where(bits.ravel(), _BITS, np.uint64(0))))


# -- decoding ---------------------------------------------------------------------------------
def _open(image: Any) -> tuple[Image.Image, Any]:
    """A PIL image for any accepted input, and what must be closed afterwards (or None)."""
    if isinstance(image, Image.Image):
        return image, None
    if isinstance(image, dict):  # a Hugging Face Image feature: {"bytes": ..., "path": ...}
        image = image.get("bytes") or image.get("path")
        if image is None:
            raise HashSkip("not_an_image", "an image dict without bytes or path")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = np.asarray(arr, dtype=np.float32)
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
            if arr.ndim == 3:
                arr = arr[..., :3].mean(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
            return Image.fromarray(arr.astype(np.float32), mode="F"), None
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        try:
            return Image.fromarray(arr), None
        except (TypeError, ValueError) as exc:
            raise HashSkip("unsupported_mode", f"array of shape {arr.shape}") from exc
    if isinstance(image, (bytes, bytearray, memoryview)):
        fh = io.BytesIO(bytes(image))
    elif isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise HashSkip("missing", path)
        if not os.path.isfile(path):
            raise HashSkip("unreadable", f"{path} is not a file")
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise HashSkip("unreadable", str(exc)) from exc
    else:
        raise HashSkip("not_an_image", f"cannot read an image from a {type(image).__name__}")
    try:
        return Image.open(fh), fh
    except UnidentifiedImageError as exc:
        fh.close()
        raise HashSkip("not_an_image", "not a readable image format") from exc
    except Image.DecompressionBombError as exc:
        fh.close()
        raise HashSkip("too_large", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        fh.close()
        raise HashSkip("corrupt", str(exc).strip() or type(exc).__name__) from exc


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info)


def _grey(img: Image.Image) -> Image.Image:
    """A grey image: mode ``L`` (8-bit) or ``F`` (16-bit, float and integer modes, rescaled
    to 0..255), transparency composited on white."""
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        a = np.asarray(img, dtype=np.float32)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
        if hi > lo:
            a = (a - lo) * (255.0 / (hi - lo))
        else:
            a = np.zeros_like(a)
        return Image.fromarray(a, mode="F")
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if mode == "L":
        return img
    try:
        return img.convert("L")
    except (ValueError, OSError) as exc:
        raise HashSkip("unsupported_mode", f"mode {mode}: {exc}") from exc


def _decode_grey(img: Image.Image, source: Any, own: bool) -> Image.Image:
    """Decode an opened image to grey, the EXIF orientation of a file applied. ``own``:
    opened here (a caller's PIL image is not given a reduced-scale ``draft``)."""
    fmt = getattr(img, "format", None)
    if fmt == "PNG" and img.mode == "RGB" and isinstance(source, (str, os.PathLike)):
        rgb = decode_rgb(os.fspath(source), img)  # libspng when installed: ~1.8x Pillow
        if rgb is not None:  # (None for files with transparency or an EXIF chunk)
            return Image.fromarray(rgb).convert("L")
    if own and fmt == "JPEG" and img.mode in ("RGB", "L", "YCbCr"):
        img.draft("L", (_DRAFT_SIDE, _DRAFT_SIDE))  # decode at 1/2, 1/4 or 1/8 scale
    img.load()
    if fmt is not None and img.getexif().get(0x0112, 1) not in (None, 1):
        img = ImageOps.exif_transpose(img)
    return _grey(img)


def _thumbnails(image: Any, min_side: int, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """The 32 x 32 and 9 x 8 (width x height) grey area averages of ``image`` (float32)."""
    with warnings.catch_warnings(), pillow_pixel_limit(max_pixels):
        warnings.simplefilter("ignore")
        return _thumbnails_within_limit(image, min_side, max_pixels)


def _thumbnails_within_limit(image: Any, min_side: int, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    img, fh = _open(image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w, h = img.size
            if w * h > max_pixels:
                raise HashSkip("too_large", f"{w}x{h} > limit of {max_pixels} pixels")
            if min(w, h) < min_side:
                raise HashSkip("too_small", f"{w}x{h}, shorter side below {min_side} px")
            g = _decode_grey(img, image, own=fh is not None)
            # integer box reduction first (fast, exact area average) down to >= 4x the target
            factor = min(g.size) // (4 * HASH_SIZE)
            if factor >= 2:
                g = g.reduce(factor)
            if g.mode != "F":
                g = g.convert("F")
            big = np.asarray(g.resize((HASH_SIZE, HASH_SIZE), Image.Resampling.BOX), dtype=np.float32)
            small = np.asarray(g.resize((9, 8), Image.Resampling.BOX), dtype=np.float32)
    except HashSkip:
        raise
    except Image.DecompressionBombError as exc:
        raise HashSkip("too_large", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, struct_error) as exc:
        raise HashSkip("corrupt", str(exc).strip() or type(exc).__name__) from exc
    except Exception as exc:  # a decoder plugin's own failure: one file, not the run
        raise HashSkip("corrupt", f"{type(exc).__name__}: {exc}") from exc
    finally:
        if fh is not None:
            fh.close()
    if float(big.std()) < _FLAT_STD:
        raise HashSkip("flat", "no detail to hash (a uniform image)")
    return big, small


def phash_of(thumb: np.ndarray) -> int:
    """64-bit DCT hash of a 32 x 32 grey array: a bit per low-frequency coefficient above
    the median. The threshold sits a hair (1% of the coefficients' RMS) above the median so
    that coefficients which are exactly the median (zero, in symmetric patterns such as a
    chessboard) give 0 whatever compression noise does to them."""
    low = _DCT @ thumb.astype(np.float64) @ _DCT.T
    ac = low.ravel()[1:]
    return _pack(low > np.median(low) + _PHASH_TOL * float(np.sqrt(np.mean(ac * ac))))


def dhash_of(small: np.ndarray) -> int:
    """64-bit difference hash of an 8-row x 9-column grey array: a bit per pixel brighter
    than its right neighbour by more than half a grey level (ties are 0, noise or not)."""
    return _pack(small[:, :-1] > small[:, 1:] + _DHASH_TOL)


def hash_image(image: Any, min_side: int = DEFAULT_MIN_SIDE,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(phash, dhash)`` of one image: encoded bytes, a path, a PIL image, a NumPy array or
    a ``{"bytes", "path"}`` dict. Raises :class:`HashSkip` naming why it cannot be hashed."""
    big, small = _thumbnails(image, min_side, max_pixels)
    return phash_of(big), dhash_of(small)


# -- hash sets --------------------------------------------------------------------------------
@dataclass
class HashSet:
    """Hashes of a collection of images, in input order, and what was skipped."""

    names: list[str] = field(default_factory=list)
    phash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    dhash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(name, "reason: detail")`` for every image not hashed."""

    def __len__(self) -> int:
        return len(self.names)

    def skip_counts(self) -> dict[str, int]:
        """reason -> count."""
        return dict(sorted(Counter(r.split(":", 1)[0] for _, r in self.skipped).items()))

    def save(self, path: str) -> None:
        """Write to a ``.npz`` file (reuse one training side against several benchmarks)."""
        np.savez(path, names=np.array(self.names, dtype=str), phash=self.phash, dhash=self.dhash,
                 skipped=np.array([f"{n}\t{r}" for n, r in self.skipped], dtype=str))

    @classmethod
    def load(cls, path: str) -> HashSet:
        with np.load(path) as z:
            skipped = [tuple(s.split("\t", 1)) for s in z["skipped"].tolist()]
            return cls(z["names"].tolist(), z["phash"].astype(np.uint64), z["dhash"].astype(np.uint64),
                       [(n, r) for n, r in skipped])


def _ignore_sigint() -> None:
    """In a decoding process: Ctrl-C is the parent's to handle (it ends the pool)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _hash_entry(entry: tuple[str, Any, int, int]) -> tuple[str, int, int, str | None]:
    name, image, min_side, max_pixels = entry
    try:
        p, d = hash_image(image, min_side, max_pixels)
    except HashSkip as exc:
        return name, 0, 0, str(exc)
    return name, p, d, None


def _digest(image: Any) -> Any:
    """A key equal for equal inputs (paths, bytes), or None when not worth caching."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return hashlib.blake2b(bytes(image), digest_size=16).digest()
    if isinstance(image, (str, os.PathLike)):
        return os.path.abspath(os.fspath(image))
    return None


def hash_images(images: Iterable[tuple[str, Any]], *, workers: int = 1, min_side: int = DEFAULT_MIN_SIDE,
                max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = False) -> HashSet:
    """Hash ``(name, image)`` pairs (image: bytes, path, PIL image, array). Identical
    paths or bytes are decoded once. ``workers > 1`` decodes in that many processes;
    ``progress`` shows a bar on stderr."""
    entries: list[tuple[str, Any, Any]] = [(name, image, _digest(image)) for name, image in images]
    unique: dict[Any, int] = {}
    jobs: list[tuple[str, Any, int, int]] = []
    slot: list[int] = []
    for name, image, key in entries:
        if key is not None and key in unique:
            slot.append(unique[key])
            continue
        if key is not None:
            unique[key] = len(jobs)
        slot.append(len(jobs))
        jobs.append((name, image, min_side, max_pixels))
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", desc="hashing", disable=not progress, leave=False)
    try:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing

            chunk = max(1, min(64, len(jobs) // (4 * workers)))
            with multiprocessing.get_context().Pool(min(workers, len(jobs)), initializer=_ignore_sigint) as pool:
                results = []
                for r in pool.imap(_hash_entry, jobs, chunksize=chunk):
                    results.append(r)
                    bar.update()
        else:
            results = []
            for j in jobs:
                results.append(_hash_entry(j))
                bar.update()
    finally:
        bar.close()
    out = HashSet()
    ph: list[int] = []
    dh: list[int] = []
    for (name, _image, _key), k in zip(entries, slot):
        _, p, d, reason = results[k]
        if reason is not None:
            out.skipped.append((name, reason))
        else:
            out.names.append(name)
            ph.append(p)
            dh.append(d)
    out.phash = np.array(ph, dtype=np.uint64)
    out.dhash = np.array(dh, dtype=np.uint64)
    return out


def image_files(folder: str, recursive: bool = True) -> list[str]:
    """Image files under ``folder`` (by extension, hidden entries left out), sorted."""
    if not os.path.isdir(folder):
        raise OverlapError(f"{folder} is not a folder" if os.path.exists(folder) else f"{folder} does not exist")
    found = []
    seen: set[tuple[int, int]] = set()  # (st_dev, st_ino) of each folder walked: a link loop ends
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # reached again through a symbolic link
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.abspath(os.path.join(dirpath, name)))
    return found


def hash_folder(path: str, *, recursive: bool = True, workers: int = 1, **options: Any) -> HashSet:
    """Hash every image file under ``path``; names are absolute paths. ``options`` go to
    :func:`hash_images`."""
    return hash_images(((f, f) for f in image_files(path, recursive)), workers=workers, **options)


def dataset_sources(dataset_dir: str) -> list[str]:
    """Distinct ``source`` values of a dataset (first-seen order), procedural scenes left out."""
    from ..readers import open_dataset

    seen: dict[str, None] = {}
    for rec in open_dataset(dataset_dir).index():
        src = rec.source
        if src and not src.startswith("procedural:"):
            seen.setdefault(src, None)
    return list(seen)


def _resolve_source(src: str, dataset_dir: str, roots: dict[str, str] | None = None) -> str:
    """The file a stored source name points to (an input root named in the manifest, the
    dataset folder, or as written)."""
    from ..sources.naming import resolve

    found = resolve(src, roots, dataset_dir)
    return found if found is not None else src


def hash_dataset_sources(dataset_dir: str, *, workers: int = 1, **options: Any) -> HashSet:
    """Hash the source files a dataset was generated from, each distinct file once, named by
    the file's path (the dataset's ``source`` names resolved through the manifest's input
    roots), so a pairs file lists files ``ssrl generate --exclude-overlap-with`` can match.
    Files no longer there are skipped as ``missing``. Raises
    :class:`spatial_ssrl.readers.DatasetError` for a folder holding no dataset."""
    from ..readers import open_dataset

    sources = dataset_sources(dataset_dir)
    roots = (open_dataset(dataset_dir).manifest or {}).get("source_roots")
    files = [_resolve_source(s, dataset_dir, roots) for s in sources]
    return hash_images(((f, f) for f in files), workers=workers, **options)


def benchmark_images(name: str, path: str, **options: Any) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """``(image name, image)`` for every image of a benchmark, and its skipped items.

    Loads ``spatial_ssrl.eval.benchmarks.get_benchmark(name).load(path, **options)``. An
    item with one image is named by its id, one with several ``<id>#<k>`` (k from 0)."""
    from .benchmarks import get_benchmark

    items, skipped = get_benchmark(name).load(path, **options)
    pairs: list[tuple[str, Any]] = []
    skips = [(str(s.id), f"benchmark_skip: {s.reason}") for s in skipped]
    for item in items:
        imgs = list(item.images or [])
        if not imgs:
            skips.append((str(item.id), "no_image: the item has no image"))
        for k, im in enumerate(imgs):
            pairs.append((str(item.id) if len(imgs) == 1 else f"{item.id}#{k}", im))
    return pairs, skips


def hash_benchmark(name: str, path: str, *, workers: int = 1, load_options: dict | None = None,
                   **options: Any) -> HashSet:
    """Hash a benchmark's images (see :func:`benchmark_images`); its load skips are kept."""
    pairs, skips = benchmark_images(name, path, **(load_options or {}))
    hs = hash_images(pairs, workers=workers, **options)
    hs.skipped = skips + hs.skipped
    return hs


# -- search -----------------------------------------------------------------------------------
if hasattr(np, "bitwise_count"):
    def popcount(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Set bits per uint64 element (uint8)."""
        return np.bitwise_count(x, out=out)
else:  # pragma: no cover - NumPy < 2.0
    _LUT16 = np.array([i.bit_count() for i in range(1 << 16)], dtype=np.uint8)

    def popcount(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Set bits per uint64 element (uint8)."""
        v = np.ascontiguousarray(x, dtype=np.uint64).view(np.uint16).reshape(*x.shape, 4)
        return _LUT16[v].sum(axis=-1, dtype=np.uint8, out=out)


def _blocks(d: int) -> list[tuple[int, int]]:
    """``d + 1`` contiguous (shift, width) bit blocks covering 64 bits, widths within 1."""
    k = min(d + 1, 64)
    widths = [64 // k + (i < 64 % k) for i in range(k)]
    out, shift = [], 64
    for w in widths:
        shift -= w
        out.append((shift, w))
    return out


def _block_keys(h: np.ndarray, shift: int, width: int) -> np.ndarray:
    return (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)


def index_candidates(train: np.ndarray, bench: np.ndarray, d: int) -> int:
    """Candidate pairs the multi-index would check (with repeats across blocks)."""
    total = 0
    for shift, width in _blocks(d):
        kb = np.sort(_block_keys(bench, shift, width))
        kt = _block_keys(train, shift, width)
        total += int((np.searchsorted(kb, kt, "right") - np.searchsorted(kb, kt, "left")).sum())
    return total


def _search_index(train: np.ndarray, bench: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    m = len(bench)
    found: list[np.ndarray] = []
    for shift, width in _blocks(d):
        kb = _block_keys(bench, shift, width)
        order = np.argsort(kb, kind="stable")
        kb = kb[order]
        kt = _block_keys(train, shift, width)
        lo = np.searchsorted(kb, kt, "left")
        counts = np.searchsorted(kb, kt, "right") - lo
        # train rows in slices whose candidates stay within ~_CHUNK_PAIRS
        csum = np.cumsum(counts)
        start = 0
        while start < len(train):
            base = csum[start - 1] if start else 0
            stop = int(np.searchsorted(csum, base + _CHUNK_PAIRS, "right"))
            stop = max(stop, start + 1)
            c = counts[start:stop]
            n = int(c.sum())
            if n:
                ti = np.repeat(np.arange(start, stop), c)
                first = np.repeat(lo[start:stop] - (np.cumsum(c) - c), c)
                bj = order[first + np.arange(n)]
                keep = popcount(train[ti] ^ bench[bj]) <= d
                found.append(ti[keep].astype(np.int64) * m + bj[keep])
            start = stop
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat = np.unique(np.concatenate(found))
    return flat // m, flat % m


def _search_brute(train: np.ndarray, bench: np.ndarray, d: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    m = max(1, len(bench))
    rows = max(1, _BRUTE_CHUNK_PAIRS // m)
    starts = list(range(0, len(train), rows))
    threads = max(1, min(threads, len(starts)))

    def run(part: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        # buffers reused across chunks: the work stays in cache and nothing is allocated
        x = np.empty((rows, m), np.uint64)
        c = np.empty((rows, m), np.uint8)
        hit = np.empty((rows, m), bool)
        out = []
        for start in part:
            r = min(rows, len(train) - start)
            np.bitwise_xor(train[start:start + r, None], bench[None, :], out=x[:r])
            popcount(x[:r], out=c[:r])
            np.less_equal(c[:r], d, out=hit[:r])
            if hit[:r].any():
                i, j = np.nonzero(hit[:r])
                out.append((i + start, j))
        return out

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            found = [f for part in pool.map(run, [starts[k::threads] for k in range(threads)]) for f in part]
    else:
        found = run(starts)
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


@dataclass(frozen=True)
class Pair:
    """A training image and a benchmark image that look the same.

    ``similarity`` is ``1 - (distance + dhash_distance) / 128``: 1.0 for identical hashes."""

    train: str
    bench: str
    distance: int
    """``phash`` Hamming distance (0..64)."""
    dhash_distance: int
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_hashset(images: HashSet | Iterable[tuple[str, Any]], workers: int) -> HashSet:
    return images if isinstance(images, HashSet) else hash_images(images, workers=workers)


def find_overlaps(train_images: HashSet | Iterable[tuple[str, Any]],
                  bench_images: HashSet | Iterable[tuple[str, Any]], *,
                  max_distance: int = DEFAULT_MAX_DISTANCE,
                  max_dhash_distance: int | None = DEFAULT_MAX_DHASH_DISTANCE,
                  method: str = "auto", workers: int = 1) -> list[Pair]:
    """Every (training, benchmark) pair with ``phash`` distance <= ``max_distance`` and
    ``dhash`` distance <= ``max_dhash_distance`` (None: no dhash condition), sorted by
    distance, then names.

    Either side is a :class:`HashSet` or an iterable of ``(name, image)`` (hashed here with
    ``workers`` processes; skips are dropped, hash first with :func:`hash_images` to see
    them). ``method``: ``auto``, ``index`` (pigeonhole multi-index) or ``brute`` (chunked
    XOR-popcount over ``workers`` threads); both are exact."""
    if not 0 <= max_distance <= 64:
        raise ValueError(f"max_distance must be within 0..64, not {max_distance}")
    if method not in ("auto", "index", "brute"):
        raise ValueError(f"method must be auto, index or brute, not {method!r}")
    train = _as_hashset(train_images, workers)
    bench = _as_hashset(bench_images, workers)
    if not len(train) or not len(bench):
        return []
    if method == "auto":
        # an indexed candidate (gathers, repeat, unique) costs ~16 brute-force pairs; even
        # uniform hashes share a w-bit block with chance 2**-w, so when that alone makes the
        # index dearer (d >= 8) the candidates are not counted
        n_pairs = len(train) * len(bench)
        floor = sum(2.0 ** -w for _, w in _blocks(max_distance))
        if max_distance >= 64 or _INDEX_COST * floor >= 1.0:
            method = "brute"
        else:
            cost = _INDEX_COST * index_candidates(train.phash, bench.phash, max_distance)
            method = "index" if cost < n_pairs else "brute"
    if method == "index" and max_distance < 64:  # (64: every pair, no block need agree)
        ti, bj = _search_index(train.phash, bench.phash, max_distance)
    else:
        ti, bj = _search_brute(train.phash, bench.phash, max_distance, workers)
    dp = popcount(train.phash[ti] ^ bench.phash[bj]).astype(int)
    dd = popcount(train.dhash[ti] ^ bench.dhash[bj]).astype(int)
    if max_dhash_distance is not None:
        keep = dd <= max_dhash_distance
        ti, bj, dp, dd = ti[keep], bj[keep], dp[keep], dd[keep]
    pairs = [Pair(train.names[i], bench.names[j], int(a), int(b), round(1.0 - (a + b) / 128.0, 4))
             for i, j, a, b in zip(ti.tolist(), bj.tolist(), dp.tolist(), dd.tolist())]
    pairs.sort(key=lambda p: (p.distance, p.dhash_distance, p.train, p.bench))
    return pairs


# -- exclusion lists --------------------------------------------------------------------------
def overlapping_sources(pairs: Iterable[Pair | dict | str]) -> set[str]:
    """The training names (source paths) that occur in ``pairs``: :class:`Pair` objects,
    their ``to_dict()`` form (a pairs JSON) or plain strings."""
    out: set[str] = set()
    for p in pairs:
        if isinstance(p, Pair):
            out.add(p.train)
        elif isinstance(p, dict):
            if not isinstance(p.get("train"), str):
                raise OverlapError(f"a pair without a 'train' path: {json.dumps(p)[:120]}")
            out.add(p["train"])
        elif isinstance(p, str):
            out.add(p)
        else:
            raise OverlapError(f"not a pair: {p!r}"[:160])
    return out


def read_exclude_list(path: str) -> set[str]:
    """Source paths to leave out of a dataset: from a pairs JSON written by
    ``ssrl overlap --out`` (its ``train`` paths; a JSON list of pairs or of paths also
    works) or a text file of paths (one a line, ``#`` comments; relative paths are taken
    from the file's folder and made absolute)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise OverlapError(f"exclude list {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OverlapError(f"cannot read exclude list {path}: {exc}") from None
    stripped = text.lstrip()
    if path.lower().endswith(".json") or stripped[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OverlapError(f"exclude list {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        entries: Sequence = data.get("pairs") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise OverlapError(f"exclude list {path} holds no 'pairs' list (a file written by `ssrl overlap --out`)")
        try:
            return overlapping_sources(entries)
        except OverlapError as exc:
            raise OverlapError(f"exclude list {path}: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))
    out: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = os.path.expanduser(line)
        out.add(p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p)))
    return out
