"""Dataset folders of any output format, read back as canonical records."""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..prompts import FORMAT_SUFFIX, IMAGE_TOKEN

PARQUET_FORMATS = ("canonical", "trl", "easyr1", "verl", "sft")
FORMATS = (*PARQUET_FORMATS, "llamafactory")
BATCH_ROWS = 16
SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-\d{5}-of-\d{5}\.parquet$")
_BOXED = re.compile(r"\\boxed\{(.*)\}\s*$", re.DOTALL)

# Columns each parquet format needs (top level), and nested fields of struct columns.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "canonical": ("id", "task", "variant", "images", "problem", "answer"),
    "trl": ("id", "task", "variant", "images", "prompt", "answer"),
    "easyr1": ("id", "task", "variant", "images", "problem", "answer"),
    "verl": ("images", "prompt", "reward_model", "extra_info"),
    "sft": ("id", "task", "variant", "images", "messages", "answer"),
}
REQUIRED_NESTED: dict[str, dict[str, tuple[str, ...]]] = {
    "verl": {"reward_model": ("ground_truth",), "extra_info": ("id", "task", "variant")},
}
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "canonical": ("answer_type", "options", "source", "depth_source", "meta"),
    "trl": ("answer_type", "options", "source"),
    "easyr1": ("answer_type", "options", "source"),
    "verl": ("data_source", "ability"),
    "sft": ("answer_type", "options", "source"),
}
JSONL_REQUIRED = ("messages", "images", "id", "task", "variant")
JSONL_SPLITS = ("train", "test", "coldstart")


class DatasetError(Exception):
    """A dataset folder that cannot be read (the message says why, in one line)."""


@dataclass
class Record:
    """One sample in the canonical shape, whatever format it was stored in."""

    id: str
    task: str
    variant: str
    split: str = "train"
    problem: str | None = None  # question with <image> placeholders, without the format suffix
    answer: str | None = None
    answer_type: str | None = None
    options: list[str] | None = None
    source: str | None = None
    depth_source: str | None = None
    meta: str | None = None  # the canonical format's JSON string
    images: list[bytes | None] = field(default_factory=list)
    image_names: list[str] = field(default_factory=list)
    image_errors: list[str | None] = field(default_factory=list)
    suffix: str | None = None  # the format suffix, when the stored question carried it
    extras: dict[str, str] = field(default_factory=dict)  # format-specific fields worth showing

    @property
    def params(self) -> dict | None:
        if not self.meta:
            return None
        try:
            return json.loads(self.meta).get("params")
        except (ValueError, AttributeError):
            return None


def split_of(path: str) -> str:
    """The split a shard or jsonl file belongs to, from its name (``train`` by default)."""
    name = os.path.basename(path)
    m = SHARD_NAME.match(name)
    if m:
        return m.group("split")
    if name.endswith(".jsonl"):
        return name[: -len(".jsonl")] or "train"
    return "train"


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def strip_suffix(text: str | None) -> tuple[str | None, str | None]:
    """Split the trainer format suffix some writers append off the question."""
    if text is None:
        return None, None
    stripped = text.rstrip()
    if stripped.endswith(FORMAT_SUFFIX):
        return stripped[: -len(FORMAT_SUFFIX)].rstrip(), FORMAT_SUFFIX
    return text, None


def image_problem(data: bytes | None) -> str | None:
    """Why stored image bytes cannot be used, or None: missing, not an image format Pillow
    knows, or damaged (``verify`` checks the structure and, for PNG, every chunk's CRC,
    without decoding the pixels, so it costs about a read of the bytes)."""
    if data is None:
        return "no image bytes"
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except UnidentifiedImageError:
        return "undecodable image (not an image format)"
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        return f"undecodable image ({type(exc).__name__})"
    return None


def record_image_problem(rec: Record) -> str | None:
    """The first problem of ``rec``'s images (unreadable file, missing or undecodable bytes)."""
    for i, data in enumerate(rec.images):
        err = rec.image_errors[i] if i < len(rec.image_errors) else None
        problem = err or image_problem(data)
        if problem:
            return f"image {i + 1}: {problem}"
    return None


def _image_cells(cells: Any) -> tuple[list[bytes | None], list[str], list[str | None]]:
    images: list[bytes | None] = []
    names: list[str] = []
    errors: list[str | None] = []
    for i, cell in enumerate(cells or []):
        data = name = None
        if isinstance(cell, dict):
            data, name = cell.get("bytes"), cell.get("path")
        elif isinstance(cell, (bytes, bytearray)):
            data = bytes(cell)
        images.append(bytes(data) if data is not None else None)
        names.append(str(name) if name else f"image {i + 1}")
        errors.append(None if data is not None else "no image bytes stored in the parquet")
    return images, names, errors


def _options(value: Any) -> list[str] | None:
    return [str(o) for o in value] if isinstance(value, (list, tuple)) else None


def _trl_question(prompt: Any, extras: dict) -> str:
    user = []
    for msg in prompt or []:
        msg = msg or {}
        parts = []
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        else:
            for part in content or []:
                part = part or {}
                if part.get("type") == "image":
                    parts.append(IMAGE_TOKEN)
                elif part.get("text") is not None:
                    parts.append(str(part["text"]))
        text = "".join(parts)
        if msg.get("role") == "user":
            user.append(text)
        else:
            extras[f"{msg.get('role')} message"] = text
    return "\n".join(user)


def _parquet_record(fmt: str, split: str, row: dict) -> Record:
    """A canonical record from one parquet row of format ``fmt``."""
    extras: dict[str, str] = {}
    if fmt == "verl":
        info = row.get("extra_info") or {}
        rm = row.get("reward_model") or {}
        rec = Record(id=_str(info.get("id")) or "", task=_str(info.get("task")) or "(no task)",
                     variant=_str(info.get("variant")) or "", split=split)
        rec.problem, rec.suffix = strip_suffix(_trl_question(row.get("prompt"), extras))
        rec.answer = _str(rm.get("ground_truth"))
        if rec.answer is None:
            rec.answer = _str(info.get("answer"))
        rec.answer_type = _str(info.get("answer_type"))
        rec.options = _options(info.get("options"))
        rec.source = _str(info.get("source"))
        for key, value in (("data_source", row.get("data_source")), ("ability", row.get("ability")),
                           ("reward style", rm.get("style")), ("split", info.get("split")),
                           ("index", info.get("index"))):
            if value is not None:
                extras[key] = str(value)
        if info.get("answer") is not None and rm.get("ground_truth") is not None \
                and str(info["answer"]) != str(rm["ground_truth"]):
            extras["warning"] = (f"extra_info.answer {info['answer']!r} differs from "
                                 f"reward_model.ground_truth {rm['ground_truth']!r}")
    else:
        rec = Record(id=_str(row.get("id")) or "", task=_str(row.get("task")) or "(no task)",
                     variant=_str(row.get("variant")) or "", split=split)
        if fmt == "trl":
            rec.problem, rec.suffix = strip_suffix(_trl_question(row.get("prompt"), extras))
        elif fmt == "sft":
            rec.problem, rec.suffix = strip_suffix(_trl_question(row.get("messages"), extras))
        else:
            rec.problem, rec.suffix = strip_suffix(_str(row.get("problem")))
        rec.answer = _str(row.get("answer"))
        rec.answer_type = _str(row.get("answer_type"))
        rec.options = _options(row.get("options"))
        rec.source = _str(row.get("source"))
        rec.depth_source = _str(row.get("depth_source"))
        rec.meta = _str(row.get("meta"))
    rec.extras = extras
    if "images" in row:
        rec.images, rec.image_names, rec.image_errors = _image_cells(row.get("images"))
    return rec


def _jsonl_record(dataset_dir: str, split: str, row: dict, with_images: bool) -> Record:
    rec = Record(id=_str(row.get("id")) or "", task=_str(row.get("task")) or "(no task)",
                 variant=_str(row.get("variant")) or "", split=split)
    user, assistant = [], []
    for msg in row.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        role, content = msg.get("role"), str(msg.get("content") or "")
        if role == "user":
            user.append(content)
        elif role == "assistant":
            assistant.append(content)
        else:
            rec.extras[f"{role} message"] = content
    rec.problem, rec.suffix = strip_suffix("\n".join(user))
    if assistant:
        rec.extras["assistant (target)"] = "\n".join(assistant)
    rec.answer = _str(row.get("answer"))
    if rec.answer is None and assistant:
        m = _BOXED.search(assistant[-1])
        rec.answer = m.group(1) if m else assistant[-1]
    rec.answer_type = _str(row.get("answer_type"))
    rec.options = _options(row.get("options"))
    rec.source = _str(row.get("source"))
    for rel in row.get("images") or []:
        rel = str(rel)
        rec.image_names.append(rel)
        if not with_images:
            continue
        path = rel if os.path.isabs(rel) else os.path.join(dataset_dir, rel)
        try:
            with open(path, "rb") as fh:
                rec.images.append(fh.read())
            rec.image_errors.append(None)
        except OSError as exc:
            rec.images.append(None)
            rec.image_errors.append(f"cannot read {rel}: {exc.strerror or exc}")
    return rec


class DatasetReader:
    """A dataset folder opened for reading. ``splits`` maps split name -> files."""

    def __init__(self, dataset_dir: str, fmt: str, splits: dict[str, list[str]], manifest: dict | None,
                 format_from_manifest: bool = False, warning: str | None = None):
        self.dir = dataset_dir
        self.format = fmt
        self.splits = splits
        self.manifest = manifest
        self.format_from_manifest = format_from_manifest
        self.warning = warning  # e.g. an unreadable manifest
        if fmt in PARQUET_FORMATS:
            for files in splits.values():
                for path in files:
                    self._check_columns(path)

    # -- helpers ------------------------------------------------------------------------
    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.dir)

    def _parquet(self, path: str):
        import pyarrow.parquet as pq

        try:
            # buffered stream reading keeps memory bounded on large image shards
            return pq.ParquetFile(path, buffer_size=1 << 22)
        except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a bad file
            raise DatasetError(f"cannot read {self.rel(path)} as parquet: {exc}") from None

    def _check_columns(self, path: str) -> None:
        schema = self._parquet(path).schema_arrow
        names = schema.names
        missing = [c for c in REQUIRED_COLUMNS[self.format] if c not in names]
        for col, subfields in REQUIRED_NESTED.get(self.format, {}).items():
            if col in names:
                typ = schema.field(col).type
                have = {typ.field(i).name for i in range(typ.num_fields)} if hasattr(typ, "num_fields") else set()
                missing += [f"{col}.{s}" for s in subfields if s not in have]
        if missing:
            origin = "as manifest.json says" if self.format_from_manifest else "inferred from its columns"
            raise DatasetError(
                f"{self.rel(path)} lacks column(s) {', '.join(missing)} needed to read the "
                f"{self.format} format ({origin}; it has: {', '.join(names) or 'none'})"
            )

    def files(self, split: str | None = None) -> list[str]:
        if split is None:
            return [f for files in self.splits.values() for f in files]
        if split not in self.splits:
            have = ", ".join(sorted(self.splits)) or "none"
            raise DatasetError(f"{self.dir} has no '{split}' split (it has: {have}); "
                               "`ssrl split` writes train/test splits")
        return self.splits[split]

    def _jsonl_rows(self, path: str) -> Iterator[tuple[int, dict]]:
        name = os.path.basename(path)
        try:
            with open(path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{name} line {lineno} is not valid JSON ({exc.msg})") from None
                    if not isinstance(row, dict):
                        raise DatasetError(f"{name} line {lineno} is not a JSON object")
                    missing = [k for k in JSONL_REQUIRED if k not in row]
                    if missing:
                        raise DatasetError(
                            f"{name} line {lineno} lacks key(s) {', '.join(missing)} of the llamafactory "
                            f"format (it has: {', '.join(row) or 'none'})")
                    yield lineno, row
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read {name}: {exc}") from None

    # -- reading ------------------------------------------------------------------------
    def records(self, split: str | None = None, with_images: bool = True,
                positions: Iterable[int] | None = None) -> Iterator[Record]:
        """Records in storage order (splits in name order, shards, rows). ``positions``
        (indices in that order) limits the output to those rows, still in storage order;
        ``with_images=False`` skips reading image bytes."""
        wanted = None if positions is None else set(positions)
        pos = 0
        for name in ([split] if split is not None else sorted(self.splits)):
            for path in self.files(name):
                if self.format == "llamafactory":
                    for _lineno, row in self._jsonl_rows(path):
                        if wanted is None or pos in wanted:
                            yield _jsonl_record(self.dir, name, row, with_images)
                        pos += 1
                    continue
                pf = self._parquet(path)
                n = pf.metadata.num_rows
                if wanted is not None and not any(p in wanted for p in range(pos, pos + n)):
                    pos += n
                    continue
                cols = [c for c in (*REQUIRED_COLUMNS[self.format], *OPTIONAL_COLUMNS[self.format])
                        if c in pf.schema_arrow.names and (with_images or c != "images")]
                try:
                    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
                        if wanted is None:
                            rows = batch.to_pylist()
                            hits = range(batch.num_rows)
                        else:
                            hits = [r for r in range(batch.num_rows) if pos + r in wanted]
                            rows = {r: batch.slice(r, 1).to_pylist()[0] for r in hits}
                        for r in hits:
                            yield _parquet_record(self.format, name, rows[r])
                        pos += batch.num_rows
                except DatasetError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    raise DatasetError(f"cannot read {self.rel(path)}: {exc}") from None

    def index(self, split: str | None = None) -> list[Record]:
        """Every record without its image bytes (ids, tasks, answers, sources)."""
        return list(self.records(split, with_images=False))


def _load_manifest(dataset_dir: str) -> tuple[dict | None, str | None]:
    path = os.path.join(dataset_dir, "manifest.json")
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"manifest.json could not be read ({exc}); format inferred from the files"
    if not isinstance(manifest, dict):
        return None, "manifest.json is not a JSON object; format inferred from the files"
    return manifest, None


def _infer_parquet_format(path: str, dataset_dir: str) -> str:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f"cannot read {os.path.relpath(path, dataset_dir)} as parquet: {exc}") from None
    if "reward_model" in names or "extra_info" in names:
        return "verl"
    if "prompt" in names:
        return "trl"
    if "messages" in names:
        return "sft"
    if "problem" in names and "meta" in names:
        return "canonical"
    if "problem" in names:
        return "easyr1"
    raise DatasetError(
        f"{os.path.relpath(path, dataset_dir)} matches none of the formats {', '.join(PARQUET_FORMATS)} "
        f"(it has columns: {', '.join(names) or 'none'}; a question column 'problem' or 'prompt' is needed)"
    )


def _group(files: list[str]) -> dict[str, list[str]]:
    splits: dict[str, list[str]] = {}
    for f in sorted(files):
        splits.setdefault(split_of(f), []).append(f)
    return splits


def open_dataset(dataset_dir: str) -> DatasetReader:
    """Open a folder written by ``ssrl generate`` (or ``ssrl split`` / ``ssrl coldstart``)."""
    if not os.path.isdir(dataset_dir):
        raise DatasetError(f"{dataset_dir} is not a folder" if os.path.exists(dataset_dir)
                           else f"{dataset_dir} does not exist")
    manifest, warning = _load_manifest(dataset_dir)
    files = [f for f in glob.glob(os.path.join(dataset_dir, "data", "*.parquet"))
             if not os.path.basename(f).startswith(".")]
    # llamafactory splits: train.jsonl and the ones `ssrl split` writes (other .jsonl files,
    # e.g. predictions saved beside the data, are not the dataset)
    jsonl = [os.path.join(dataset_dir, f"{name}.jsonl") for name in JSONL_SPLITS
             if os.path.isfile(os.path.join(dataset_dir, f"{name}.jsonl"))]
    fmt = manifest.get("format") if manifest else None
    if fmt not in FORMATS:
        fmt = None
    if not files and not jsonl:
        hint = ""
        if manifest and manifest.get("num_written") == 0:
            hint = " (its manifest.json says no samples were written)"
        raise DatasetError(
            f"{dataset_dir} holds no dataset{hint}: expected data/*.parquet or train.jsonl "
            "(a folder written by `ssrl generate --out FOLDER`)"
        )
    from_manifest = fmt is not None
    if fmt is None:
        fmt = _infer_parquet_format(min(files), dataset_dir) if files else "llamafactory"
    if fmt == "llamafactory":
        if not jsonl:
            raise DatasetError(f"manifest.json says format llamafactory but {dataset_dir} has no train.jsonl")
        return DatasetReader(dataset_dir, fmt, _group(jsonl), manifest, from_manifest, warning)
    if not files:
        raise DatasetError(f"manifest.json says format {fmt} but {dataset_dir} has no data/*.parquet")
    return DatasetReader(dataset_dir, fmt, _group(files), manifest, from_manifest, warning)
