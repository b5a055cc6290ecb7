"""spatial_ssrl.tiny: tiny random Qwen2.5-VL / Qwen3-VL checkpoints, loaded back through the
transformers Auto classes and exercised end to end (chat template, processor, forward,
generate, backward), their determinism, their refusals and the ``tiny-model`` command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deps import require

torch = require("torch")
transformers = require("transformers")
require("tokenizers")
require("torchvision")  # the Qwen2-VL image processor's backend
skimage_data = require("skimage.data")
PIL_Image = require("PIL.Image")

from click.testing import CliRunner

from spatial_ssrl.prompts import IMAGE_TOKEN, PaperPrompts, with_format_suffix
from spatial_ssrl.tiny import ARCHES, DEFAULT_SIZES, build_tiny_model, count_parameters
from spatial_ssrl.tiny.cli import tiny_model_command

REPO = Path(__file__).resolve().parents[1]
MERGE = 2
VISION_TOKENS = {
    "image": "<|image_pad|>",
    "video": "<|video_pad|>",
    "vision_start": "<|vision_start|>",
    "vision_end": "<|vision_end|>",
}
IMAGE_BLOCK = "<|vision_start|><|image_pad|><|vision_end|>"
ALL_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(arch, str(root / arch), seed=0) for arch in ARCHES}


@pytest.fixture(scope="module")
def loaded(built):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = {}
    for arch, path in built.items():
        model = AutoModelForImageTextToText.from_pretrained(path).eval()
        processor = AutoProcessor.from_pretrained(path)
        out[arch] = (model, processor)
    return out


@pytest.fixture(scope="module")
def images():
    """Five real photos of different sizes and aspect ratios."""
    base = PIL_Image.fromarray(skimage_data.astronaut())
    boxes = [(0, 0, 512, 512), (100, 50, 400, 450), (0, 200, 300, 512), (150, 0, 512, 300), (50, 50, 250, 250)]
    sizes = [(120, 100), (100, 120), (64, 64), (200, 150), (90, 90)]
    return [base.crop(box).resize(size) for box, size in zip(boxes, sizes)]


def _user(n_images: int, text: str) -> dict:
    parts = [{"type": "image"} for _ in range(n_images)]
    return {"role": "user", "content": parts + [{"type": "text", "text": text}]}


# ------------------------------------------------------------------------------------------
# loading back


@pytest.mark.parametrize("arch", ARCHES)
def test_reloads_as_the_real_architecture(arch, built, loaded):
    model, processor = loaded[arch]
    expected_model = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "qwen3_vl": "Qwen3VLForConditionalGeneration"}
    expected_processor = {"qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen3_vl": "Qwen3VLProcessor"}
    assert type(model).__name__ == expected_model[arch]
    assert model.config.model_type == arch
    assert type(processor).__name__ == expected_processor[arch]
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert model.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert json.loads((Path(built[arch]) / "config.json").read_text())["architectures"] == [expected_model[arch]]

    text, vision = model.config.text_config, model.config.vision_config
    sizes = DEFAULT_SIZES[arch]
    assert text.num_hidden_layers == 2 and vision.depth == 2
    assert text.hidden_size == sizes["hidden_size"] == vision.out_hidden_size
    assert (text.num_attention_heads, text.num_key_value_heads) == (4, 2)
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    if arch == "qwen3_vl":
        assert text.rope_parameters["mrope_interleaved"] is True
        assert vision.deepstack_visual_indexes and all(0 <= i < vision.depth for i in vision.deepstack_visual_indexes)
    else:
        assert all(0 <= i < vision.depth for i in vision.fullatt_block_indexes)

    patch = {"qwen2_5_vl": 14, "qwen3_vl": 16}[arch]
    for proc in (processor.image_processor, processor.video_processor):
        assert (proc.patch_size, proc.merge_size, proc.temporal_patch_size) == (patch, MERGE, 2)
    assert vision.patch_size == patch and vision.spatial_merge_size == MERGE
    size = processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (sizes["min_pixels"], sizes["max_pixels"])
    # The weights on disk are what the loaded model holds.
    assert count_parameters(built[arch]) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ARCHES)
def test_special_tokens_are_single_ids_matching_the_config(arch, built, loaded):
    from transformers import AutoTokenizer, GenerationConfig

    model, processor = loaded[arch]
    for tokenizer in (processor.tokenizer, AutoTokenizer.from_pretrained(built[arch])):
        for token in ALL_SPECIAL:
            ids = tokenizer.encode(token, add_special_tokens=False)
            assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == token, token
        for name, token in VISION_TOKENS.items():
            assert getattr(model.config, f"{name}_token_id") == tokenizer.convert_tokens_to_ids(token)
        # A special token written inside a text stays one id.
        ids = tokenizer.encode("look: <|image_pad|><|image_pad|> done", add_special_tokens=False)
        assert ids.count(model.config.image_token_id) == 2
        assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
        assert tokenizer.chat_template == processor.chat_template

    tokenizer = processor.tokenizer
    text = model.config.text_config
    assert text.eos_token_id == tokenizer.eos_token_id
    assert text.pad_token_id == tokenizer.pad_token_id
    assert text.vocab_size >= len(tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == text.vocab_size
    assert model.get_output_embeddings().weight.shape[0] == text.vocab_size
    assert processor.image_token_id == model.config.image_token_id
    assert processor.video_token_id == model.config.video_token_id
    assert 1000 <= len(tokenizer) <= 2100

    generation = GenerationConfig.from_pretrained(built[arch])
    assert tokenizer.eos_token_id in generation.eos_token_id
    assert generation.pad_token_id == tokenizer.pad_token_id

    think = [tokenizer.convert_tokens_to_ids(t) for t in ("<think>", "</think>")]
    if arch == "qwen3_vl":  # Qwen3's added (not special) tokens: they survive skip_special_tokens
        assert all(isinstance(i, int) and i >= 0 for i in think)
        assert tokenizer.decode(tokenizer.encode("<think>a</think>"), skip_special_tokens=True) == "<think>a</think>"
    # The trained vocabulary covers the prompts: the format suffix takes far fewer tokens
    # than characters, and every string round-trips.
    prompt = with_format_suffix(PaperPrompts().crop())
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    assert len(ids) < len(prompt) / 3
    assert tokenizer.decode(ids) == prompt
    for sample in ("\\boxed{TopLeft-TopRight-BottomLeft-BottomRight}", "Zürich 3.14 ✓", "A B C D"):
        assert tokenizer.decode(tokenizer.encode(sample, add_special_tokens=False)) == sample


# ------------------------------------------------------------------------------------------
# chat template


@pytest.mark.parametrize("arch", ARCHES)
def test_chat_template_strings_and_system_turn(arch, loaded):
    _, processor = loaded[arch]
    tokenizer = processor.tokenizer
    messages = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "<think>easy</think> \\boxed{4}"},
        {"role": "user", "content": "And 3 + 3?"},
    ]
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" if arch == "qwen2_5_vl" else ""
    body = (
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>easy</think> \\boxed{4}<|im_end|>\n"
        "<|im_start|>user\nAnd 3 + 3?<|im_end|>\n"
    )
    assert tokenizer.apply_chat_template(messages, tokenize=False) == system + body
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == system + body + "<|im_start|>assistant\n"
    assert processor.apply_chat_template(messages, add_generation_prompt=True) == prompt

    own = [{"role": "system", "content": "Answer briefly."}] + messages[:1]
    rendered = tokenizer.apply_chat_template(own, tokenize=False)
    assert rendered == "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
    assert rendered.count("<|im_start|>system") == 1


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("n_images", [1, 5])
def test_images_expand_to_grid_tokens_and_run(arch, n_images, loaded, images):
    model, processor = loaded[arch]
    question = PaperPrompts().crop() if n_images == 5 else PaperPrompts().flip()
    assert question.count(IMAGE_TOKEN) == n_images
    messages = [_user(n_images, with_format_suffix(question.replace(IMAGE_TOKEN, "")))]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.count(IMAGE_BLOCK) == n_images
    assert text.endswith("<|im_start|>assistant\n")

    batch = processor(text=[text], images=images[:n_images], return_tensors="pt")
    grid = batch["image_grid_thw"]
    assert grid.shape == (n_images, 3)
    ids = batch["input_ids"][0]
    n_pad = int((ids == model.config.image_token_id).sum())
    assert n_pad == int(grid.prod(-1).sum()) // MERGE**2
    assert batch["pixel_values"].shape[0] == int(grid.prod(-1).sum())
    assert int((ids == model.config.vision_start_token_id).sum()) == n_images

    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == (1, ids.shape[0], model.config.text_config.vocab_size)
    assert torch.isfinite(out.logits).all()

    prompt_len = ids.shape[0]
    generated = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert 1 <= generated.shape[1] - prompt_len <= 5
    assert torch.equal(generated[0, :prompt_len], ids)
    assert isinstance(processor.batch_decode(generated[:, prompt_len:], skip_special_tokens=True)[0], str)


@pytest.mark.parametrize("arch", ARCHES)
def test_video_expands_and_runs(arch, loaded):
    model, processor = loaded[arch]
    video = (torch.arange(8 * 96 * 128 * 3) % 251).to(torch.uint8).reshape(8, 96, 128, 3).numpy()
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.count("<|vision_start|><|video_pad|><|vision_end|>") == 1
    metadata = [{"fps": 4.0, "total_num_frames": 8, "frames_indices": list(range(8))}]
    batch = processor(text=[text], videos=[video], video_metadata=metadata, do_sample_frames=False, return_tensors="pt")
    grid = batch["video_grid_thw"]
    assert grid[0, 0] == 8 // 2  # temporal patches of two frames
    n_pad = int((batch["input_ids"][0] == model.config.video_token_id).sum())
    assert n_pad == int(grid.prod(-1).sum()) // MERGE**2
    with torch.no_grad():
        logits = model(**batch).logits
    assert torch.isfinite(logits).all()


def test_default_pixels_bound_the_image_tokens(loaded, images):
    """At the default pixel bounds an image costs 4 to 64 tokens; the 100x120 photo 16
    (Qwen2.5-VL, 112x112 after resizing) and 12 (Qwen3-VL, 96x128)."""
    big = images[0].resize((640, 480))
    small = images[0].resize((20, 20))
    expected = {"qwen2_5_vl": 16, "qwen3_vl": 12}
    for arch, (_, processor) in loaded.items():
        counts = []
        for image in (images[0], big, small):
            grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]
            counts.append(int(grid.prod()) // MERGE**2)
        assert counts[0] == expected[arch], arch
        assert 4 <= counts[2] <= counts[0] < counts[1] <= 64, (arch, counts)


@pytest.mark.parametrize("arch", ARCHES)
def test_loss_backward_reaches_every_weight(arch, loaded, images):
    model, processor = loaded[arch]
    messages = [
        _user(2, "Which image is the missing part? Answer A, B, C or D."),
        {"role": "assistant", "content": [{"type": "text", "text": "<think>the edges align</think> \\boxed{B}"}]},
    ]
    text = processor.apply_chat_template(messages)
    batch = processor(text=[text], images=images[:2], return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[labels == model.config.image_token_id] = -100
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        out = model(**batch, labels=labels)
        assert torch.isfinite(out.loss) and out.loss.item() > 0
        out.loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
        assert all(torch.isfinite(g).all() for g in grads.values())
        # The images reach the loss: the patch embedding gets a non-zero gradient.
        patch = [g for n, g in grads.items() if "patch_embed" in n]
        assert patch and any(g.abs().sum() > 0 for g in patch)
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


@pytest.mark.parametrize("arch", ARCHES)
def test_assistant_tokens_mask(arch, loaded, images):
    _, processor = loaded[arch]
    tokenizer = processor.tokenizer
    answer = "<think>patch 2 is upside down</think> \\boxed{2-0}"
    messages = [
        {"role": "user", "content": [{"type": "image", "image": images[0]}, {"type": "text", "text": "Which?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        {"role": "user", "content": [{"type": "text", "text": "Sure?"}]},
        {"role": "assistant", "content": "Yes."},
    ]
    out = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt"
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    assert mask.shape == ids.shape
    # Exactly the assistant turns and their stop tokens, even after the image was expanded.
    assert tokenizer.decode(ids[mask]) == answer + "<|im_end|>" + "Yes." + "<|im_end|>"
    assert int((ids[mask] == tokenizer.eos_token_id).sum()) == 2

    text_only = [{"role": "user", "content": "Which?"}, {"role": "assistant", "content": answer}]
    enc = tokenizer.apply_chat_template(text_only, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    kept = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tokenizer.decode(kept) == answer + "<|im_end|>"

    trl_templates = require("trl.chat_template_utils")
    assert trl_templates.has_generation_markers(processor.chat_template)
    assert trl_templates.is_chat_template_stop_token_trained(processor)
    assert trl_templates.is_chat_template_stop_token_trained(tokenizer)


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_sft_trainer_trains_on_the_assistant_turn_only(built, tmp_path, images):
    """TRL's SFTTrainer with assistant_only_loss keeps the template (it has generation
    markers) and labels exactly the answer and its <|im_end|>."""
    trl = require("trl")
    datasets = require("datasets")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = built["qwen3_vl"]
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    answer = "<think>the edges align</think> \\boxed{C}"
    rows = [
        {
            "messages": [
                _user(1, "Which option? A, B, C or D."),
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            ],
            "images": [image],
        }
        for image in images[:2]
    ]
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "sft"),
        assistant_only_loss=True,
        per_device_train_batch_size=2,
        max_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = trl.SFTTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=processor
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(-1).sum())
    for labels in batch["labels"]:
        assert processor.tokenizer.decode(labels[labels != -100]) == answer + "<|im_end|>"


# ------------------------------------------------------------------------------------------
# determinism, sizes, refusals


def _digests(folder: str) -> dict[str, str]:
    return {name: hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize("arch", ARCHES)
def test_same_seed_same_files_other_seed_other_weights(arch, built, tmp_path):
    from safetensors.torch import load_file

    rng_before = torch.random.get_rng_state()
    again = build_tiny_model(arch, str(tmp_path / "again"), seed=0)
    other = build_tiny_model(arch, str(tmp_path / "other"), seed=1)
    assert torch.equal(torch.random.get_rng_state(), rng_before), "building must not move the caller's RNG"

    first, second = _digests(built[arch]), _digests(again)
    assert first == second
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= set(first)
    a, b = load_file(Path(built[arch]) / "model.safetensors"), load_file(Path(again) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    third = _digests(other)
    assert third["model.safetensors"] != first["model.safetensors"]
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
        assert third[name] == first[name], name
    c = load_file(Path(other) / "model.safetensors")
    randomised = [k for k in a if a[k].numel() > 1 and a[k].std() > 0]
    assert randomised and all(not torch.equal(a[k], c[k]) for k in randomised)


def test_fresh_process_builds_the_same_bytes(built, tmp_path):
    """The BPE training and the weight init do not depend on the process (hash seeds)."""
    out = tmp_path / "elsewhere"
    code = "import sys; from spatial_ssrl.tiny import build_tiny_model; build_tiny_model('qwen3_vl', sys.argv[1])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, capture_output=True, timeout=120)
    assert _digests(str(out)) == _digests(built["qwen3_vl"])


def test_size_overrides(tmp_path):
    from transformers import AutoConfig

    path = build_tiny_model("qwen3_vl", str(tmp_path / "wide"), hidden_size=96, vision_depth=5, num_hidden_layers=3)
    config = AutoConfig.from_pretrained(path)
    assert config.text_config.hidden_size == 96 == config.vision_config.out_hidden_size
    assert config.text_config.num_hidden_layers == 3 and config.vision_config.depth == 5
    assert sum(config.text_config.rope_parameters["mrope_section"]) == 96 // 4 // 2
    assert all(0 <= i < 5 for i in config.vision_config.deepstack_visual_indexes)
    with pytest.raises(ValueError, match="unknown size"):
        build_tiny_model("qwen3_vl", str(tmp_path / "bad"), hidden=64)
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        build_tiny_model("qwen2_5_vl", str(tmp_path / "bad"), hidden_size=66)
    assert not (tmp_path / "bad").exists()


def test_refuses_unknown_arch_and_non_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown arch 'llava'"):
        build_tiny_model("llava", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()

    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        build_tiny_model("qwen2_5_vl", str(full))
    assert os.listdir(full) == ["notes.txt"] and (full / "notes.txt").read_text() == "mine"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        build_tiny_model("qwen2_5_vl", str(a_file))

    for seed in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed"):
            build_tiny_model("qwen2_5_vl", str(tmp_path / "x"), seed=seed)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_tiny_model("qwen2_5_vl", str(empty)) == str(empty)
    assert (empty / "model.safetensors").is_file()
    new = tmp_path / "deeper" / "new"
    assert build_tiny_model("qwen3_vl", str(new)) == str(new)
    # A folder we create gets the permissions of any other (not the staging folder's 0700).
    mask = os.umask(0o022)
    os.umask(mask)
    assert (new.stat().st_mode & 0o777) == (0o777 & ~mask)
    # No staging folder is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deeper", "empty", "file", "full"]
    assert os.listdir(tmp_path / "deeper") == ["new"]


# ------------------------------------------------------------------------------------------
# the command


def test_command_writes_and_reports(tmp_path):
    out = tmp_path / "cli-model"
    result = CliRunner().invoke(tiny_model_command, ["--arch", "qwen3_vl", "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert str(out) in lines[0] and f"{count_parameters(str(out)):,} parameters" in lines[0]
    assert (out / "config.json").is_file()

    again = CliRunner().invoke(tiny_model_command, ["--arch", "qwen3_vl", "--out", str(out)])
    assert again.exit_code == 1
    assert again.output.strip().splitlines() == [again.output.strip()]
    assert again.output.startswith("Error: ") and "not empty" in again.output and "Traceback" not in again.output

    bad = CliRunner().invoke(tiny_model_command, ["--arch", "llava", "--out", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "llava" in bad.output and not (tmp_path / "y").exists()


def test_without_torch_imports_and_fails_in_one_line(tmp_path):
    """The package stays importable without torch, and the command says what to install."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import spatial_ssrl, spatial_ssrl.tiny, spatial_ssrl.tiny.cli\n"
        "from click.testing import CliRunner\n"
        "r = CliRunner().invoke(spatial_ssrl.tiny.cli.tiny_model_command, ['--arch', 'qwen2_5_vl', '--out', sys.argv[1]])\n"
        "print(r.exit_code)\n"
        "print(r.output.strip())\n"
        "print('transformers' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    exit_code, message, transformers_loaded = proc.stdout.strip().splitlines()
    assert exit_code == "1"
    assert message.startswith("Error: ") and "torch" in message and "pip install 'spatial-ssrl[train]'" in message
    assert transformers_loaded == "False"
    assert not (tmp_path / "m").exists()
