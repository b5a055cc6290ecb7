"""File and option helpers shared by the benchmark loaders (the leading underscore keeps
:func:`spatial_ssrl.eval.benchmarks.available` from taking this module for a benchmark).

- VLMEvalKit TSVs: :func:`indexed_tsv` over :func:`find_file`, :func:`read_tsv` and
  :class:`TsvImages` (3DSRBench, Spatial457);
- parquet tables: :func:`parquet_files`, :func:`read_parquet`, :func:`read_cell` / :func:`image_cell`
  and :func:`cell_detail` (SpatialEval, QSpatial-plus, MMSI-Bench, BLINK, CV-Bench, EmbSpatial);
- JSON lists: :func:`read_json_list` (What'sUp, ViewSpatial-Bench); their rows: :func:`check_row`
  (What'sUp, ViewSpatial-Bench, VSI-Bench);
- ``**options`` loaders: :func:`check_options` (What'sUp, ViewSpatial-Bench, VSI-Bench).
- JSON lines and media still in zip archives: :func:`read_jsonl`, :class:`ZipMembers` (MindCube,
  SITE).
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base import BenchmarkError, Skipped

ImageDecoder = Callable[[Mapping[str, str]], tuple[list[bytes] | None, str | None]]
"""A TSV row -> ``(encoded images, None)`` or ``(None, reason)``."""

# ----------------------------------------------------------------------------------- options


def check_options(bench: str, options: Mapping[str, Any], known: Sequence[str]) -> None:
    """A :class:`BenchmarkError` naming the options of ``options`` not in ``known``."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BenchmarkError(f"{bench}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")


# -------------------------------------------------------------------------------------- JSON


def read_json_list(file: str, what: str) -> list:
    """The JSON list in ``file`` (``what`` names its entries in the error when it is not a list)."""
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise BenchmarkError(f"{file}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise BenchmarkError(f"{file}: expected a JSON list of {what}")
    return data


def check_row(file: str, where: str, row: Any, keys: Iterable[str]) -> None:
    """A :class:`BenchmarkError` unless ``row`` (``where``: "row 3", "item 3") is an object
    with every one of ``keys``."""
    if not isinstance(row, dict):
        raise BenchmarkError(f"{file}: {where} is not an object")
    for key in keys:
        if key not in row:
            raise BenchmarkError(f"{file}: {where} has no '{key}'")


# --------------------------------------------------------------------------------------- TSV


def find_file(path: str | os.PathLike, preferred: Sequence[str], suffix: str, bench: str) -> Path:
    """``path`` itself when it is a file, else the first of ``preferred`` names found in the
    folder (searched recursively), else the only ``*suffix`` file there."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise BenchmarkError(f"{p}: no such file or folder ({bench})")
    for name in preferred:
        hits = sorted(p.rglob(name))
        if hits:
            return hits[0]
    found = sorted(f for f in p.rglob(f"*{suffix}") if f.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise BenchmarkError(f"{p}: no {suffix} file of {bench} here (expected {preferred[0]})")
    names = ", ".join(str(f.relative_to(p)) for f in found[:6])
    raise BenchmarkError(f"{p}: several {suffix} files ({names}); pass the file itself or file=NAME")


def read_tsv(file: Path, required: Iterable[str]) -> list[dict[str, str]]:
    """The rows of a VLMEvalKit TSV as strings (empty cells are ``""``, never NaN: an option
    reading "None" stays "None"). A missing required column is a :class:`BenchmarkError`
    naming the file and the column."""
    import pandas as pd

    try:
        df = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                         quoting=csv.QUOTE_MINIMAL, engine="c")
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{file}: not a readable TSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise BenchmarkError(f"{file}: missing column {', '.join(repr(c) for c in missing)} "
                             f"(it has: {', '.join(map(str, df.columns))})")
    return df.to_dict("records")


def image_ok(data: bytes) -> bool:
    """True when PIL can read the image header and the file passes ``verify``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        return True
    except Exception:  # noqa: BLE001 - PIL raises many kinds for bad data
        return False


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError):
        return None


def tsv_images(rows: Sequence[Mapping[str, str]], column: str = "image", index_column: str = "index") -> ImageDecoder:
    """A decoder of a row's ``image`` cell: base64 (or a Python list of base64 strings, for
    several images); a cell of up to 64 characters names the ``index`` of the row holding the
    image (VLMEvalKit's space saving). Returns ``(encoded images, None)`` or ``(None, reason)``."""
    by_index = {str(r.get(index_column, "")): r.get(column, "") for r in rows}
    cache: dict[str, tuple[list[bytes] | None, str | None]] = {}

    def decode(row: Mapping[str, str]) -> tuple[list[bytes] | None, str | None]:
        cell = str(row.get(column, "") or "").strip()
        if 0 < len(cell) <= 64:
            target = by_index.get(cell)
            if target is None or len(str(target).strip()) <= 64:
                return None, "undecodable_image"
            cell = str(target).strip()
        if not cell:
            return None, "missing_image"
        if cell in cache:
            return cache[cell]
        parts: list[str] = [cell]
        if cell.startswith("[") and cell.endswith("]"):
            try:
                value = ast.literal_eval(cell)
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                parts = value
        images = []
        for part in parts:
            data = _b64(part)
            if not data or not image_ok(data):
                cache[cell] = (None, "undecodable_image")
                return cache[cell]
            images.append(data)
        cache[cell] = (images, None)
        return cache[cell]

    return decode


class TsvImages:
    """The images of a VLMEvalKit TSV's rows: :meth:`decode` (see :func:`tsv_images`),
    :meth:`count` (how many images a row's cell holds, read without decoding any) and
    :meth:`detail` (where a row's image is, for a :class:`~spatial_ssrl.eval.base.Skipped`)."""

    def __init__(self, file: Path, rows: Sequence[Mapping[str, str]], column: str = "image",
                 index_column: str = "index") -> None:
        self.file, self.column = file, column
        self.decode = tsv_images(rows, column, index_column)
        self._by_index = {str(r.get(index_column, "")): r.get(column, "") for r in rows}
        self._counts: dict[str, int] = {}

    def _cell(self, row: Mapping[str, str]) -> tuple[str, str | None]:
        """(the cell holding the row's image, the index it was found at when the row names one)."""
        cell = str(row.get(self.column, "") or "").strip()
        if 0 < len(cell) <= 64:
            return str(self._by_index.get(cell, "") or "").strip(), cell
        return cell, None

    def count(self, row: Mapping[str, str]) -> int:
        """The number of images in the row's cell (a Python list of base64 strings holds
        several, anything else one), read from the text only: nothing is decoded."""
        cell, _ = self._cell(row)
        if not (cell.startswith("[") and cell.endswith("]")):
            return 1
        if cell not in self._counts:
            try:
                value = ast.literal_eval(cell)
            except (ValueError, SyntaxError):
                value = None
            ok = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            self._counts[cell] = len(value) if ok else 1
        return self._counts[cell]

    def take(self, row: Mapping[str, str], item_id: str, decode: bool) -> tuple[list[bytes], int] | Skipped:
        """The row's images (decoded, or none when ``decode`` is off) and how many its cell
        holds; a :class:`~spatial_ssrl.eval.base.Skipped` naming the cell when they do not decode."""
        if not decode:
            return [], self.count(row)
        got, reason = self.decode(row)
        if got is None:
            return Skipped(item_id, reason or "undecodable_image", self.detail(row, item_id))
        return got, len(got)

    def detail(self, row: Mapping[str, str], item_id: str) -> str:
        """Where the row's image is: the file, the row's index and the column (and the index
        its cell names, for VLMEvalKit's image-by-reference rows)."""
        _, ref = self._cell(row)
        where = f"{self.file}: index {item_id}, column '{self.column}'"
        if ref is None:
            return where
        return where + (f" (names index {ref}, which has no image)" if ref not in self._by_index
                        else f" (the image of index {ref})")


def indexed_tsv(path: str | os.PathLike, file: str | None, preferred: Sequence[str], required: Iterable[str],
                bench: str) -> tuple[list[tuple[str, dict[str, str]]], TsvImages]:
    """A VLMEvalKit TSV (``path``, or ``file`` inside it; found by :func:`find_file`): ``(index,
    row)`` per row and its :class:`TsvImages`. An empty or repeated ``index`` is a
    :class:`BenchmarkError` naming the file."""
    tsv = find_file(Path(path) / file if file else path, preferred, ".tsv", bench)
    rows = read_tsv(tsv, required)
    indexed: list[tuple[str, dict[str, str]]] = []
    seen: set[str] = set()
    for row in rows:
        item_id = str(row["index"]).strip()
        if not item_id or item_id in seen:
            raise BenchmarkError(f"{tsv}: index {item_id!r} is empty or repeated")
        seen.add(item_id)
        indexed.append((item_id, row))
    return indexed, TsvImages(tsv, rows)


# ----------------------------------------------------------------------------------- parquet


def parquet_files(path: str | os.PathLike, pattern: str, bench: str) -> list[Path]:
    """``path`` itself when it is a file, else every file matching ``pattern`` below it."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise BenchmarkError(f"{p}: no such file or folder ({bench})")
    found = sorted(f for f in p.rglob(pattern) if f.is_file())
    if not found:
        raise BenchmarkError(f"{p}: no {pattern} file of {bench} here")
    return found


def read_parquet(file: Path, required: Iterable[str], optional: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The rows of a parquet file (the required and optional columns only). A missing required
    column is a :class:`BenchmarkError` naming the file and the column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(file).names
    except (OSError, pa.ArrowException) as exc:
        raise BenchmarkError(f"{file}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    required = list(required)
    missing = [c for c in required if c not in names]
    if missing:
        raise BenchmarkError(f"{file}: missing column {', '.join(repr(c) for c in missing)} "
                             f"(it has: {', '.join(names)})")
    columns = required + [c for c in optional if c in names and c not in required]
    try:
        return pq.read_table(file, columns=columns).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise BenchmarkError(f"{file}: not a readable parquet file ({str(exc).splitlines()[0]})") from None


def read_cell(cell: Any, roots: Sequence[Path]) -> tuple[bytes | None, str | None, str | None]:
    """The encoded image of a parquet cell: a Hugging Face image (``{bytes, path}``), raw bytes
    or a path (relative to one of ``roots``). ``(bytes, None, None)`` or ``(None, reason,
    detail)``, ``detail`` the file that is missing or undecodable (None for bytes in the cell
    itself: the caller names the table, row and column)."""
    data: bytes | None = None
    rel: str | None = None
    found: Path | None = None
    if isinstance(cell, dict):
        data, rel = cell.get("bytes"), cell.get("path")
    elif isinstance(cell, (bytes, bytearray, memoryview)):
        data = bytes(cell)
    elif isinstance(cell, str):
        rel = cell
    if not data and rel:
        for root in [Path(), *roots]:
            f = root / rel
            if f.is_file():
                data, found = f.read_bytes(), f
                break
    if not data:
        where = None
        if rel:
            where = f"{rel} (looked for in {', '.join(str(r) for r in roots)})" if roots else str(rel)
        return None, "missing_image", where
    data = bytes(data)
    if image_ok(data):
        return data, None, None
    return None, "undecodable_image", None if found is None else str(found)


def image_cell(cell: Any, roots: Sequence[Path]) -> tuple[bytes | None, str | None]:
    """:func:`read_cell` without the detail: ``(bytes, None)`` or ``(None, reason)``."""
    data, reason, _ = read_cell(cell, roots)
    return data, reason


def cell_detail(file: str | os.PathLike, row: int, column: str, detail: str | None) -> str:
    """``detail`` of :func:`read_cell` when it names a file, else the table, row and column."""
    return detail or f"{file}: row {row}, column '{column}'"


# ------------------------------------------------------------- JSON lines and zipped media


def read_jsonl(file: str | os.PathLike, what: str, data: bytes | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one a line (blank lines skipped; ``data``: the
    file's bytes when it was read from an archive). A line that is not a JSON object is a
    :class:`BenchmarkError` naming the file and the line."""
    try:
        text = data.decode("utf-8") if data is not None else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchmarkError(f"{file}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise BenchmarkError(f"{file}: not UTF-8 text (expected JSON lines of {what})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchmarkError(f"{file}: line {n} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise BenchmarkError(f"{file}: line {n} is not a JSON object (expected one of {what} a line)")
        rows.append(row)
    return rows


class ZipMembers:
    """The files inside the ``*.zip`` archives directly in ``folder`` (a Hub snapshot whose
    images ship zipped: MindCube's ``data.zip``, SITE's ``data_chunked_NN.zip``), read in place,
    never extracted. Unreadable archives are left out (``bad`` names them)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        import zipfile

        self._where: dict[str, Path] = {}
        self._open: dict[Path, zipfile.ZipFile] = {}
        self.bad: list[str] = []
        p = Path(folder)
        for archive in sorted(p.glob("*.zip")) if p.is_dir() else []:
            try:
                with zipfile.ZipFile(archive) as zf:
                    names = [i.filename for i in zf.infolist() if not i.is_dir()]
            except (OSError, zipfile.BadZipFile):
                self.bad.append(archive.name)
                continue
            for name in names:
                self._where.setdefault(name, archive)

    def __len__(self) -> int:
        return len(self._where)

    def names(self) -> list[str]:
        return list(self._where)

    def read(self, name: str) -> bytes | None:
        """The bytes of member ``name`` (None when no archive holds it or it cannot be read)."""
        import zipfile

        archive = self._where.get(name)
        if archive is None:
            return None
        try:
            zf = self._open.get(archive)
            if zf is None:
                zf = self._open[archive] = zipfile.ZipFile(archive)
            return zf.read(name)
        except (OSError, zipfile.BadZipFile, KeyError, RuntimeError):
            return None
