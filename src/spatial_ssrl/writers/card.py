"""The dataset card: ``README.md`` with the Hugging Face Hub's YAML header, so a dataset folder
can be pushed to the Hub as it is (``huggingface_hub.upload_folder``) and loads there with
``datasets.load_dataset(repo)``: its ``configs`` name each split's files, and the text says what
made the data (the command, the seed, the task mix, the counts).

The card is ours only when its header carries :data:`MARKER`: ``ssrl generate`` writes it when
the folder has no ``README.md`` or has ours, and ``ssrl split`` rewrites ours with the new
splits; a README of the user's is never touched.
"""

from __future__ import annotations

import os
import re
from typing import Any

CARD = "README.md"
MARKER = "# written by spatial-ssrl; the next ssrl generate or ssrl split of this folder rewrites it"
_SHARD = re.compile(r"^data/(?P<split>[A-Za-z0-9_]+)-\d{5}-of-\d{5}\.parquet$")


def is_ours(path: str) -> bool:
    """Whether ``path`` is a card this program wrote (or is absent)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return MARKER in head


def _splits(manifest: dict[str, Any]) -> dict[str, str]:
    """split -> the file pattern of its data, from the files the manifest lists."""
    found: dict[str, str] = {}
    for rel in manifest.get("files", []):
        m = _SHARD.match(rel)
        if m:
            found.setdefault(m.group("split"), f"data/{m.group('split')}-*.parquet")
        elif rel.endswith(".jsonl") and "/" not in rel:
            found.setdefault(rel[:-len(".jsonl")], rel)
    order = ["train", "test", "coldstart"]
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 9, kv[0])))


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def _command(manifest: dict[str, Any]) -> str:
    """The generate command that makes this dataset again, its inputs given by their root labels."""
    mix = ",".join(f"{m['task']}:{m['variant']}={m['weight']:g}" for m in manifest.get("mix", []))
    given = [p for p in manifest.get("inputs") or [] if p and not p.startswith("<")]  # not the built-in ones
    inputs = " ".join(f"-i {os.path.basename(p.rstrip(os.sep)) or p}" for p in given)  # names, not paths
    opts = manifest.get("options") or {}
    parts = ["ssrl generate", inputs, f"--out OUT --num {manifest.get('num_requested')}",
             f"--seed {manifest.get('seed')}", f"--tasks {mix}" if mix else "",
             f"--format {manifest.get('format')}" if manifest.get("format") != "canonical" else "",
             f"--prompt-set {opts['prompt_set']}" if opts.get("prompt_set") not in (None, "paper") else ""]
    return " ".join(p for p in parts if p)


def dataset_card(manifest: dict[str, Any]) -> str:
    """The card of a dataset from its manifest."""
    splits = _splits(manifest)
    written = int(manifest.get("num_written") or 0)
    header = ["---", MARKER, "license: other",
              "license_details: the license of the input images the samples were made from",
              "task_categories:", "- visual-question-answering", "- image-text-to-text",
              "tags:", "- spatial-reasoning", "- self-supervised", "- spatial-ssrl",
              "size_categories:", f"- {_size_category(written)}", "configs:", "- config_name: default",
              "  data_files:"]
    for split, pattern in splits.items():
        header += [f"  - split: {split}", f"    path: {pattern}"]
    header.append("---")
    counts = manifest.get("counts_by_task") or {}
    split_rows = (manifest.get("splits") or {}).get("rows") or {}
    body = [
        "",
        "# Spatial-SSRL pretext tasks",
        "",
        (f"{written:,} self-supervised spatial question/answer samples made by spatial-ssrl "
         f"{manifest.get('spatial_ssrl_version', '')}, after Spatial-SSRL (arXiv 2510.27606): each "
         "answer is a function of the sample's recorded parameters and can be re-derived from the "
         "pixels (`ssrl validate`)."),
        "",
        "| task | samples |",
        "| --- | --- |",
        *[f"| {task} | {n:,} |" for task, n in counts.items()],
        "",
    ]
    if split_rows:
        body += ["Splits, by source image (no image is in two splits): "
                 + ", ".join(f"{name} {n:,} rows" for name, n in split_rows.items()) + ".", ""]
    body += [
        (f"Format `{manifest.get('format')}`; columns: the spatial-ssrl documentation, docs/tasks.md. "
         "`source` names each input image relative to an input root, never by an absolute path."),
        "",
        "Made with:",
        "",
        "```bash",
        _command(manifest),
        "```",
        "",
    ]
    return "\n".join(header + body)


def write_card(dataset_dir: str, manifest: dict[str, Any]) -> bool:
    """Write (or rewrite) the card of ``dataset_dir``; False, writing nothing, when a
    ``README.md`` there is not ours."""
    from .base import atomic_write_bytes

    path = os.path.join(dataset_dir, CARD)
    if os.path.islink(path) or not is_ours(path):
        return False
    atomic_write_bytes(path, dataset_card(manifest).encode("utf-8"))
    return True
