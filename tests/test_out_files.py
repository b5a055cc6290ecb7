"""``--out FILE`` of ``ssrl validate``, ``score``, ``preview`` and ``overlap`` replaces only
its own earlier output (or any file with ``--overwrite``), never a dataset's own files nor
the command's inputs, and never touches a user's ``FILE.tmp``.

On the code before this, every case below that expects a refusal replaced the file
(``validate --out DATA/manifest.json`` replaced the dataset's manifest), and overlap
renamed ``FILE.tmp`` over ``FILE``."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from spatial_ssrl.cli import main
from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import builtin_photos

FOREIGN = b"the user's own notes\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("outfiles") / "data"
    run_generation(builtin_photos(), str(out), GenerateConfig(num=6, seed=1, mix=parse_mix("flip"), workers=1))
    return out


@pytest.fixture
def own_dataset(dataset, tmp_path):
    """A copy that a test may write into."""
    return shutil.copytree(dataset, tmp_path / "data")


def _ssrl(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _refused(res, *words):
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("Error: ")
    for w in words:
        assert w in line, line


def _no_temp_left(folder):
    assert not [n for n in os.listdir(folder) if n.startswith(".tmp-ssrl")]


def _snapshot(folder):
    return {p: open(os.path.join(r, p), "rb").read() for r, _, names in os.walk(folder) for p in names}


@pytest.mark.parametrize("target", ["manifest.json", "data/train-00000-of-00001.parquet"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["", "overwrite"])
def test_validate_never_replaces_a_file_of_the_dataset(own_dataset, target, overwrite):
    if target.startswith("data/"):
        target = "data/" + min(os.listdir(own_dataset / "data"))
    before = _snapshot(own_dataset)
    res = _ssrl("validate", own_dataset, "-q", "--out", own_dataset / target, *(["--overwrite"] if overwrite else []))
    _refused(res, "file of the dataset")
    assert "validated" not in res.output  # refused before the work
    assert _snapshot(own_dataset) == before


def test_validate_out_replaces_its_own_report_only(dataset, tmp_path):
    out = tmp_path / "report.json"
    out.write_bytes(FOREIGN)
    res = _ssrl("validate", dataset, "-q", "--out", out)
    _refused(res, "--overwrite")
    assert out.read_bytes() == FOREIGN
    assert _ssrl("validate", dataset, "-q", "--out", out, "--overwrite").exit_code == 0
    report = json.loads(out.read_text())
    assert report["generator"] == "ssrl validate" and report["ok"] is True
    out.write_text(out.read_text().replace('"ok": true', '"ok": "earlier"'))
    assert _ssrl("validate", dataset, "-q", "--out", out).exit_code == 0  # ours: replaced without --overwrite
    assert json.loads(out.read_text())["ok"] is True
    _no_temp_left(tmp_path)


def test_score_out_never_replaces_the_predictions_or_a_foreign_file(dataset, tmp_path):
    from spatial_ssrl.readers import open_dataset

    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": r.id, "response": "<answer>x</answer>"}) + "\n"
                             for r in open_dataset(str(dataset)).records(with_images=False)))
    kept = preds.read_bytes()
    for extra in ([], ["--overwrite"]):
        _refused(_ssrl("score", "-d", dataset, "-p", preds, "--out", preds, *extra), "input")
        assert preds.read_bytes() == kept
    out = tmp_path / "score.json"
    out.write_bytes(FOREIGN)
    _refused(_ssrl("score", "-d", dataset, "-p", preds, "--out", out), "--overwrite")
    assert out.read_bytes() == FOREIGN
    assert _ssrl("score", "-d", dataset, "-p", preds, "--out", out, "--overwrite").exit_code == 0
    assert _ssrl("score", "-d", dataset, "-p", preds, "--out", out).exit_code == 0
    assert json.loads(out.read_text())["generator"] == "ssrl score"
    _no_temp_left(tmp_path)


def test_preview_out(own_dataset, tmp_path):
    page = tmp_path / "page.html"
    page.write_bytes(FOREIGN)
    _refused(_ssrl("preview", own_dataset, "-n", "2", "-o", page), "--overwrite")
    assert page.read_bytes() == FOREIGN
    assert _ssrl("preview", own_dataset, "-n", "2", "-o", page, "--overwrite").exit_code == 0
    assert '<meta name="generator" content="ssrl preview">' in page.read_text()
    for _ in range(2):  # the default page in the dataset folder, then again over our own
        assert _ssrl("preview", own_dataset, "-n", "2").exit_code == 0
    before = _snapshot(own_dataset)
    _refused(_ssrl("preview", own_dataset, "-n", "2", "-o", own_dataset / "manifest.json", "--overwrite"),
             "file of the dataset")
    assert _snapshot(own_dataset) == before
    _no_temp_left(own_dataset)


def test_overlap_out_leaves_the_users_tmp_file_alone(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for ref in builtin_photos()[:2]:
        shutil.copy(ref.path, folder / os.path.basename(ref.path))
    pairs = tmp_path / "pairs.json"
    user_tmp = tmp_path / "pairs.json.tmp"
    user_tmp.write_bytes(FOREIGN)
    args = ["overlap", "--train-images", folder, "--bench-images", folder, "-w", "1", "-q", "--out", pairs]
    res = _ssrl(*args)
    assert res.exit_code == 0, res.output
    assert user_tmp.read_bytes() == FOREIGN
    assert json.loads(pairs.read_text())["format"] == "spatial-ssrl-overlap/1"
    assert _ssrl(*args).exit_code == 0  # our own pairs file: replaced
    pairs.write_bytes(FOREIGN)
    _refused(_ssrl(*args), "--overwrite")
    assert pairs.read_bytes() == FOREIGN and user_tmp.read_bytes() == FOREIGN
    assert _ssrl(*args, "--overwrite").exit_code == 0
    _no_temp_left(tmp_path)
