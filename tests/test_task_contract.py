"""Every registered task honours the contract the engines rely on: picklable (small, even
after use), params are plain JSON, the answer is a function of the params alone, and the
same random stream gives the same sample."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from spatial_ssrl.sources import load_source_item
from spatial_ssrl.sources.procedural import procedural_refs
from spatial_ssrl.tasks import available_tasks, generate_sample, make_task


@pytest.fixture(scope="module")
def item():
    return load_source_item(procedural_refs(1, seed=3)[0])


@pytest.mark.parametrize("name", ["shuffle", "flip", "crop", "depth", "position"])
def test_task_contract(name, item):
    assert name in available_tasks()
    task = make_task(name)
    first, _ = generate_sample(task, item, np.random.default_rng(5), "a")
    assert first is not None
    blob = pickle.dumps(task)
    assert len(blob) < 4096  # no cached arrays travel with a task
    clone = pickle.loads(blob)
    again, _ = generate_sample(clone, item, np.random.default_rng(5), "a")
    assert again.answer == first.answer and again.problem == first.problem
    assert all(np.array_equal(x, y) for x, y in zip(again.images, first.images))
    params = first.meta["params"]
    assert json.loads(json.dumps(params)) == params
    assert task.answer(json.loads(json.dumps(params))) == first.answer
    other, _ = generate_sample(task, item, np.random.default_rng(6), "a")
    assert other.meta["params"] != params
