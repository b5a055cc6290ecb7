"""``ssrl eval --harness lmms-eval``: tasks of our own run through lmms-eval on the tiny model,
and the conversion of lmms-eval's results into ours."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from deps import require, run_cli

from spatial_ssrl.eval import harness_lmms
from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.compare import table
from spatial_ssrl.eval.runner import Decoding

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20)}
QUESTION = "What colour is the image?\nA. red\nB. green\nC. blue\nD. yellow"

UTILS = '''\
def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kw = lmms_eval_specific_kwargs or {}
    return kw.get("pre_prompt", "") + doc["question"] + kw.get("post_prompt", "")


def process_results(doc, results):
    reply = results[0].strip()
    return {"exact_match": float(reply[:1].upper() == doc["answer"])}
'''


def _task_yaml(name: str, parquet: str, cache: str) -> str:
    return textwrap.dedent(f"""\
        task: {name}
        dataset_path: parquet
        dataset_kwargs:
          data_files:
            test: {parquet}
          cache_dir: {cache}
        test_split: test
        output_type: generate_until
        doc_to_visual: !function utils.doc_to_visual
        doc_to_text: !function utils.doc_to_text
        doc_to_target: answer
        process_results: !function utils.process_results
        generation_kwargs:
          max_new_tokens: 64
          temperature: 0
        lmms_eval_specific_kwargs:
          default:
            pre_prompt: ""
            post_prompt: "\\nAnswer with the option's letter."
        metric_list:
          - metric: exact_match
            aggregation: mean
            higher_is_better: true
        metadata:
          - version: 0.0
        """)


def _write_tasks(folder) -> None:
    """tiny_colours (4 PIL-made images) and the group tiny_shades of tiny_warm and tiny_cool."""
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string")})
    rows = {name: {"image": Image.new("RGB", (56, 56), rgb), "question": QUESTION, "answer": "ABCD"[i]}
            for i, (name, rgb) in enumerate(COLOURS.items())}
    parts = {"tiny_colours": list(COLOURS), "tiny_warm": ["red", "yellow"], "tiny_cool": ["green", "blue"]}
    cache = folder / "hf-cache"
    for task, names in parts.items():
        parquet = folder / f"{task}.parquet"
        datasets.Dataset.from_list([rows[n] for n in names], features=features).to_parquet(str(parquet))
        (folder / f"{task}.yaml").write_text(_task_yaml(task, str(parquet), str(cache)))
    (folder / "tiny_shades.yaml").write_text(textwrap.dedent("""\
        group: tiny_shades
        task:
          - tiny_warm
          - tiny_cool
        aggregate_metric_list:
          - metric: exact_match
            aggregation: mean
            weight_by_size: true
        metadata:
          version: 0.0
        """))
    (folder / "utils.py").write_text(UTILS)


@pytest.fixture(scope="module")
def lmms_setup(tmp_path_factory):
    require("lmms_eval")
    require("datasets")
    from spatial_ssrl.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("lmms")
    model = build_tiny_model("qwen2_5_vl", str(root / "tiny-qwen"))
    tasks = root / "tasks"
    tasks.mkdir()
    _write_tasks(tasks)
    return root, model, tasks


def _samples_mean(out, res) -> float:
    values = []
    for rel in res["harness"]["samples_files"]:
        with open(os.path.join(out, rel), encoding="utf-8") as fh:
            values += [json.loads(line)["exact_match"] for line in fh if line.strip()]
    return sum(values) / len(values)


def test_tiny_task_through_lmms_eval(lmms_setup, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root, model, tasks = lmms_setup
    out = root / "eval"
    decoding = Decoding(max_new_tokens=6, temperature=0.0, top_p=1.0)
    results = harness_lmms.run_lmms_eval(model, ["tiny_colours", "tiny_shades"], str(out), decoding,
                                         include_path=str(tasks), device="cpu")
    assert [r["benchmark"] for r in results] == ["lmms:tiny_colours", "lmms:tiny_shades"]

    path = out / "tiny_colours" / "results.json"
    res = json.loads(path.read_text())
    assert res["benchmark"] == "lmms:tiny_colours" and res["n"] == 4 and res["metric"] == "exact_match"
    assert res["harness"]["name"] == "lmms-eval" and res["harness"]["version"] == harness_lmms.lmms_version()
    assert res["harness"]["scale"] == "fraction"
    raw = res["harness"]["raw_value"]
    assert 0.0 <= raw <= 1.0 and res["accuracy"] == pytest.approx(100.0 * raw)
    assert res["accuracy"] == pytest.approx(100.0 * _samples_mean(out, res))  # lmms-eval's per-sample scores
    assert res["decoding"] == {"max_new_tokens": 6, "temperature": 0.0, "top_p": 1.0, "format_prompt": False}
    assert res["model"] == os.path.abspath(model)
    for name in ("results.md", "results.png"):
        assert (out / "tiny_colours" / name).is_file()
    # everything lmms-eval wrote stays under OUT/lmms_eval
    assert res["harness"]["results_file"].startswith("lmms_eval" + os.sep)
    assert (out / "lmms_eval" / "log.txt").is_file()
    assert "\x1b[" not in (out / "lmms_eval" / "log.txt").read_text()
    assert "--gen_kwargs max_new_tokens=6,temperature=0,top_p=1" in (out / "lmms_eval" / "log.txt").read_text()

    group = json.loads((out / "tiny_shades" / "results.json").read_text())
    assert group["n"] == 4 and set(group["per_category"]) == {"tiny_warm", "tiny_cool"}
    assert all(c["n"] == 2 for c in group["per_category"].values())
    mean = sum(c["accuracy"] for c in group["per_category"].values()) / 2  # equal sizes
    assert group["accuracy"] == pytest.approx(mean)

    benches, rows = table([str(path), str(out / "tiny_shades" / "results.json")])
    assert benches == ["lmms:tiny_colours", "lmms:tiny_shades"]
    assert rows[out.name]["lmms:tiny_colours"] == pytest.approx(res["accuracy"])


def test_unknown_task_is_one_line(lmms_setup):
    """Through `ssrl eval --harness lmms-eval`: an unknown task is a one-line error."""
    root, model, tasks = lmms_setup
    out = root / "unknown"
    result = run_cli("eval", "lmms-eval", "no_such_task_xyz", "--model", model, "--include-path", tasks, "--out", out, "-q", ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "no task no_such_task_xyz" in lines[0]
    assert (out / "lmms_eval" / "log.txt").is_file()
    assert not (out / "no_such_task_xyz").exists()


def test_missing_lmms_eval_names_the_extra(tmp_path, monkeypatch):
    real = harness_lmms.importlib.util.find_spec
    monkeypatch.setattr(harness_lmms.importlib.util, "find_spec",
                        lambda name, *a: None if name == "lmms_eval" else real(name, *a))
    with pytest.raises(BenchmarkError, match=r"spatial-ssrl\[lmms\]") as err:
        harness_lmms.run_lmms_eval(str(tmp_path), ["realworldqa"], str(tmp_path / "out"), Decoding())
    assert "\n" not in str(err.value)


def test_model_type_from_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    assert harness_lmms.lmms_model_type(str(tmp_path)) == "qwen3_vl"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BenchmarkError, match="no lmms-eval class"):
        harness_lmms.lmms_model_type(str(tmp_path))
    argv = harness_lmms.lmms_command(str(tmp_path), ["realworldqa"], str(tmp_path / "o"),
                                     Decoding(max_new_tokens=16, temperature=0.7, top_p=0.9),
                                     model_type="qwen2_5_vl", device="cpu", limit=3)
    assert argv[argv.index("--gen_kwargs") + 1] == "max_new_tokens=16,temperature=0.7,top_p=0.9"
    assert argv[argv.index("--model_args") + 1].endswith(",device=cpu,device_map=cpu")
    assert argv[argv.index("--limit") + 1] == "3"
    with pytest.raises(BenchmarkError, match="no ','"):
        harness_lmms.lmms_command(str(tmp_path / "a,b"), ["x"], str(tmp_path), model_type="qwen2_5_vl")


def test_convert_percent_fraction_and_groups():
    """The scales lmms-eval 0.7.3 reports: MMBench in percent, BLINK (a group) in fractions."""
    raw = {
        "results": {
            "mmbench_en_dev": {"alias": "mmbench_en_dev", "gpt_eval_score,none": 81.5,
                               "gpt_eval_score_stderr,none": "N/A", "submission,none": None},
            "blink": {"alias": "blink", "blink_acc,none": 0.5},
            "blink_counting": {"blink_acc,none": 0.25},
            "blink_iq_test": {"blink_acc,none": 0.75},
            "custom_task": {"score,none": 42.0, "other,none": 0.5},
            "mmbench_en_test": {"submission,none": None},
        },
        "group_subtasks": {"blink": ["blink_iq_test", "blink_counting"], "mmbench_en_dev": [],
                           "custom_task": []},
        "n-samples": {"mmbench_en_dev": {"original": 4329, "effective": 4329},
                      "blink_counting": {"original": 120, "effective": 120},
                      "blink_iq_test": {"original": 150, "effective": 150},
                      "custom_task": {"original": 10, "effective": 10}},
        "configs": {"custom_task": {"metric_list": [{"metric": "score"}, {"metric": "other"}]}},
    }
    by = {r["benchmark"]: r for r in harness_lmms.convert_results(
        raw, ["mmbench_en_dev", "blink", "custom_task", "mmbench_en_test"], "m", Decoding(), "0.7.3")}
    mmb = by["lmms:mmbench_en_dev"]
    assert mmb["accuracy"] == 81.5 and mmb["metric"] == "gpt_eval_score" and mmb["n"] == 4329
    assert mmb["harness"]["scale"] == "percent" and not mmb["harness"]["scale_guessed"]
    blink = by["lmms:blink"]
    assert blink["accuracy"] == 50.0 and blink["n"] == 270
    assert blink["per_category"] == {"blink_iq_test": {"n": 150, "accuracy": 75.0},
                                     "blink_counting": {"n": 120, "accuracy": 25.0}}
    custom = by["lmms:custom_task"]
    assert custom["metric"] == "score" and custom["accuracy"] == 42.0 and custom["harness"]["scale_guessed"]
    assert custom["metrics"] == {"other": 50.0}
    assert by["lmms:mmbench_en_test"]["accuracy"] is None  # submission only: nothing to score here


def test_failure_lines_from_the_log(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("2026 | ERROR | Failed to import model from 'qwen2_5_vl': No module named 'decord'\n"
                   "ModuleNotFoundError: No module named 'decord'\n"
                   "2026 | ERROR | lmms_eval.__main__:cli_evaluate:614 - Error during evaluation: No module named "
                   "'decord'. Please set `--verbosity=DEBUG` to get more information.\n")
    assert "needs the module 'decord'" in str(harness_lmms._failure(str(log), 0))
    log.write_text("No module named 'flash_attn'\nError during evaluation: CUDA out of memory. Please set "
                   "`--verbosity=DEBUG` to get more information.\n")
    msg = str(harness_lmms._failure(str(log), 0))
    assert msg.startswith("lmms-eval failed: CUDA out of memory (log: ") and "\n" not in msg
    log.write_text("Traceback ...\nSegmentation fault\n")
    assert "exited with status 139" in str(harness_lmms._failure(str(log), 139))
