"""The arguments our vLLM backend and TRL's colocate mode give vLLM, against the vLLM that is
installed: a renamed or removed engine argument fails here, on the CPU, instead of in a GPU
job. vLLM itself (the `vllm` extra) cannot be installed beside this suite's torch: without it
the comparison uses the fields recorded from the wheel of the version the extra resolves to
(tests/data/vllm_fields.json), so a TRL upgrade that passes vLLM a new argument fails here too.
Our and TRL's argument lists are read from their sources (the calls to ``LLM(...)`` and
``SamplingParams(...)``)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os

import pytest


def _keywords(source: str, callee: str) -> set[str]:
    """Keyword argument names of every call to ``callee`` in ``source``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == callee:
                names |= {k.arg for k in node.keywords if k.arg is not None}
    return names


def _ours() -> tuple[set[str], set[str]]:
    from spatial_ssrl.backends import vllm_backend

    source = inspect.getsource(vllm_backend)
    return _keywords(source, "LLM"), _keywords(source, "SamplingParams")


def _trl() -> set[str]:
    trl = pytest.importorskip("trl")
    import importlib

    module = importlib.import_module("trl.generation.vllm_generation")
    assert trl.__version__
    return _keywords(inspect.getsource(module), "LLM")


def test_the_argument_lists_are_read():
    engine, sampling = _ours()
    assert {"model", "limit_mm_per_prompt", "mm_processor_kwargs"} <= engine
    assert {"max_tokens", "temperature", "top_p"} <= sampling
    assert {"model", "gpu_memory_utilization", "max_model_len", "enable_sleep_mode"} <= _trl()


def _class_fields(source: str, name: str) -> set[str]:
    """Annotated attributes of class ``name`` in ``source`` (the fields of a dataclass)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {st.target.id for st in node.body if isinstance(st, ast.AnnAssign)
                    and isinstance(st.target, ast.Name)}
    return set()


RECORDED = os.path.join(os.path.dirname(__file__), "data", "vllm_fields.json")


def _vllm_fields() -> tuple[str, set[str], set[str]]:
    """EngineArgs and SamplingParams fields: of the installed vLLM; else, with SSRL_VLLM_WHEEL
    set to a downloaded wheel (`pip download vllm==X --no-deps`), of that wheel's sources; else
    as recorded from the wheel of the version the vllm extra resolves to (tests/data)."""
    import zipfile

    wheel = os.environ.get("SSRL_VLLM_WHEEL")
    if wheel:
        with zipfile.ZipFile(wheel) as z:
            return (os.path.basename(wheel), _class_fields(z.read("vllm/engine/arg_utils.py").decode(), "EngineArgs"),
                    _class_fields(z.read("vllm/sampling_params.py").decode(), "SamplingParams"))
    try:
        import vllm
        from vllm import SamplingParams, engine
    except ImportError:
        with open(RECORDED, encoding="utf-8") as fh:
            recorded = json.load(fh)
        return f"vllm {recorded['vllm']} (recorded)", set(recorded["EngineArgs"]), set(recorded["SamplingParams"])
    return (f"vllm {vllm.__version__}", {f.name for f in dataclasses.fields(engine.arg_utils.EngineArgs)},
            _class_fields(inspect.getsource(inspect.getmodule(SamplingParams)), "SamplingParams"))


def test_vllm_takes_every_argument():
    which, engine_fields, sampling_fields = _vllm_fields()
    engine, sampling = _ours()
    assert len(engine_fields) > 50 and len(sampling_fields) > 10, which  # the classes were found
    assert engine - {"model"} - engine_fields == set(), which
    assert _trl() - engine_fields == set(), which  # the installed TRL's colocate arguments
    assert sampling - sampling_fields == set(), which
