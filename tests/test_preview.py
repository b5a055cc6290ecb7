"""The HTML preview page (``spatial_ssrl.preview`` and ``ssrl preview``)."""

from __future__ import annotations

import base64
import glob
import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from spatial_ssrl.cli import main
from spatial_ssrl.preview import DEFAULT_MAX_SIDE, PreviewError, render_preview, write_preview

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VOID = {"img", "meta", "br", "hr", "input", "link", "source", "wbr"}


# ----------------------------------------------------------------------------------------
# helpers


class PageParser(HTMLParser):
    """Collects the page's task sections, sample blocks and header count rows."""

    CAPTURE = ("answer", "cap", "size", "meta", "question", "count")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, set[str]]] = []
        self.sections: list[dict] = []
        self.samples: list[dict] = []
        self.count_rows: list[dict] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self._buffers: list[tuple[int, str, dict]] = []  # (depth, key, target)
        self._row: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if "src" in a:
            self.srcs.append(a["src"])
        if "href" in a:
            self.hrefs.append(a["href"])
        sample = self.samples[-1] if self.samples and self._inside("article") else None
        if tag == "section" and "task" in classes:
            self.sections.append({"task": a.get("data-task"), "samples": [], "count": ""})
        elif tag == "article" and "sample" in classes:
            s = {"id": a["data-id"], "task": a["data-task"], "variant": a["data-variant"],
                 "section": self.sections[-1]["task"] if self.sections else None,
                 "images": [], "captions": [], "sizes": [], "correct": [], "answer": "", "question": "",
                 "placeholders": 0, "meta": ""}
            self.samples.append(s)
            self.sections[-1]["samples"].append(s)
        elif tag == "img" and sample is not None:
            sample["images"].append(a.get("src", ""))
        elif tag == "figure" and sample is not None:
            sample["correct"].append("correct" in classes)
        elif tag == "span" and "ph" in classes and sample is not None:
            sample["placeholders"] += 1
        elif tag == "tr" and "data-task" in a:
            self._row = {"task": a["data-task"], "variant": a["data-variant"]}
            self.count_rows.append(self._row)
        elif tag == "td" and self._row is not None and ({"rows", "shown"} & classes):
            key = "rows" if "rows" in classes else "shown"
            self._row[key] = ""
            self._buffers.append((len(self.stack) + 1, key, self._row))
        if tag in VOID:
            return
        self.stack.append((tag, classes))
        depth = len(self.stack)
        for key in self.CAPTURE:
            if key in classes:
                if key == "count" and self.sections and sample is None:
                    self._buffers.append((depth, "count", self.sections[-1]))
                elif sample is not None and key != "count":
                    if key in ("cap", "size"):
                        field = "captions" if key == "cap" else "sizes"
                        sample[field].append("")
                        self._buffers.append((depth, field, sample))
                    elif key == "answer" and sample["answer"]:
                        pass  # the first .answer in a sample block is the answer field
                    else:
                        self._buffers.append((depth, key, sample))

    def handle_endtag(self, tag):
        if tag in VOID or not self.stack:
            return
        depth = len(self.stack)
        self._buffers = [b for b in self._buffers if b[0] < depth]
        self.stack.pop()
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        for _, key, target in self._buffers:
            if isinstance(target[key], list):
                target[key][-1] += data
            else:
                target[key] += data

    def _inside(self, tag):
        return any(t == tag for t, _ in self.stack)


def parse_page(path) -> PageParser:
    p = PageParser()
    p.feed(Path(path).read_text(encoding="utf-8"))
    p.close()
    return p


def decode_data_uri(src: str, mime: str = "image/png") -> bytes:
    assert src.startswith(f"data:{mime};base64,"), src[:60]
    return base64.b64decode(src.split(",", 1)[1], validate=True)


def stored_samples(dataset: Path) -> dict[str, dict]:
    """id -> {task, variant, answer, images (bytes list), meta} read straight from the files."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    fmt = manifest["format"]
    out: dict[str, dict] = {}
    if fmt == "llamafactory":
        for line in (dataset / "train.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            out[r["id"]] = {"task": r["task"], "variant": r["variant"], "answer": r["answer"],
                            "images": [(dataset / p).read_bytes() for p in r["images"]], "meta": None}
        return out
    table = pq.read_table(sorted(glob.glob(str(dataset / "data" / "*.parquet"))))
    for r in table.to_pylist():
        if fmt == "verl":
            info = r["extra_info"]
            key, task, variant, answer = info["id"], info["task"], info["variant"], r["reward_model"]["ground_truth"]
        else:
            key, task, variant, answer = r["id"], r["task"], r["variant"], r["answer"]
        out[key] = {"task": task, "variant": variant, "answer": answer,
                    "images": [c["bytes"] for c in r["images"]], "meta": r.get("meta")}
    return out


def generate(out: Path, fmt: str, num: int, seed: int = 3) -> Path:
    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
    from spatial_ssrl.sources import builtin_photos

    # three small photos keep generation quick; the default mix still gives every task
    run_generation(builtin_photos()[:3], str(out),
                   GenerateConfig(num=num, seed=seed, mix=parse_mix(None), workers=1, format=fmt))
    return out


def check_against_dataset(page: PageParser, truth: dict[str, dict]) -> None:
    """Every shown sample is in the dataset, under its task, with its answer and exact image bytes."""
    assert len({s["id"] for s in page.samples}) == len(page.samples), "a sample is shown twice"
    for s in page.samples:
        t = truth[s["id"]]
        assert s["task"] == s["section"] == t["task"]
        assert s["variant"] == t["variant"]
        assert s["answer"].strip() == t["answer"]
        assert len(s["images"]) == len(t["images"]) > 0
        for src, expected in zip(s["images"], t["images"]):
            data = decode_data_uri(src)
            assert data.startswith(PNG_MAGIC)
            with Image.open(io.BytesIO(data)) as im:
                assert im.format == "PNG"
                im.load()
            assert data == expected
        assert s["placeholders"] == len(t["images"]), "one visible <image> tag per image"


# ----------------------------------------------------------------------------------------
# canonical


def test_canonical_sections_samples_and_order(builtin_dataset, tmp_path):
    truth = stored_samples(builtin_dataset)
    out = tmp_path / "page.html"
    assert write_preview(str(builtin_dataset), str(out), num=6, max_side=0) == 6
    page = parse_page(out)

    tasks_in_data = {t["task"] for t in truth.values()}
    assert len(tasks_in_data) >= 3
    assert [sec["task"] for sec in page.sections] == sorted(tasks_in_data)
    assert len(page.samples) == 6
    # spread round-robin over the tasks: 6 samples over 3 tasks is 2 each
    assert Counter(s["task"] for s in page.samples) == {t: 2 for t in tasks_in_data}
    for sec in page.sections:
        n = len(sec["samples"])
        assert re.match(rf"{n} samples? shown", sec["count"].strip()), sec["count"]
        variants = [s["variant"] for s in sec["samples"]]
        assert variants == sorted(variants)
    check_against_dataset(page, truth)


def test_canonical_fields_meta_and_crop_captions(builtin_dataset, tmp_path):
    truth = stored_samples(builtin_dataset)
    out = tmp_path / "page.html"
    write_preview(str(builtin_dataset), str(out), num=9, seed=4, max_side=0)
    page = parse_page(out)
    assert len(page.samples) == 9
    check_against_dataset(page, truth)
    crops = [s for s in page.samples if s["task"] == "crop"]
    assert crops
    for s in page.samples:
        assert json.loads(s["meta"]) == json.loads(truth[s["id"]]["meta"])
        assert s["question"].count("<image>") == len(s["images"])
    for s in crops:
        assert [c.strip() for c in s["captions"]] == ["masked image", "A", "B", "C", "D"]
        answer = truth[s["id"]]["answer"]
        assert s["correct"] == [False] + [letter == answer for letter in "ABCD"]


def test_header_counts_match_manifest(builtin_dataset, tmp_path):
    manifest = json.loads((builtin_dataset / "manifest.json").read_text())
    out = tmp_path / "page.html"
    write_preview(str(builtin_dataset), str(out), num=5)
    page = parse_page(out)
    got = {(r["task"], r["variant"]): int(r["rows"]) for r in page.count_rows}
    want = {(t, v): n for t, vs in manifest["counts"].items() for v, n in vs.items()}
    assert got == want
    shown = Counter((s["task"], s["variant"]) for s in page.samples)
    assert {(r["task"], r["variant"]): int(r["shown"]) for r in page.count_rows if int(r["shown"])} == shown
    text = out.read_text(encoding="utf-8")
    assert "warn" not in re.findall(r'class="([^"]*)"', text), "no mismatch warning for a consistent dataset"


def test_page_is_self_contained(builtin_dataset, tmp_path):
    out = tmp_path / "page.html"
    write_preview(str(builtin_dataset), str(out), num=6)
    text = out.read_text(encoding="utf-8")
    page = parse_page(out)
    assert not re.search(r"https?://", text)
    assert 'src="/' not in text and "src='/" not in text
    assert not re.search(r"<(script|link|iframe|object|embed)\b", text, re.I)
    assert "url(" not in text and "@import" not in text
    assert page.srcs and all(re.match(r"data:image/(png|jpeg);base64,", s) for s in page.srcs)
    assert page.hrefs and all(h.startswith("#") for h in page.hrefs)
    originals = tmp_path / "originals.html"
    write_preview(str(builtin_dataset), str(originals), num=6, max_side=0)
    assert all(s.startswith("data:image/png;base64,") for s in parse_page(originals).srcs)


def test_selection_is_seeded_and_deterministic(builtin_dataset, tmp_path):
    a, b, c = tmp_path / "a.html", tmp_path / "b.html", tmp_path / "c.html"
    write_preview(str(builtin_dataset), str(a), num=6, seed=0)
    write_preview(str(builtin_dataset), str(b), num=6, seed=0)
    write_preview(str(builtin_dataset), str(c), num=6, seed=1)
    assert a.read_bytes() == b.read_bytes()
    assert [s["id"] for s in parse_page(a).samples] != [s["id"] for s in parse_page(c).samples]
    # fewer samples than tasks: one from each of the first ``num`` tasks, none twice
    one = tmp_path / "one.html"
    write_preview(str(builtin_dataset), str(one), num=2)
    tasks = [s["task"] for s in parse_page(one).samples]
    assert len(tasks) == len(set(tasks)) == 2


def test_reads_parquet_without_datasets(builtin_dataset, tmp_path):
    out = tmp_path / "page.html"
    code = (
        "import sys; from spatial_ssrl.preview import write_preview; "
        f"n = write_preview({str(builtin_dataset)!r}, {str(out)!r}, num=2); "
        "assert n == 2; assert 'datasets' not in sys.modules, 'preview imported datasets'"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ----------------------------------------------------------------------------------------
# other formats


@pytest.fixture(scope="module", params=["trl", "easyr1", "verl", "llamafactory"])
def format_dataset(request, tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp(f"preview-{request.param}"), request.param, num=8)


def test_other_formats(format_dataset, tmp_path):
    truth = stored_samples(format_dataset)
    out = tmp_path / "page.html"
    assert write_preview(str(format_dataset), str(out), num=6, max_side=0) == 6
    page = parse_page(out)
    assert [sec["task"] for sec in page.sections] == sorted({t["task"] for t in truth.values()})
    assert len(page.samples) == 6
    check_against_dataset(page, truth)
    for s in page.samples:
        assert s["question"].count("<image>") == len(s["images"])
        assert "MUST BE put in" not in s["question"], "the format suffix is split off the question"
        if s["task"] == "crop":
            assert [c.strip() for c in s["captions"]] == ["masked image", "A", "B", "C", "D"]
    # asking for more than there is shows everything once
    every = tmp_path / "all.html"
    assert write_preview(str(format_dataset), str(every), num=500) == len(truth)
    assert sorted(s["id"] for s in parse_page(every).samples) == sorted(truth)


def test_format_inferred_without_manifest(format_dataset, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(format_dataset, copy)
    (copy / "manifest.json").unlink()
    out = tmp_path / "page.html"
    assert write_preview(str(copy), str(out), num=4, max_side=0) == 4
    check_against_dataset(parse_page(out), stored_samples(format_dataset))


def test_llamafactory_missing_image_is_shown_not_fatal(tmp_path):
    ds = generate(tmp_path / "lf", "llamafactory", num=3)
    truth = stored_samples(ds)
    first = json.loads((ds / "train.jsonl").read_text().splitlines()[0])
    (ds / first["images"][0]).unlink()
    out = tmp_path / "page.html"
    assert write_preview(str(ds), str(out), num=3) == 3
    page = parse_page(out)
    total = sum(len(t["images"]) for t in truth.values())
    assert len(page.srcs) == total - 1
    assert "cannot read images/" in out.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------
# command line


def test_cli_preview(builtin_dataset, tmp_path):
    out = tmp_path / "page.html"
    res = CliRunner().invoke(main, ["preview", str(builtin_dataset), "--out", str(out), "--num", "6",
                                    "--max-side", "0"])
    assert res.exit_code == 0, res.output
    assert f"wrote {out} (6 samples)" in res.output
    page = parse_page(out)
    assert len(page.samples) == 6
    check_against_dataset(page, stored_samples(builtin_dataset))


def test_cli_default_out_is_inside_dataset(tmp_path):
    ds = generate(tmp_path / "ds", "trl", num=3)
    res = CliRunner().invoke(main, ["preview", str(ds), "-n", "2"])
    assert res.exit_code == 0, res.output
    assert len(parse_page(ds / "preview.html").samples) == 2


# ----------------------------------------------------------------------------------------
# downscaled display copies (--max-side)


def _large_photos():
    from spatial_ssrl.sources import builtin_photos

    # retina.jpg is 1411x1411 and hubble_deep_field.jpg 1000x872: both over the default
    refs = [r for r in builtin_photos() if r.id in ("skimage/retina.jpg", "skimage/hubble_deep_field.jpg")]
    assert len(refs) == 2
    return refs


@pytest.fixture(scope="module")
def large_dataset(tmp_path_factory) -> Path:
    """Shuffle and flip samples of two large built-in photos (every image over 768 px)."""
    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation

    out = tmp_path_factory.mktemp("preview-large")
    run_generation(_large_photos(), str(out),
                   GenerateConfig(num=6, seed=1, mix=parse_mix("shuffle=1,flip=1"), workers=1))
    return out


@pytest.fixture(scope="module")
def large_crop_dataset(tmp_path_factory) -> Path:
    """Crop samples of the large photos: the masked image is over 768 px, the options not."""
    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation

    out = tmp_path_factory.mktemp("preview-large-crop")
    run_generation(_large_photos(), str(out), GenerateConfig(num=3, seed=1, mix=parse_mix("crop"), workers=1))
    return out


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory) -> Path:
    """What `ssrl generate --out demo` writes (default inputs, all five tasks), only smaller."""
    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
    from spatial_ssrl.sources import default_refs

    out = tmp_path_factory.mktemp("preview-demo")
    run_generation(default_refs(), str(out),
                   GenerateConfig(num=20, mix=parse_mix(None, with_depth=True), workers=1))
    return out


def check_display(page: PageParser, truth: dict[str, dict], max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """Every image is shown by the rule: stored bytes when its longer side is at most
    ``max_side``, else a JPEG copy of the same picture with longer side ``max_side``; the
    caption gives the stored size (and the shown size). Returns (downscaled, kept) counts."""
    downscaled = kept = 0
    for s in page.samples:
        originals = truth[s["id"]]["images"]
        assert len(s["images"]) == len(s["sizes"]) == len(originals) > 0
        for src, caption, original in zip(s["images"], s["sizes"], originals):
            with Image.open(io.BytesIO(original)) as im:
                w, h = im.size
                stored = im.convert("RGB")
            assert caption.startswith(f"{w}\u00d7{h}"), caption
            if max(w, h) <= max_side:
                mime = "image/png" if original.startswith(PNG_MAGIC) else "image/jpeg"
                assert decode_data_uri(src, mime) == original
                assert "shown at" not in caption
                kept += 1
                continue
            data = decode_data_uri(src, "image/jpeg")
            with Image.open(io.BytesIO(data)) as im:
                assert im.format == "JPEG"
                sw, sh = im.size
                shown = np.asarray(im.convert("RGB"), dtype=np.int16)
            assert max(sw, sh) == max_side
            assert abs(sw - w * max_side / max(w, h)) <= 1 and abs(sh - h * max_side / max(w, h)) <= 1
            assert caption.strip() == f"{w}\u00d7{h} \u00b7 shown at {sw}\u00d7{sh}"
            # the same picture (not another image, not flipped), only smaller
            ref = np.asarray(stored.resize((sw, sh), Image.Resampling.BILINEAR), dtype=np.int16)
            assert np.abs(ref - shown).mean() < 6
            downscaled += 1
    return downscaled, kept


def test_default_page_is_much_smaller(large_dataset, tmp_path):
    small, full = tmp_path / "small.html", tmp_path / "full.html"
    assert write_preview(str(large_dataset), str(small)) == 6
    assert write_preview(str(large_dataset), str(full), max_side=0) == 6
    assert small.stat().st_size < 0.25 * full.stat().st_size, (small.stat().st_size, full.stat().st_size)
    truth = stored_samples(large_dataset)
    check_against_dataset(parse_page(full), truth)
    page = parse_page(small)
    assert check_display(page, truth) == (6, 0)
    assert [sec["task"] for sec in page.sections] == ["flip", "shuffle"]


def test_crop_images_follow_the_same_rule(large_crop_dataset, tmp_path):
    out = tmp_path / "page.html"
    assert write_preview(str(large_crop_dataset), str(out), max_side=768) == 3
    page = parse_page(out)
    truth = stored_samples(large_crop_dataset)
    downscaled, kept = check_display(page, truth, max_side=768)
    assert downscaled == 3 and kept == 12, "masked images downscaled, the smaller options kept"
    for s in page.samples:
        assert [c.strip() for c in s["captions"]] == ["masked image", "A", "B", "C", "D"]
        assert s["images"][0].startswith("data:image/jpeg;")
        answer = truth[s["id"]]["answer"]
        assert s["correct"] == [False] + [letter == answer for letter in "ABCD"]
    # a smaller limit downscales the options as well, each by the same rule
    tight = tmp_path / "tight.html"
    write_preview(str(large_crop_dataset), str(tight), max_side=200)
    assert check_display(parse_page(tight), truth, max_side=200) == (15, 0)


def test_default_demo_previews_every_task(default_demo, tmp_path):
    truth = stored_samples(default_demo)
    assert {t["task"] for t in truth.values()} == {"crop", "depth", "flip", "position", "shuffle"}
    out = tmp_path / "page.html"
    assert write_preview(str(default_demo), str(out)) == 20
    page = parse_page(out)
    assert [sec["task"] for sec in page.sections] == ["crop", "depth", "flip", "position", "shuffle"]
    assert all(sec["samples"] for sec in page.sections)
    downscaled, kept = check_display(page, truth)
    assert kept > 0
    for s in page.samples:
        assert s["answer"].strip() == truth[s["id"]]["answer"]
        assert s["placeholders"] == len(s["images"])
        if s["task"] in ("depth", "position"):
            # stored as JPEG; shown as such (unchanged when small enough)
            assert all(src.startswith("data:image/jpeg;base64,") for src in s["images"])
            assert json.loads(s["meta"])["params"]["markers"]


def test_scene_description_is_folded(default_demo, tmp_path):
    import html

    out = tmp_path / "page.html"
    write_preview(str(default_demo), str(out), num=20)
    page = parse_page(out)
    text = out.read_text(encoding="utf-8")
    truth = {sid: json.loads(t["meta"]) for sid, t in stored_samples(default_demo).items()}
    blocks = re.findall(r'<article class="sample".*?</article>', text, re.DOTALL)
    assert len(blocks) == len(page.samples) == 20
    folded = 0
    for s, block in zip(page.samples, blocks):
        meta = truth[s["id"]]
        scene = re.findall(r'<details class="scene"><summary>.*?</summary><pre class="scene">(.*?)</pre></details>',
                           block, re.DOTALL)
        assert json.loads(s["meta"]) == {k: v for k, v in meta.items() if k != "scene"}
        if "scene" in meta:
            assert [json.loads(html.unescape(x)) for x in scene] == [meta["scene"]]
            folded += 1
        else:
            assert not scene
    assert folded and "<details open" not in text


class FoldParser(HTMLParser):
    """Per sample block, in document order: its images, its question and its meta / scene
    texts, each with the closed ``<details>`` it is folded in (the summary's text) or None.
    Checks that every element the page opens is closed, in order."""

    TEXTS = ("question", "meta", "scene")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.details: list[dict] = []  # the <details> elements open around the current point
        self.samples: list[dict] = []
        self._text: tuple[int, dict] | None = None
        self._summary: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        sample = self.samples[-1] if self.samples and "article" in self.stack else None
        if tag == "article" and "sample" in classes:
            self.samples.append({"id": a["data-id"], "events": []})
        elif tag == "img" and sample is not None:
            sample["events"].append({"kind": "img"})
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "details":
            self.details.append({"open": "open" in a, "summary": ""})
        elif tag == "summary" and self.details:
            self._summary = self.details[-1]
        elif sample is not None and tag in ("div", "pre") and self._text is None:
            kind = next((k for k in self.TEXTS if k in classes), None)
            if kind is not None:
                closed = [d for d in self.details if not d["open"]]
                event = {"kind": kind, "text": "", "folded_in": closed[-1] if closed else None}
                sample["events"].append(event)
                self._text = (len(self.stack), event)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        if self._text is not None and self._text[0] == len(self.stack):
            self._text = None
        self.stack.pop()
        if tag == "details":
            self.details.pop()
        elif tag == "summary":
            self._summary = None

    def handle_data(self, data):
        if self._summary is not None:
            self._summary["summary"] += data
        if self._text is not None:
            self._text[1]["text"] += data


def test_long_text_is_folded_after_the_images(default_demo, tmp_path):
    """The default demo holds procedural samples: their ~100-line scene description, and
    the long meta of depth / position samples, sit in closed <details> with a one-line
    summary, after the sample's images and question; short texts are shown as they are."""
    from spatial_ssrl.preview.page import FOLD_LINES

    rows = pq.read_table(sorted(glob.glob(str(default_demo / "data" / "*.parquet"))),
                         columns=["id", "task", "source", "meta"]).to_pylist()
    truth = {r["id"]: r for r in rows}
    assert any(r["source"].startswith("procedural:") for r in rows)
    out = tmp_path / "page.html"
    write_preview(str(default_demo), str(out), num=20)
    page = FoldParser()
    page.feed(out.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [] and len(page.samples) == 20

    seen = Counter()
    for s in page.samples:
        row = truth[s["id"]]
        meta = json.loads(row["meta"])
        events = s["events"]
        kinds = [e["kind"] for e in events]
        by_kind = {e["kind"]: e for e in events if e["kind"] != "img"}
        assert kinds.count("img") >= 1 and kinds.count("question") == kinds.count("meta") == 1
        # the images first, then the question (never folded), then the parameters
        first_text = kinds.index("question")
        assert set(kinds[:first_text]) == {"img"} and "img" not in kinds[first_text:]
        assert kinds.index("meta") > first_text
        assert by_kind["question"]["folded_in"] is None and by_kind["question"]["text"].strip()

        shown = by_kind["meta"]
        n = shown["text"].count("\n") + 1
        assert json.loads(shown["text"]) == {k: v for k, v in meta.items() if k != "scene"}
        if n > FOLD_LINES:
            assert shown["folded_in"] is not None, f"{s['id']}: {n}-line meta shown open"
            assert " ".join(shown["folded_in"]["summary"].split()) == f"parameters (meta, {n} lines)"
            seen["long meta"] += 1
        else:
            assert shown["folded_in"] is None, f"{s['id']}: {n}-line meta folded"
            seen["short meta"] += 1

        if row["source"].startswith("procedural:"):
            assert "scene" in meta and kinds[-1] == "scene"
            scene = by_kind["scene"]
            lines = scene["text"].count("\n") + 1
            assert lines >= 50 and json.loads(scene["text"]) == meta["scene"]
            assert scene["folded_in"] is not None
            assert " ".join(scene["folded_in"]["summary"].split()) == \
                f"scene description (meta.scene, {lines} lines)"
            seen["scene"] += 1
        else:
            assert "scene" not in kinds
    assert seen["scene"] and seen["long meta"] and seen["short meta"], seen


def test_unusual_image_modes_are_downscaled(tmp_path):
    from spatial_ssrl.writers.canonical import SCHEMA

    def png(im: Image.Image) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()

    rgba = Image.new("RGBA", (1000, 400), (200, 30, 30, 255))
    rgba.paste((0, 0, 0, 0), (500, 0, 1000, 400))  # right half transparent: shown white
    palette = Image.new("RGB", (900, 900), (20, 160, 40)).convert("P", palette=Image.Palette.ADAPTIVE)
    deep = Image.fromarray(np.full((600, 800), 40000, dtype=np.uint16))
    gray = Image.new("L", (2000, 100), 90)
    broken = png(Image.effect_noise((1200, 1200), 60).convert("RGB"))[:5000]  # header intact, data cut
    tiny = png(Image.new("RGB", (30, 20), (1, 2, 3)))
    images = [png(rgba), png(palette), png(deep), png(gray), broken, tiny]
    assert Image.open(io.BytesIO(images[2])).mode.startswith("I;16")
    row = {"id": "modes", "task": "shuffle", "variant": "2x2", "images": [{"bytes": b, "path": f"{i}.png"}
                                                                         for i, b in enumerate(images)],
           "problem": "<image>" * len(images) + "q", "answer": "0-1-2-3", "answer_type": "permutation",
           "options": None, "source": "x", "meta": "{}"}
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist([row], schema=SCHEMA), tmp_path / "data" / "train-00000-of-00001.parquet")
    out = tmp_path / "p.html"
    assert write_preview(str(tmp_path), str(out), max_side=256) == 1
    (s,) = parse_page(out).samples
    shown = []
    for src in s["images"][:4]:
        with Image.open(io.BytesIO(decode_data_uri(src, "image/jpeg"))) as im:
            assert max(im.size) == 256 and im.mode in ("RGB", "L")
            shown.append(np.asarray(im.convert("RGB"), dtype=np.int16))
    assert [x.shape[:2] for x in shown] == [(102, 256), (256, 256), (192, 256), (13, 256)]
    assert np.abs(shown[0][:, :100] - (200, 30, 30)).mean() < 8  # opaque red
    assert (shown[0][:, 160:] > 245).all()  # transparent over white
    assert np.abs(shown[1] - (20, 160, 40)).mean() < 8
    assert np.abs(shown[2] - 40000 // 256).mean() < 3  # 16-bit shown by its high byte, like browsers
    assert np.abs(shown[3] - 90).mean() < 3
    # an image Pillow cannot decode is embedded as stored, its size and the reason given
    assert decode_data_uri(s["images"][4]) == broken
    assert s["sizes"][4].startswith("1200\u00d71200") and "not downscaled" in s["sizes"][4]
    assert decode_data_uri(s["images"][5]) == tiny and s["sizes"][5].strip() == "30\u00d720"


def test_cli_max_side(large_dataset, tmp_path):
    out = tmp_path / "page.html"
    res = CliRunner().invoke(main, ["preview", str(large_dataset), "-o", str(out), "--max-side", "300"])
    assert res.exit_code == 0, res.output
    truth = stored_samples(large_dataset)
    assert check_display(parse_page(out), truth, max_side=300) == (6, 0)
    text = out.read_text(encoding="utf-8")
    assert "larger than 300 px" in text
    res = CliRunner().invoke(main, ["preview", str(large_dataset), "-o", str(out), "--max-side", "0"])
    assert res.exit_code == 0, res.output
    check_against_dataset(parse_page(out), truth)
    res = CliRunner().invoke(main, ["preview", str(large_dataset), "-o", str(out), "--max-side", "-1"])
    assert res.exit_code == 2 and "--max-side" in res.output
    with pytest.raises(PreviewError, match="max_side"):
        render_preview(str(large_dataset), max_side=-1)


# ----------------------------------------------------------------------------------------
# mistakes


def _cli_error(args) -> str:
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    assert res.output.startswith("Error: ")
    return res.output


def test_empty_folder(tmp_path):
    with pytest.raises(PreviewError, match="holds no dataset"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))
    msg = _cli_error(["preview", str(tmp_path), "--out", str(tmp_path / "p.html")])
    assert "no dataset" in msg and "data/*.parquet" in msg
    assert not (tmp_path / "p.html").exists()


def test_missing_folder(tmp_path):
    with pytest.raises(PreviewError, match="is not a folder"):
        write_preview(str(tmp_path / "nope"), str(tmp_path / "p.html"))


def test_manifest_without_data(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "canonical", "num_written": 0}))
    with pytest.raises(PreviewError, match="no samples were written"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))


def test_parquet_lacking_columns(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": ["a"], "task": ["shuffle"], "variant": ["2x2"]}),
                   tmp_path / "data" / "train-00000-of-00001.parquet")
    # without a manifest the format cannot be told
    with pytest.raises(PreviewError, match="matches none of the formats"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))
    # with one, the missing columns are named
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "canonical"}))
    with pytest.raises(PreviewError, match=r"lacks column\(s\) images, problem, answer"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))
    msg = _cli_error(["preview", str(tmp_path), "--out", str(tmp_path / "p.html")])
    assert "lacks column(s)" in msg


def test_verl_lacking_nested_field(tmp_path):
    (tmp_path / "data").mkdir()
    table = pa.table({
        "prompt": [[{"role": "user", "content": "<image>q"}]],
        "images": [[{"bytes": b"x", "path": "a.png"}]],
        "reward_model": [{"style": "rule"}],
        "extra_info": [{"id": "a", "task": "flip", "variant": "2x2"}],
    })
    pq.write_table(table, tmp_path / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(PreviewError, match="reward_model.ground_truth"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))


def test_not_parquet(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000-of-00001.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(PreviewError, match="cannot read data/train-00000-of-00001.parquet"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))
    _cli_error(["preview", str(tmp_path), "--out", str(tmp_path / "p.html")])


def test_bad_jsonl(tmp_path):
    good = {"messages": [], "images": [], "id": "a", "task": "flip", "variant": "2x2"}
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(PreviewError, match="line 2 is not valid JSON"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))
    (tmp_path / "train.jsonl").write_text(json.dumps({"messages": []}) + "\n")
    with pytest.raises(PreviewError, match="line 1 lacks key"):
        write_preview(str(tmp_path), str(tmp_path / "p.html"))


def test_text_is_escaped(tmp_path):
    from spatial_ssrl.writers.canonical import SCHEMA

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, format="PNG")
    png = buf.getvalue()
    row = {
        "id": "x<1>", "task": "shuffle", "variant": "2x2\"'", "images": [{"bytes": png, "path": "x.png"}],
        "problem": "<image><script>alert(1)</script> & more", "answer": "<b>0-1-2-3</b>",
        "answer_type": "permutation", "options": None, "source": "<img src=x onerror=alert(1)>",
        "meta": json.dumps({"note": "</pre><script>"}),
    }
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist([row], schema=SCHEMA), tmp_path / "data" / "train-00000-of-00001.parquet")
    out = tmp_path / "p.html"
    assert write_preview(str(tmp_path), str(out)) == 1
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "<b>0-1-2-3" not in text
    assert "<img src=x" not in text
    page = parse_page(out)
    (s,) = page.samples
    assert s["id"] == "x<1>" and s["variant"] == "2x2\"'"
    assert s["answer"] == "<b>0-1-2-3</b>"
    assert s["placeholders"] == 1
    assert s["question"] == "<image>1<script>alert(1)</script> & more"
    assert json.loads(s["meta"]) == {"note": "</pre><script>"}
    assert decode_data_uri(s["images"][0]) == png
