"""General benchmarks through lmms-eval (``ssrl eval lmms-eval``), not re-implemented.

lmms-eval runs in a child process (``python -c <bootstrap> eval --model ... --tasks ...``):
its heavy imports stay out of ours, a failure cannot take our process down, and Ctrl-C ends
both. Everything it writes stays under ``OUT/lmms_eval/``: its aggregated results and
per-sample logs (``<model>/<date>_results.json``, ``<date>_samples_<task>.jsonl``), its
submission files, and ``log.txt`` (its stdout and stderr, colour codes removed).

Each task asked for then becomes one of our result dicts, written to ``OUT/<task>/results.json``
(+ ``results.md``, ``results.png``) like every other benchmark of ``ssrl eval``, so
``ssrl eval compare`` tables them: ``benchmark`` ``lmms:<task>``, ``accuracy`` in percent
(lmms-eval reports some metrics as fractions and some in percent; see :data:`KNOWN_METRICS`),
``metric`` (which lmms-eval metric that is), ``n``, ``per_category`` (the subtasks of a group),
``metrics`` (the task's other metrics), ``harness`` (name, version, raw value, scale, files).

Some lmms-eval tasks score with an OpenAI judge (OPENAI_API_KEY, network): mmbench_*_dev for
the replies its rules cannot read (mmbench_*_dev_static reads them by rule instead, offline)
and hallusion_bench_image for every reply.

Prompts are lmms-eval's own (the task's ``doc_to_text`` and the model class's chat template):
our training format suffix is not appended, and ``decoding.format_prompt`` is recorded false.
``max_new_tokens``, ``temperature`` (0: greedy) and ``top_p`` go through ``--gen_kwargs`` and
override the task YAML's ``generation_kwargs``.
"""

from __future__ import annotations

import datetime as _dt
import glob
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .. import __version__
from .base import BenchmarkError

HARNESS = "lmms-eval"
HARNESS_DIR = "lmms_eval"  # OUT/lmms_eval: everything lmms-eval writes
LOG_FILE = "log.txt"
PREFIX = "lmms:"
LMMS_EXTRA_HINT = ("lmms-eval is not installed: pip install 'spatial-ssrl[lmms]' && "
                   "pip install --no-deps lmms-eval==0.7.3")

# config.json model_type -> lmms-eval model name (its registry prefers the chat class of a name)
MODEL_TYPES = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",  # lmms-eval picks the MoE class only from an "A<n>B" in the path
    "qwen3_5": "qwen3_5",
    "qwen3_5_moe": "qwen3_5",
}

# (task name or prefix, metric, scale): the main metric of the tasks we know and the scale of
# the number lmms-eval 0.7.3 reports for it. A task matches an entry when its name equals the
# entry or starts with it followed by "_", and the metric is among its results. Other tasks:
# the first numeric metric of their metric_list, a value in [0, 1] read as a fraction.
KNOWN_METRICS: tuple[tuple[str, str, str], ...] = (
    ("mmbench", "gpt_eval_score", "percent"),   # mmbench_*_dev(_static): overall_acc * 100
    ("hallusion_bench_image", "aAcc", "percent"),
    ("seedbench_2_plus", "seedbench_2_plus_all", "fraction"),
    ("ocrbench", "ocrbench_accuracy", "fraction"),  # Final_score / 1000
    ("chartqa", "relaxed_overall", "fraction"),
    ("realworldqa", "exact_match", "fraction"),
    ("blink", "blink_acc", "fraction"),
)

# Run inside the child before lmms-eval: lmms-eval 0.7.3 imports ``filelock._api``, which
# filelock 4 no longer has (its classes moved to ``filelock._core``); alias the module so its
# cross-class singleton-lock patch applies on either filelock major version.
_BOOTSTRAP = """\
import sys, types
try:
    import filelock._api
except ImportError:
    try:
        from filelock._core import _lock, _singleton
    except ImportError:
        pass
    else:
        _api = types.ModuleType("filelock._api")
        _api.FileLockMeta = _singleton.FileLockMeta
        _api.BaseFileLock = _lock.BaseFileLock
        _api._UNSET_FILE_MODE = _singleton.UNSET_FILE_MODE
        sys.modules["filelock._api"] = _api
sys.argv[0] = "lmms-eval"
from lmms_eval.cli.dispatch import main
main()
"""

_BUILDERS = {"parquet", "json", "csv", "arrow", "text", "imagefolder", "webdataset"}
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def lmms_version() -> str | None:
    """The installed lmms-eval's version, without importing it; None when it is missing."""
    from importlib import metadata

    try:
        return metadata.version("lmms-eval")
    except metadata.PackageNotFoundError:
        return None


def _require_lmms() -> str:
    if importlib.util.find_spec("lmms_eval") is None:
        raise BenchmarkError(LMMS_EXTRA_HINT)
    return lmms_version() or "unknown"


def lmms_model_type(model_path: str) -> str:
    """The lmms-eval model name for a checkpoint folder, from its config.json ``model_type``."""
    cfg = os.path.join(model_path, "config.json")
    try:
        with open(cfg, encoding="utf-8") as fh:
            model_type = json.load(fh).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise BenchmarkError(f"{model_path}: cannot read config.json ({exc}); pass model_type") from None
    if model_type not in MODEL_TYPES:
        raise BenchmarkError(f"{model_path}: model_type {model_type!r} has no lmms-eval class here "
                             f"(known: {', '.join(sorted(MODEL_TYPES))}); pass model_type")
    return MODEL_TYPES[model_type]


def _arg_value(name: str, value: Any) -> str:
    text = str(value)
    if "," in text or "=" in text:
        raise BenchmarkError(f"lmms-eval cannot take {name}={text!r}: its key=value,... arguments "
                             "allow no ',' or '=' in a value")
    return text


def _decoding_dict(decoding: Any) -> dict[str, Any]:
    if decoding is None:
        from .runner import Decoding

        decoding = Decoding()
    get = decoding.get if isinstance(decoding, Mapping) else (lambda k, d=None: getattr(decoding, k, d))
    return {"max_new_tokens": int(get("max_new_tokens", 4096)), "temperature": float(get("temperature", 0.0)),
            "top_p": float(get("top_p", 1.0)), "format_prompt": False}


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def lmms_command(model_path: str, tasks: Sequence[str], output_path: str, decoding: Any = None,
                 include_path: str | None = None, batch_size: int = 1, limit: int | None = None,
                 model_type: str | None = None, device: str | None = None,
                 model_args: Mapping[str, Any] | None = None) -> list[str]:
    """The argv of the lmms-eval child process (paths made absolute)."""
    dec = _decoding_dict(decoding)
    margs: dict[str, Any] = {"pretrained": os.path.abspath(model_path)}
    if device is None:
        device = "cuda" if _cuda_available() else "cpu"
    if device != "cuda":  # lmms-eval's Qwen classes default to device=cuda, device_map=auto
        margs.update(device=device, device_map=device)
    margs.update(model_args or {})
    model_arg = ",".join(f"{k}={_arg_value(k, v)}" for k, v in margs.items() if v is not None)
    gen = f"max_new_tokens={dec['max_new_tokens']},temperature={dec['temperature']:g},top_p={dec['top_p']:g}"
    argv = [sys.executable, "-c", _BOOTSTRAP, "eval",
            "--model", model_type or lmms_model_type(model_path),
            "--model_args", model_arg,
            "--tasks", ",".join(tasks),
            "--batch_size", str(int(batch_size)),
            "--gen_kwargs", gen,
            "--output_path", os.path.abspath(output_path),
            "--log_samples",
            "--timezone", "UTC",
            "--verbosity", "INFO"]
    if include_path is not None:
        argv += ["--include_path", os.path.abspath(include_path)]
    if limit is not None:
        argv += ["--limit", str(int(limit))]
    return argv


def _stop(proc: subprocess.Popen) -> None:
    """End the child: SIGINT (lmms-eval stops where it is), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        except OSError:
            return


def _copy_output(stream, log_path: str, echo: bool) -> None:
    with open(log_path, "ab") as log:
        for line in iter(stream.readline, b""):
            log.write(_ANSI.sub(b"", line))
            log.flush()
            if echo:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()


def _run_child(argv: list[str], cwd: str, log_path: str, echo: bool, timeout_s: float | None) -> int:
    """Run lmms-eval, its output copied into ``log_path``; its exit status (-1: over the limit)."""
    import threading

    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with open(log_path, "wb") as log:
        log.write(("[ssrl] " + subprocess.list2cmdline([a if a != _BOOTSTRAP else "<bootstrap>" for a in argv])
                   + "\n").encode())
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reader = threading.Thread(target=_copy_output, args=(proc.stdout, log_path, echo), daemon=True)
    reader.start()
    try:
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            reader.join(timeout=10)
            with open(log_path, "ab") as log:
                log.write(f"\n[ssrl] stopped: over the {timeout_s:g} s limit\n".encode())
            return -1
        reader.join(timeout=30)
        return rc
    except BaseException:  # KeyboardInterrupt above all: never leave the child running
        _stop(proc)
        raise
    finally:
        if proc.stdout is not None and not reader.is_alive():
            proc.stdout.close()


def _failure(log_path: str, rc: int) -> BenchmarkError:
    """One line for a run that left no results, read from its log."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        text = ""
    where = f"(log: {log_path})"
    m = re.search(r"Tasks not found: (.+?)\. Try", text)
    if m:
        return BenchmarkError(f"lmms-eval has no task {m.group(1)}: see `lmms-eval --tasks list`; "
                              f"a task of your own needs include_path {where}")
    errors = re.findall(r"Error during evaluation: (.+?)(?:\. Please set `--verbosity=DEBUG`.*)?$", text,
                        re.MULTILINE)
    modules = re.findall(r"No module named '([^']+)'", errors[-1] if errors else text)
    if modules:
        return BenchmarkError(f"lmms-eval needs the module {modules[-1]!r}, which is not installed; "
                              f"pip install it or 'spatial-ssrl[lmms]' {where}")
    if errors:
        return BenchmarkError(f"lmms-eval failed: {errors[-1].strip()} {where}")
    if "[ssrl] stopped: over the" in text:
        return BenchmarkError(f"lmms-eval ran over its time limit {where}")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1].strip()[:300] if lines else "no output"
    return BenchmarkError(f"lmms-eval exited with status {rc} and wrote no results: {last} {where}")


def _find_results(output_path: str, since: float) -> str | None:
    found = [p for p in glob.glob(os.path.join(output_path, "*", "*_results.json"))
             if os.path.getmtime(p) >= since]
    return max(found, key=os.path.getmtime) if found else None


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _metric_values(entry: Mapping[str, Any]) -> dict[str, tuple[str, float]]:
    """metric name -> (the "name,filter" key, value) of one task's lmms-eval results; the
    "none" filter wins over others, stderr entries are left out."""
    out: dict[str, tuple[str, float]] = {}
    for key, value in entry.items():
        name, _, filt = key.partition(",")
        if not filt or "_stderr" in name or not _numeric(value):
            continue
        if name not in out or filt == "none":
            out[name] = (key, float(value))
    return out


def _known(task: str, metrics: Mapping[str, Any]) -> tuple[str, str] | None:
    for prefix, metric, scale in KNOWN_METRICS:
        if (task == prefix or task.startswith(prefix + "_")) and metric in metrics:
            return metric, scale
    return None


def _main_metric(task: str, entry: Mapping[str, Any],
                 config: Mapping[str, Any] | None) -> tuple[str | None, str, bool]:
    """(metric, scale, scale guessed) of one task's results; metric None when none is numeric."""
    values = _metric_values(entry)
    if not values:  # a submission-only task (a test split scored elsewhere), say
        return None, "fraction", True
    known = _known(task, values)
    if known:
        return known[0], known[1], False
    order = [m.get("metric") for m in (config or {}).get("metric_list") or [] if isinstance(m, Mapping)]
    metric = next((m for m in order if m in values), next(iter(values)))
    return metric, _guess_scale(values[metric][1]), True


def _guess_scale(value: float) -> str:
    return "fraction" if 0.0 <= value <= 1.0 else "percent"


def _percent(value: float | None, scale: str) -> float | None:
    if value is None:
        return None
    return 100.0 * value if scale == "fraction" else value


def _n(raw: Mapping[str, Any], task: str) -> tuple[int | None, int | None]:
    ns = (raw.get("n-samples") or {}).get(task) or {}
    return ns.get("effective"), ns.get("original")


def _subtasks(raw: Mapping[str, Any], task: str) -> list[str]:
    """The leaf tasks under a group (groups of groups flattened), in lmms-eval's order."""
    groups = raw.get("group_subtasks") or {}
    out: list[str] = []
    for sub in groups.get(task) or []:
        out += _subtasks(raw, sub) if groups.get(sub) else [sub]
    return out


def _entry(raw: Mapping[str, Any], task: str) -> Mapping[str, Any] | None:
    return (raw.get("results") or {}).get(task) or (raw.get("groups") or {}).get(task)


def convert_results(raw: Mapping[str, Any], tasks: Sequence[str], model: str | None, decoding: Any = None,
                    version: str | None = None, files: Mapping[str, Any] | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
    """Our result dicts, one per task asked for, from lmms-eval's aggregated results.

    A name that is neither a task nor a group of the results (a tag, a wildcard) stands for the
    top-level tasks it ran: each of those gets its own dict."""
    dec = _decoding_dict(decoding)
    results = raw.get("results") or {}
    nested = {s for subs in (raw.get("group_subtasks") or {}).values() for s in subs}
    names = [t for t in tasks if _entry(raw, t) is not None]
    if len(names) < len(tasks):
        names += [t for t in results if t not in names and t not in nested]
    configs = raw.get("configs") or {}
    out = []
    for task in names:
        entry = _entry(raw, task) or {}
        subs = _subtasks(raw, task)
        metric, scale, guessed = _main_metric(task, entry, configs.get(task))
        values = _metric_values(entry)
        key, value = values[metric] if metric else (None, None)
        per_category: dict[str, dict[str, Any]] = {}
        for sub in subs:
            sub_entry = _entry(raw, sub) or {}
            sub_values = _metric_values(sub_entry)
            if metric in sub_values:
                per_category[sub] = {"n": _n(raw, sub)[0], "accuracy": _percent(sub_values[metric][1], scale)}
        n, n_original = _n(raw, task)
        if n is None and subs:
            counts = [_n(raw, s) for s in subs]
            if all(c[0] is not None for c in counts):
                n = sum(c[0] for c in counts)
                n_original = sum(c[1] or 0 for c in counts)
        extra = {m: _percent(v, scale if not guessed else _guess_scale(v)) for m, (_k, v) in values.items() if m != metric}
        stderr = entry.get(key.replace(",", "_stderr,", 1)) if key else None
        cfg = configs.get(task) or {}
        data = cfg.get("dataset_path")
        if data and cfg.get("dataset_name"):
            data = f"{data}:{cfg['dataset_name']}"
        files_in = (cfg.get("dataset_kwargs") or {}).get("data_files")
        if data in _BUILDERS and files_in:  # a local dataset: name its files, not the loader
            data = f"{data}:{json.dumps(files_in, sort_keys=True)}"
        res: dict[str, Any] = {
            "benchmark": PREFIX + task,
            "accuracy": _percent(value, scale),
            "n": n,
            "parse_failures": None,  # lmms-eval scores the responses; it does not report these
            "per_category": per_category,
            "metric": metric,
            "metrics": extra,
            "items": n,
            "skipped": {"count": 0, "by_reason": {}, "ids": []},
            "backend_errors": {"count": 0, "by_reason": {}},
            "malformed_prediction_lines": 0,
            "model": model,
            "data": data,
            "decoding": dec,
            "prompt": {"format_suffix": False, "prompt_set": "lmms-eval task"},
            "options": {"limit": limit} if limit is not None else {},
            "backend": HARNESS,
            "harness": {
                "name": HARNESS, "version": version, "task": task, "metric_key": key, "raw_value": value,
                "stderr": stderr if _numeric(stderr) else None, "scale": scale,
                "scale_guessed": guessed, "n_original": n_original, "subtasks": subs,
                "model_backend": (raw.get("config") or {}).get("model_backend"),
                **(dict(files) if files else {}),
            },
            "spatial_ssrl_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        out.append(res)
    return out


def _task_dir(task: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "task"
    return name + "_task" if name == HARNESS_DIR else name


def run_lmms_eval(model_path: str, tasks: list[str], out_dir: str, decoding: Any = None,
                  include_path: str | None = None, batch_size: int = 1, limit: int | None = None,
                  model_type: str | None = None, *, device: str | None = None,
                  model_args: Mapping[str, Any] | None = None, echo: bool = False,
                  timeout_s: float | None = None) -> list[dict[str, Any]]:
    """Run lmms-eval's ``tasks`` on the checkpoint ``model_path``; write and return our results.

    ``decoding``: a :class:`~spatial_ssrl.eval.runner.Decoding` (or a mapping) whose
    max_new_tokens, temperature and top_p lmms-eval uses. ``include_path``: a folder of task
    YAMLs of one's own. ``limit``: the first N documents of each task. ``model_type``: the
    lmms-eval model name (default: from the checkpoint's config.json). ``device``: cuda when
    torch sees a GPU, else cpu. ``model_args``: more ``--model_args`` of the lmms-eval model
    class (min_pixels, max_pixels, attn_implementation, ...). ``echo``: copy lmms-eval's output
    to stderr as it comes. Writes ``out_dir/<task>/results.json`` (+ .md, .png) per task;
    lmms-eval's own files and log go to ``out_dir/lmms_eval/``. Raises
    :class:`~spatial_ssrl.eval.base.BenchmarkError` (one line) when lmms-eval is missing, a
    task is unknown or the run fails."""
    from .runner import write_results

    version = _require_lmms()
    tasks = [t.strip() for t in (tasks or []) if t and t.strip()]
    if not tasks:
        raise BenchmarkError("no lmms-eval task given (e.g. mmbench_en_dev,realworldqa)")
    if not os.path.isfile(os.path.join(model_path, "config.json")):
        raise BenchmarkError(f"{model_path}: not a checkpoint folder (no config.json)")
    if include_path is not None and not os.path.isdir(include_path):
        raise BenchmarkError(f"include path {include_path} is not a folder")
    if limit is not None and int(limit) < 1:
        raise BenchmarkError(f"limit must be at least 1, not {limit}")
    harness_dir = os.path.abspath(os.path.join(out_dir, HARNESS_DIR))
    os.makedirs(harness_dir, exist_ok=True)
    log_path = os.path.join(harness_dir, LOG_FILE)
    argv = lmms_command(model_path, tasks, harness_dir, decoding, include_path, batch_size, limit,
                        model_type, device, model_args)
    started = _dt.datetime.now().timestamp() - 1.0
    rc = _run_child(argv, harness_dir, log_path, echo, timeout_s)
    # lmms-eval exits 0 after a failed evaluation and may crash after saving good results:
    # the results file, not the exit status, tells whether the run finished
    results_file = _find_results(harness_dir, started)
    if results_file is None:
        raise _failure(log_path, rc)
    try:
        with open(results_file, encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"cannot read lmms-eval's results {results_file}: {exc}") from None
    date_id = os.path.basename(results_file)[: -len("_results.json")]
    samples = sorted(glob.glob(os.path.join(os.path.dirname(results_file), f"{date_id}_samples_*.jsonl")))
    files = {"results_file": os.path.relpath(results_file, os.path.abspath(out_dir)),
             "samples_files": [os.path.relpath(p, os.path.abspath(out_dir)) for p in samples],
             "log": os.path.relpath(log_path, os.path.abspath(out_dir)), "exit_status": rc}
    model = os.path.abspath(model_path)
    converted = convert_results(raw, tasks, model, decoding, version, files, limit)
    if not converted:
        raise BenchmarkError(f"lmms-eval's results {results_file} hold none of {', '.join(tasks)}")
    for res in converted:
        write_results(os.path.join(out_dir, _task_dir(res["harness"]["task"])), res)
    return converted
