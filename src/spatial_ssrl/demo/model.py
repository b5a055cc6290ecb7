"""The model behind the demo's answers, and how a response is shown.

:class:`ModelRunner` loads a checkpoint once (a local folder or a Hub id, through
``spatial_ssrl.models`` as training and evaluation do) and streams one answer at a time:
``model.generate`` runs in a thread and a ``transformers.TextIteratorStreamer`` hands the
text over piece by piece. The conversation is built as ``ssrl eval`` / ``ssrl infer`` build
it (``backends.transformers_backend.messages_for``), greedy at temperature 0.

:func:`split_response` separates the reasoning from the answer region the reward reads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence

from ..reward.parsing import answer_region

TRAIN_EXTRA_HINT = "running a model needs torch and transformers: pip install 'spatial-ssrl[demo,train]'"


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message says why in one line."""


def check_model(model: str) -> None:
    """Refuse, in one line and before anything heavy loads, a --model that cannot work:
    torch or transformers missing, or a folder that is not a vision-language checkpoint."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise ModelLoadError(TRAIN_EXTRA_HINT) from None
    from ..models import ModelError, check_model_folder

    try:
        check_model_folder(model)
    except ModelError as exc:
        raise ModelLoadError(str(exc)) from None


class ModelRunner:
    """One loaded checkpoint; :meth:`stream` answers one question at a time (a lock keeps
    two visitors from sharing the model at once)."""

    def __init__(self, model: str):
        import torch

        from ..models import ModelError, load_model, load_processor

        check_model(model)
        self.name = model
        try:
            self.processor = load_processor(model)
            device_map = "auto" if torch.cuda.is_available() else None
            self.model = load_model(model, "auto", device_map=device_map, training=False)
        except ModelError as exc:
            raise ModelLoadError(str(exc)) from None
        self.model.eval()
        self._lock = threading.Lock()

    def stream(self, question: str, images: Sequence, max_new_tokens: int = 1024,
               temperature: float = 0.0, top_p: float = 1.0) -> Iterator[str]:
        """The response so far, after each new piece of text. ``question`` is the full user
        text (``<image>`` placeholders, format suffix included when wanted); ``images`` are
        PIL images in placeholder order. Temperature 0 decodes greedily."""
        import torch
        from transformers import (
            StoppingCriteria,
            StoppingCriteriaList,
            TextIteratorStreamer,
        )

        from ..backends.transformers_backend import messages_for

        class Cancelled(StoppingCriteria):
            """Ends generation once the visitor has gone (the page closed the stream)."""

            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        cancel = threading.Event()
        with self._lock:
            text = self.processor.apply_chat_template(messages_for(question), add_generation_prompt=True,
                                                      tokenize=False)
            inputs = self.processor(text=[text], images=list(images) or None, return_tensors="pt", padding=True)
            inputs = inputs.to(next(self.model.parameters()).device)
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
            kwargs = {"max_new_tokens": int(max_new_tokens), "pad_token_id": tokenizer.pad_token_id,
                      "streamer": streamer, "stopping_criteria": StoppingCriteriaList([Cancelled()])}
            if temperature and temperature > 0:
                kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(top_p))
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            failure: list[BaseException] = []

            def run() -> None:
                try:
                    with torch.no_grad():
                        self.model.generate(**inputs, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                    failure.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="ssrl-demo-generate", daemon=True)
            worker.start()
            response = ""
            try:
                for piece in streamer:
                    response += piece
                    yield response
            finally:  # also when the page stops listening: generation ends before the next one starts
                cancel.set()
                worker.join()
            if failure:
                raise failure[0]
            yield response


_OPEN = re.compile(r"<\s{0,16}think\s{0,16}>")
_CLOSE = re.compile(r"<\s{0,16}/\s{0,16}think\s{0,16}>")


def split_response(response: str) -> tuple[str, str]:
    """(reasoning, answer part) of a response, as far as it has come: the reasoning is the
    text of the think block (all of it after ``<think>`` while the block is still open), the
    answer part is what follows the last ``</think>`` (the whole response when there are no
    think tags), which is the region the reward reads its box from."""
    region = answer_region(response)
    closes = list(_CLOSE.finditer(response))
    if closes:
        head = response[:closes[-1].start()]
        opened = _OPEN.search(head)
        reasoning = head[opened.end():] if opened else head
        return _CLOSE.sub("", _OPEN.sub("", reasoning)).strip(), (region or "").strip()
    opened = _OPEN.search(response)
    if opened:
        return response[opened.end():].strip(), ""
    return "", response.strip()
