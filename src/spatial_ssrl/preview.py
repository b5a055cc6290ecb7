"""One self-contained HTML page showing samples of a written dataset.

``write_preview(dataset_dir, out_path)`` reads a dataset in any of the output formats
(canonical, trl, easyr1, verl parquet shards under ``data/``; llamafactory's ``train.jsonl``
plus ``images/``) with pyarrow / json only, picks ``num`` samples deterministically from
``seed``, spread round-robin over the tasks (and, within a task, over its variants), and
writes one HTML file: a header with the manifest's summary, then a section per task with
each sample's images (embedded as base64 data URIs), question, answer, answer type / options
and parameters (the ``meta`` JSON, canonical format only).

Images whose longer side exceeds ``max_side`` (default 512) are downscaled for display and
embedded as JPEG, which keeps pages of large photos small and quick to open; smaller
images, and every image when ``max_side=0``, are embedded as their stored bytes.
Captions always give the stored image's pixel size (and the size shown, when downscaled).

Mistakes a user can make (a folder with no dataset, a parquet lacking the columns its
format needs, an unreadable file) raise :class:`PreviewError` with a readable message.
"""

from __future__ import annotations

import base64
import glob
import html
import io
import json
import os
import random
import re
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from .prompts import FORMAT_SUFFIX, IMAGE_TOKEN

PARQUET_FORMATS = ("canonical", "trl", "easyr1", "verl")
FORMATS = (*PARQUET_FORMATS, "llamafactory")
JSONL_FILE = "train.jsonl"

# Columns each parquet format needs (top level), and nested fields of struct columns.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "canonical": ("id", "task", "variant", "images", "problem", "answer"),
    "trl": ("id", "task", "variant", "images", "prompt", "answer"),
    "easyr1": ("id", "task", "variant", "images", "problem", "answer"),
    "verl": ("images", "prompt", "reward_model", "extra_info"),
}
REQUIRED_NESTED: dict[str, dict[str, tuple[str, ...]]] = {
    "verl": {"reward_model": ("ground_truth",), "extra_info": ("id", "task", "variant")},
}
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "canonical": ("answer_type", "options", "source", "meta"),
    "trl": ("answer_type",),
    "easyr1": ("answer_type",),
    "verl": ("data_source", "ability"),
}
JSONL_REQUIRED = ("messages", "images", "id", "task", "variant")

CROP_CAPTIONS = ("masked image", "A", "B", "C", "D")
BATCH_ROWS = 16
DEFAULT_MAX_SIDE = 512  # longest displayed side; 0 embeds the stored bytes unchanged
JPEG_QUALITY = 85  # of the downscaled display copies


class PreviewError(Exception):
    """A dataset folder the preview cannot read (the message says why)."""


@dataclass
class _Sample:
    pos: int  # position in the dataset (shard order, then row order)
    id: str
    task: str
    variant: str
    images: list[bytes | None] = field(default_factory=list)
    image_names: list[str] = field(default_factory=list)
    image_errors: list[str | None] = field(default_factory=list)
    problem: str | None = None
    suffix: str | None = None
    answer: str | None = None
    answer_type: str | None = None
    options: list[str] | None = None
    source: str | None = None
    meta: str | None = None
    extras: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# reading


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


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _split_suffix(text: str | None) -> tuple[str | None, str | None]:
    """Split the trainer format suffix some writers append off the question."""
    if text is None:
        return None, None
    stripped = text.rstrip()
    if stripped.endswith(FORMAT_SUFFIX):
        return stripped[: -len(FORMAT_SUFFIX)].rstrip(), FORMAT_SUFFIX
    return text, None


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


class _ParquetDataset:
    def __init__(self, dataset_dir: str, files: list[str], fmt: str, format_from_manifest: bool = False):
        import pyarrow.parquet as pq

        self.dir, self.files, self.format = dataset_dir, files, fmt
        self.format_from_manifest = format_from_manifest
        self._pq = pq
        self.index: list[tuple[str, str, str]] = []  # (task, variant, id) per row
        self._locs: list[tuple[int, int]] = []  # (file number, row in file)
        for fi, path in enumerate(files):
            pf = self._open(path)
            self._check_columns(path, pf.schema_arrow)
            try:
                if fmt == "verl":
                    table = pf.read(columns=["extra_info"])
                    infos = table.column("extra_info").to_pylist()
                    rows = [((e or {}).get("task"), (e or {}).get("variant"), (e or {}).get("id")) for e in infos]
                else:
                    table = pf.read(columns=["task", "variant", "id"])
                    rows = list(zip(*(table.column(c).to_pylist() for c in ("task", "variant", "id"))))
            except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a bad file
                raise PreviewError(f"cannot read {self._rel(path)}: {exc}") from None
            for r, (task, variant, sid) in enumerate(rows):
                self.index.append((str(task) if task is not None else "(no task)",
                                   str(variant) if variant is not None else "",
                                   str(sid) if sid is not None else f"row-{len(self.index)}"))
                self._locs.append((fi, r))

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.dir)

    def _open(self, path: str):
        try:
            # buffered stream reading keeps memory bounded on large image shards
            return self._pq.ParquetFile(path, buffer_size=1 << 22)
        except Exception as exc:  # noqa: BLE001
            raise PreviewError(f"cannot read {self._rel(path)} as parquet: {exc}") from None

    def _check_columns(self, path: str, schema) -> None:
        names = schema.names
        missing = [c for c in REQUIRED_COLUMNS[self.format] if c not in names]
        for col, subfields in REQUIRED_NESTED.get(self.format, {}).items():
            if col in names:
                typ = schema.field(col).type
                have = {typ.field(i).name for i in range(typ.num_fields)} if hasattr(typ, "num_fields") else set()
                missing += [f"{col}.{s}" for s in subfields if s not in have]
        if missing:
            origin = "as manifest.json says" if self.format_from_manifest else "inferred from its columns"
            raise PreviewError(
                f"{self._rel(path)} lacks column(s) {', '.join(missing)} needed to preview the "
                f"{self.format} format ({origin}; it has: {', '.join(names) or 'none'})"
            )

    def load(self, positions: Iterable[int]) -> list[_Sample]:
        wanted: dict[int, dict[int, int]] = defaultdict(dict)  # file -> row -> position
        for p in positions:
            fi, r = self._locs[p]
            wanted[fi][r] = p
        cols = [c for c in (*REQUIRED_COLUMNS[self.format], *OPTIONAL_COLUMNS[self.format])]
        out: list[_Sample] = []
        for fi in sorted(wanted):
            rows = wanted[fi]
            path = self.files[fi]
            pf = self._open(path)
            present = [c for c in cols if c in pf.schema_arrow.names]
            offset, left = 0, len(rows)
            try:
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=present):
                    hits = [r for r in range(offset, offset + batch.num_rows) if r in rows]
                    for r in hits:
                        rec = batch.slice(r - offset, 1).to_pylist()[0]
                        out.append(self._sample(rows[r], rec))
                    left -= len(hits)
                    offset += batch.num_rows
                    if left <= 0:
                        break
            except PreviewError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise PreviewError(f"cannot read {self._rel(path)}: {exc}") from None
        return out

    def _sample(self, pos: int, rec: dict) -> _Sample:
        task, variant, sid = self.index[pos]
        s = _Sample(pos=pos, id=sid, task=task, variant=variant)
        s.images, s.image_names, s.image_errors = _image_cells(rec.get("images"))
        fmt = self.format
        if fmt in ("canonical", "easyr1"):
            s.problem, s.suffix = _split_suffix(_str(rec.get("problem")))
            s.answer = _str(rec.get("answer"))
            s.answer_type = _str(rec.get("answer_type"))
            s.options = rec.get("options")
            s.source = _str(rec.get("source"))
            s.meta = _str(rec.get("meta"))
        elif fmt == "trl":
            user, others = [], []
            for msg in rec.get("prompt") or []:
                msg = msg or {}
                parts = []
                for part in msg.get("content") or []:
                    part = part or {}
                    if part.get("type") == "image":
                        parts.append(IMAGE_TOKEN)
                    elif part.get("text") is not None:
                        parts.append(str(part["text"]))
                text = "".join(parts)
                (user if msg.get("role") == "user" else others).append((msg.get("role"), text))
            s.problem, s.suffix = _split_suffix("\n".join(t for _, t in user))
            for role, text in others:
                s.extras[f"{role} message"] = text
            s.answer = _str(rec.get("answer"))
            s.answer_type = _str(rec.get("answer_type"))
        elif fmt == "verl":
            user = []
            for msg in rec.get("prompt") or []:
                msg = msg or {}
                if msg.get("role") == "user":
                    user.append(str(msg.get("content") or ""))
                else:
                    s.extras[f"{msg.get('role')} message"] = str(msg.get("content") or "")
            s.problem, s.suffix = _split_suffix("\n".join(user))
            rm = rec.get("reward_model") or {}
            info = rec.get("extra_info") or {}
            s.answer = _str(rm.get("ground_truth"))
            s.answer_type = _str(info.get("answer_type"))
            s.options = info.get("options")
            for key, value in (("data_source", rec.get("data_source")), ("ability", rec.get("ability")),
                               ("reward style", rm.get("style")), ("split", info.get("split")),
                               ("index", info.get("index"))):
                if value is not None:
                    s.extras[key] = str(value)
            if info.get("answer") is not None and str(info["answer"]) != s.answer:
                s.extras["warning"] = (f"extra_info.answer {info['answer']!r} differs from "
                                       f"reward_model.ground_truth {s.answer!r}")
        return s


_BOXED = re.compile(r"\\boxed\{(.*)\}\s*$", re.S)


class _JsonlDataset:
    format = "llamafactory"

    def __init__(self, dataset_dir: str, path: str):
        self.dir, self.path = dataset_dir, path
        self.index: list[tuple[str, str, str]] = []
        self._lines: list[int] = []
        for lineno, rec in self._records():
            missing = [k for k in JSONL_REQUIRED if k not in rec]
            if missing:
                raise PreviewError(
                    f"{JSONL_FILE} line {lineno} lacks key(s) {', '.join(missing)} needed to preview "
                    f"the llamafactory format (it has: {', '.join(rec) or 'none'})"
                )
            self.index.append((str(rec["task"]), str(rec["variant"]), str(rec["id"])))
            self._lines.append(lineno)

    def _records(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise PreviewError(f"{JSONL_FILE} line {lineno} is not valid JSON ({exc.msg})") from None
                    if not isinstance(rec, dict):
                        raise PreviewError(f"{JSONL_FILE} line {lineno} is not a JSON object")
                    yield lineno, rec
        except (OSError, UnicodeDecodeError) as exc:
            raise PreviewError(f"cannot read {JSONL_FILE}: {exc}") from None

    def load(self, positions: Iterable[int]) -> list[_Sample]:
        by_line = {self._lines[p]: p for p in positions}
        out = []
        for lineno, rec in self._records():
            if lineno in by_line:
                out.append(self._sample(by_line[lineno], rec))
                if len(out) == len(by_line):
                    break
        return out

    def _sample(self, pos: int, rec: dict) -> _Sample:
        task, variant, sid = self.index[pos]
        s = _Sample(pos=pos, id=sid, task=task, variant=variant)
        user, assistant = [], []
        for msg in rec.get("messages") or []:
            if not isinstance(msg, dict):
                continue
            role, content = msg.get("role"), str(msg.get("content") or "")
            if role == "user":
                user.append(content)
            elif role == "assistant":
                assistant.append(content)
            else:
                s.extras[f"{role} message"] = content
        s.problem, s.suffix = _split_suffix("\n".join(user))
        if assistant:
            s.extras["assistant (target)"] = "\n".join(assistant)
        s.answer = _str(rec.get("answer"))
        if s.answer is None and assistant:
            m = _BOXED.search(assistant[-1])
            s.answer = m.group(1) if m else assistant[-1]
        s.answer_type = _str(rec.get("answer_type"))
        if isinstance(rec.get("options"), list):
            s.options = [str(o) for o in rec["options"]]
        for i, rel in enumerate(rec.get("images") or []):
            rel = str(rel)
            path = rel if os.path.isabs(rel) else os.path.join(self.dir, rel)
            s.image_names.append(rel)
            try:
                with open(path, "rb") as fh:
                    s.images.append(fh.read())
                s.image_errors.append(None)
            except OSError as exc:
                s.images.append(None)
                s.image_errors.append(f"cannot read {rel}: {exc.strerror or exc}")
        return s


def _infer_parquet_format(path: str, dataset_dir: str) -> str:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # noqa: BLE001
        raise PreviewError(f"cannot read {os.path.relpath(path, dataset_dir)} as parquet: {exc}") from None
    if "reward_model" in names or "extra_info" in names:
        return "verl"
    if "prompt" in names:
        return "trl"
    if "problem" in names and "meta" in names:
        return "canonical"
    if "problem" in names:
        return "easyr1"
    raise PreviewError(
        f"{os.path.relpath(path, dataset_dir)} matches none of the formats {', '.join(PARQUET_FORMATS)} "
        f"(it has columns: {', '.join(names) or 'none'}; a question column 'problem' or 'prompt' is needed)"
    )


def _open_dataset(dataset_dir: str, manifest: dict | None):
    files = sorted(glob.glob(os.path.join(dataset_dir, "data", "*.parquet")))
    jsonl = os.path.join(dataset_dir, JSONL_FILE)
    has_jsonl = os.path.isfile(jsonl)
    fmt = manifest.get("format") if manifest else None
    if fmt not in FORMATS:
        fmt = None
    if not files and not has_jsonl:
        hint = ""
        if manifest and manifest.get("num_written") == 0:
            hint = " (its manifest.json says no samples were written)"
        raise PreviewError(
            f"{dataset_dir} holds no dataset{hint}: expected data/*.parquet or {JSONL_FILE}. "
            "Point preview at a folder written by `ssrl generate --out FOLDER`."
        )
    from_manifest = fmt is not None
    if fmt is None:
        fmt = _infer_parquet_format(files[0], dataset_dir) if files else "llamafactory"
    if fmt == "llamafactory":
        if not has_jsonl:
            raise PreviewError(f"manifest.json says format llamafactory but {dataset_dir} has no {JSONL_FILE}")
        return _JsonlDataset(dataset_dir, jsonl)
    if not files:
        raise PreviewError(f"manifest.json says format {fmt} but {dataset_dir} has no data/*.parquet")
    return _ParquetDataset(dataset_dir, files, fmt, format_from_manifest=from_manifest)


# ----------------------------------------------------------------------------------------
# picking samples


def _select(index: list[tuple[str, str, str]], num: int, seed: int) -> list[int]:
    """``num`` positions, round-robin over tasks (in a seeded order) and, within a task,
    round-robin over its variants; each variant's rows in a seeded random order."""
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pos, (task, variant, _) in enumerate(index):
        groups[task][variant].append(pos)
    queues: dict[str, list[int]] = {}
    for task, variants in groups.items():
        rng = random.Random(f"ssrl-preview:{seed}:{task}")
        lanes = []
        for variant in sorted(variants):
            rows = list(variants[variant])
            rng.shuffle(rows)
            lanes.append(rows)
        rng.shuffle(lanes)
        queue: list[int] = []
        depth = max(len(lane) for lane in lanes)
        for i in range(depth):
            queue.extend(lane[i] for lane in lanes if i < len(lane))
        queues[task] = queue
    order = sorted(queues)
    random.Random(f"ssrl-preview:{seed}").shuffle(order)
    picked: list[int] = []
    depth = max((len(q) for q in queues.values()), default=0)
    for i in range(depth):
        for task in order:
            if i < len(queues[task]) and len(picked) < num:
                picked.append(queues[task][i])
    return picked


# ----------------------------------------------------------------------------------------
# rendering


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _mime(data: bytes) -> str:
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
class _Shown:
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


def _display_image(data: bytes, max_side: int) -> _Shown:
    """What to embed for one stored image: its own bytes, or a JPEG copy downscaled so the
    longer side is ``max_side`` when it is larger than that (``max_side=0``: never)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            if max_side <= 0 or max(size) <= max_side:
                return _Shown(data, size)
            try:
                small = _downscaled(im, max_side)
                buf = io.BytesIO()
                small.save(buf, format="JPEG", quality=JPEG_QUALITY)
            except Exception as exc:  # noqa: BLE001 - the original is shown instead
                return _Shown(data, size, note=f"not downscaled ({type(exc).__name__})")
            return _Shown(buf.getvalue(), size, shown=small.size)
    except Exception:  # noqa: BLE001 - shown as "unreadable" on the page
        return _Shown(data, None)


def _json_compact(value: Any, indent: int = 0, width: int = 46) -> str:
    """Pretty JSON that keeps short lists and objects on one line and packs lists of short
    items (e.g. boxes) several to a line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_json_compact(v, indent + 2, width)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    parts = [_json_compact(v, indent + 2, width) for v in value]
    lines: list[str] = []
    for part in parts:
        if lines and "\n" not in part and "\n" not in lines[-1] \
                and len(lines[-1]) + len(part) + 2 <= width - indent - 2:
            lines[-1] += ", " + part
        else:
            lines.append(part)
    return "[\n" + ",\n".join(inner + line for line in lines) + "\n" + pad + "]"


def _question_html(text: str | None) -> str:
    if text is None:
        return '<span class="dim">(no question stored)</span>'
    parts = text.split(IMAGE_TOKEN)
    out = [_e(parts[0])]
    for i, part in enumerate(parts[1:], 1):
        out.append(f'<span class="ph" title="image {i}">&lt;image&gt;<sub>{i}</sub></span>')
        out.append(_e(part))
    return "".join(out)


def _captions(s: _Sample) -> list[str]:
    n = len(s.images)
    if s.task == "crop" and n == len(CROP_CAPTIONS):
        return list(CROP_CAPTIONS)
    if s.options and n == len(s.options) + 1:
        return ["question image", *s.options]
    if n == 1:
        return ["image"]
    return [f"image {i + 1}" for i in range(n)]


def _images_html(s: _Sample, max_side: int = DEFAULT_MAX_SIDE) -> str:
    if not s.images:
        return '<div class="imgs"><span class="dim">(no images)</span></div>'
    caps = _captions(s)
    figs = []
    for i, (data, name, err, cap) in enumerate(zip(s.images, s.image_names, s.image_errors, caps)):
        correct = s.answer is not None and cap == s.answer and i > 0
        cls = f"fig fig-{i}" + (" correct" if correct else "")
        mark = ' <span class="tick">&#10003; answer</span>' if correct else ""
        if data is None:
            body = f'<div class="missing">{_e(err or "missing image")}</div>'
            size = ""
        else:
            # each image (the crop task's masked image and its options too) by the same rule
            d = _display_image(data, max_side)
            wh = d.size
            size = f"{wh[0]}&times;{wh[1]}" if wh else "unreadable image"
            title, attrs = name, ""
            if wh:
                attrs = f' data-size="{wh[0]}x{wh[1]}"'
            if d.shown:
                size += (f'<span class="shown"> &middot; shown at '
                         f'{d.shown[0]}&times;{d.shown[1]}</span>')
                title = f"{name} (stored {wh[0]}x{wh[1]}, downscaled to {d.shown[0]}x{d.shown[1]} for display)"
                attrs += f' data-shown="{d.shown[0]}x{d.shown[1]}"'
            elif d.note:
                size += f'<span class="shown"> &middot; {_e(d.note)}</span>'
            b64 = base64.b64encode(d.data).decode("ascii")
            body = (f'<img src="data:{_mime(d.data)};base64,{b64}" alt="{_e(cap)}" '
                    f'title="{_e(title)}" data-index="{i}"{attrs}>')
        figs.append(
            f'<figure class="{cls}">{body}<figcaption><span class="cap">{_e(cap)}</span>{mark} '
            f'<span class="dim size">{size}</span></figcaption></figure>'
        )
    layout = "row crop" if s.task == "crop" else "row"
    return f'<div class="imgs {layout}">{"".join(figs)}</div>'


def _field(label: str, value_html: str, cls: str = "") -> str:
    return f'<dt>{_e(label)}</dt><dd class="{cls}">{value_html}</dd>'


def _sample_html(s: _Sample, number: int, max_side: int = DEFAULT_MAX_SIDE) -> str:
    fields = [_field("answer", f'<span class="answer">{_e(s.answer) if s.answer is not None else "—"}</span>')]
    fields.append(_field("answer type", _e(s.answer_type) if s.answer_type else '<span class="dim">—</span>'))
    if s.options:
        opts = " ".join(
            f'<span class="opt{" correct" if o == s.answer else ""}">{_e(o)}</span>' for o in s.options
        )
        fields.append(_field("options", f'<span class="options">{opts}</span>'))
    if s.source:
        fields.append(_field("source", f'<span class="mono">{_e(s.source)}</span>', "wrap"))
    for key, value in s.extras.items():
        cls = "warn" if key == "warning" else "wrap"
        fields.append(_field(key, f'<span class="mono">{_e(value)}</span>', cls))

    if s.meta is not None:
        try:
            meta_text = _json_compact(json.loads(s.meta))
        except (TypeError, ValueError):
            meta_text = s.meta
        params = f'<h4>params <span class="dim">(meta)</span></h4><pre class="meta">{_e(meta_text)}</pre>'
    else:
        params = '<h4>params</h4><p class="dim small">not stored in this format (see the canonical format\'s meta)</p>'

    suffix = ""
    if s.suffix:
        suffix = (f'<details class="suffix"><summary>format suffix appended by the writer</summary>'
                  f'<p>{_e(s.suffix)}</p></details>')
    return f"""
<article class="sample" id="s-{_e(s.id)}" data-id="{_e(s.id)}" data-task="{_e(s.task)}" data-variant="{_e(s.variant)}">
  <header><span class="num">#{number}</span> <span class="badge">{_e(s.variant) or "—"}</span>
    <span class="sid mono">{_e(s.id)}</span>
    <span class="ans-badge">answer <b>{_e(s.answer) if s.answer is not None else "—"}</b></span></header>
  <div class="body {"stack" if len(s.images) > 2 else "side"}">
    {_images_html(s, max_side)}
    <div class="qa">
      <h4>question</h4>
      <div class="question">{_question_html(s.problem)}</div>
      {suffix}
      <dl>{"".join(fields)}</dl>
    </div>
    <div class="params">{params}</div>
  </div>
</article>"""


def _kv_list(d: dict | None) -> str:
    if not d:
        return '<span class="dim">none</span>'
    return ", ".join(f'{_e(k)} <b>{_e(v)}</b>' for k, v in d.items())


def _header_html(dataset_dir: str, fmt: str, manifest: dict | None, warning: str | None,
                 index: list[tuple[str, str, str]], shown: list[_Sample], seed: int,
                 max_side: int = DEFAULT_MAX_SIDE) -> str:
    data_counts: dict[str, Counter] = defaultdict(Counter)
    for task, variant, _ in index:
        data_counts[task][variant] += 1
    shown_counts = Counter((s.task, s.variant) for s in shown)
    m = manifest or {}
    man_counts = m.get("counts") if isinstance(m.get("counts"), dict) else None

    notes = []
    if warning:
        notes.append(f'<p class="warn">{_e(warning)}</p>')
    if manifest is None and warning is None:
        notes.append('<p class="dim">no manifest.json in this folder: counts below are read from the data</p>')
    if man_counts is not None:
        man_flat = {(t, v): n for t, vs in man_counts.items() if isinstance(vs, dict) for v, n in vs.items()}
        data_flat = {(t, v): n for t, vs in data_counts.items() for v, n in vs.items()}
        if man_flat != data_flat:
            notes.append('<p class="warn">the manifest\'s counts differ from the rows in the data '
                         f'(manifest {sum(man_flat.values())} rows, data {sum(data_flat.values())})</p>')

    rows = []
    for task in sorted(data_counts):
        variants = data_counts[task]
        for j, variant in enumerate(sorted(variants)):
            first = f'<td rowspan="{len(variants)}"><a href="#task-{_e(task)}">{_e(task)}</a> ' \
                    f'<span class="dim">{sum(variants.values())}</span></td>' if j == 0 else ""
            rows.append(f'<tr data-task="{_e(task)}" data-variant="{_e(variant)}">{first}<td>{_e(variant)}</td>'
                        f'<td class="n rows">{variants[variant]}</td>'
                        f'<td class="n shown">{shown_counts.get((task, variant), 0)}</td></tr>')
    table = ("<table class='counts'><thead><tr><th>task</th><th>variant</th><th>rows</th><th>shown</th>"
             f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")

    facts = [("format", _e(fmt)), ("samples", _e(len(index)))]
    if manifest is not None:
        if "num_requested" in m:
            written = _e(m.get("num_written", len(index)))
            facts[1] = ("samples", f"{written} written of {_e(m['num_requested'])} requested")
        for key in ("seed", "spatial_ssrl_version", "created"):
            if key in m:
                facts.append((key.replace("spatial_ssrl_", ""), _e(m[key])))
        src = m.get("sources")
        if isinstance(src, dict):
            facts.append(("sources", _kv_list(src)))
    facts.append(("preview", f"{len(shown)} samples, preview seed {_e(seed)}"))
    if max_side > 0:
        facts.append(("images", f"larger than {_e(max_side)} px on the longer side are shown downscaled "
                                "(JPEG); <span class='mono'>--max-side 0</span> embeds the originals"))
    else:
        facts.append(("images", "stored bytes, not downscaled"))
    fact_html = "".join(f"<div><span class='k'>{k}</span> {v}</div>" for k, v in facts)

    runlog = ""
    if manifest is not None:
        items = [("rejected draws", m.get("rejections")), ("skipped", m.get("skips")),
                 ("could not fill", m.get("unfilled")), ("conversions", m.get("conversions"))]
        runlog = "".join(
            f"<div><span class='k'>{_e(k)}</span> {_kv_list(v if isinstance(v, dict) else None)}</div>"
            for k, v in items
        )
        inputs = m.get("inputs")
        if inputs:
            joined = _e(", ".join(map(str, inputs)))
            runlog += f"<div><span class='k'>inputs</span> <span class='mono'>{joined}</span></div>"

    return f"""
<header class="top">
  <h1>Dataset preview <span class="path mono">{_e(os.path.abspath(dataset_dir))}</span></h1>
  {"".join(notes)}
  <div class="summary">
    <div class="facts">{fact_html}{runlog}</div>
    {table}
  </div>
</header>"""


CSS = """
:root { --bg:#f4f5f7; --card:#fff; --ink:#1d2330; --dim:#6b7280; --line:#e3e6eb;
  --accent:#2f6fde; --ok:#15803d; --okbg:#e7f6ec; --warn:#b45309; --warnbg:#fff7e6; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1320px; margin:0 auto; padding:24px 28px 60px; }
.mono, pre, code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace; }
.dim { color:var(--dim); } .small { font-size:12.5px; }
h1 { font-size:22px; margin:0 0 12px; }
h1 .path { font-size:13px; font-weight:400; color:var(--dim); margin-left:8px; word-break:break-all; }
header.top { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 22px; }
.summary { display:flex; gap:28px; flex-wrap:wrap; align-items:flex-start; }
.facts { flex:1 1 420px; display:grid; gap:4px; }
.facts .k { display:inline-block; min-width:120px; color:var(--dim); }
table.counts { border-collapse:collapse; font-size:13px; }
table.counts th, table.counts td { border-bottom:1px solid var(--line); padding:3px 12px; text-align:left;
  vertical-align:top; }
table.counts th { color:var(--dim); font-weight:600; }
table.counts td.n { text-align:right; font-variant-numeric:tabular-nums; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
p.warn, dd.warn { color:var(--warn); background:var(--warnbg); border-radius:6px; padding:4px 8px; }
nav.toc { margin:18px 0 0; display:flex; gap:10px; flex-wrap:wrap; }
nav.toc a { background:var(--card); border:1px solid var(--line); border-radius:999px; padding:3px 12px; }
section.task { margin-top:30px; }
section.task > h2 { font-size:19px; margin:0 0 12px; padding-bottom:6px; border-bottom:2px solid var(--line); }
section.task > h2 .count { font-size:13px; font-weight:500; color:var(--dim); margin-left:6px; }
article.sample { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:14px 18px 16px; margin:0 0 16px; }
article.sample > header { display:flex; align-items:center; gap:10px; flex-wrap:wrap; margin-bottom:10px; }
.num { color:var(--dim); font-weight:600; }
.badge { background:#eaf0fc; color:var(--accent); border-radius:5px; padding:1px 8px; font-weight:600; font-size:13px; }
.sid { color:var(--dim); font-size:12.5px; }
.ans-badge { margin-left:auto; background:var(--okbg); color:var(--ok); border-radius:5px; padding:1px 10px; }
.imgs.row { display:flex; gap:12px; flex-wrap:wrap; align-items:flex-end; }
figure { margin:0; }
figure img { display:block; max-width:100%; max-height:340px; width:auto; height:auto;
  border:1px solid var(--line); border-radius:4px; background:#fafafa; }
.imgs.crop figure.fig-0 img { max-height:260px; max-width:520px; }
.imgs.crop figure:not(.fig-0) img { max-height:150px; max-width:150px; }
figure.correct img { outline:3px solid var(--ok); outline-offset:1px; }
figcaption { font-size:12.5px; margin-top:3px; }
figcaption .cap { font-weight:600; }
.tick { color:var(--ok); font-weight:600; }
.missing { width:160px; height:100px; display:flex; align-items:center; justify-content:center; text-align:center;
  font-size:12px; color:var(--warn); background:var(--warnbg); border:1px dashed var(--warn); border-radius:4px;
  padding:6px; }
.body { display:grid; gap:14px 22px; align-items:start; }
.body.side { grid-template-columns:auto minmax(0,1.25fr) minmax(0,1fr); }
.body.side figure img { max-width:440px; max-height:380px; }
.body.stack { grid-template-columns:minmax(0,3fr) minmax(0,2fr); }
.body.stack > .imgs { grid-column:1 / -1; }
@media (max-width:1100px) { .body.side { grid-template-columns:auto minmax(0,1fr); }
  .body.side > .params { grid-column:1 / -1; } }
@media (max-width:760px) { .body.side, .body.stack { grid-template-columns:1fr; } }
h4 { margin:0 0 4px; font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--dim); }
.question { white-space:pre-wrap; background:#f8f9fb; border-left:3px solid var(--accent); padding:8px 12px;
  border-radius:4px; }
.ph { display:inline-block; font:600 11.5px/1.4 ui-monospace,Menlo,Consolas,monospace; color:#7c3aed;
  background:#f1ebff; border:1px solid #dccfff; border-radius:4px; padding:0 4px; margin:0 2px; vertical-align:1px; }
.ph sub { font-size:9.5px; vertical-align:baseline; margin-left:1px; color:#9a7ae6; }
details.suffix { margin-top:4px; font-size:12.5px; color:var(--dim); }
details.suffix p { margin:4px 0 0; white-space:pre-wrap; }
dl { display:grid; grid-template-columns:max-content minmax(0,1fr); gap:3px 14px; margin:12px 0 0; }
dt { color:var(--dim); } dd { margin:0; } dd.wrap { word-break:break-all; }
.answer { font-weight:700; font-size:15px; color:var(--ok); font-family:ui-monospace,Menlo,Consolas,monospace; }
.opt { display:inline-block; min-width:22px; text-align:center; border:1px solid var(--line); border-radius:4px;
  padding:0 5px; margin-right:3px; }
.opt.correct { border-color:var(--ok); background:var(--okbg); color:var(--ok); font-weight:700; }
pre.meta { margin:0; font-size:12px; line-height:1.45; background:#f8f9fb; border:1px solid var(--line);
  border-radius:6px; padding:8px 10px; overflow:auto; white-space:pre-wrap; word-break:break-word; }
.empty { margin-top:24px; }
"""


def _page(title: str, header: str, toc: str, sections: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>"
        f"{header}{toc}{sections}\n</main>\n</body>\n</html>\n"
    )


def render_preview(dataset_dir: str, num: int = 50, seed: int = 0,
                   max_side: int = DEFAULT_MAX_SIDE) -> tuple[str, int]:
    """The preview page's HTML and the number of samples it shows. Images whose longer side
    exceeds ``max_side`` are embedded as downscaled JPEG copies (``0``: stored bytes always)."""
    if num < 1:
        raise PreviewError(f"num must be at least 1 (got {num})")
    if max_side < 0:
        raise PreviewError(f"max_side must be 0 (originals) or a positive number of pixels (got {max_side})")
    if not os.path.isdir(dataset_dir):
        raise PreviewError(f"{dataset_dir} is not a folder")
    manifest, warning = _load_manifest(dataset_dir)
    ds = _open_dataset(dataset_dir, manifest)
    picked = _select(ds.index, num, seed)
    samples = ds.load(picked)
    samples.sort(key=lambda s: (s.task, s.variant, s.pos))

    by_task: dict[str, list[_Sample]] = defaultdict(list)
    for s in samples:
        by_task[s.task].append(s)
    sections, links, number = [], [], 0
    for task in sorted(by_task):
        items = by_task[task]
        body = []
        for s in items:
            number += 1
            body.append(_sample_html(s, number, max_side))
        n = len(items)
        sections.append(
            f'\n<section class="task" id="task-{_e(task)}" data-task="{_e(task)}">'
            f'<h2>{_e(task)} <span class="count">{n} sample{"s" if n != 1 else ""} shown</span></h2>'
            f'{"".join(body)}\n</section>'
        )
        links.append(f'<a href="#task-{_e(task)}">{_e(task)} <span class="dim">{n}</span></a>')
    toc = f'<nav class="toc">{"".join(links)}</nav>' if links else ""
    if not samples:
        sections.append('<p class="empty dim">the dataset has no rows</p>')
    header = _header_html(dataset_dir, ds.format, manifest, warning, ds.index, samples, seed, max_side)
    title = f"Preview: {os.path.basename(os.path.abspath(dataset_dir))}"
    return _page(title, header, toc, "".join(sections)), len(samples)


def write_preview(dataset_dir: str, out_path: str, num: int = 50, seed: int = 0,
                  max_side: int = DEFAULT_MAX_SIDE) -> int:
    """Write a self-contained HTML page showing ``num`` samples of the dataset in
    ``dataset_dir`` to ``out_path``; return the number of samples shown. Images whose longer
    side exceeds ``max_side`` pixels are shown downscaled (JPEG); ``max_side=0`` embeds
    every image's stored bytes."""
    page, shown = render_preview(dataset_dir, num=num, seed=seed, max_side=max_side)
    d = os.path.dirname(os.path.abspath(out_path))
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".html")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(page)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise PreviewError(f"cannot write {out_path}: {exc.strerror or exc}") from None
    return shown


__all__ = ["PreviewError", "render_preview", "write_preview"]
