"""``ssrl eval --compare``: models side by side, with the paper's published numbers."""

from __future__ import annotations

import json
import os

from ..writers.base import atomic_write_bytes

# SPEC.md, Evaluation: accuracy % of Qwen2.5-VL base and Spatial-SSRL models.
PAPER = {
    "Qwen2.5-VL-3B (paper)": {"spatial457": 33.70, "3dsrbench": 50.30, "spatialeval": 54.65, "qspatial-plus": 33.66,
                              "whatsup": 85.85, "viewspatial": 35.38, "vsi-bench": 27.84},
    "Spatial-SSRL-3B (paper)": {"spatial457": 46.07, "3dsrbench": 51.72, "spatialeval": 59.59, "qspatial-plus": 39.60,
                                "whatsup": 86.71, "viewspatial": 36.62, "vsi-bench": 33.49},
    "Qwen2.5-VL-7B (paper)": {"spatial457": 44.67, "3dsrbench": 53.39, "spatialeval": 62.37, "qspatial-plus": 46.53,
                              "whatsup": 86.95, "viewspatial": 36.83, "vsi-bench": 38.08},
    "Spatial-SSRL-7B (paper)": {"spatial457": 53.34, "3dsrbench": 56.53, "spatialeval": 64.03, "qspatial-plus": 54.46,
                                "whatsup": 90.61, "viewspatial": 37.81, "vsi-bench": 39.29},
}
BENCH_ORDER = ("spatial457", "3dsrbench", "spatialeval", "qspatial-plus", "whatsup", "viewspatial", "vsi-bench")


def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            res = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not isinstance(res, dict) or "benchmark" not in res:
        raise ValueError(f"{path} is not a results.json of ssrl eval")
    return res


def table(files: list[str]) -> tuple[list[str], dict[str, dict[str, float | None]]]:
    """(benchmark columns, rows: model label -> benchmark -> accuracy)."""
    rows: dict[str, dict[str, float | None]] = {}
    for f in files:
        res = _load(f)
        label = os.path.basename(str(res.get("model") or res.get("predictions_file") or f).rstrip("/"))
        rows.setdefault(label, {})[res["benchmark"]] = res.get("accuracy")
    benches = [b for b in BENCH_ORDER if any(b in r for r in rows.values())]
    benches += sorted({b for r in rows.values() for b in r} - set(benches))
    return benches, rows


def compare(files: list[str], out: str | None = None) -> str:
    """A markdown table of the results with the paper's rows; with ``out``, also
    ``compare.md`` and ``compare.png`` there."""
    import click

    try:
        benches, rows = table(files)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    paper_cols = [b for b in benches if b in BENCH_ORDER]

    def avg(r: dict) -> str:
        vals = [r.get(b) for b in paper_cols]
        return f"{sum(vals) / len(vals):.2f}" if vals and all(v is not None for v in vals) and len(paper_cols) > 1 else ""

    head = "| model | " + " | ".join(benches) + (" | average |" if len(paper_cols) > 1 else " |")
    lines = [head, "|" + " --- |" * (len(benches) + 1 + (len(paper_cols) > 1))]
    for label, r in rows.items():
        cells = ["-" if r.get(b) is None else f"{r[b]:.2f}" for b in benches]
        lines.append(f"| {label} | " + " | ".join(cells) + (f" | {avg(r)} |" if len(paper_cols) > 1 else " |"))
    for label, r in PAPER.items():
        if not paper_cols:
            break
        cells = [f"{r[b]:.2f}" if b in r else "" for b in benches]
        lines.append(f"| *{label}* | " + " | ".join(cells) + (f" | {avg(r)} |" if len(paper_cols) > 1 else " |"))
    text = "\n".join(lines) + "\n"
    if out:
        os.makedirs(out, exist_ok=True)
        atomic_write_bytes(os.path.join(out, "compare.md"), text.encode())
        try:
            _chart(os.path.join(out, "compare.png"), benches, rows)
        except ImportError:
            pass
    return text


def _chart(path: str, benches: list[str], rows: dict) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = dict(rows)
    series.update({k: v for k, v in PAPER.items() if any(b in v for b in benches)})
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(benches) + 2), 4.0), dpi=110)
    for i, (label, r) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(benches))]
        ax.bar(xs, [r.get(b) or 0.0 for b in benches], width, label=label)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(benches))], benches, rotation=20, fontsize=8)
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
