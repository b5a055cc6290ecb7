"""Portable source names: a dataset stores where each sample came from as a path relative to an
input root, never the user's absolute path, so a shared dataset does not reveal how its maker's
disk is laid out. The roots are named once, in the manifest (``source_roots``).

A root is each folder given as input, or the folder of each file given (an image, a list, a
pairs file); a source outside every given root (the built-in photos, a list naming files
elsewhere) is named under its own folder. A root's label is its folder's name, made unique
with ``~2``, ``~3`` ... when two roots share a name. A source's name is ``<label>/<path inside
the root>`` (the innermost root that holds it); its depth file, and a posed pair's second
view and its depth, are named the same way. Sample
ids do not change: they come from the sources' ids, which discovery makes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace

from .base import SourceRef


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Roots:
    """Input roots and their labels."""

    def __init__(self) -> None:
        self.by_path: dict[str, str] = {}  # absolute root -> label

    def add(self, root: str) -> str:
        root = os.path.abspath(root)
        if root not in self.by_path:
            base = os.path.basename(root.rstrip(os.sep)) or "root"
            taken = set(self.by_path.values())
            label, k = base, 1
            while label in taken:
                k += 1
                label = f"{base}~{k}"
            self.by_path[root] = label
        return self.by_path[root]

    def name(self, path: str | None) -> str | None:
        """``path`` as ``<label>/<relative path>`` under the innermost root holding it (its own
        folder becomes a root when none does)."""
        if not path or path.startswith("procedural:"):
            return None
        path = os.path.abspath(path)
        holding = [r for r in self.by_path if _within(path, r)]
        root = max(holding, key=len) if holding else os.path.dirname(path)
        label = self.add(root)
        rel = os.path.relpath(path, root)
        return label if rel == "." else f"{label}/{rel.replace(os.sep, '/')}"

    def labels(self) -> dict[str, str]:
        """label -> absolute root, for the manifest."""
        return {label: root for root, label in sorted(self.by_path.items(), key=lambda kv: kv[1])}


def portable_names(refs: list[SourceRef], inputs: Iterable[str]) -> tuple[list[SourceRef], dict[str, str]]:
    """``refs`` with their portable ``name`` and ``depth_name`` set, and the roots (label ->
    absolute folder) those names are relative to."""
    roots = Roots()
    for given in inputs:
        if not given or given.startswith("<") or not os.path.exists(given):
            continue  # "<built-in photos>" and the like
        roots.add(given if os.path.isdir(given) else os.path.dirname(os.path.abspath(given)))
    named = []
    for ref in refs:
        if ref.kind == "procedural":
            named.append(ref)
            continue
        pair = ref.pair
        if pair is not None:  # a posed pair's second view is named the same way
            pair = replace(pair, name=roots.name(pair.rgb), depth_name=roots.name(pair.depth))
        named.append(replace(ref, name=roots.name(ref.path), depth_name=roots.name(ref.depth), pair=pair))
    return named, roots.labels()


def resolve(name: str | None, roots: dict[str, str] | None, dataset_dir: str | None = None) -> str | None:
    """The file a stored source name points to: an absolute path as it is (datasets made before
    names were portable), ``<label>/<rest>`` under the manifest's root of that label, else the
    name relative to the dataset folder, else the name itself."""
    if not name or name.startswith("procedural:") or os.path.isabs(name):
        return name
    label, _, rest = name.partition("/")
    if roots and label in roots:
        return os.path.join(roots[label], *rest.split("/")) if rest else roots[label]
    if dataset_dir is not None and os.path.exists(os.path.join(dataset_dir, name)):
        return os.path.join(dataset_dir, name)
    return name
