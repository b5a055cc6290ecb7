"""The curriculum controller, driven by stub policies whose pass rate per level is known."""

from __future__ import annotations

import random

import pytest

from spatial_ssrl.training.curriculum import (
    Curriculum,
    CurriculumError,
    CurriculumSettings,
    Group,
    GroupRecorder,
)

LEVELS = ["l0", "l1", "l2", "l3", "l4", "l5"]


def _policy(pass_by_level: dict[str, float], rng: random.Random):
    """Rollouts of a stub policy: each solves a prompt of level L with probability p[L]."""
    def rollouts(task: str, level: str, n: int) -> Group:
        return Group(task, level, [float(rng.random() < pass_by_level[level]) for _ in range(n)])
    return rollouts


def _run(cur: Curriculum, policies: dict, steps: int, groups_per_step: int = 16, rng=None) -> list[dict]:
    rng = rng or random.Random(0)
    logs = []
    for _ in range(steps):
        groups = []
        for _ in range(groups_per_step):
            task, level = cur.draw(rng)
            groups.append(policies[task](task, level, 5))
        logs.append(cur.update(groups))
    return logs


@pytest.mark.parametrize("start", ["l0", "l5"])
def test_adaptive_converges_to_the_level_nearest_the_target(start):
    # a policy that solves levels <= 1 almost always, level 2 about 60 %, level 3 about 30 %
    rates = {"l0": 0.98, "l1": 0.9, "l2": 0.6, "l3": 0.3, "l4": 0.05, "l5": 0.0}
    nearest = min(rates, key=lambda k: abs(rates[k] - 0.5))
    assert nearest == "l2"
    cur = Curriculum({"shuffle": LEVELS}, start={"shuffle": start},
                     settings=CurriculumSettings(mode="adaptive", target=0.5, band=0.12))
    logs = _run(cur, {"shuffle": _policy(rates, random.Random(1))}, steps=60)
    levels = [int(m["curriculum/shuffle/level"]) for m in logs]
    first = next(i for i, lv in enumerate(levels) if lv == LEVELS.index(nearest))
    assert first <= 25, levels                       # reached within a bounded number of steps
    late = levels[-30:]
    assert late.count(2) >= 26 and set(late) <= {2, 3}, levels  # and stays (hysteresis; rare re-probes)
    assert cur.level("shuffle") == nearest


def test_target_is_configurable():
    rates = {"l0": 0.98, "l1": 0.9, "l2": 0.6, "l3": 0.3, "l4": 0.05, "l5": 0.0}
    cur = Curriculum({"crop": LEVELS}, settings=CurriculumSettings(mode="adaptive", target=0.85, band=0.1))
    _run(cur, {"crop": _policy(rates, random.Random(2))}, steps=60)
    assert cur.level("crop") == "l1"


def test_weights_move_away_from_zero_variance_tasks():
    # flip is always solved even at its hardest level (every group has zero variance);
    # shuffle sits near the target (informative groups)
    always = {lv: 1.0 for lv in LEVELS}
    half = {lv: 0.5 for lv in LEVELS}
    cur = Curriculum({"flip": LEVELS, "shuffle": LEVELS}, base_weights={"flip": 1.0, "shuffle": 1.0},
                     settings=CurriculumSettings(mode="adaptive"))
    logs = _run(cur, {"flip": _policy(always, random.Random(3)), "shuffle": _policy(half, random.Random(4))},
                steps=40)
    w = cur.weights()
    assert w["flip"] < 0.2
    assert w["shuffle"] > 0.8
    assert cur.level("flip") == "l5"  # it climbed as far as it could first
    shares = [m["curriculum/flip/zero_variance_share"] for m in logs if "curriculum/flip/zero_variance_share" in m]
    assert len(shares) >= 20 and set(shares) == {1.0}
    # the floor keeps it in the mix
    assert w["flip"] >= 0.1 / (0.1 + 3.0) - 1e-9
    # weights follow: the last steps draw far more shuffle than flip
    rng = random.Random(5)
    draws = [cur.draw(rng)[0] for _ in range(2000)]
    assert draws.count("flip") < draws.count("shuffle") / 4


def test_fixed_never_moves_and_schedule_steps_up():
    rates = {lv: 1.0 for lv in LEVELS}
    fixed = Curriculum({"depth": LEVELS}, base_weights={"depth": 2.0}, start={"depth": "l1"})
    _run(fixed, {"depth": _policy(rates, random.Random(6))}, steps=30)
    assert fixed.level("depth") == "l1" and fixed.weights() == {"depth": 1.0}

    sched = Curriculum({"depth": LEVELS}, settings=CurriculumSettings(mode="schedule", schedule_every=10))
    logs = _run(sched, {"depth": _policy(rates, random.Random(7))}, steps=45)
    assert [int(m["curriculum/depth/level"]) for m in logs][8:12] == [0, 1, 1, 1]
    assert sched.level("depth") == "l4"


def test_state_round_trips():
    rates = {"l0": 0.98, "l1": 0.9, "l2": 0.6, "l3": 0.3, "l4": 0.05, "l5": 0.0}
    a = Curriculum({"shuffle": LEVELS, "crop": LEVELS}, settings=CurriculumSettings(mode="adaptive"))
    _run(a, {"shuffle": _policy(rates, random.Random(8)), "crop": _policy(rates, random.Random(9))}, steps=7)
    b = Curriculum({"shuffle": LEVELS, "crop": LEVELS}, settings=CurriculumSettings(mode="adaptive"))
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    assert b.weights() == a.weights() and b.level("shuffle") == a.level("shuffle")


def test_recorder_groups_rows_by_prompt():
    rec = GroupRecorder()
    rec.record("crop", ["a", "a", "b", "a", "b"], ["l1"] * 5, [1.0, 0.0, 1.0, 1.0, None])
    rec.record("flip", ["c", "c"], ["l0", "l0"], [0.0, 0.0])
    groups = sorted(rec.drain(), key=lambda g: (g.task, len(g.rewards)))
    assert [(g.task, g.rewards) for g in groups] == [("crop", [1.0]), ("crop", [1.0, 0.0, 1.0]), ("flip", [0.0, 0.0])]
    assert groups[2].zero_variance and not groups[1].zero_variance
    assert rec.drain() == []


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "sometimes"}, "curriculum must be one of"),
    ({"target": 1.2}, "between 0 and 1"),
    ({"band": 0.6}, "leave room"),
    ({"weight_floor": 0.0}, "weight bounds"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(CurriculumError, match=message):
        CurriculumSettings(**kwargs)


def test_unknown_start_level_is_named():
    with pytest.raises(CurriculumError, match="shuffle has no level 'l9'"):
        Curriculum({"shuffle": LEVELS}, start={"shuffle": "l9"})
