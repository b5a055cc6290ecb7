"""Every output format, read the way its trainer reads it.

One small run per format (same seed, same sources), then:

- canonical: ``datasets.load_dataset(OUT)`` and the "Dataset contract" of issue 2;
- trl: loaded with ``datasets``, then TRL's own dataset helpers (``is_conversational``,
  ``prepare_multimodal_messages``, ``apply_chat_template``) and GRPOTrainer's prompt
  tokenisation, with a Qwen-style tokenizer built on the spot (no hub download);
- easyr1: EasyR1's ``RLHFDataset`` reading (hiyouga/EasyR1 ``verl/utils/dataset.py``,
  ``verl/trainer/config.py``, ``examples/config.yaml``): the folder is opened by the
  extension of its first entry, ``problem`` goes through the ``format_prompt`` jinja
  template and is split at ``<image>``, ``images`` may be PIL images, dicts with
  ``bytes``, raw bytes or paths, ``answer`` becomes ``ground_truth``;
- verl: verl's ``RLHFDataset`` reading (volcengine/verl 0.9.1
  ``verl/utils/dataset/rl_dataset.py`` and ``vision_utils.py``): one
  ``load_dataset("parquet", data_files=f)`` per ``.parquet`` file, each message's string
  content split with ``(<image>|<video>|<audio>)`` and every placeholder consumed by
  exactly one entry of ``images``; ``reward_model.ground_truth``, ``data_source`` and
  ``extra_info.index`` feed the reward manager;
- llamafactory: LLaMA-Factory's ``dataset_info.json`` parser and sharegpt converter
  (hiyouga/LLaMA-Factory ``src/llamafactory/data/parser.py``, ``converter.py``):
  column/tag names it knows, user/assistant turns alternating, image paths resolved
  against ``media_dir`` (= ``dataset_dir`` by default), one ``<image>`` per image.

The consumers' reading logic is re-stated here in a few lines where the consumer cannot
be installed (EasyR1 is not on PyPI; verl pins transformers < 5.11 and pulls in ray).
"""

from __future__ import annotations

import dataclasses
import glob
import inspect
import io
import json
import os
import re
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.prompts import FORMAT_SUFFIX, IMAGE_TOKEN, with_format_suffix
from spatial_ssrl.sources import builtin_photos
from spatial_ssrl.sources.naming import resolve

FORMATS = ("canonical", "trl", "easyr1", "verl", "llamafactory")
NUM = 12
ANSWER_TYPE = {"shuffle": "permutation", "flip": "flip", "crop": "choice"}
CANONICAL_COLUMNS = ["id", "task", "variant", "images", "problem", "answer", "answer_type", "options", "source", "depth_source", "meta"]


# ---------------------------------------------------------------------------------------
# one run per format


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    base = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt in FORMATS:
        d = base / fmt
        res = run_generation(builtin_photos(), str(d), GenerateConfig(num=NUM, format=fmt, mix=parse_mix(None), workers=1))
        out[fmt] = (d, res.manifest)
    return out


@pytest.fixture(scope="module")
def reference(runs) -> list[dict]:
    """The canonical rows, images as raw ``{"bytes", "path"}`` cells (pyarrow, no decoding)."""
    out, _ = runs["canonical"]
    rows = []
    for path in sorted(glob.glob(str(out / "data" / "*.parquet"))):
        rows.extend(pq.read_table(path).to_pylist())
    assert len(rows) == NUM
    assert {r["task"] for r in rows} == set(ANSWER_TYPE), "the test run must cover every depth-free task"
    return rows


@pytest.fixture(scope="module")
def by_id(reference) -> dict[str, dict]:
    return {r["id"]: r for r in reference}


def _raw_rows(out: Path) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(str(out / "data" / "*.parquet"))):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def _element(feature):
    """The element feature of a list feature, in any ``datasets`` version's spelling."""
    if isinstance(feature, list):
        return feature[0]
    return feature.feature  # datasets.List / datasets.Sequence


def _is_string(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype == "string"


def _png_bytes_equal_pixels(a: bytes, b: bytes) -> bool:
    return a == b or np.array_equal(np.asarray(Image.open(io.BytesIO(a))), np.asarray(Image.open(io.BytesIO(b))))


def test_every_run_wrote_what_was_asked(runs):
    for fmt, (out, manifest) in runs.items():
        assert manifest["format"] == fmt
        assert manifest["num_written"] == NUM, fmt
        on_disk = json.loads((out / "manifest.json").read_text())
        assert on_disk["num_written"] == NUM and on_disk["format"] == fmt
        for rel in on_disk["files"]:
            assert (out / rel).exists(), f"{fmt}: manifest lists missing {rel}"
        assert not glob.glob(str(out / "**" / ".tmp-*"), recursive=True), f"{fmt}: temporary files left behind"


# ---------------------------------------------------------------------------------------
# canonical: datasets.load_dataset(OUT) and the dataset contract


def test_canonical_loads_with_datasets_as_contracted(runs, reference):
    out, manifest = runs["canonical"]
    dd = datasets.load_dataset(str(out))
    assert list(dd) == ["train"]
    ds = dd["train"]
    assert ds.column_names == CANONICAL_COLUMNS
    assert len(ds) == manifest["num_written"] == NUM

    f = ds.features
    for col in ("id", "task", "variant", "problem", "answer", "answer_type", "source", "meta"):
        assert _is_string(f[col]), (col, f[col])
    assert isinstance(_element(f["images"]), datasets.Image), f["images"]
    assert _is_string(_element(f["options"])), f["options"]

    ids = ds["id"]
    assert len(set(ids)) == len(ids), "ids must be unique"
    assert ids == [r["id"] for r in reference]

    for i, row in enumerate(ds):
        tag = row["id"]
        assert row["task"] in {"shuffle", "flip", "crop", "depth", "position"}, tag
        assert row["answer_type"] in {"permutation", "flip", "choice"}, tag
        assert row["answer_type"] == ANSWER_TYPE[row["task"]], tag
        assert row["variant"], tag

        images = row["images"]
        assert images and all(isinstance(im, Image.Image) for im in images), tag
        assert all(im.mode == "RGB" and im.width > 0 and im.height > 0 for im in images), tag
        assert row["problem"].count(IMAGE_TOKEN) == len(images), tag
        assert FORMAT_SUFFIX not in row["problem"], "problem must not carry the format suffix"
        # the raw cells carry bytes (and a name) as the HF Image feature stores them
        for cell, im in zip(reference[i]["images"], images):
            assert set(cell) == {"bytes", "path"} and cell["bytes"], tag
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB")), np.asarray(im))

        if row["task"] == "crop":
            assert row["options"] == ["A", "B", "C", "D"], tag
            assert row["answer"] in row["options"], tag
            assert len(images) == 1 + len(row["options"]), tag
        else:
            assert row["options"] is None, tag

        # the source is named relative to an input root of the manifest, and names the file read
        assert not os.path.isabs(row["source"]), tag
        found = resolve(row["source"], manifest["source_roots"])
        assert os.path.isfile(found), f"{tag}: source {row['source']!r} is not the file read"

        meta = json.loads(row["meta"])
        assert isinstance(meta, dict) and isinstance(meta.get("params"), dict), tag
        _check_answer_from_params(row["task"], row["answer"], meta["params"], tag)


def _check_answer_from_params(task: str, answer: str, p: dict, tag: str) -> None:
    """``meta.params`` holds what is needed to re-derive the answer (contract, issue 2)."""
    if task == "shuffle":
        rows, cols = p["grid"]
        perm = p["permutation"]
        assert sorted(perm) == list(range(rows * cols)), tag
        # answer: for each original position (row-major), the label shown on its patch
        assert answer == "-".join(str(int(k)) for k in np.argsort(perm)), (tag, perm, answer)
    elif task == "flip":
        assert p["grid"] == [2, 2], tag
        assert p["direction"] in (0, 1) and p["flipped_label"] in range(4), tag
        assert answer == f"{p['flipped_label']}-{p['direction']}", tag
    elif task == "crop":
        kinds = p["option_kinds"]
        assert sorted(kinds) == ["A", "B", "C", "D"], tag
        assert p["correct"] == answer and kinds[answer] == "true", tag
        distractors = [k for letter, k in kinds.items() if letter != answer]
        assert len(set(distractors)) == 3, tag
        assert set(distractors) <= {"rot90_cw", "rot90_ccw", "interior", "grown_0.25", "grown_0.5"}, tag
        assert len(p["box"]) == 4, tag
    else:  # pragma: no cover - only depth-free tasks are generated here
        raise AssertionError(f"unexpected task {task}")


# ---------------------------------------------------------------------------------------
# all formats are views of the same samples


def test_same_seed_same_samples_in_every_format(runs, reference):
    ref_ids = [r["id"] for r in reference]
    ref_answers = [r["answer"] for r in reference]
    ref_bytes = [[c["bytes"] for c in r["images"]] for r in reference]

    for fmt in ("trl", "easyr1"):
        rows = _raw_rows(runs[fmt][0])
        assert [r["id"] for r in rows] == ref_ids, fmt
        assert [r["answer"] for r in rows] == ref_answers, fmt
        assert [[c["bytes"] for c in r["images"]] for r in rows] == ref_bytes, fmt

    rows = _raw_rows(runs["verl"][0])
    assert [r["extra_info"]["id"] for r in rows] == ref_ids
    assert [r["reward_model"]["ground_truth"] for r in rows] == ref_answers
    assert [r["extra_info"]["answer"] for r in rows] == ref_answers
    assert [[c["bytes"] for c in r["images"]] for r in rows] == ref_bytes

    out = runs["llamafactory"][0]
    records = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ref_ids
    assert [r["answer"] for r in records] == ref_answers
    for rec, want in zip(records, ref_bytes):
        got = [(out / p).read_bytes() for p in rec["images"]]
        assert all(_png_bytes_equal_pixels(a, b) for a, b in zip(got, want)) and len(got) == len(want), rec["id"]


# ---------------------------------------------------------------------------------------
# TRL

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION = "<|vision_start|><|image_pad|><|vision_end|>"
# Qwen2-VL style: an image part (type "image" or carrying an "image" key) renders as the
# vision span, a text part as its text.
QWEN_STYLE_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _local_qwen_style_tokenizer(corpus: list[str]):
    """A word-level tokenizer trained on the spot, with Qwen's chat and vision tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", IM_START, IM_END, "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "[UNK]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([*corpus, "user assistant system"], trainers.WordLevelTrainer(special_tokens=special))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="<|endoftext|>",
        eos_token=IM_END,
        additional_special_tokens=special[1:6],
    )
    fast.chat_template = QWEN_STYLE_TEMPLATE
    return fast


def _prepare(prepare_multimodal_messages, prompt: list[dict], images: list) -> list[dict]:
    """TRL's ``prepare_multimodal_messages`` in the installed release's signature."""
    params = inspect.signature(prepare_multimodal_messages).parameters
    if "images" in params:  # current TRL: returns new messages with the images filled in
        return prepare_multimodal_messages(prompt, images=images)
    import copy  # older TRL (num_images): placeholders only, in place; images go to the processor

    messages = copy.deepcopy(prompt)
    prepare_multimodal_messages(messages, len(images))
    return messages


def test_trl_dataset_through_trl_helpers(runs, by_id):
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    pytest.importorskip("trl")
    from trl import GRPOConfig, GRPOTrainer
    from trl.data_utils import (
        apply_chat_template,
        is_conversational,
        prepare_multimodal_messages,
    )

    out, _ = runs["trl"]
    ds = datasets.load_dataset(str(out), split="train")
    assert len(ds) == NUM

    # GRPOTrainer keeps every column (remove_unused_columns defaults to False) and hands
    # all but prompt/completion(s) to the reward functions as keyword arguments.
    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    assert defaults["remove_unused_columns"] is False
    assert {"prompt", "images", "answer", "answer_type", "task"} <= set(ds.column_names)
    assert "image" not in ds.column_names  # "images" is the column GRPOTrainer reads

    corpus = [part["text"] for p in ds["prompt"] for m in p for part in m["content"] if part["text"]]
    tokenizer = _local_qwen_style_tokenizer(corpus)
    pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert pad_id != tokenizer.unk_token_id

    rows = list(ds)
    prepared = []
    for row in rows:
        ref = by_id[row["id"]]
        assert (row["answer"], row["answer_type"], row["task"], row["variant"]) == (
            ref["answer"], ref["answer_type"], ref["task"], ref["variant"]
        )
        assert is_conversational(row), row["id"]
        assert [m["role"] for m in row["prompt"]] == ["user"]
        images = row["images"]
        assert len(images) == len(ref["images"]) and all(isinstance(im, Image.Image) for im in images)

        messages = _prepare(prepare_multimodal_messages, row["prompt"], images)
        parts = [p for m in messages for p in m["content"] if p["type"] == "image"]
        assert len(parts) == len(images), row["id"]
        if all("image" in p for p in parts):
            assert [p["image"] for p in parts] == images, "images must fill the placeholders in order"
        prepared.append(messages)

        rendered = apply_chat_template({"prompt": messages}, tokenizer)["prompt"]
        expected_user = with_format_suffix(ref["problem"]).replace(IMAGE_TOKEN, VISION)
        assert rendered == f"{IM_START}user\n{expected_user}{IM_END}\n{IM_START}assistant\n", row["id"]
        assert rendered.count("<|image_pad|>") == len(images)
        assert FORMAT_SUFFIX in rendered

    # GRPOTrainer's own prompt tokenisation (no model needed): one image pad per image,
    # and the images it extracts from the messages are the row's, in order.
    if hasattr(GRPOTrainer, "_tokenize_prompts"):
        from types import SimpleNamespace

        trainer_like = SimpleNamespace(
            _is_vlm=True,
            environment_factories=None,
            processing_class=tokenizer,
            tools=None,
            chat_template=None,
            chat_template_kwargs={},
        )
        prompt_ids, images_out, _ = GRPOTrainer._tokenize_prompts(trainer_like, prepared)
    else:  # the same call, as older releases make it inline
        prompt_ids = tokenizer.apply_chat_template(
            prepared, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        images_out = [[p["image"] for m in msgs for p in m["content"] if p["type"] == "image"] for msgs in prepared]
    assert len(prompt_ids) == NUM
    for ids, row, imgs in zip(prompt_ids, rows, images_out):
        assert sum(1 for t in ids if t == pad_id) == len(row["images"]), row["id"]
        assert imgs == row["images"], row["id"]


# ---------------------------------------------------------------------------------------
# EasyR1 (not on PyPI): RLHFDataset's reading, re-stated


def _easyr1_file_type(data_path: str) -> str:
    """EasyR1 opens a folder with the loader named by the extension of its first listed entry."""
    first = os.listdir(data_path)[0]
    return os.path.splitext(first)[-1][1:].replace("jsonl", "json")


def _easyr1_content(prompt: str) -> list[dict]:
    content = []
    for i, piece in enumerate(prompt.split("<image>")):
        if i:
            content.append({"type": "image"})
        if piece:
            content.append({"type": "text", "text": piece})
    return content


def _easyr1_open(image) -> Image.Image:
    """The image forms EasyR1's ``process_image`` accepts: path, dict with bytes, bytes, PIL."""
    if isinstance(image, str):
        image = Image.open(image)
    elif isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"]))
    elif isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    assert isinstance(image, Image.Image), type(image)
    image.load()
    return image.convert("RGB")


def test_easyr1_rows_as_rlhfdataset_reads_them(runs, by_id):
    out, _ = runs["easyr1"]
    data_dir = out / "data"
    # data.train_files=OUT/data: every entry is a parquet shard, so the first listed one
    # (os.listdir order is arbitrary) names the parquet loader
    entries = os.listdir(data_dir)
    assert entries and all(e.endswith(".parquet") for e in entries), entries
    assert _easyr1_file_type(str(data_dir)) == "parquet"
    ds = datasets.load_dataset("parquet", data_dir=str(data_dir), split="train")
    assert len(ds) == NUM
    # the keys EasyR1's example config uses (data.prompt_key=problem, answer_key, image_key)
    assert {"problem", "answer", "images"} <= set(ds.column_names)
    assert (out / "format_prompt.jinja").is_file()

    raw = _raw_rows(out)
    for row, raw_row in zip(ds, raw):
        ref = by_id[row["id"]]
        assert isinstance(row["problem"], str) and row["problem"] == ref["problem"]
        assert FORMAT_SUFFIX not in row["problem"], "EasyR1 adds the suffix from its template"
        content = _easyr1_content(row["problem"])
        n_image_parts = sum(1 for c in content if c["type"] == "image")
        assert n_image_parts == len(row["images"]) == len(ref["images"]), row["id"]
        assert all(c["text"] for c in content if c["type"] == "text")
        # decoded by datasets (PIL) and undecoded (dict with bytes): both open
        for decoded, cell in zip(row["images"], raw_row["images"]):
            a, b = _easyr1_open(decoded), _easyr1_open(cell)
            assert a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))
        assert isinstance(row["answer"], str) and row["answer"] == ref["answer"]  # -> ground_truth


def test_easyr1_format_prompt_renders_problem_plus_suffix(runs):
    jinja2 = pytest.importorskip("jinja2")
    out, _ = runs["easyr1"]
    # EasyR1 reads the file, strips it, and renders it with content=<problem>
    template = jinja2.Template((out / "format_prompt.jinja").read_text(encoding="utf-8").strip())
    ds = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="train")
    for row in ds:
        rendered = template.render(content=row["problem"])
        assert rendered == with_format_suffix(row["problem"]), row["id"]
        assert rendered.endswith(FORMAT_SUFFIX)
        assert rendered.count("<image>") == len(row["images"])


# ---------------------------------------------------------------------------------------
# verl: RLHFDataset's reading, re-stated (verl 0.9.1 pins transformers < 5.11, needs ray)

VERL_SPLIT = re.compile("(<image>|<video>|<audio>)")


def _verl_build_messages(messages: list[dict], images: list) -> list[dict]:
    """Each string content split at the placeholders; every <image> takes the next image,
    which must be a PIL image, a dict (``bytes`` -> opened, spread into the part) or a path;
    all images must be used."""
    used = 0
    built = []
    for message in messages:
        content = message["content"]
        assert isinstance(content, str), "verl splits string contents only"
        parts = []
        for seg in (s for s in VERL_SPLIT.split(content) if s != ""):
            if seg == "<image>":
                assert used < len(images), "more <image> than images"
                image = images[used]
                if isinstance(image, Image.Image):
                    parts.append({"type": "image", "image": image.convert("RGB")})
                elif isinstance(image, dict):
                    assert "image" not in image, "verl's process_image refuses both `bytes` and `image`"
                    opened = Image.open(io.BytesIO(image["bytes"])) if "bytes" in image else None
                    parts.append({"type": "image", **image, "image": opened})
                else:
                    raise AssertionError(f"unsupported image type {type(image)}")
                used += 1
            else:
                assert seg not in ("<video>", "<audio>")
                parts.append({"type": "text", "text": seg})
        built.append({**message, "content": parts})
    assert used == len(images), "fewer <image> than images"
    return built


def test_verl_rows_as_rlhfdataset_reads_them(runs, by_id):
    out, _ = runs["verl"]
    files = sorted(glob.glob(str(out / "data" / "*.parquet")))
    assert files and all(f.endswith(".parquet") for f in files)
    ds = datasets.concatenate_datasets([datasets.load_dataset("parquet", data_files=f)["train"] for f in files])
    assert len(ds) == NUM
    assert {"data_source", "prompt", "images", "ability", "reward_model", "extra_info"} <= set(ds.column_names)

    raw = _raw_rows(out)
    indices = []
    for row, raw_row in zip(ds, raw):
        info = row["extra_info"]
        assert isinstance(info, dict)
        ref = by_id[info["id"]]
        assert isinstance(row["data_source"], str) and row["data_source"]
        assert isinstance(row["ability"], str) and row["ability"]
        assert row["reward_model"] == {"style": "rule", "ground_truth": ref["answer"]}
        assert isinstance(info["index"], int)
        indices.append(info["index"])
        assert (info["task"], info["variant"], info["answer_type"]) == (ref["task"], ref["variant"], ref["answer_type"])
        assert info["options"] == ref["options"]

        prompt = row["prompt"]
        assert [m["role"] for m in prompt] == ["user"]
        assert prompt[0]["content"] == with_format_suffix(ref["problem"])
        for images in (row["images"], raw_row["images"]):  # decoded by datasets, and raw cells
            built = _verl_build_messages(prompt, images)
            got = [p["image"] for m in built for p in m["content"] if p["type"] == "image"]
            assert len(got) == len(ref["images"]) and all(isinstance(g, Image.Image) for g in got)
            for g, cell in zip(got, ref["images"]):
                assert np.array_equal(np.asarray(g.convert("RGB")), np.asarray(_easyr1_open(cell)))
    assert sorted(indices) == list(range(NUM))


# ---------------------------------------------------------------------------------------
# LLaMA-Factory: dataset_info.json + sharegpt records, re-stated from its parser/converter

LF_ENTRY_KEYS = {
    "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "file_name",
    "formatting", "ranking", "subset", "split", "folder", "num_samples", "columns", "tags",
}
LF_COLUMNS = {"prompt", "query", "response", "history", "messages", "system", "tools",
              "images", "videos", "audios", "chosen", "rejected", "kto_tag"}
LF_TAGS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"}
LF_FILEEXT = {"arrow": "arrow", "csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet", "txt": "text"}


def test_llamafactory_dataset_as_its_loader_reads_it(runs, by_id):
    out, _ = runs["llamafactory"]
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert list(info) == ["spatial_ssrl"]
    entry = info["spatial_ssrl"]
    assert set(entry) <= LF_ENTRY_KEYS, set(entry) - LF_ENTRY_KEYS
    assert entry["formatting"] == "sharegpt" and not entry.get("ranking", False)
    columns, tags = entry["columns"], entry.get("tags", {})
    assert set(columns) <= LF_COLUMNS and set(tags) <= LF_TAGS
    role, content = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    user, assistant = tags.get("user_tag", "human"), tags.get("assistant_tag", "gpt")
    observation, function = tags.get("observation_tag", "observation"), tags.get("function_tag", "function_call")
    system = tags.get("system_tag", "system")
    messages_col, images_col = columns.get("messages", "conversations"), columns["images"]

    # load_from "file": dataset_dir/file_name, loader named by the extension
    data_file = out / entry["file_name"]
    assert data_file.is_file()
    loader = LF_FILEEXT[data_file.suffix[1:]]
    assert loader == "json"
    ds = datasets.load_dataset(loader, data_files=[str(data_file)], split=entry.get("split", "train"))
    assert len(ds) == NUM

    media_dir = out  # media_dir defaults to dataset_dir
    for rec in ds:
        ref = by_id[rec["id"]]
        msgs = rec[messages_col]
        assert msgs and msgs[0][role] != system
        # converter: odd turns user/observation, even turns assistant/function, even count
        for k, m in enumerate(msgs):
            assert m[role] in ((user, observation), (assistant, function))[k % 2], (rec["id"], k, m[role])
        assert len(msgs) % 2 == 0
        assert [m[role] for m in msgs] == [user, assistant]
        assert msgs[0][content] == with_format_suffix(ref["problem"])
        target = msgs[-1][content]
        assert target.startswith("<think>\n") and "\n</think>\n" in target, target
        assert target.endswith(f"</think>\n\\boxed{{{ref['answer']}}}"), target

        images = rec[images_col]
        assert isinstance(images, list) and all(isinstance(p, str) for p in images)
        assert sum(m[content].count("<image>") for m in msgs) == len(images) == len(ref["images"])
        for p, cell in zip(images, ref["images"]):
            assert not os.path.isabs(p), p
            path = media_dir / p
            assert path.is_file(), f"{p} does not resolve against media_dir"
            with Image.open(path) as im:
                assert im.format == "PNG"
                pixels = np.asarray(im.convert("RGB"))
            assert np.array_equal(pixels, np.asarray(_easyr1_open(cell)))
