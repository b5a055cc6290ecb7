"""The preview page's HTML: header, one section per task, one block per sample.

The stylesheet is the package file ``style.css``, inlined so the page stays one file.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections import Counter, defaultdict
from importlib.resources import files
from typing import Any

from ..prompts import IMAGE_TOKEN
from ..readers import DatasetReader, Record
from .images import display_image, mime

CROP_CAPTIONS = ("masked image", "A", "B", "C", "D")
# a meta text longer than this is shown folded (closed <details>, line count in its summary);
# shorter ones (shuffle, flip, crop: under 31 lines) are shown as they are
FOLD_LINES = 40


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def _captions(s: Record) -> list[str]:
    n = len(s.images)
    if s.task == "crop" and n == len(CROP_CAPTIONS):
        return list(CROP_CAPTIONS)
    if s.options and n == len(s.options) + 1:
        return ["question image", *s.options]
    if n == 1:
        return ["image"]
    return [f"image {i + 1}" for i in range(n)]


def _images_html(s: Record, max_side: int) -> str:
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
            d = display_image(data, max_side)
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
            body = (f'<img src="data:{mime(d.data)};base64,{b64}" alt="{_e(cap)}" '
                    f'title="{_e(title)}" data-index="{i}"{attrs}>')
        figs.append(
            f'<figure class="{cls}">{body}<figcaption><span class="cap">{_e(cap)}</span>{mark} '
            f'<span class="dim size">{size}</span></figcaption></figure>'
        )
    layout = "row crop" if s.task == "crop" else "row"
    return f'<div class="imgs {layout}">{"".join(figs)}</div>'


def _field(label: str, value_html: str, cls: str = "") -> str:
    return f'<dt>{_e(label)}</dt><dd class="{cls}">{value_html}</dd>'


def _line_count(text: str) -> int:
    return text.count("\n") + 1


def _folded(text: str, label: str, where: str, pre_cls: str, details_cls: str) -> str:
    """``text`` in a ``<pre>`` inside a closed ``<details>`` whose one-line summary names it
    (``label``, ``where`` it is stored) and gives its line count: a long text takes one line
    of the page until it is opened."""
    n = _line_count(text)
    return (f'<details class="{details_cls}"><summary>{_e(label)} '
            f'<span class="dim">({_e(where)}, {n} lines)</span>'
            f'</summary><pre class="{pre_cls}">{_e(text)}</pre></details>')


def _meta_block(text: str) -> str:
    """The meta text as it is when short; folded when longer than :data:`FOLD_LINES`."""
    if _line_count(text) <= FOLD_LINES:
        return f'<pre class="meta">{_e(text)}</pre>'
    return _folded(text, "parameters", "meta", "meta", "meta-long")


def _params_html(meta: str | None) -> str:
    """The ``meta`` JSON, folded when long (depth / position, with per-region statistics);
    a procedural source's scene description (``meta.scene``, about 100 lines) always folded."""
    if meta is None:
        return '<h4>params</h4><p class="dim small">not stored in this format (see the canonical format\'s meta)</p>'
    head = '<h4>params <span class="dim">(meta)</span></h4>'
    try:
        value = json.loads(meta)
    except ValueError:
        return head + _meta_block(meta)
    scene = value.pop("scene", None) if isinstance(value, dict) else None
    out = head + _meta_block(_json_compact(value))
    if scene is not None:
        out += _folded(_json_compact(scene), "scene description", "meta.scene", "scene", "scene")
    return out


def _sample_html(s: Record, number: int, max_side: int) -> str:
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
    <div class="params">{_params_html(s.meta)}</div>
  </div>
</article>"""


def _kv_list(d: dict | None) -> str:
    if not d:
        return '<span class="dim">none</span>'
    return ", ".join(f'{_e(k)} <b>{_e(v)}</b>' for k, v in d.items())


def _header_html(reader: DatasetReader, index: list[tuple[str, str]], shown: list[Record], seed: int,
                 max_side: int) -> str:
    manifest, warning = reader.manifest, reader.warning
    data_counts: dict[str, Counter] = defaultdict(Counter)
    for task, variant in index:
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

    facts = [("format", _e(reader.format)), ("samples", _e(len(index)))]
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
        facts.append(("images", (f"larger than {_e(max_side)} px on the longer side are shown downscaled "
                                 "(JPEG); <span class='mono'>--max-side 0</span> embeds the originals")))
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
  <h1>Dataset preview <span class="path mono">{_e(os.path.abspath(reader.dir))}</span></h1>
  {"".join(notes)}
  <div class="summary">
    <div class="facts">{fact_html}{runlog}</div>
    {table}
  </div>
</header>"""


# what marks a page as ours (``ssrl preview --out`` replaces only such a page)
GENERATOR_META = '<meta name="generator" content="ssrl preview">'


def render_page(reader: DatasetReader, index: list[tuple[str, str]], samples: list[Record], seed: int,
                max_side: int) -> str:
    """The whole page: ``samples`` (in display order) out of ``index``, the (task, variant)
    of every row of ``reader``."""
    by_task: dict[str, list[Record]] = defaultdict(list)
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
    header = _header_html(reader, index, samples, seed, max_side)
    title = f"Preview: {os.path.basename(os.path.abspath(reader.dir))}"
    css = files(__package__).joinpath("style.css").read_text(encoding="utf-8")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"{GENERATOR_META}\n<title>{_e(title)}</title>\n<style>\n{css}</style>\n</head>\n<body>\n<main>"
        f"{header}{toc}{''.join(sections)}\n</main>\n</body>\n</html>\n"
    )
