"""Trainer adapters, each called the way its trainer calls it."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import sys

import pytest

import spatial_ssrl.reward.easyr1 as easyr1_module
import spatial_ssrl.reward.verl as verl_module
from spatial_ssrl.reward import score
from spatial_ssrl.reward.trl import (
    accuracy_reward,
    completion_text,
    format_reward,
    make_reward_funcs,
    overall_reward,
)

RIGHT = "<think>Patch 2 continues the road.</think> The answer is \\boxed{0-2-3-1}."
SPELLED = "<think>The sky is on top.</think> \\boxed{[0, 2, 3, 1]}"
WRONG = "<think>Hmm.</think> \\boxed{1-0-3-2}"
BARE = "\\boxed{C}"
HEDGED = "<think>x</think> \\boxed{A} or \\boxed{C}"
BROKEN = "<think>never closed \\boxed{3-0}"
FLIP = "<think>top right is upside down</think>\\boxed{1-vertical}"

COMPLETIONS = [RIGHT, SPELLED, WRONG, BARE, HEDGED, BROKEN, FLIP]
ANSWERS = ["0-2-3-1", "0-2-3-1", "0-2-3-1", "C", "C", "3-0", "1-0"]
TYPES = ["permutation", "permutation", "permutation", "choice", "choice", "flip", "flip"]
EXPECTED_ACCURACY = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
EXPECTED_FORMAT = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def _load_by_path(module, name: str):
    """Load an adapter file the way EasyR1 and verl do: by path, outside its package."""
    spec = importlib.util.spec_from_file_location(name, module.__file__)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(name, None)
    return mod


# ----------------------------------------------------------------------------------- TRL


class _TrainerState:  # stands in for transformers.TrainerState
    global_step = 3
    epoch = 0.1


def _trl_kwargs(completions, **columns):
    """Exactly the keywords GRPOTrainer passes: prompts, completions, completion_ids,
    trainer_state, its logging hooks, and every other dataset column as a list."""
    n = len(completions)
    kwargs = {
        "prompts": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}]] * n,
        "completions": completions,
        "completion_ids": [[101, 102, 103]] * n,
        "trainer_state": _TrainerState(),
        "log_extra": lambda *a, **k: None,
        "log_metric": lambda *a, **k: None,
        "id": [f"s{i}" for i in range(n)],
        "images": [[{"bytes": b"", "path": "x.png"}]] * n,
        "task": ["shuffle"] * n,
        "variant": ["2x2"] * n,
    }
    kwargs.update(columns)
    return kwargs


def test_trl_plain_text_completions():
    kwargs = _trl_kwargs(COMPLETIONS, answer=ANSWERS, answer_type=TYPES)
    acc = accuracy_reward(**kwargs)
    fmt = format_reward(**kwargs)
    overall = overall_reward(**kwargs)
    assert acc == EXPECTED_ACCURACY
    assert fmt == EXPECTED_FORMAT
    assert overall == pytest.approx([0.9 * a + 0.1 * f for a, f in zip(EXPECTED_ACCURACY, EXPECTED_FORMAT)])
    assert all(isinstance(x, float) for x in acc + fmt + overall)


def test_trl_conversational_completions():
    as_string = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    as_parts = [[{"role": "assistant", "content": [{"type": "text", "text": c[:10]}, {"type": "text", "text": c[10:]}]}]
                for c in COMPLETIONS]
    with_tool_turn = [
        [{"role": "assistant", "content": "calling a tool"}, {"role": "tool", "content": "\\boxed{Z}"},
         {"role": "assistant", "content": c}]
        for c in COMPLETIONS
    ]
    for completions in (as_string, as_parts, with_tool_turn):
        kwargs = _trl_kwargs(completions, answer=ANSWERS, answer_type=TYPES)
        assert accuracy_reward(**kwargs) == EXPECTED_ACCURACY
        assert format_reward(**kwargs) == EXPECTED_FORMAT


def test_trl_positional_completions_and_inferred_types():
    # without an answer_type column the type is inferred from the answer
    assert accuracy_reward(COMPLETIONS, answer=ANSWERS) == EXPECTED_ACCURACY
    assert format_reward(COMPLETIONS) == EXPECTED_FORMAT


def test_trl_options_column():
    completions = ["<think>x</think>\\boxed{Right}", "<think>x</think>\\boxed{B. Left}"]
    options = [["Left", "Right", "Front", "Back"]] * 2
    kwargs = _trl_kwargs(completions, answer=["B", "B"], answer_type=["choice", "choice"], options=options)
    assert accuracy_reward(**kwargs) == [1.0, 0.0]


def test_trl_missing_answer_column_is_a_clear_error():
    with pytest.raises(ValueError, match="answer"):
        accuracy_reward(**_trl_kwargs(COMPLETIONS))


def test_trl_make_reward_funcs():
    acc, fmt, overall = make_reward_funcs(allow_hedging=True, format_weight=0.2)
    kwargs = _trl_kwargs(COMPLETIONS, answer=ANSWERS, answer_type=TYPES)
    assert acc(**kwargs)[4] == 1.0  # hedged answer scored on its last box
    assert overall(**kwargs)[3] == pytest.approx(0.8)
    assert acc.__name__ == "accuracy_reward" and fmt.__name__ == "format_reward"
    with pytest.raises(TypeError):
        make_reward_funcs(options=["A"])
    with pytest.raises(TypeError):
        make_reward_funcs(temperature=1.0)
    with pytest.raises(ValueError):
        make_reward_funcs(format_weight=2.0)


def test_trl_signature_matches_grpo_expectations():
    for fn in (accuracy_reward, format_reward, overall_reward):
        params = inspect.signature(fn).parameters
        assert next(iter(params)) == "completions"
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_completion_text_shapes():
    assert completion_text("abc") == "abc"
    assert completion_text(None) == ""
    assert completion_text({"role": "assistant", "content": "x"}) == "x"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text([{"role": "user", "content": "q"}]) == ""
    assert completion_text([{"role": "assistant", "content": [{"type": "image"}, {"type": "text", "text": "t"}]}]) == "t"


# -------------------------------------------------------------------------------- EasyR1


def test_easyr1_batch_call_loaded_by_path():
    mod = _load_by_path(easyr1_module, "custom_reward_fn")
    # EasyR1 (AutoRewardManager in verl/workers/reward/function.py, b44b311) reads the call style
    # from the module, batch when absent, and has no config key for it: ours says batch
    assert getattr(mod, "REWARD_TYPE", "batch") == "batch" and mod.REWARD_TYPE == "batch"
    # EasyR1 wraps the function in functools.partial(**reward_function_kwargs)
    reward_fn = functools.partial(mod.compute_score, format_weight=0.1)
    inputs = [
        {"response": c, "response_length": len(c) // 4, "ground_truth": a}
        for c, a in zip(COMPLETIONS, ANSWERS)
    ]
    scores = reward_fn(inputs)
    assert isinstance(scores, list) and len(scores) == len(inputs)
    for s, acc, fmt in zip(scores, EXPECTED_ACCURACY, EXPECTED_FORMAT):
        assert set(s) == {"overall", "format", "accuracy"}
        assert all(isinstance(v, float) for v in s.values())
        assert s["accuracy"] == acc and s["format"] == fmt
        assert s["overall"] == pytest.approx(0.9 * acc + 0.1 * fmt)


def test_no_recipe_passes_the_removed_easyr1_reward_type_key():
    """EasyR1 stops at startup on `worker.reward.reward_type=...` (ConfigKeyError: the key is gone)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "src").rglob("*.py"))]
    offenders = [str(p.relative_to(root)) for p in texts if "worker.reward.reward_type=" in p.read_text()]
    assert offenders == []


def test_easyr1_sequential_call_and_options():
    item = {"response": BARE, "response_length": 3, "ground_truth": "C"}
    s = easyr1_module.compute_score(item, format_weight=0.3)
    assert s == {"overall": pytest.approx(0.7), "format": 0.0, "accuracy": 1.0}
    # reward_function_kwargs may carry score options; unknown ones are ignored
    s = easyr1_module.compute_score([{"response": HEDGED, "ground_truth": "C"}], allow_hedging=True, unknown=1)[0]
    assert s["accuracy"] == 1.0


def test_easyr1_explicit_answer_type_overrides_inference():
    two_piece = "<think>x</think>\\boxed{1, 0}"
    # "1-0" reads as a flip answer by default (label 1, direction 0)...
    assert easyr1_module.compute_score([{"response": two_piece, "ground_truth": "1-0"}])[0]["accuracy"] == 1.0
    # ... and an explicit type is honoured
    s = easyr1_module.compute_score(
        [{"response": "<think>x</think>\\boxed{0-1}", "ground_truth": "1-0", "answer_type": "permutation"}]
    )[0]
    assert s["accuracy"] == 0.0 and s["format"] == 1.0
    s = easyr1_module.compute_score(
        [{"response": "<think>x</think>\\boxed{Front}", "ground_truth": "C", "options": ["Left", "Right", "Front", "Back"]}]
    )[0]
    assert s["accuracy"] == 1.0


# ---------------------------------------------------------------------------------- verl


def _verl_extra(answer, kind, options=None, task="shuffle"):
    return {"split": "train", "index": 0, "id": "s0", "task": task, "variant": "2x2", "answer_type": kind,
            "answer": answer, "options": options, "num_turns": None}


def test_verl_keyword_call_loaded_by_path():
    mod = _load_by_path(verl_module, "custom_module")
    for c, a, kind, acc, fmt in zip(COMPLETIONS, ANSWERS, TYPES, EXPECTED_ACCURACY, EXPECTED_FORMAT):
        result = mod.compute_score(
            data_source="spatial_ssrl/shuffle", solution_str=c, ground_truth=a, extra_info=_verl_extra(a, kind)
        )
        assert set(result) == {"score", "acc", "format"}
        assert result["acc"] == acc and result["format"] == fmt
        assert result["score"] == pytest.approx(0.9 * acc + 0.1 * fmt)


def test_verl_positional_call_and_type_sources():
    # positional, no extra_info: type inferred from the ground truth
    assert verl_module.compute_score("spatial_ssrl/crop", BARE, "C")["acc"] == 1.0
    # the task in data_source decides when extra_info has no type
    r = verl_module.compute_score("spatial_ssrl/flip", "<think>x</think>\\boxed{3 horizontally}", "3-1", None)
    assert r["acc"] == 1.0
    # extra_info answer_type and options (as verl hands them over, possibly not lists)
    r = verl_module.compute_score(
        "spatial_ssrl/position", "<think>x</think>\\boxed{Back}", "D",
        extra_info=_verl_extra("D", "choice", options=("Left", "Right", "Front", "Back"), task="position"),
    )
    assert r["acc"] == 1.0
    # reward_kwargs from the config and unknown keywords from newer verl versions
    r = verl_module.compute_score(
        data_source="other", solution_str=BARE, ground_truth="C", extra_info=None, format_weight=0.5, reward_router_address=None
    )
    assert r["score"] == pytest.approx(0.5)


def test_verl_batched():
    results = verl_module.compute_score_batched(
        data_sources=["spatial_ssrl/shuffle"] * len(COMPLETIONS),
        solution_strs=COMPLETIONS,
        ground_truths=ANSWERS,
        extra_infos=[_verl_extra(a, k) for a, k in zip(ANSWERS, TYPES)],
    )
    assert [r["acc"] for r in results] == EXPECTED_ACCURACY
    assert all(not math.isnan(r["score"]) for r in results)


def test_adapters_agree_with_score():
    for c, a, kind in zip(COMPLETIONS, ANSWERS, TYPES):
        expected = score(c, a, kind)["overall"]
        assert overall_reward([c], answer=[a], answer_type=[kind])[0] == pytest.approx(expected)
        assert easyr1_module.compute_score([{"response": c, "ground_truth": a, "answer_type": kind}])[0]["overall"] == pytest.approx(expected)
        assert verl_module.compute_score("x", c, a, {"answer_type": kind})["score"] == pytest.approx(expected)


def test_verl_knows_every_registered_task():
    """verl's reward adapter finds an answer type by task name when the row does not carry it:
    every registered task is there, with the type its class declares."""
    from spatial_ssrl.reward.verl import TASK_ANSWER_TYPES
    from spatial_ssrl.tasks import available_tasks

    tasks = {n: c for n, c in available_tasks().items() if c.__module__.startswith("spatial_ssrl.tasks.")}
    assert len(tasks) >= 10
    assert {name: cls.answer_type for name, cls in tasks.items() if name in TASK_ANSWER_TYPES} == \
        {name: TASK_ANSWER_TYPES[name] for name in tasks if name in TASK_ANSWER_TYPES}
    assert sorted(set(tasks) - set(TASK_ANSWER_TYPES)) == []
