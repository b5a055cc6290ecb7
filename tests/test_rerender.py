"""A sample's ``meta`` is enough to re-render it exactly from its source file."""

from __future__ import annotations

import json

from pixels import ROOTS, read_rows

from spatial_ssrl.sources import SourceRef, load_item
from spatial_ssrl.sources.naming import resolve
from spatial_ssrl.tasks import rerender
from spatial_ssrl.writers import encode_png


def test_rerender_reproduces_every_sample(builtin_dataset):
    rows = read_rows(builtin_dataset)
    assert rows
    for r in rows:
        meta = json.loads(r["meta"])
        path = resolve(r["source"], ROOTS)  # the stored name, through the manifest's input roots
        item = load_item(SourceRef(r["source"], path))
        rendered, answer = rerender(meta, item)
        assert answer == r["answer"]
        assert rendered.problem == r["problem"]
        assert [encode_png(im) for im in rendered.images] == [c["bytes"] for c in r["images"]]
