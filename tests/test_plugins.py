"""Third-party tasks plug in by name through the ``spatial_ssrl.tasks`` entry-point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import numpy as np
import pytest
from pixels import decode, load_source, read_rows

import spatial_ssrl.tasks as tasks_mod
from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import builtin_photos


@pytest.fixture
def rotation_plugin(monkeypatch):
    ep = EntryPoint(name="quarter_turn", value="plugin_task:RotationTask", group=tasks_mod.ENTRY_POINT_GROUP)

    def fake_entry_points(group=None):
        return [ep] if group == tasks_mod.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(tasks_mod, "entry_points", fake_entry_points)
    monkeypatch.setattr(tasks_mod, "_entry_points_loaded", False)
    monkeypatch.setattr(tasks_mod, "_REGISTRY", dict(tasks_mod._REGISTRY))
    yield


def test_entry_point_task_generates(rotation_plugin, tmp_path):
    assert "quarter_turn" in tasks_mod.available_tasks()
    mix = parse_mix("quarter_turn=1,flip=1")
    run_generation(builtin_photos()[:3], str(tmp_path), GenerateConfig(num=6, mix=mix, workers=1))
    rows = read_rows(tmp_path)
    rot = [r for r in rows if r["task"] == "quarter_turn"]
    assert len(rot) == 3
    for r in rot:
        out, src = decode(r["images"][0]), load_source(r["source"])
        turns = "ABCD".index(r["answer"])
        assert np.array_equal(np.rot90(out, k=turns), src)


def test_unknown_task_without_plugin():
    with pytest.raises(Exception, match="unknown task 'quarter_turn'"):
        parse_mix("quarter_turn")
