"""Readers for depth and disparity files, one per on-disk format.

Each reader turns one file into a :class:`RawDepth`: the stored numbers as float (already
multiplied by any unit scale), a per-pixel validity from the format's own convention
(0 = missing, mask file, inf, ...) and what kind of quantity the numbers are. Checks that do
not depend on the format (NaN/inf, negatives, too few valid pixels, constant maps) and
placing the map on the RGB grid are done by :mod:`.rgbd`.

Formats (``SourceRef.depth_format``):

``megadepth``
    HDF5 file with a dataset ``depth`` (float, 0 = no depth). Depth is known up to one
    unknown scale (structure from motion): kind ``relative``.
``diode``
    ``.npy`` float array HxWx1 (or HxW) in metres, with a mask ``.npy`` (1 = valid) given
    as ``SourceRef.mask`` or found beside it. Kind ``metric``.
``png16``
    16-bit greyscale PNG (NYU/TUM style), stored value * ``depth_scale`` (default 0.001,
    i.e. millimetres) = metres, 0 = missing. Kind ``metric``.
``npy``
    ``.npy`` 2-D numeric array of depth, stored value * ``depth_scale`` (default 1) = metres.
    Kind ``metric``.
``disparity``
    ``.npz`` / ``.npy`` / ``.pfm`` / 16-bit ``.png``; values <= 0 or non-finite are invalid.
    For the float formats the stored value is the disparity in pixels of the map (times
    ``depth_scale`` when given); for 16-bit PNG the default multiplier is 1/256 (the KITTI
    convention). Kind ``disparity``: :mod:`.rgbd` converts it to depth.

Every failure raises :class:`SourceSkip` with a reason starting with ``depth_`` so the
engine can still use the RGB for depth-free tasks.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .base import SourceSkip

DEPTH_FORMATS = ("megadepth", "diode", "png16", "npy", "disparity")

H5_EXTENSIONS = frozenset({".h5", ".hdf5"})
NPZ_KEYS = ("disparity", "disp", "depth", "arr_0")
"""Array names tried, in order, in a ``.npz`` disparity file with several arrays."""
KITTI_DISPARITY_SCALE = 1.0 / 256.0


@dataclass
class RawDepth:
    values: np.ndarray
    """float32 HxW as stored times the unit scale; may hold NaN/inf/negatives."""
    valid: np.ndarray
    """bool HxW: valid by the format's own convention (0 = missing, mask file, ...)."""
    kind: str
    """``metric``, ``relative`` or ``disparity``."""
    fmt: str
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.values.shape[0]), int(self.values.shape[1])


# ----------------------------------------------------------------------------- helpers


def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def mask_candidates(depth_path: str) -> list[str]:
    """Where a DIODE-style validity mask for ``depth_path`` may lie: ``X_depth_mask.npy``
    beside ``X_depth.npy`` and the sample repository's ``RGB-D_depth_mask3.npy`` beside
    ``RGB-D_depth3.npy`` (the last ``depth`` in the stem becomes ``depth_mask``)."""
    folder, name = os.path.split(depth_path)
    stem = os.path.splitext(name)[0]
    out = [os.path.join(folder, stem + "_mask.npy")]
    i = stem.rfind("depth")
    if i >= 0:
        alt = stem[:i] + "depth_mask" + stem[i + len("depth"):]
        cand = os.path.join(folder, alt + ".npy")
        if cand not in out:
            out.append(cand)
    return [c for c in out if os.path.abspath(c) != os.path.abspath(depth_path)]


def find_mask(depth_path: str) -> str | None:
    for cand in mask_candidates(depth_path):
        if os.path.isfile(cand):
            return cand
    return None


def png_is_16bit(path: str) -> bool:
    """True when the file is a single-channel PNG with more than 8 bits per pixel (read
    from the header only)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return img.format == "PNG" and (img.mode.startswith("I;16") or img.mode == "I")
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return False


def sniff_format(depth_path: str, mask_path: str | None = None) -> str:
    """Decide the format of a depth file from its name and (for PNG) its header."""
    ext = _ext(depth_path)
    if ext in H5_EXTENSIONS:
        return "megadepth"
    if ext in (".npz", ".pfm"):
        return "disparity"
    if ext == ".npy":
        if mask_path or find_mask(depth_path):
            return "diode"
        stem = os.path.splitext(os.path.basename(depth_path))[0].lower()
        return "disparity" if "disp" in stem else "npy"
    if ext == ".png":
        stem = os.path.splitext(os.path.basename(depth_path))[0].lower()
        return "disparity" if "disp" in stem and "depth" not in stem else "png16"
    raise SourceSkip(
        "depth_unknown_format", depth_path, f"cannot tell the depth format of a {ext or 'extensionless'} file"
    )


def _check_pixels(path: str, h: int, w: int, max_pixels: int) -> None:
    if h * w > max_pixels:
        raise SourceSkip("depth_too_many_pixels", path, f"{w}x{h} > limit of {max_pixels} pixels")


def _as_2d_numeric(a: np.ndarray, path: str) -> np.ndarray:
    """Check dtype and shape of a stored array and return it as float32 HxW."""
    if a.dtype.kind not in "fiu":
        raise SourceSkip("depth_bad_dtype", path, f"dtype {a.dtype} is not a real number type")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 2:
        raise SourceSkip("depth_bad_shape", path, f"shape {tuple(a.shape)} is not HxW or HxWx1")
    return np.asarray(a, dtype=np.float32)


def _load_npy(path: str, max_pixels: int) -> np.ndarray:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if _is_object_array_error(exc):
            raise SourceSkip("depth_bad_dtype", path, "object array (would need pickle)") from exc
        raise SourceSkip("depth_unreadable", path, str(exc).strip() or "ValueError") from exc
    except (OSError, EOFError) as exc:
        raise SourceSkip("depth_unreadable", path, str(exc).strip() or type(exc).__name__) from exc
    if not isinstance(a, np.ndarray):
        raise SourceSkip("depth_unreadable", path, "not a single .npy array")
    if a.ndim >= 2:
        _check_pixels(path, int(a.shape[0]), int(a.shape[1]), max_pixels)
    if a.dtype.kind not in "fiu":  # check before reading
        raise SourceSkip("depth_bad_dtype", path, f"dtype {a.dtype} is not a real number type")
    del a
    try:  # a plain read into fresh memory is faster than copying out of the map
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SourceSkip("depth_unreadable", path, str(exc).strip() or type(exc).__name__) from exc


def _is_object_array_error(exc: Exception) -> bool:
    # numpy refuses object arrays without pickle ("Object arrays cannot be loaded ...",
    # or "Python objects in dtype" when memory-mapping); a file that is not .npy at all
    # fails differently ("This file contains pickled (object) data").
    text = str(exc).lower()
    return "object arrays" in text or "python objects" in text


def _require_file(path: str, what: str = "depth") -> None:
    if not os.path.exists(path):
        raise SourceSkip("depth_not_found", path, f"{what} file does not exist")
    if not os.path.isfile(path):
        raise SourceSkip("depth_not_found", path, f"{what} path is not a file")


def _scale(values: np.ndarray, scale: float | None, default: float) -> tuple[np.ndarray, float]:
    s = float(default if scale is None else scale)
    if s != 1.0:
        values = values * np.float32(s)
    return values, s


# ----------------------------------------------------------------------------- readers


def read_mask(path: str, shape: tuple[int, int], max_pixels: int) -> np.ndarray:
    """Read a validity mask (``.npy`` or an image file); nonzero (> 0.5 for floats) = valid."""
    _require_file(path, "mask")
    if _ext(path) == ".npy":
        m = _load_npy(path, max_pixels)
    else:
        m = _read_png_array(path, max_pixels, want_16bit=False)
    if m.dtype.kind not in "fiub":
        raise SourceSkip("depth_bad_dtype", path, f"mask dtype {m.dtype}")
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != shape:
        raise SourceSkip("depth_bad_shape", path, f"mask shape {tuple(m.shape)} differs from depth shape {shape}")
    if m.dtype.kind == "f":
        return m > 0.5  # NaN compares False: missing
    return m != 0


def _read_h5_fast(ds) -> np.ndarray | None:
    """The dataset through :mod:`.hdf5_chunks` (same array, about 2x faster on MegaDepth's
    gzip-9 chunks); None to let h5py read it, also when the fast path finds the stored
    bytes inconsistent (h5py then reports the problem in its own words)."""
    from .hdf5_chunks import read_dataset

    try:
        return read_dataset(ds)
    except Exception:  # noqa: BLE001 - whatever goes wrong here, h5py has the last word
        return None


def read_megadepth(path: str, max_pixels: int) -> RawDepth:
    try:
        import h5py
    except ImportError as exc:  # a core dependency, but an environment may lack it
        raise SourceSkip("depth_h5py_not_installed", path, "install h5py to read .h5 depth") from exc
    try:
        with h5py.File(path, "r") as fh:
            if "depth" not in fh:
                keys = ", ".join(sorted(fh.keys())[:8])
                raise SourceSkip("depth_missing_key", path, f"no dataset 'depth' (has: {keys or 'nothing'})")
            ds = fh["depth"]
            if not isinstance(ds, h5py.Dataset):
                raise SourceSkip("depth_missing_key", path, "'depth' is a group, not a dataset")
            if ds.dtype.kind not in "fiu":
                raise SourceSkip("depth_bad_dtype", path, f"dtype {ds.dtype} is not a real number type")
            if len(ds.shape) >= 2:
                _check_pixels(path, int(ds.shape[0]), int(ds.shape[1]), max_pixels)
            a = _read_h5_fast(ds)
            if a is None:
                a = ds[()]
    except SourceSkip:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise SourceSkip("depth_unreadable", path, str(exc).strip() or type(exc).__name__) from exc
    values = _as_2d_numeric(np.asarray(a), path)
    valid = values != 0  # 0 = no depth
    return RawDepth(values, valid, "relative", "megadepth")


def read_npy_depth(path: str, max_pixels: int, scale: float | None, fmt: str) -> RawDepth:
    values = _as_2d_numeric(_load_npy(path, max_pixels), path)
    values, s = _scale(values, scale, 1.0)
    return RawDepth(values, np.ones(values.shape, bool), "metric", fmt, {"depth_scale": s})


def _read_png_array(path: str, max_pixels: int, want_16bit: bool) -> np.ndarray:
    from .images import pillow_pixel_limit

    try:
        with warnings.catch_warnings(), pillow_pixel_limit(max_pixels):
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                w, h = img.size
                _check_pixels(path, h, w, max_pixels)
                if want_16bit and not (img.mode.startswith("I;16") or img.mode == "I"):
                    raise SourceSkip("depth_bad_dtype", path, f"image mode {img.mode}, expected 16-bit greyscale")
                img.load()
                a = np.array(img)
    except SourceSkip:
        raise
    except UnidentifiedImageError as exc:
        raise SourceSkip("depth_unreadable", path, "not a readable image") from exc
    except Image.DecompressionBombError as exc:
        raise SourceSkip("depth_too_many_pixels", path, str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SourceSkip("depth_unreadable", path, str(exc).strip() or type(exc).__name__) from exc
    return a


def read_png16(path: str, max_pixels: int, scale: float | None) -> RawDepth:
    stored = _read_png_array(path, max_pixels, want_16bit=True)
    values = _as_2d_numeric(stored, path)
    valid = stored != 0  # 0 = missing
    values, s = _scale(values, scale, 0.001)
    return RawDepth(values, valid, "metric", "png16", {"depth_scale": s})


def read_pfm(path: str, max_pixels: int) -> np.ndarray:
    """Portable float map (Middlebury): header ``Pf``/``PF``, ``W H``, scale (< 0 means
    little-endian), then float32 rows from bottom to top."""
    try:
        with open(path, "rb") as fh:
            tokens: list[bytes] = []
            while len(tokens) < 4:  # magic, width, height, scale (whitespace separated)
                line = fh.readline()
                if not line:
                    raise ValueError("truncated header")
                tokens.extend(line.split())
            magic, w, h, scale = tokens[0], int(tokens[1]), int(tokens[2]), float(tokens[3])
            if magic not in (b"Pf", b"PF"):
                raise ValueError(f"bad magic {magic!r}")
            channels = 3 if magic == b"PF" else 1
            _check_pixels(path, h, w, max_pixels)
            dtype = np.dtype("<f4" if scale < 0 else ">f4")
            count = w * h * channels
            data = np.frombuffer(fh.read(count * 4), dtype=dtype)
            if data.size != count:
                raise ValueError(f"expected {count} floats, found {data.size}")
    except SourceSkip:
        raise
    except (OSError, ValueError, IndexError) as exc:
        raise SourceSkip("depth_unreadable", path, f"PFM: {exc}") from exc
    a = data.reshape(h, w, channels)[::-1]
    if channels != 1:
        raise SourceSkip("depth_bad_shape", path, "3-channel PFM, expected a single channel")
    return a[..., 0].astype(np.float32)


def _read_npz(path: str, max_pixels: int) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if not names:
                raise SourceSkip("depth_missing_key", path, "empty .npz")
            key = names[0] if len(names) == 1 else next((k for k in NPZ_KEYS if k in names), None)
            if key is None:
                has = ", ".join(names[:8])
                raise SourceSkip("depth_missing_key", path, f"no array named one of {NPZ_KEYS} (has: {has})")
            a = z[key]
    except SourceSkip:
        raise
    except ValueError as exc:
        if _is_object_array_error(exc):
            raise SourceSkip("depth_bad_dtype", path, "object array (would need pickle)") from exc
        raise SourceSkip("depth_unreadable", path, str(exc).strip() or "ValueError") from exc
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise SourceSkip("depth_unreadable", path, str(exc).strip() or type(exc).__name__) from exc
    if a.ndim >= 2:
        _check_pixels(path, int(a.shape[0]), int(a.shape[1]), max_pixels)
    return a


def read_disparity(path: str, max_pixels: int, scale: float | None) -> RawDepth:
    ext = _ext(path)
    default_scale = 1.0
    if ext == ".npz":
        stored = _read_npz(path, max_pixels)
    elif ext == ".pfm":
        stored = read_pfm(path, max_pixels)
    elif ext == ".png":
        stored = _read_png_array(path, max_pixels, want_16bit=True)
        default_scale = KITTI_DISPARITY_SCALE
    else:
        stored = _load_npy(path, max_pixels)
    values = _as_2d_numeric(np.asarray(stored), path)
    values, s = _scale(values, scale, default_scale)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(values) & (values > 0)  # <= 0 or inf/NaN = no match
    return RawDepth(values, valid, "disparity", "disparity", {"disparity_scale": s})


def read_depth_file(
    path: str,
    fmt: str,
    *,
    mask_path: str | None = None,
    scale: float | None = None,
    max_pixels: int = 100_000_000,
) -> RawDepth:
    """Read ``path`` in format ``fmt`` (one of :data:`DEPTH_FORMATS`), combining the
    format's validity with ``mask_path`` when given."""
    _require_file(path)
    if fmt == "megadepth":
        raw = read_megadepth(path, max_pixels)
    elif fmt in ("diode", "npy"):
        raw = read_npy_depth(path, max_pixels, scale, fmt)
        if fmt == "diode" and mask_path is None:
            mask_path = find_mask(path)
    elif fmt == "png16":
        raw = read_png16(path, max_pixels, scale)
    elif fmt == "disparity":
        raw = read_disparity(path, max_pixels, scale)
    else:
        known = ", ".join(DEPTH_FORMATS)
        raise SourceSkip("depth_unknown_format", path, f"unknown depth_format {fmt!r} (known: {known})")
    if mask_path is not None:
        m = read_mask(mask_path, raw.shape, max_pixels)
        raw.valid &= m
        # where the mask was, relative to the depth file: never a path of the user's machine
        raw.notes["mask_path"] = os.path.relpath(os.path.abspath(mask_path), os.path.dirname(os.path.abspath(path)))
    return raw
