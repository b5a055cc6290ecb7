"""Offline generation with vLLM (the ``vllm`` extra; a GPU)."""

from __future__ import annotations

import io


def make_generate(spec, decoding, max_images: int = 8):
    """A GenerateFn: batches of items through ``vllm.LLM.generate`` with the model's chat
    template; the processor's pixel bounds are passed to vLLM's multimodal processor, so
    vLLM resizes images exactly as the transformers processor does."""
    from . import BackendError

    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise BackendError("--backend vllm needs vLLM: pip install 'spatial-ssrl[vllm]'") from None
    model_path, min_pixels, max_pixels = spec.model, spec.min_pixels, spec.max_pixels
    from PIL import Image

    from .transformers_backend import messages_for

    mm_kwargs = {}
    if min_pixels:
        mm_kwargs["min_pixels"] = int(min_pixels)
    if max_pixels:
        mm_kwargs["max_pixels"] = int(max_pixels)
    llm = LLM(model=model_path, limit_mm_per_prompt={"image": max_images}, mm_processor_kwargs=mm_kwargs or None)
    params = SamplingParams(max_tokens=decoding.max_new_tokens, temperature=decoding.temperature,
                            top_p=decoding.top_p if decoding.temperature > 0 else 1.0)
    tokenizer = llm.get_tokenizer()

    def pil(im):
        if isinstance(im, (bytes, bytearray)):
            im = Image.open(io.BytesIO(im))
        return im.convert("RGB")

    def run(items, on_result):
        prompts = []
        for it in items:
            text = tokenizer.apply_chat_template(messages_for(it.question), tokenize=False, add_generation_prompt=True)
            prompts.append({"prompt": text, "multi_modal_data": {"image": [pil(im) for im in it.images]}})
        outputs = llm.generate(prompts, params, use_tqdm=False)
        for i, o in enumerate(outputs):
            on_result(i, o.outputs[0].text if o.outputs else None, None if o.outputs else "no_output")

    return run
