"""A sample's ``meta`` is enough to re-render it exactly from its source file."""

from __future__ import annotations

import json

from pixels import read_rows

from spatial_ssrl.sources import SourceRef, load_item
from spatial_ssrl.tasks import rerender
from spatial_ssrl.writers import encode_png


def test_rerender_reproduces_every_sample(builtin_dataset):
    rows = read_rows(builtin_dataset)
    assert rows
    for r in rows:
        meta = json.loads(r["meta"])
        item = load_item(SourceRef(r["source"], r["source"]))
        rendered, answer = rerender(meta, item)
        assert answer == r["answer"]
        assert rendered.problem == r["problem"]
        assert [encode_png(im) for im in rendered.images] == [c["bytes"] for c in r["images"]]
