"""``ssrl eval compare``: runs side by side, with the paper's published numbers.

Takes results.json files, their folders or glob patterns (quoted, or expanded by the shell:
``--compare eval/*/results.json``). A row is a run: the results of one model (its full path,
or the endpoint's model name; a predictions file scored alone is a run of its own), one per
benchmark (a second result of the same model on the same benchmark starts another row). A row
is labelled by its folder (the folder of its results, or the folder holding them all), with
as many trailing folder names as tell the rows apart. A column per benchmark holds the
official ``accuracy``; where a run reports our ``strict`` rule (boxed answers only), a
``<benchmark> strict`` column stands beside it. The average is over the official columns of
the paper's benchmarks.
"""

from __future__ import annotations

import glob
import json
import os

from .runner import write_file

# The paper's evaluation table (arXiv 2510.27606): accuracy % of Qwen2.5-VL base and Spatial-SSRL models.
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


def expand(paths: list[str]) -> list[str]:
    """The results files ``paths`` name: a file, a folder holding ``results.json``, or a glob
    pattern (sorted matches); each file once. A name matching nothing is a ``ValueError``."""
    files: list[str] = []
    for p in paths:
        found = [p] if os.path.exists(p) or not glob.has_magic(p) else sorted(glob.glob(p))
        if not found:
            raise ValueError(f"--compare {p}: no file matches")
        found = [os.path.join(f, "results.json") if os.path.isdir(f) else f for f in found]
        files += [f for f in found if os.path.abspath(f) not in map(os.path.abspath, files)]
    return files


def labels(folders: list[str]) -> list[str]:
    """A label per folder: as many of its trailing names as tell the folders apart (a folder
    given twice gets ``#2``, ``#3`` ...)."""
    parts = [os.path.abspath(d).strip(os.sep).split(os.sep) for d in folders]
    out = ["/".join(x) for x in parts]
    for depth in range(1, max(len(x) for x in parts) + 1):
        tails = ["/".join(x[-depth:]) for x in parts]
        if len(set(tails)) == len(set(out)):
            out = tails
            break
    return [f"{x}#{out[:i].count(x) + 1}" if x in out[:i] else x for i, x in enumerate(out)]


def table(files: list[str]) -> tuple[list[str], dict[str, dict[str, float | None]]]:
    """(benchmark columns, rows: run label -> column -> value); a benchmark's official
    accuracy is under its name, our strict rule's under ``<name> strict``."""
    runs: list[tuple[str, list[str], dict[str, float | None]]] = []  # (model, folders, values)
    for f in expand(files):
        res = _load(f)
        model = str(res.get("model") or "") or os.path.abspath(f)
        run = next((r for r in runs if r[0] == model and res["benchmark"] not in r[2]), None)
        if run is None:
            run = (model, [], {})
            runs.append(run)
        run[1].append(os.path.dirname(os.path.abspath(f)))
        run[2][res["benchmark"]] = res.get("accuracy")
        if "strict" in res:
            run[2][f"{res['benchmark']} strict"] = res.get("strict")
    folders = [d[0] if len(set(d)) == 1 else os.path.commonpath(d) for _, d, _ in runs]
    rows = {label: values for label, (_, _, values) in zip(labels(folders), runs)}
    names = {b for r in rows.values() for b in r if not b.endswith(" strict")}
    benches = [b for b in BENCH_ORDER if b in names] + sorted(names - set(BENCH_ORDER))
    return benches, rows


def compare(files: list[str], out: str | None = None) -> str:
    """A markdown table of the results with the paper's rows; with ``out``, also
    ``compare.md`` and ``compare.png`` there (never replacing files of that name we did not
    write)."""
    import click

    try:
        benches, rows = table(files)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if out:
        _check_out(out)
    paper_cols = [b for b in benches if b in BENCH_ORDER]
    strict = [b for b in benches if any(f"{b} strict" in r for r in rows.values())]
    columns = [c for b in benches for c in ([b, f"{b} strict"] if b in strict else [b])]

    def avg(r: dict) -> str:
        vals = [r.get(b) for b in paper_cols]
        return f"{sum(vals) / len(vals):.2f}" if vals and all(v is not None for v in vals) and len(paper_cols) > 1 else ""

    head = "| model | " + " | ".join(columns) + (" | average |" if len(paper_cols) > 1 else " |")
    lines = [head, "|" + " --- |" * (len(columns) + 1 + (len(paper_cols) > 1))]
    for label, r in rows.items():
        cells = ["-" if r.get(b) is None else f"{r[b]:.2f}" for b in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + (f" | {avg(r)} |" if len(paper_cols) > 1 else " |"))
    for label, r in PAPER.items():
        if not paper_cols:
            break
        cells = [f"{r[b]:.2f}" if b in r else "" for b in columns]
        lines.append(f"| *{label}* | " + " | ".join(cells) + (f" | {avg(r)} |" if len(paper_cols) > 1 else " |"))
    text = "\n".join(lines) + "\n"
    if out:
        write_file(os.path.join(out, "compare.md"), text.encode())
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
    write_file(path, buf.getvalue())


def _check_out(out: str) -> None:
    """Refuse an ``out`` whose compare.md or compare.png we did not write (compare.md starts
    with our header; compare.png is ours beside our compare.md)."""
    import click

    md, png = os.path.join(out, "compare.md"), os.path.join(out, "compare.png")
    ours = False
    if os.path.isfile(md):
        with open(md, encoding="utf-8", errors="replace") as fh:
            ours = fh.readline().startswith("| model | ")
    theirs = [p for p in (md, png) if os.path.lexists(p) and not ours]
    if os.path.lexists(out) and not os.path.isdir(out):
        theirs = [out]
    if theirs:
        raise click.ClickException(f"--out {out}: {os.path.basename(theirs[0])} was not written by ssrl eval "
                                   "--compare; choose another folder")
