"""Generation backends: turn (question, images) items into model responses.

One module per backend: ``transformers_backend`` runs a checkpoint in-process (also used by
in-training validation), ``vllm_backend`` runs one through vLLM's offline engine, and
``openai_backend`` sends requests to any OpenAI-compatible server. :func:`build` turns a
:class:`BackendSpec` into a ``GenerateFn`` — ``run(items, on_result)`` calling
``on_result(index, text, error)`` once per item — which is all evaluation needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass


class BackendError(ValueError):
    """A backend that cannot be built (a missing extra, a model folder that is not a
    checkpoint); the message is one line a user can act on."""


@dataclass
class BackendSpec:
    """Where responses come from: a checkpoint run in-process (``transformers`` or ``vllm``)
    or an OpenAI-compatible server (``openai``, with ``api_base`` and ``api_model``)."""

    kind: str = "transformers"
    model: str | None = None
    api_base: str | None = None
    api_model: str | None = None
    batch_size: int = 8
    in_flight: int = 8
    timeout: float = 300.0
    retries: int = 4
    request_deadline: float | None = None
    max_response_bytes: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None


def build(spec: BackendSpec, decoding):
    """The ``GenerateFn`` for ``spec``; nothing heavy loads until it is first called (a
    resumed run with nothing left to do loads no model). Raises :class:`BackendError`."""
    if spec.kind == "openai":
        try:
            from .openai_backend import make_generate as make
        except ImportError as exc:
            raise BackendError(f"the OpenAI-compatible backend needs httpx: pip install httpx ({exc})") from None
    elif spec.kind == "vllm":
        from .vllm_backend import make_generate as make
    elif spec.kind == "transformers":
        from .transformers_backend import make_generate as make
    else:
        raise BackendError(f"unknown backend {spec.kind!r} (transformers, vllm or openai)")
    return make(spec, decoding)
