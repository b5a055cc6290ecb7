"""``ssrl eval suite NAME``: the benchmarks a field reports together, run one after another,
compared in one table.

A suite is a line of :data:`SUITES`. Each benchmark of it runs as ``ssrl eval benchmark`` would, into
``OUT/<benchmark>/``; its files come from ``--bench-root DIR`` (``DIR/<benchmark>/``, the folder
named by the benchmark's name, the suite's name for it or one of its aliases) or else from the
Hugging Face Hub. A benchmark that cannot run (no module for it, no files, no predictions for
it, a gated repository ...) is skipped, named with its reason; the others still run. Then
``OUT/suite.json``, ``OUT/suite.md`` and ``OUT/suite.png`` hold the table: a column per
benchmark, the official score with our strict score beside it, a row per run
(:func:`compare_suites` puts several suite folders side by side, a row per folder).

``paper``: the seven benchmarks of the Spatial-SSRL paper (arXiv 2510.27606). ``easi``: the
set of the EASI leaderboard (Holistic Evaluation of Multimodal LLMs on Spatial Intelligence,
arXiv 2508.13142, github.com/EvolvingLMMs-Lab/EASI; ../shared/BENCHMARKS.md), MindCube in its
Tiny split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ..writers.base import atomic_write_bytes, atomic_write_json

SUITES: dict[str, tuple[str, ...]] = {
    "paper": ("viewspatial", "vsi-bench", "3dsrbench", "spatial457", "spatialeval", "qspatial-plus", "whatsup"),
    "easi": ("vsi-bench", "mmsi", "mindcube", "viewspatial", "site", "blink", "3dsrbench", "embspatial"),
}
SUITE_FILES = ("suite.json", "suite.md", "suite.png")


def _key(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


def _names(bench: Any, entry: str) -> list[str]:
    """Every name a benchmark goes by: the suite's, its own, its aliases and its module's."""
    module = type(bench).__module__.rsplit(".", 1)[-1]
    return list(dict.fromkeys([entry, bench.name, *(getattr(bench, "aliases", None) or ()), module]))


def resolve(entry: str) -> Any | None:
    """The benchmark a suite entry names (by name, alias or module name), or None."""
    from .benchmarks import available

    for bench in available().values():
        if _key(entry) in {_key(n) for n in _names(bench, bench.name)}:
            return bench
    return None


def check_out(out: str, allowed: tuple[str, ...] = ()) -> None:
    """Refuse an ``out`` holding files this program did not write (ValueError)."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} exists and is not a folder")
    foreign = sorted(n for n in (os.listdir(out) if os.path.isdir(out) else ())
                     if n not in SUITE_FILES and n not in allowed and not n.startswith(".tmp-"))
    if foreign:
        raise ValueError(f"--out {out} holds files this program did not write ({', '.join(foreign[:3])}); "
                         "choose another folder")


def _find(folder: str, names: list[str], files: bool = False) -> str | None:
    """The entry of ``folder`` named by one of ``names`` (case, '-' and '_' aside); ``files``:
    ``<name>.jsonl`` files or ``<name>/predictions.jsonl``."""
    if not os.path.isdir(folder):
        return None
    keys = [_key(n) for n in names]
    by_key = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if files and entry.endswith(".jsonl") and os.path.isfile(path):
            by_key.setdefault(_key(entry[:-6]), path)
        elif os.path.isdir(path):
            inner = os.path.join(path, "predictions.jsonl")
            if not files:
                by_key.setdefault(_key(entry), path)
            elif os.path.isfile(inner):
                by_key.setdefault(_key(entry), inner)
    return next((by_key[k] for k in keys if k in by_key), None)


RunOne = Callable[[str, "str | None", str, "str | None"], dict]


def run_suite(suite: str, out: str, run_one: RunOne, bench_root: str | None = None,
              predictions: str | None = None, echo: Callable[[str], None] = print) -> dict:
    """Run every benchmark of ``suite`` with ``run_one(name, path or None for the Hub, out
    folder, predictions file or None)``, which returns the benchmark's results or raises an
    exception whose message says why it cannot run (the benchmark is then skipped); write the
    suite's table into ``out`` and return what suite.json holds."""
    import click

    if suite not in SUITES:
        raise click.BadParameter(f"unknown suite {suite!r}; suites: {', '.join(SUITES)}", param_hint="--suite")
    benches = [b.name if (b := resolve(e)) else e for e in SUITES[suite]]
    try:
        check_out(out, allowed=tuple(benches))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    ran: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    failed: list[str] = []  # tried and refused, as against skipped beforehand
    for entry in SUITES[suite]:
        bench = resolve(entry)
        if bench is None:
            skipped[entry] = "no module for it in this version of spatial-ssrl"
            echo(f"{entry}: skipped ({skipped[entry]})")
            continue
        names = _names(bench, entry)
        path = preds = None
        if bench_root:
            path = _find(bench_root, names)
            if path is None:
                skipped[bench.name] = f"no {bench.name}/ in {bench_root}"
        elif not getattr(bench, "hub_repo", None):
            skipped[bench.name] = f"not on the Hugging Face Hub: put its files in DIR/{bench.name}/ and pass --bench-root DIR"
        if predictions and bench.name not in skipped:
            preds = _find(predictions, names, files=True)
            if preds is None:
                skipped[bench.name] = f"no predictions for it in {predictions} ({bench.name}.jsonl)"
        if bench.name not in skipped:
            try:
                ran[bench.name] = run_one(bench.name, path, os.path.join(out, bench.name), preds)
            except click.UsageError:
                raise
            except (click.ClickException, ValueError, OSError) as exc:
                text = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
                skipped[bench.name] = (text.strip().splitlines() or [exc.__class__.__name__])[0]
                failed.append(bench.name)
        if bench.name in skipped:
            echo(f"{bench.name}: skipped ({skipped[bench.name]})")
    if not ran:  # nothing written: a previous table of this folder stays as it was
        name = (failed or list(skipped))[0]
        why = skipped[name]
        raise click.ClickException(f"suite {suite}: no benchmark could run ({len(skipped)} skipped; {name}: {why})")
    summary = {
        "suite": suite,
        "benchmarks": benches,
        "results": {name: _cell(res, os.path.join(name, "results.json")) for name, res in ran.items()},
        "skipped": skipped,
    }
    os.makedirs(out, exist_ok=True)
    atomic_write_json(os.path.join(out, "suite.json"), summary)
    echo(write_table(out, summary["benchmarks"], {_label(out): summary}, title=f"suite {suite}"))
    return summary


def _cell(res: dict, results_file: str) -> dict:
    return {"accuracy": res.get("accuracy"), "strict": res.get("strict"), "n": res.get("n"),
            "metric": res.get("metric"), "results": results_file}


def _label(folder: str) -> str:
    return os.path.basename(os.path.normpath(os.path.abspath(folder)))


def read_suite(folder: str) -> dict:
    """A suite folder's suite.json (ValueError when it is not one)."""
    path = os.path.join(folder, "suite.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or "suite" not in data or "results" not in data:
        raise ValueError(f"{folder} is not a folder of ssrl eval suite (no readable suite.json)")
    return data


def suite_table(folders: list[str]) -> tuple[list[str], dict[str, dict]]:
    """(benchmark columns, rows: a label per folder -> its suite.json); labels are the folder
    names, or the paths as given where two folders share a name."""
    datas = [read_suite(f) for f in folders]
    names = [_label(f) for f in folders]
    labels = [n if names.count(n) == 1 else f for n, f in zip(names, folders)]
    benches: list[str] = []
    for data in datas:
        for b in list(data.get("benchmarks") or []) + list(data["results"]):
            if b not in benches:
                benches.append(b)
    return benches, dict(zip(labels, datas))


def compare_suites(folders: list[str], out: str | None = None) -> str:
    """The table of several suite folders, a row per folder (written to ``out`` as suite.md and
    suite.png when given); returns the markdown."""
    benches, rows = suite_table(folders)
    if out:
        check_out(out)
        os.makedirs(out, exist_ok=True)
        atomic_write_json(os.path.join(out, "suite.json"),
                          {"compare": {label: os.path.abspath(f) for label, f in zip(rows, folders)},
                           "benchmarks": benches, "rows": {k: v["results"] for k, v in rows.items()}})
    return write_table(out, benches, rows, title="suites compared")


def _fmt(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.2f}"


def markdown(benches: list[str], rows: dict[str, dict], title: str) -> str:
    lines = [f"# {title}", "", "Each cell: the official score, our strict (boxed) score in brackets; - : not run.", "",
             "| run | " + " | ".join(benches) + " | mean |", "|" + " --- |" * (len(benches) + 2)]
    notes = []
    for label, data in rows.items():
        res = data["results"]
        cells = [f"{_fmt(res[b]['accuracy'])} ({_fmt(res[b].get('strict'))})" if b in res else "-" for b in benches]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_fmt(_mean(res, benches))} |")
        notes += [f"- {label}: {b} skipped: {why}" for b, why in (data.get("skipped") or {}).items()]
    lines += ["", "The mean is over all the columns, given only when every benchmark ran."]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _mean(res: dict, benches: list[str]) -> float | None:
    vals = [res[b].get("accuracy") for b in benches if b in res]
    if len(vals) != len(benches) or not vals or any(not isinstance(v, (int, float)) for v in vals):
        return None
    return sum(vals) / len(vals)


def write_table(out: str | None, benches: list[str], rows: dict[str, dict], title: str) -> str:
    text = markdown(benches, rows, title)
    if out:
        atomic_write_bytes(os.path.join(out, "suite.md"), text.encode())
        try:
            _chart(os.path.join(out, "suite.png"), benches, rows, title)
        except ImportError:
            pass  # matplotlib is in the eval extra; the JSON and the table are written regardless
    return text


def _chart(path: str, benches: list[str], rows: dict[str, dict], title: str) -> None:
    """Grouped bars: per benchmark, a solid bar (official) and a hatched one (strict) per run."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(1, 2 * len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(benches) + 2), 4.0), dpi=110)
    for i, (label, data) in enumerate(rows.items()):
        res = data["results"]
        color = f"C{i % 10}"
        for j, key in enumerate(("accuracy", "strict")):
            xs = [k + (2 * i + j) * width for k in range(len(benches))]
            ys = [(res.get(b) or {}).get(key) or 0.0 for b in benches]
            ax.bar(xs, ys, width, color=color, alpha=1.0 if j == 0 else 0.45, hatch=None if j == 0 else "//",
                   label=f"{label}" if j == 0 else f"{label} (strict)")
    ax.set_xticks([k + width * (2 * len(rows) - 1) / 2 for k in range(len(benches))], benches, rotation=20, fontsize=8)
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
