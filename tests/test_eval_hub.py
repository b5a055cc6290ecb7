"""``ssrl eval --bench NAME`` without ``--bench-path``: the official dataset from the Hugging Face
cache, offline (HF_HUB_OFFLINE=1), laid out as huggingface_hub keeps it: no network here."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import zipfile

import pytest
from deps import run_cli
from PIL import Image

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(root, repo: str, files: dict[str, bytes]):
    """A dataset repository in a Hugging Face cache at ``root``: refs/main naming the commit,
    the files as blobs, snapshots/<commit>/<path> linking to them (huggingface_hub's layout)."""
    folder = root / f"datasets--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    (folder / "blobs").mkdir()
    snapshot = folder / "snapshots" / COMMIT
    for rel, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _image(fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 120, 200)).save(buf, format=fmt)
    return buf.getvalue()


def _srb_tsv() -> bytes:
    """Three 3DSRBench questions (no rotations: each its own circular group)."""
    img = base64.b64encode(_image()).decode()
    buf = io.StringIO()
    cols = ["index", "qid", "question", "A", "B", "C", "D", "answer", "category", "image", "image_source", "image_url"]
    w = csv.DictWriter(buf, cols, delimiter="\t")
    w.writeheader()
    for i, (qid, cat, answer) in enumerate((("aaaaaaaa", "height_higher", "A"), ("bbbbbbbb", "location_above", "B"),
                                            ("cccccccc", "orientation_on_the_left", "A"))):
        w.writerow({"index": i, "qid": qid, "question": f"Question {qid}?", "A": "yes", "B": "no", "C": "", "D": "",
                    "answer": answer, "category": cat, "image": img, "image_source": "coco", "image_url": "x"})
    return buf.getvalue().encode()


def _preds(path, answers: dict[str, str]):
    path.write_text("".join(json.dumps({"id": k, "response": f"<think>t</think> \\boxed{{{v}}}"}) + "\n"
                            for k, v in answers.items()))
    return path


def test_bench_by_name_from_the_offline_hub_cache(offline_cache, tmp_path):
    snapshot = hub_cache(offline_cache, "ccvl/3DSRBench", {"3dsrbench_v1_vlmevalkit_circular.tsv": _srb_tsv(),
                                                          "README.md": b"# 3DSRBench\n"})
    preds = _preds(tmp_path / "preds.jsonl", {"0": "A", "1": "A", "2": "A"})  # 2 of 3 right
    out = tmp_path / "ev"
    run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--out", out)
    res = json.loads((out / "results.json").read_text())
    assert res["data"] == str(snapshot)  # the snapshot folder, given to the module as it is
    assert res["n"] == 3 and res["skipped"]["count"] == 0
    assert res["accuracy"] == pytest.approx(200 / 3)
    # a local --bench-path still wins over the Hub
    folder = tmp_path / "3dsr"
    folder.mkdir()
    (folder / "3dsrbench_v1_vlmevalkit_circular.tsv").write_bytes(_srb_tsv())
    preds = _preds(tmp_path / "preds2.jsonl", {"0": "A", "1": "B", "2": "A"})
    run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--bench-path", folder, "--out", tmp_path / "ev2")
    res = json.loads((tmp_path / "ev2" / "results.json").read_text())
    assert res["data"] == str(folder) and res["accuracy"] == pytest.approx(100.0)


def test_image_archives_of_a_snapshot_are_unpacked_once(offline_cache, tmp_path):
    """ViewSpatial-Bench on the Hub: the json beside scannetv2_val.zip and val2017.zip."""
    rows = [
        {"question_type": "Camera perspective - Relative Direction", "question": "Where is the lamp?",
         "image_path": ["ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/1.jpg"],
         "answer": "A. left", "choices": "A. left\nB. right"},
        {"question_type": "Person perspective - Object View Orientation", "question": "Where is the dog?",
         "image_path": ["ViewSpatial-Bench/val2017/000000140640.jpg"], "answer": "B. back",
         "choices": "A. front\nB. back"},
        {"question_type": "Camera perspective - Relative Direction", "question": "Where is the cup?",
         "image_path": ["ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/2.jpg"],
         "answer": "B. right", "choices": "A. left\nB. right"},
    ]

    def archive(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return buf.getvalue()

    jpg = _image("JPEG")
    hub_cache(offline_cache, "lidingm/ViewSpatial-Bench", {
        "ViewSpatial-Bench.json": json.dumps(rows).encode(),
        # one archive holds its own top folder, the other its files bare
        "scannetv2_val.zip": archive({"scannetv2_val/scene0011_00/original_images/1.jpg": jpg,
                                      "scannetv2_val/scene0011_00/original_images/2.jpg": jpg}),
        "val2017.zip": archive({"000000140640.jpg": jpg}),
    })
    preds = _preds(tmp_path / "preds.jsonl", {"0": "A", "1": "B", "2": "A"})  # 2 of 3 right
    out = tmp_path / "ev"
    run_cli("eval", "predictions", preds, "--bench", "viewspatial", "--out", out)
    res = json.loads((out / "results.json").read_text())
    view = tmp_path / "ssrl-unpacked" / "datasets--lidingm--ViewSpatial-Bench" / COMMIT
    assert res["data"] == str(view)
    assert res["skipped"]["count"] == 0 and res["n"] == 3  # every image found in the unpacked archives
    assert res["accuracy"] == pytest.approx(200 / 3)
    assert (view / "val2017" / "000000140640.jpg").read_bytes() == jpg
    # a second run unpacks nothing again
    marker = view / ".val2017.zip.unpacked"
    before = marker.stat().st_mtime_ns
    run_cli("eval", "predictions", preds, "--bench", "viewspatial", "--out", tmp_path / "ev2")
    assert marker.stat().st_mtime_ns == before


def test_missing_cache_offline_is_one_line(offline_cache, tmp_path):
    preds = _preds(tmp_path / "preds.jsonl", {"0": "A"})
    out = tmp_path / "ev"
    result = run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--out", out, ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "ccvl/3DSRBench is not in the Hugging Face cache" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    assert "hf download ccvl/3DSRBench --repo-type dataset --include '3dsrbench_v1_vlmevalkit_circular.tsv'" in lines[0]
    assert "--bench-path" in lines[0]
    assert not out.exists()


def test_a_benchmark_not_on_the_hub_asks_for_its_path(offline_cache, tmp_path):
    preds = _preds(tmp_path / "preds.jsonl", {"0": "A"})
    result = run_cli("eval", "predictions", preds, "--bench", "whatsup", "--out", tmp_path / "ev", ok=False)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "whatsup is not on the Hugging Face Hub: pass --bench-path" in result.output



def test_a_multi_config_repository_downloads_the_configs_read():
    """A module's ``hub_config`` (one name or several) narrows what is downloaded to those
    configs' files and the media archives; 3DSRBench takes its circular TSV only."""
    from huggingface_hub.utils import filter_repo_objects

    from spatial_ssrl.eval.benchmarks import get_benchmark
    from spatial_ssrl.eval.hub import allow_patterns

    class TwoTasks:
        name, hub_repo, hub_config = "two-tasks", "someone/Bench", ("Relative_Depth", "Spatial_Relation")

    repo = ["README.md", "Relative_Depth/val-00000-of-00001.parquet", "Spatial_Relation/val-00000-of-00001.parquet",
            "Counting/val-00000-of-00001.parquet", "images.zip", "3dsrbench_v1_vlmevalkit_circular.tsv",
            "3dsrbench_v1_vlmevalkit.tsv", "3dsrbench_v1.csv"]
    assert list(filter_repo_objects(repo, allow_patterns=allow_patterns(TwoTasks()))) == [
        "Relative_Depth/val-00000-of-00001.parquet", "Spatial_Relation/val-00000-of-00001.parquet", "images.zip"]
    srb = allow_patterns(get_benchmark("3dsrbench"))
    assert list(filter_repo_objects(repo, allow_patterns=srb)) == ["3dsrbench_v1_vlmevalkit_circular.tsv"]
    assert allow_patterns(get_benchmark("viewspatial")) is None  # all of it: the json and the image archives
