"""Scoring a predictions file needs no image or video, and a skipped item says why.

For every benchmark, its files are built as distributed (with the builders of the benchmark's
own tests), then every medium is deleted or corrupted, and:

(a) ``load(path, images=False)`` on the broken files gives the same items (ids, questions,
    answers, options, categories, meta, order) as ``load(path)`` on the intact ones, and
    ``score()`` the same report from either;
(b) ``ssrl eval --predictions`` scores the broken files, with the accuracy of the intact ones;
(c) a run that needs the media (``--api-base``) stops with "no items to evaluate", the skip
    reasons counted and the first missing or undecodable file (or table cell) named.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from spatial_ssrl.cli import main
from spatial_ssrl.eval.benchmarks import get_benchmark

GARBAGE = b"this is not an image, only some bytes " * 3


def _png(shade: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (shade, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------- breaking the media


def _corrupt_cell(cell: Any, missing: bool) -> Any:
    """An image cell whose bytes are garbage (``missing``: gone, its path kept)."""
    if isinstance(cell, dict):
        return {**cell, "bytes": None if missing else (GARBAGE if cell.get("bytes") else None)}
    if isinstance(cell, (bytes, bytearray)):
        return None if missing else GARBAGE
    if isinstance(cell, list):
        return [_corrupt_cell(c, missing) for c in cell]
    return cell


def corrupt_parquet(file: Path, columns: tuple[str, ...], missing: bool = False) -> None:
    table = pq.read_table(file)
    rows = table.to_pylist()
    for row in rows:
        for col in columns:
            row[col] = _corrupt_cell(row.get(col), missing)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), file)


def corrupt_tsv(file: Path) -> None:
    df = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    bad = base64.b64encode(GARBAGE).decode()

    def corrupt(cell: str) -> str:
        if len(cell) <= 64:  # an index reference stays
            return cell
        return str([bad] * len(ast.literal_eval(cell))) if cell.startswith("[") else bad

    df["image"] = [corrupt(c) for c in df["image"]]
    df.to_csv(file, sep="\t", index=False)


def delete_files(root: Path, *suffixes: str) -> None:
    for f in list(root.rglob("*")):
        if f.is_file() and f.suffix in suffixes:
            f.unlink()


# ---------------------------------------------------------------------------------- cases


@dataclass
class Case:
    bench: str
    build: Callable[[Path], Path]  # intact files under a folder -> the path to load
    breaks: Callable[[Path], None]  # every medium deleted or corrupted
    reason: str  # the skip reason every item gets with images=True
    first: str  # the id of the first item skipped
    detail: str  # what the first skip's detail holds (a file, or a table's row and column)
    options: dict[str, Any] = field(default_factory=dict)


def _srb(root: Path) -> Path:
    from test_bench_scoring_a import _srb_rows, _write_tsv

    rows = [r for r in _srb_rows() if r["qid"] != "dddddddd"]  # its image is broken on purpose
    img = base64.b64encode(_png()).decode()
    rows.append({**rows[-1], "index": len(rows), "qid": "eeeeeeee", "image": str([img, img])})  # two images
    root.mkdir()
    _write_tsv(root / "3dsrbench_v1_vlmevalkit_circular.tsv", rows)
    return root


def _s457(root: Path) -> Path:
    from test_bench_scoring_a import SPATIAL457_CASES, _write_tsv

    img = base64.b64encode(_png()).decode()
    root.mkdir()
    _write_tsv(root / "Spatial457.tsv", [{"index": i, "image": img, "question": f"Question {i}?", "answer": truth,
                                          "category": cat} for i, (cat, truth, *_) in enumerate(SPATIAL457_CASES)])
    return root


def _se(root: Path) -> Path:
    from test_bench_scoring_a import SE_ROWS, _se_parquet

    _se_parquet(root / "vqa" / "test-00000-of-00001.parquet", SE_ROWS)
    return root


def _qs(root: Path) -> Path:
    from test_bench_scoring_a import QS_ROWS, _qs_parquet

    _qs_parquet(root / "data" / "QSpatial_plus-00000-of-00001.parquet", QS_ROWS[:5])  # 5, 6: broken on purpose
    return root


def _view(root: Path) -> Path:
    from test_bench_scoring_b import VIEW_ROWS, view_repo

    return view_repo(root, rows=VIEW_ROWS[:4])[0]  # the fifth's image is missing on purpose


def _whatsup(root: Path) -> Path:
    from test_bench_scoring_b import controlled_rows, write_jpeg

    a_rows = controlled_rows([("mug", "table"), ("book", "chair")], ["on", "under", "left_of", "right_of"],
                             "controlled_images")
    b_rows = controlled_rows([("cube", "sphere")], ["left_of", "right_of", "in-front_of", "behind"],
                             "controlled_clevr")
    root.mkdir()
    (root / "controlled_images_dataset.json").write_text(json.dumps(a_rows))
    (root / "controlled_clevr_dataset.json").write_text(json.dumps(b_rows))
    for row in a_rows + b_rows:
        write_jpeg(root / row["image_path"][len("data/"):])
    return root


def _vsi(root: Path) -> Path:
    pytest.importorskip("av")
    from test_bench_scoring_b import make_video, vsi_dir

    folder = vsi_dir(root)
    make_video(folder / "scannet" / "scene0000_00.mp4")  # vsi_dir leaves this one missing on purpose
    return folder


def _mmsi(root: Path) -> Path:
    from test_bench_mmsi import ROWS, _parquet

    root.mkdir()
    _parquet(root / "MMSI_Bench.parquet", ROWS)
    return root


def _mindcube_rows():
    from test_bench_mindcube import ROWS

    return [r for r in ROWS if r[1] and not any("not_there" in p for p in r[2])]  # no answer / missing image


def _mindcube(root: Path) -> Path:
    from test_bench_mindcube import _lines, _media

    data = root / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "MindCube_tinybench.jsonl").write_text(_lines(_mindcube_rows()), encoding="utf-8")
    for rel, blob in _media().items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(blob)
    return root


def _mindcube_zip(root: Path) -> Path:
    from test_bench_mindcube import _lines, _media

    root.mkdir()
    with zipfile.ZipFile(root / "data.zip", "w") as zf:
        zf.writestr("data/raw/MindCube_tinybench.jsonl", _lines(_mindcube_rows()))
        for rel, blob in _media().items():
            zf.writestr(f"data/{rel}", blob)
    return root


def _mindcube_zip_break(root: Path) -> None:  # the archive keeps the questions only
    from test_bench_mindcube import _lines

    with zipfile.ZipFile(root / "data.zip", "w") as zf:
        zf.writestr("data/raw/MindCube_tinybench.jsonl", _lines(_mindcube_rows()))


def _site(root: Path) -> Path:
    from test_bench_site import ROWS, _site_folder

    return _site_folder(root, rows=ROWS[:6])  # 6: a video question, 7: its image missing on purpose


def _blink(root: Path) -> Path:
    from test_bench_blink import _row, _write

    yn, ab = ["yes", "no"], ["A is closer", "B is closer"]
    _write(root / "Spatial_Relation" / "val-00000-of-00001.parquet", [
        _row("val_Spatial_Relation_1", "(A)", yn), _row("val_Spatial_Relation_2", "(B)", yn)])
    _write(root / "Relative_Depth" / "val-00000-of-00001.parquet", [
        _row("val_Relative_Depth_1", "(A)", ab), _row("val_Relative_Depth_2", "(B)", ab)])
    _write(root / "Multi-view_Reasoning" / "val-00000-of-00001.parquet", [
        _row("val_Multi-view_Reasoning_1", "(B)", ["left", "right"], n_images=2)])
    return root


def _cv(root: Path) -> Path:
    from test_bench_cvbench import _row, _write

    four, lr = ["3", "2", "1", "0"], ["left", "right"]
    root.mkdir()
    _write(root / "test_2d.parquet", [_row(0, "2D", "Count", "ADE20K", "(C)", four),
                                      _row(1, "2D", "Relation", "COCO", "(B)", lr)])
    _write(root / "test_3d.parquet", [_row(0, "3D", "Depth", "Omni3D", "(A)", ["lamp", "chair"]),
                                      _row(1, "3D", "Distance", "Omni3D", "(B)", ["table", "sofa"])])
    return root


def _emb(root: Path) -> Path:
    from test_bench_embspatial import _row

    rows = [_row("mp3d_1", "close", 2), _row("ai2thor_1", "under", 1), _row("scannet_1", "right", 0),
            _row("scannet_3", "above", 2)]
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "test-00000-of-00001.parquet")
    return root


def _each_parquet(columns: tuple[str, ...], missing: bool = False) -> Callable[[Path], None]:
    def breaks(root: Path) -> None:
        for f in sorted(root.rglob("*.parquet")):
            corrupt_parquet(f, columns, missing)
    return breaks


CASES = {
    "3dsrbench": Case("3dsrbench", _srb, lambda p: corrupt_tsv(p / "3dsrbench_v1_vlmevalkit_circular.tsv"),
                      "undecodable_image", "0", "3dsrbench_v1_vlmevalkit_circular.tsv: index 0, column 'image'"),
    "spatial457": Case("spatial457", _s457, lambda p: corrupt_tsv(p / "Spatial457.tsv"), "undecodable_image", "0",
                       "Spatial457.tsv: index 0, column 'image'"),
    "spatialeval": Case("spatialeval", _se, _each_parquet(("image",)), "undecodable_image", "spatialmap.vqa.0.0",
                        "test-00000-of-00001.parquet: row 0, column 'image'"),
    "qspatial-plus": Case("qspatial-plus", _qs, _each_parquet(("image",), missing=True), "missing_image", "0",
                          "0.jpg (looked for in "),
    "viewspatial": Case("viewspatial", _view, lambda p: delete_files(p, ".jpg"), "missing_image", "0",
                        "ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/280.jpg (looked for in "),
    "whatsup": Case("whatsup", _whatsup, lambda p: delete_files(p, ".jpeg"), "missing_image", "controlled_a-0",
                    "controlled_images/mug_on_table.jpeg"),
    "vsi-bench": Case("vsi-bench", _vsi, lambda p: delete_files(p, ".mp4"), "missing_video", "0",
                      "arkitscenes/41069025.mp4", {"frames": 5}),
    "mmsi-bench": Case("mmsi-bench", _mmsi, _each_parquet(("images",)), "undecodable_image", "0",
                       "MMSI_Bench.parquet: row 0, column 'images[0]'"),
    "mindcube": Case("mindcube", _mindcube, lambda p: delete_files(p, ".png"), "missing_image", "among_group7_q1_1",
                     "other_all_image/among/s1_front.png (looked for in "),
    "mindcube-zip": Case("mindcube", _mindcube_zip, _mindcube_zip_break, "missing_image", "among_group7_q1_1",
                         "data/other_all_image/among/s1_front.png (in the zip archives of "),
    "site": Case("site", _site, lambda p: (p / "data_chunked_01.zip").unlink(), "missing_image", "0",
                 "data/img/a.png (looked for in "),
    "blink": Case("blink", _blink, _each_parquet(("image_1", "image_2", "image_3", "image_4")), "undecodable_image",
                  "val_Multi-view_Reasoning_1", "Multi-view_Reasoning/val-00000-of-00001.parquet: row 0, column 'image_1'"),
    "cv-bench": Case("cv-bench", _cv, _each_parquet(("image",)), "undecodable_image", "2D_0",
                     "test_2d.parquet: row 0, column 'image'"),
    "embspatial": Case("embspatial", _emb, _each_parquet(("image",)), "undecodable_image", "mp3d_1",
                       "test-00000-of-00001.parquet: row 0, column 'image'"),
}


def responses(items) -> dict[str, str]:
    """Right (boxed, or in the benchmark's own format), a free sentence, right unboxed, and
    unanswered, in turn."""
    out = {}
    for i, it in enumerate(items):
        if i % 4 == 3:
            continue
        if i % 4 == 1:
            out[it.id] = "I cannot tell from these pictures."
        elif isinstance(it.answer, float) and it.meta.get("answer_unit"):  # Q-Spatial: the official format
            out[it.id] = f"\\scalar{{{it.answer:g}}} \\distance_unit{{cm}}"
        elif i % 4 == 0:
            out[it.id] = f"<think>t</think> \\boxed{{{it.answer}}}"
        else:
            out[it.id] = f"{it.answer}"
    return out


def _same_items(got, want) -> None:
    assert [it.id for it in got] == [it.id for it in want]
    for g, w in zip(got, want):
        assert (g.question, g.answer, g.options, g.category) == (w.question, w.answer, w.options, w.category), g.id
        assert {k: v for k, v in g.meta.items() if k != "frame_indices"} == \
               {k: v for k, v in w.meta.items() if k != "frame_indices"}, g.id
        assert all(isinstance(m, str) for m in g.images), g.id  # references only, never bytes


def _cli(*args) -> Any:
    return CliRunner().invoke(main, ["eval", *map(str, args)], catch_exceptions=False)


def _option_args(case: Case) -> list[str]:
    return [a for k, v in case.options.items() for a in ("--option", f"{k}={v}")]


@pytest.fixture(params=list(CASES))
def broken(request, tmp_path, monkeypatch):
    """(case, the intact items, the broken files' path)."""
    case = CASES[request.param]
    bench = get_benchmark(case.bench)
    path = case.build(tmp_path / "bench")
    items, skipped = bench.load(str(path), **case.options)
    assert items and not skipped, [(s.id, s.reason) for s in skipped]  # the fixture is whole
    case.breaks(path)
    if case.bench == "vsi-bench":
        monkeypatch.setitem(sys.modules, "av", None)  # scoring needs no video decoder either
    return case, items, path


def test_scores_without_media_as_with_them(broken, tmp_path):
    case, intact, path = broken
    bench = get_benchmark(case.bench)
    # (a) the same items, read from the broken files; the same report
    items, skipped = bench.load(str(path), images=False, **case.options)
    assert skipped == []
    _same_items(items, intact)
    answers = responses(intact)
    report = bench.score(intact, answers)
    assert report["accuracy"] is not None and report["n"] > 0
    assert bench.score(items, answers) == report

    # (b) ssrl eval --predictions on the broken files: the accuracy of the intact ones
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": k, "response": v}) + "\n" for k, v in answers.items()))
    out = tmp_path / "scored"
    result = _cli("predictions", preds, "--bench", case.bench, "--bench-path", path, "--out", out,
                  *_option_args(case))
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["accuracy"] == pytest.approx(report["accuracy"])
    assert res["strict"] == pytest.approx(report["strict"])
    assert res["per_category"] == report["per_category"]
    assert res["items"] == len(intact) and res["skipped"]["count"] == 0
    assert "skipped" not in result.output


def test_a_run_needing_the_media_names_what_is_missing(broken, tmp_path):
    case, intact, path = broken
    # (c) generating needs the media: every item skipped, the reasons counted, the first file named
    # (no request is made: the run stops before any)
    skipped = get_benchmark(case.bench).load(str(path), **case.options)[1]
    n = len(skipped)
    assert n == len(intact) and {s.reason for s in skipped} == {case.reason}
    result = _cli("benchmark", case.bench, "--api-base", "http://127.0.0.1:9/v1", "--api-model", "m",
                  "--bench-path", path, "--out", tmp_path / "run", *_option_args(case))
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())  # a long path may wrap
    assert f"no items to evaluate; {n} items skipped ({case.reason} {n}); first: {case.first} ({case.reason}: " in text
    assert case.detail in text, text
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_the_skip_note_names_the_reasons_and_the_first_file():
    from spatial_ssrl.eval.base import Skipped
    from spatial_ssrl.eval.cli import _skip_note

    note = _skip_note([Skipped("a", "no_answer"), Skipped("b", "missing_image", "img/b.png"),
                       Skipped("c", "missing_image", "img/c.png")])
    assert note == "3 items skipped (missing_image 2, no_answer 1); first: b (missing_image: img/b.png)"


def test_vsibench_video_is_referenced_not_opened(tmp_path, monkeypatch):
    pytest.importorskip("av")
    path = _vsi(tmp_path / "bench")
    shutil.rmtree(path / "scannet")
    monkeypatch.setitem(sys.modules, "av", None)
    items, skipped = get_benchmark("vsi-bench").load(str(path), images=False, frames=7)
    assert skipped == [] and len(items) == 12
    assert items[0].images == [str(path / "arkitscenes" / "41069025.mp4")]
    assert items[11].images == [str(path / "scannet" / "scene0000_00.mp4")]  # gone: still scored
    assert items[0].question.count("<image>") == 7 and items[0].meta["frame_indices"] is None
