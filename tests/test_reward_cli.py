"""``ssrl score`` on a generated dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from spatial_ssrl.reward.cli import score_command


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
    from spatial_ssrl.sources import builtin_photos

    out = tmp_path_factory.mktemp("score-dataset")
    run_generation(builtin_photos(), str(out), GenerateConfig(num=12, mix=parse_mix(None), workers=1))
    return out


def _rows(dataset: Path) -> list[dict]:
    files = sorted((dataset / "data").glob("*.parquet"))
    rows = []
    for f in files:
        rows += pq.read_table(f, columns=["id", "task", "variant", "answer", "answer_type"]).to_pylist()
    return rows


def _respell(answer: str, kind: str) -> str:
    if kind == "choice":
        return f"({answer.lower()})"
    if kind == "permutation":
        return "[" + ", ".join(answer.split("-")) + "]"
    label, direction = answer.split("-")
    return f"{label}-{'vertical' if direction == '0' else 'horizontal'}"


def _wrong(answer: str, kind: str) -> str:
    if kind == "choice":
        return "B" if answer != "B" else "C"
    if kind == "permutation":
        return "-".join(reversed(answer.split("-")))
    label, direction = answer.split("-")
    return f"{label}-{1 - int(direction)}"


def _group():
    @click.group()
    def cli():
        pass

    cli.add_command(score_command, name="score")
    return cli


def test_score_report_numbers(dataset, tmp_path):
    rows = _rows(dataset)
    assert len(rows) == 12
    r = rows
    lines = [
        json.dumps({"id": r[0]["id"], "response": f"<think>a</think>\\boxed{{{r[0]['answer']}}}"}),  # 1 right
        json.dumps({"id": r[1]["id"], "response": f"<think>b</think> So \\boxed{{{_respell(r[1]['answer'], r[1]['answer_type'])}}}."}),  # 2 right
        json.dumps({"id": r[2]["id"], "response": f"<think>c</think>\\boxed{{{_wrong(r[2]['answer'], r[2]['answer_type'])}}}"}),  # 3 wrong
        "this is not json",  # 4 malformed
        "",  # 5 blank: skipped
        json.dumps({"id": "not-a-sample", "response": "<think>x</think>\\boxed{A}"}),  # 6 unknown id
        json.dumps({"id": r[3]["id"], "response": f"<think>d</think> I believe it is {r[3]['answer']}"}),  # 7 no box
        json.dumps([r[4]["id"], "response"]),  # 8 malformed: not an object
        json.dumps({"id": r[4]["id"]}),  # 9 malformed: no response
        json.dumps({"id": r[0]["id"], "response": f"<think>a</think>\\boxed{{{_wrong(r[0]['answer'], r[0]['answer_type'])}}}"}),  # 10 duplicate
        json.dumps({"id": r[5]["id"], "response": f"\\boxed{{{r[5]['answer']}}}"}),  # 11 right, no think block
        json.dumps({"id": None, "response": "x"}),  # 12 malformed: no id
        '{"id": "' + r[6]["id"] + '", "resp',  # 13 malformed: truncated
    ]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "reports" / "report.json"

    result = CliRunner().invoke(
        _group(), ["score", "--data", str(dataset), "--predictions", str(preds), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())

    assert report["scored"] == 5
    assert report["correct"] == 3
    assert report["accuracy"] == pytest.approx(60.0)
    assert report["format_rate"] == pytest.approx(60.0)
    assert report["parse_failures"] == 1
    assert report["mean_reward"] == pytest.approx((1.0 + 1.0 + 0.1 + 0.0 + 0.9) / 5)
    assert report["dataset_samples"] == 12
    assert report["malformed_lines"] == {"count": 5, "lines": [4, 8, 9, 12, 13]}
    assert report["unknown_ids"] == {"count": 1, "ids": ["not-a-sample"]}
    assert report["duplicate_ids"] == {"count": 1, "ids": [r[0]["id"]]}
    assert report["missing_predictions"]["count"] == 7
    assert set(report["missing_predictions"]["ids"]) == {x["id"] for x in r[4:5] + r[6:]}
    assert report["failure_reasons"] == {"no_box": 1, "wrong_answer": 1}

    # breakdowns, recomputed here from the rows
    outcome = {0: (1, 1), 1: (1, 1), 2: (0, 1), 3: (0, 0), 5: (1, 0)}  # row -> (correct, well formed)
    for key, field in (("per_task", lambda x: x["task"]), ("per_variant", lambda x: f"{x['task']}/{x['variant']}")):
        expected: dict[str, list[int]] = {}
        for i, (ok, fmt) in outcome.items():
            e = expected.setdefault(field(r[i]), [0, 0, 0, 0])
            e[0] += 1
            e[1] += ok
            e[2] += fmt
            e[3] += i == 3
        assert set(report[key]) == set(expected)
        for name, (n, ok, fmt, failures) in expected.items():
            got = report[key][name]
            assert (got["n"], got["correct"], got["parse_failures"]) == (n, ok, failures)
            assert got["accuracy"] == pytest.approx(100.0 * ok / n)
            assert got["format_rate"] == pytest.approx(100.0 * fmt / n)

    # the printed table
    out_lines = result.output.splitlines()
    assert out_lines[0].split() == ["group", "n", "accuracy", "%", "format", "%", "parse", "failures"]
    all_row = next(line for line in out_lines if line.startswith("all "))
    assert all_row.split() == ["all", "5", "60.0", "60.0", "1"]
    for task in report["per_task"]:
        assert any(line.startswith(task + " ") for line in out_lines)
    assert "malformed lines: 5 (line 4, 8, 9, 12, 13)" in result.output
    assert "unknown ids: 1 (not-a-sample)" in result.output


def test_score_allow_hedging_flag(dataset, tmp_path):
    row = _rows(dataset)[0]
    hedge = f"<think>x</think>\\boxed{{{_wrong(row['answer'], row['answer_type'])}}} or \\boxed{{{row['answer']}}}"
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": row["id"], "response": hedge}) + "\n")
    strict = CliRunner().invoke(score_command, ["--data", str(dataset), "--predictions", str(preds), "-o", str(tmp_path / "a.json")])
    lenient = CliRunner().invoke(
        score_command, ["--data", str(dataset), "--predictions", str(preds), "--allow-hedging", "-o", str(tmp_path / "b.json")]
    )
    assert strict.exit_code == 0 and lenient.exit_code == 0
    assert json.loads((tmp_path / "a.json").read_text())["accuracy"] == 0.0
    assert json.loads((tmp_path / "b.json").read_text())["accuracy"] == 100.0


def test_score_reads_a_verl_dataset(tmp_path):
    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
    from spatial_ssrl.sources import builtin_photos

    out = tmp_path / "verl"
    run_generation(builtin_photos(), str(out), GenerateConfig(num=4, mix=parse_mix("flip"), workers=1, format="verl"))
    infos = [x["extra_info"] for f in sorted((out / "data").glob("*.parquet")) for x in pq.read_table(f, columns=["extra_info"]).to_pylist()]
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": x["id"], "response": f"<think>x</think>\\boxed{{{x['answer']}}}"}) + "\n" for x in infos))
    result = CliRunner().invoke(score_command, ["--data", str(out), "--predictions", str(preds), "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["scored"] == 4 and report["accuracy"] == 100.0 and list(report["per_task"]) == ["flip"]


def test_score_errors_are_clean(dataset, tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text("")
    runner = CliRunner()

    missing = runner.invoke(score_command, ["--data", str(dataset), "--predictions", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and isinstance(missing.exception, SystemExit)
    assert "does not exist" in missing.output

    no_data = runner.invoke(score_command, ["--data", str(tmp_path / "nothing"), "--predictions", str(preds)])
    assert no_data.exit_code == 2 and isinstance(no_data.exception, SystemExit)

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    not_a_dataset = runner.invoke(score_command, ["--data", str(empty_dir), "--predictions", str(preds)])
    assert not_a_dataset.exit_code == 1 and isinstance(not_a_dataset.exception, SystemExit)
    assert "holds no dataset" in not_a_dataset.output

    (empty_dir / "data").mkdir()
    (empty_dir / "data" / "train-00000-of-00001.parquet").write_bytes(b"not parquet at all")
    corrupt = runner.invoke(score_command, ["--data", str(empty_dir), "--predictions", str(preds)])
    assert corrupt.exit_code == 1 and isinstance(corrupt.exception, SystemExit)
    assert "cannot read" in corrupt.output

    # an empty predictions file is not an error: nothing scored, every sample missing
    empty = runner.invoke(score_command, ["--data", str(dataset), "--predictions", str(preds), "-o", str(tmp_path / "e.json")])
    assert empty.exit_code == 0, empty.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["scored"] == 0 and report["accuracy"] is None
    assert report["missing_predictions"]["count"] == 12


def test_score_reads_every_format_alike(tmp_path):
    """The same seed in every format gives the same report, llamafactory included."""
    from spatial_ssrl.cli import main

    reports = {}
    for fmt in ("canonical", "trl", "easyr1", "verl", "llamafactory"):
        data = tmp_path / fmt
        res = CliRunner().invoke(main, ["generate", "--out", str(data), "--format", fmt, "--seed", "0",
                                        "--num", "12", "--workers", "1", "--quiet"])
        assert res.exit_code == 0, res.output
        if fmt == "canonical":
            rows = _rows(data)
            preds = tmp_path / "p.jsonl"  # two in three right, the rest wrong
            preds.write_text("".join(json.dumps({"id": r["id"], "response": "<think>x</think>\\boxed{%s}" % (
                r["answer"] if i % 3 else "nonsense")}) + "\n" for i, r in enumerate(rows)))
        out = tmp_path / f"{fmt}.json"
        res = CliRunner().invoke(main, ["score", "--data", str(data), "--predictions", str(preds), "-o", str(out)])
        assert res.exit_code == 0, res.output
        reports[fmt] = json.loads(out.read_text())
        del reports[fmt]["dataset"]
    assert reports["canonical"]["scored"] == 12 and reports["canonical"]["accuracy"] == pytest.approx(800 / 12)
    for fmt, report in reports.items():
        assert report == reports["canonical"], fmt
