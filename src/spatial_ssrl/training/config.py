"""Run configuration: one YAML file per run, TRL's config fields plus ours.

A config is a flat mapping. A key is either one of ours (:data:`OUR_KEYS`: the model, the
data, LoRA, image pixels, task weights, validation, reward settings) or a field of TRL's
``SFTConfig`` / ``GRPOConfig`` (``learning_rate``, ``num_generations``, ``beta`` ...), passed
to it unchanged. Command-line overrides (``--set key=value``) are parsed as YAML scalars, so
``--set beta=0.02`` is a float and ``--set bf16=false`` a bool. Any other key is refused,
by name, before a model is loaded. Relative paths (``model``, ``data``, ``output``) are
relative to the working directory, as on the command line.

Defaults follow the paper (Spatial-SSRL, arXiv 2510.27606, training details) where TRL's defaults differ:
:data:`SFT_DEFAULTS` and :data:`GRPO_DEFAULTS`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A config the run cannot start with (the message names the key or file)."""


# Our own keys, with their defaults. Everything else must be a TRL config field.
OUR_KEYS: dict[str, Any] = {
    "model": None,  # checkpoint folder or hub id
    "data": None,  # dataset folder (ssrl generate / split / coldstart output)
    "output": None,  # run folder: checkpoints, logs, the final model
    "train_split": None,  # default: "train" (GRPO) / "train" or "coldstart" (SFT), see the commands
    "eval_split": "test",  # held-out split for in-training validation
    "lora": False,  # train a LoRA adapter (peft) instead of every weight
    "lora_r": 128,  # LoRA rank
    "lora_alpha": 256,  # LoRA scaling numerator (alpha / r scales the update)
    "lora_dropout": 0.05,  # dropout on the LoRA branch
    "lora_target_modules": "all-linear",  # which modules get an adapter (peft names or all-linear)
    "merge_lora": True,  # SFT: merge the adapter and save a plain checkpoint at the end
    "min_pixels": None,  # image processor bounds; null keeps the processor's own
    "max_pixels": None,  # largest image area in pixels; null keeps the processor's own
    "task_weights": None,  # {task: weight}: sampling weights over tasks; 0 drops a task
    "tasks": None,  # list of tasks to keep (default: all in the data)
    "max_train_samples": None,  # cap on training rows (after task weighting)
    "freeze_vision_tower": False,  # the paper trains the vision tower
    "torch_dtype": "auto",  # auto: float32 weights, bf16 autocast (TRL's bf16) where the GPU has it
    "attn_implementation": None,  # e.g. flash_attention_2, sdpa
    "accuracy_weight": 0.9,  # reward = accuracy_weight * accuracy + format_weight * format
    "format_weight": 0.1,  # weight of the format reward (one think block, then a box)
    "allow_hedging": False,  # true: boxes that disagree are read as the last one, not refused
    "partial_credit": 0.0,  # a wrong permutation earns this x its share of right positions (0: none)
    "per_task_rewards": True,  # one accuracy function per task, so TRL logs per-task accuracy
    "validation_steps": 0,  # validate on eval_split every N steps (0: never)
    "validation_samples": 64,  # held-out samples per validation (spread over tasks)
    "validation_batch_size": 8,  # prompts per generate call in validation
    "validation_max_new_tokens": None,  # default: max_completion_length (GRPO) / 256 (SFT)
    "validation_temperature": 0.0,  # 0: greedy
    "validation_top_p": 1.0,  # nucleus sampling in validation (with a temperature above 0)
    "max_sequence_tokens": 4096,  # SFT: drop (and count) examples longer than this, never cut image tokens
    # GRPO on samples generated while training (`ssrl train grpo --online`)
    "online": False,  # generate the training samples while training (no --data needed)
    "online_inputs": None,  # image folders / files / lists, as `ssrl generate --input` (default: the built-in inputs)
    "online_tasks": None,  # task mix, as `ssrl generate --tasks` (default: every task the inputs allow)
    "online_workers": 2,  # generator processes (0: generate in the trainer process)
    "online_plan_size": None,  # fixed curriculum: slots per plan block (default: the run's prompts)
    "curriculum": "fixed",  # fixed (the paper) | schedule | adaptive
    "curriculum_target": 0.5,  # adaptive: pass rate aimed at
    "curriculum_band": 0.1,  # adaptive: no level move while the pass rate is within target +- band
    "curriculum_min_groups": 4,  # adaptive: rollout groups of a task seen before it may move
    "curriculum_cooldown": 2,  # adaptive: steps after a move before the next one
    "curriculum_schedule_every": 100,  # schedule: steps per level
    "curriculum_start": None,  # {task: level} to start at (default: each task's paper level)
}

# Paper settings for the cold start (the paper: LoRA 128 on all linear layers, lr 1e-5,
# 5 epochs, cosine, warm-up 0.1, 4 x 8 batch, bf16, images up to 262,144 px).
SFT_DEFAULTS: dict[str, Any] = {
    "lora": True,
    "learning_rate": 1e-5,
    "num_train_epochs": 5,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.1,  # a float below 1 is a ratio of the total steps
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 8,
    "max_pixels": 262_144,
    "max_length": None,  # never truncate: cutting inside image tokens breaks Qwen-VL inputs
    "assistant_only_loss": True,  # loss on the response only (TRL swaps in a Qwen-VL training template)
    "logging_steps": 1,
    "save_steps": 100,
    "report_to": "none",
    "remove_unused_columns": False,
}

# Paper settings for GRPO (the paper): KL 0.01 (k3, TRL's estimator), 5 rollouts at T = 1,
# top-p 1, lr 1e-6, AdamW wd 0.01, no warm-up, clip 1.0, responses up to 2048 tokens, images
# 262,144 - 4,194,304 px, the original GRPO loss (per-sequence mean), vision tower trained.
GRPO_DEFAULTS: dict[str, Any] = {
    "beta": 0.01,
    "num_generations": 5,
    "per_device_train_batch_size": 5,  # completions; a multiple of num_generations (the shipped configs set the paper's batch)
    "temperature": 1.0,
    "top_p": 1.0,
    "learning_rate": 1e-6,
    "optim": "adamw_torch",
    "weight_decay": 0.01,
    "warmup_steps": 0,
    "lr_scheduler_type": "constant",
    "max_grad_norm": 1.0,
    "max_completion_length": 2048,
    "min_pixels": 262_144,
    "max_pixels": 4_194_304,
    "loss_type": "grpo",
    "scale_rewards": "group",
    "logging_steps": 1,
    "save_steps": 50,
    "report_to": "none",
    "remove_unused_columns": False,
}

def trl_fields(kind: str) -> set[str]:
    """Field names of TRL's config class for ``kind`` (``sft`` or ``grpo``)."""
    import dataclasses

    return {f.name for f in dataclasses.fields(trl_config_class(kind))}


def trl_config_class(kind: str):
    if kind == "sft":
        from trl import SFTConfig

        return SFTConfig
    if kind == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    raise ConfigError(f"unknown training kind {kind!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with ``value`` read as a YAML scalar (or flow list / mapping)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def load_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of key: value, not a {type(data).__name__}")
    return data


@dataclass
class RunConfig:
    """A validated run config: ours (``opts``) and the TRL fields (``trl``)."""

    kind: str
    opts: dict[str, Any]
    trl: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.opts[key]

    def as_dict(self) -> dict[str, Any]:
        return {**self.opts, **self.trl}

    def trl_args(self, **extra: Any):
        """TRL's config object (``SFTConfig`` / ``GRPOConfig``) for this run."""
        cls = trl_config_class(self.kind)
        values = {**self.trl, **extra}
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {cls.__name__} settings: {exc}") from None


def build_config(kind: str, config_file: str | None = None, overrides: dict[str, Any] | None = None,
                 sets: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Merge defaults < config file < ``overrides`` (CLI options) < ``sets`` (``key=value``)
    and check every key. Imports TRL (for its field names) but loads no model."""
    if kind not in ("sft", "grpo"):
        raise ConfigError(f"unknown training kind {kind!r}")
    merged: dict[str, Any] = dict(OUR_KEYS)
    merged.update(SFT_DEFAULTS if kind == "sft" else GRPO_DEFAULTS)
    if config_file:
        merged.update(load_yaml(config_file))
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
    for text in sets:
        key, value = parse_override(text)
        merged[key] = value

    allowed_trl = trl_fields(kind)
    unknown = [k for k in merged if k not in OUR_KEYS and k not in allowed_trl]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, [*OUR_KEYS, *allowed_trl], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = f" in {config_file}" if config_file else ""
        other = "grpo" if kind == "sft" else "sft"
        if key in trl_fields(other):
            hint = f" (it is a {other.upper()} setting, not a {kind.upper()} one)"
        raise ConfigError(f"unknown config key {key!r}{where}{hint}")
    opts = {k: merged[k] for k in OUR_KEYS}
    trl = {k: v for k, v in merged.items() if k not in OUR_KEYS}
    for key in ("model", "output") if opts.get("online") else ("model", "data", "output"):
        if not opts[key]:
            raise ConfigError(f"no {key} given: set '{key}' in the config or pass --{'out' if key == 'output' else key}")
    _check_our_types(opts)
    _check_trl_types(kind, trl)
    _check_values(opts)
    return RunConfig(kind=kind, opts=opts, trl=trl, config_file=config_file)


def _check_values(opts: dict[str, Any]) -> None:
    for key in ("min_pixels", "max_pixels"):
        v = opts[key]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
            raise ConfigError(f"{key} must be a positive integer, got {v!r}")
    if opts["min_pixels"] and opts["max_pixels"] and opts["min_pixels"] > opts["max_pixels"]:
        raise ConfigError(f"min_pixels {opts['min_pixels']} is above max_pixels {opts['max_pixels']}")
    weights = opts["task_weights"]
    if weights is not None:
        if not isinstance(weights, dict) or not weights:
            raise ConfigError("task_weights must be a mapping task: weight, e.g. {shuffle: 1, crop: 2}")
        for task, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise ConfigError(f"task_weights[{task!r}] must be a number >= 0, got {w!r}")
        if not any(w > 0 for w in weights.values()):
            raise ConfigError("task_weights gives every task weight 0")
    tasks = opts["tasks"]
    if tasks is not None and (isinstance(tasks, str) or not all(isinstance(t, str) for t in tasks)):
        if isinstance(tasks, str):
            opts["tasks"] = [t.strip() for t in tasks.split(",") if t.strip()]
        else:
            raise ConfigError("tasks must be a list of task names")
    for key in ("validation_steps", "validation_samples", "validation_batch_size"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{key} must be an integer >= 0, got {v!r}")
    if opts["torch_dtype"] not in ("auto", "bfloat16", "float16", "float32"):
        raise ConfigError(f"torch_dtype must be auto, bfloat16, float16 or float32, got {opts['torch_dtype']!r}")


# The type of each of our keys: a tuple of accepted types (None: null allowed), or "number",
# "int", "bool" for the numeric kinds YAML may spell as text (1e-5 reads as a string in YAML 1.1).
_PATH = (str, None)
OUR_TYPES: dict[str, Any] = {
    "model": (str,), "data": _PATH, "output": (str,), "train_split": _PATH, "eval_split": (str,),
    "lora": "bool", "lora_r": "int", "lora_alpha": "number", "lora_dropout": "number",
    "lora_target_modules": (str, list), "merge_lora": "bool", "min_pixels": "int?", "max_pixels": "int?",
    "task_weights": (dict, None), "tasks": (list, str, None), "max_train_samples": "int?",
    "freeze_vision_tower": "bool", "torch_dtype": (str,), "attn_implementation": _PATH,
    "accuracy_weight": "number", "format_weight": "number", "allow_hedging": "bool", "partial_credit": "number",
    "per_task_rewards": "bool", "validation_steps": "int", "validation_samples": "int",
    "validation_batch_size": "int", "validation_max_new_tokens": "int?", "validation_temperature": "number",
    "validation_top_p": "number", "max_sequence_tokens": "int?", "online": "bool",
    "online_inputs": (str, list, None), "online_tasks": (str, None), "online_workers": "int",
    "online_plan_size": "int?", "curriculum": (str,), "curriculum_target": "number", "curriculum_band": "number",
    "curriculum_min_groups": "int", "curriculum_cooldown": "int", "curriculum_schedule_every": "int",
    "curriculum_start": (dict, None),
}
_NAMES = {str: "text", list: "a list", dict: "a mapping", None: "null"}


def _as_number(key: str, value: Any, kind: str) -> Any:
    """``value`` as an int / float for ``kind`` (numbers written as text are read), or a
    :class:`ConfigError` naming the key."""
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value) if kind == "number" else int(value)
        except ValueError:
            raise ConfigError(f"{key} must be {'an integer' if kind == 'int' else 'a number'}, "
                              f"got {value!r}") from None
    if kind == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind == "int" and not isinstance(value, int) or kind == "number" and not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    return value


def _check_our_types(opts: dict[str, Any]) -> None:
    for key, spec in OUR_TYPES.items():
        value = opts.get(key)
        if isinstance(spec, str):
            optional = spec.endswith("?")
            kind = spec.rstrip("?")
            if value is None and (optional or OUR_KEYS.get(key) is None):
                continue
            if kind == "bool":
                if not isinstance(value, bool):
                    raise ConfigError(f"{key} must be true or false, got {value!r}")
                continue
            opts[key] = _as_number(key, value, kind)
            continue
        ok = any(value is None if t is None else isinstance(value, t) and not isinstance(value, bool)
                 for t in spec)
        if not ok:
            want = " or ".join(_NAMES.get(t, getattr(t, "__name__", str(t))) for t in spec)
            raise ConfigError(f"{key} must be {want}, got {value!r}")


def _check_trl_types(kind: str, trl: dict[str, Any]) -> None:
    """Each TRL key's value against the type TRL's config dataclass declares for it (simple
    types only: numbers, booleans, text, lists, mappings; enums take their names as text).
    Numbers written as text are read; anything else is a :class:`ConfigError` naming the key."""
    import enum
    import types
    import typing

    hints = typing.get_type_hints(trl_config_class(kind))
    for key, value in list(trl.items()):
        hint = hints.get(key)
        if hint is None:
            continue
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if value is None:
            if type(None) in args:
                continue
            raise ConfigError(f"{key} must be set (not null)")
        plain = [typing.get_origin(a) or a for a in args]
        if any(a is typing.Any or a is object for a in plain):
            continue
        if bool in plain and isinstance(value, bool):
            continue
        if str in plain and isinstance(value, str) or any(
                isinstance(a, type) and issubclass(a, enum.Enum) for a in plain) and isinstance(value, str):
            continue
        if list in plain and isinstance(value, (list, tuple)) or dict in plain and isinstance(value, dict):
            continue
        if float in plain:
            number = _as_number(key, value, "number")
            # a float field gets a float (`temperature: 1` reads as an int; generation refuses it)
            trl[key] = float(number) if int not in plain else number
        elif int in plain:
            trl[key] = _as_number(key, value, "int")
        elif bool in plain:
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        elif not any(isinstance(a, type) and isinstance(value, a) for a in plain):
            names = " or ".join(sorted({getattr(a, "__name__", str(a)) for a in plain if a is not type(None)}))
            raise ConfigError(f"{key} must be {names}, got {value!r}")
