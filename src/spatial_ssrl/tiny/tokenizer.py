"""The tiny models' tokenizer and chat templates.

The tokenizer is a byte-level BPE trained on the spot (``tokenizers``) on :func:`corpus`:
plain English, digits and numbers, the letters A-D, every question of the paper prompt set,
the format suffix and answers in the ``<think> ... </think> \\boxed{...}`` format. It uses
the Qwen2 normaliser and pre-tokeniser (NFC, the Qwen split regex, byte level), so the saved
files load as a ``Qwen2Tokenizer`` exactly like a real Qwen-VL checkpoint's. The Qwen
control tokens follow the trained vocabulary in Qwen's order (``<|endoftext|>`` first); the
``qwen3_vl`` tokenizer has Qwen3's four extra added tokens (``<think>`` among them) too.

Only the functions touch ``tokenizers`` / ``transformers``: importing this module is free.
"""

from __future__ import annotations

from typing import Any

# The Qwen2.5-VL added tokens, in their id order. All but the last eight are special.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN_PLAIN_ADDED_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
# Qwen3 (and Qwen3-VL) add these after the Qwen2.5 ones, as plain (non-special) added tokens.
QWEN3_PLAIN_ADDED_TOKENS = ("<tool_response>", "</tool_response>", "<think>", "</think>")

PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

DEFAULT_BPE_VOCAB = 1024
MODEL_MAX_LENGTH = 32768

_ENGLISH = """\
Spatial understanding is the ability to reason about where things are, how far away they are,
and how they relate to one another in three dimensions. A vision-language model looks at an
image, reads a question, thinks step by step, and writes an answer. The answer is checked by a
program, so it has to follow the requested format exactly.
The quick brown fox jumps over the lazy dog. A small red box sits on the table near the window,
and a tall green plant stands behind it. The camera is on the left; the door is on the right.
People walk along the street, cars wait at the light, and the sky above the buildings is blue.
Look at the picture carefully. What do you see in the top left corner? What is in the bottom
right corner? Which object is closest to the camera, and which one is the farthest away?
First, describe the scene. Second, compare the regions. Third, decide on the order and explain
why. Finally, give the answer. The patches fit together when their edges continue smoothly:
lines stay straight, colours match, and textures flow from one piece to the next.
Hello! How are you today? I am fine, thank you. Please answer the question below. Yes or no?
This is the first image, this is the second image, and these are the options. The missing part
is the one whose content and alignment agree with the surrounding area of the first image.
You are a helpful assistant. The user asks a question and the assistant answers it.
"""

_ANSWERS = (
    "<think>The top edge of patch 2 continues the horizon of patch 0, so 2 is below 0.</think> \\boxed{0-1-2-3}",
    "<think>Region 1 is on the floor in front, region 3 is on the wall far behind.</think> \\boxed{1-2-3}",
    "<think>Option C has the same texture and the edges align.</think> \\boxed{C}",
    "<think>The text in patch 1 reads backwards, so it was flipped horizontally.</think> \\boxed{1-1}",
    "<think>Seen from the camera the target is on the left and closer.</think> \\boxed{A}",
    "\\boxed{B}",
    "\\boxed{D}",
    "\\boxed{TopLeft-TopRight-BottomLeft-BottomRight}",
    "<think>\n\n</think>\n\n\\boxed{2-0-3-1}",
)


def corpus() -> list[str]:
    """The fixed training text of the tiny tokenizer (deterministic, no I/O)."""
    from spatial_ssrl.prompts import FORMAT_SUFFIX, PaperPrompts, with_format_suffix

    prompts = PaperPrompts()
    questions: list[str] = []
    for rows, cols in ((2, 2), (1, 3), (1, 4), (3, 1), (4, 1), (3, 3)):
        questions.append(prompts.shuffle(rows, cols))
        questions.append(prompts.shuffle(rows, cols, masked=True))
    questions.append(prompts.flip())
    questions.append(prompts.crop())
    for k in (2, 3, 4, 5):
        questions.append(prompts.depth(k))
    options = ["front left", "front right", "back left", "back right"]
    for facing in ("left", "right", "toward", "away"):
        for ignore_height in (False, True):
            questions.append(prompts.position(1, 2, facing, options, ignore_height))
    lines = [with_format_suffix(q) for q in questions]
    lines.append(FORMAT_SUFFIX)
    lines.extend(_ANSWERS)
    lines.extend(_ENGLISH.splitlines())
    lines.append(" ".join(str(i) for i in range(101)))
    lines.append(" ".join(f"{x:.2f}" for x in (0.0, 0.25, 0.5, 0.75, 1.0, 3.14, 12.5, 100.0)))
    lines.append("A B C D a b c d 'A' 'B' 'C' 'D' A. B. C. D. (A) (B) (C) (D)")
    lines.append("ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789")
    lines.append("+ - * / = < > ( ) [ ] { } , . ; : ! ? ' \" \\ _ | # % & @ ^ ~ `")
    # Repeat so that the frequent words and the format merge into whole tokens.
    return lines * 3


def added_tokens(arch: str) -> list[tuple[str, bool]]:
    """(token, special) for every added token of ``arch``'s tokenizer, in id order."""
    tokens = [(t, True) for t in QWEN_SPECIAL_TOKENS] + [(t, False) for t in QWEN_PLAIN_ADDED_TOKENS]
    if arch == "qwen3_vl":
        tokens += [(t, False) for t in QWEN3_PLAIN_ADDED_TOKENS]
    return tokens


def train_tokenizer(arch: str, bpe_vocab_size: int = DEFAULT_BPE_VOCAB, chat_template: str | None = None) -> Any:
    """A freshly trained ``Qwen2Tokenizer`` for ``arch`` (``qwen2_5_vl`` or ``qwen3_vl``).

    ``bpe_vocab_size`` bounds the trained vocabulary (the 256 byte symbols and the merges;
    the corpus is small, so training may stop short of it); the added tokens come after it.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers.models.qwen2.tokenization_qwen2 import (
        PRETOKENIZE_REGEX,
        Qwen2Tokenizer,
    )

    if bpe_vocab_size < 256:
        raise ValueError(f"the BPE vocabulary holds the 256 byte symbols at least, got vocab_size={bpe_vocab_size}")
    backend = Tokenizer(models.BPE())
    # The same normaliser and pre-tokeniser as Qwen2Tokenizer builds when it loads vocab/merges.
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    backend.train_from_iterator(corpus(), trainer)
    vocab = dict(sorted(backend.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1]))
    merges = _merges(backend)

    start = len(vocab)
    added = {
        start + i: AddedToken(token, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        for i, (token, special) in enumerate(added_tokens(arch))
    }
    extra_special = [t for t, special in added_tokens(arch) if special and t != PAD_TOKEN]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        added_tokens_decoder=added,
        extra_special_tokens=extra_special,
        model_max_length=MODEL_MAX_LENGTH,
        errors="replace",
        split_special_tokens=False,
        clean_up_tokenization_spaces=False,
    )
    for token_id, token in added.items():
        if tokenizer.convert_tokens_to_ids(token.content) != token_id:  # pragma: no cover - a transformers change
            raise RuntimeError(f"added token {token.content!r} did not get id {token_id}")
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def _merges(backend: Any) -> list[tuple[str, str]]:
    import json

    raw = json.loads(backend.to_str())["model"]["merges"]
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in raw]


# ---------------------------------------------------------------------------------------------
# Chat template. Every turn is `<|im_start|>ROLE\n` + body + `<|im_end|>\n`. A body is a string,
# or a list of parts: images become `<|vision_start|><|image_pad|><|vision_end|>`, videos the
# same with `<|video_pad|>`, text parts their text. An assistant body and its `<|im_end|>` sit
# inside `{% generation %}` so that `return_assistant_tokens_mask=True` marks exactly what the
# model has to produce (its stop token included, the newline after it not).
# `@SYSTEM@` is replaced by the default system turn (empty for Qwen3-VL).
_TEMPLATE = r"""{#- spatial_ssrl.tiny chat template (Qwen-VL message format). -#}
{%- set seen = namespace(images=0, videos=0) -%}
@SYSTEM@
{%- for message in messages -%}
    {%- set body -%}
        {%- if message.content is string -%}
            {{- message.content -}}
        {%- elif message.content is iterable -%}
            {%- for part in message.content -%}
                {%- if part is string -%}
                    {{- part -}}
                {%- else -%}
                    {%- if part.type is defined and part.type -%}
                        {%- set kind = part.type -%}
                    {%- elif 'image' in part or 'image_url' in part -%}
                        {%- set kind = 'image' -%}
                    {%- elif 'video' in part -%}
                        {%- set kind = 'video' -%}
                    {%- else -%}
                        {%- set kind = 'text' -%}
                    {%- endif -%}
                    {%- if kind == 'image' or kind == 'image_url' -%}
                        {%- set seen.images = seen.images + 1 -%}
                        {%- if add_vision_id -%}{{- 'Picture ' ~ seen.images ~ ': ' -}}{%- endif -%}
                        {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
                    {%- elif kind == 'video' -%}
                        {%- set seen.videos = seen.videos + 1 -%}
                        {%- if add_vision_id -%}{{- 'Video ' ~ seen.videos ~ ': ' -}}{%- endif -%}
                        {{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
                    {%- elif part.text is defined and part.text is not none -%}
                        {{- part.text -}}
                    {%- endif -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endset -%}
    {{- '<|im_start|>' ~ message.role ~ '\n' -}}
    {%- if message.role == 'assistant' -%}
        {%- generation -%}
            {{- body ~ '<|im_end|>' -}}
        {%- endgeneration -%}
        {{- '\n' -}}
    {%- else -%}
        {{- body ~ '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""

_DEFAULT_SYSTEM = (
    "{%- if not messages or messages[0].role != 'system' -%}\n"
    "    {{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' -}}\n"
    "{%- endif -%}"
)


def chat_template(arch: str) -> str:
    """The jinja chat template of ``arch``: Qwen2.5-VL's adds a default system turn
    ("You are a helpful assistant.") when the conversation has none; Qwen3-VL's doesn't."""
    system = _DEFAULT_SYSTEM if arch == "qwen2_5_vl" else "{#- no default system turn -#}"
    return _TEMPLATE.replace("@SYSTEM@", system)
