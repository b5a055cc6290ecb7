"""Near-duplicate search between training sources and benchmark images (eval.overlap)."""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from spatial_ssrl.eval import overlap as ov
from spatial_ssrl.eval.base import Benchmark, EvalItem, Skipped
from spatial_ssrl.eval.overlap_cli import (
    overlap_command,
    overlapping_sources,
    read_exclude_list,
)
from spatial_ssrl.sources.builtin import builtin_data_dir

DATA = builtin_data_dir()
# distinct pictures bundled with scikit-image (left out: chessboard_GRAY, the same board
# as chessboard_RGB, and motorcycle_right, the stereo partner of motorcycle_left)
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png", "hubble_deep_field.jpg",
          "ihc.png", "retina.jpg", "motorcycle_left.png", "brick.png", "grass.png", "gravel.png", "coins.png",
          "moon.png", "page.png", "text.png", "horse.png", "logo.png", "cell.png", "clock_motion.png",
          "microaneurysms.png", "phantom.png", "color.png", "chessboard_RGB.png")


def _photo(name: str) -> Image.Image:
    with Image.open(os.path.join(DATA, name)) as im:
        im.load()
        return im.convert("RGB") if im.mode not in ("RGB", "L") else im.copy()


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _scaled(im: Image.Image, f: float) -> Image.Image:
    return im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)


def _crop(im: Image.Image, x0: float, y0: float, x1: float, y1: float) -> Image.Image:
    return im.crop((int(x0 * im.width), int(y0 * im.height), int(x1 * im.width), int(y1 * im.height)))


def _invoke(args: list[str]):
    """``ssrl overlap`` through the main group once it is registered, else the command."""
    from spatial_ssrl.cli import main

    if "overlap" in main.commands:
        return CliRunner().invoke(main, ["overlap", *args])
    return CliRunner().invoke(overlap_command, args)


# -- hashing ----------------------------------------------------------------------------------
def test_dct_block_is_scipys_orthonormal_dct():
    from scipy.fft import dctn

    x = np.random.default_rng(0).random((32, 32))
    np.testing.assert_allclose(ov._DCT @ x @ ov._DCT.T, dctn(x, norm="ortho")[:8, :8], atol=1e-9)


def test_planted_near_duplicates_are_found_and_nothing_else():
    train = [(name, os.path.join(DATA, name)) for name in PHOTOS]
    astronaut, coffee = _photo("astronaut.png"), _photo("coffee.png")
    bench = [
        ("astronaut_half_q70.jpg", _encode(_scaled(astronaut, 0.5), "JPEG", quality=70)),
        ("coffee_2x.png", _encode(_scaled(coffee, 2.0), "PNG")),
        # not in the training set: the stereo partner of one photo, a part of another
        ("motorcycle_right.png", os.path.join(DATA, "motorcycle_right.png")),
        ("chelsea_part.png", _encode(_crop(_photo("chelsea.png"), 0, 0, 0.5, 0.5), "PNG")),
    ]
    pairs = ov.find_overlaps(train, bench)
    assert sorted((p.train, p.bench) for p in pairs) == [("astronaut.png", "astronaut_half_q70.jpg"),
                                                         ("coffee.png", "coffee_2x.png")]
    for p in pairs:
        assert p.distance <= 6 and p.dhash_distance <= 6 and p.similarity > 0.9


def test_resized_and_reencoded_copies_stay_within_the_defaults():
    for name in ("astronaut.png", "rocket.jpg", "camera.png", "page.png"):
        im = _photo(name)
        p0, d0 = ov.hash_image(os.path.join(DATA, name))
        copies = [_encode(im.convert("RGB"), "JPEG", quality=q) for q in (50, 70, 95)]
        copies += [_encode(_scaled(im, 0.5), "PNG"), _encode(_scaled(im, 2.0), "JPEG", quality=85),
                   _encode(im.convert("RGB"), "WEBP", quality=80)]
        for data in copies:
            p, d = ov.hash_image(data)
            assert (p ^ p0).bit_count() <= ov.DEFAULT_MAX_DISTANCE, name
            assert (d ^ d0).bit_count() <= ov.DEFAULT_MAX_DHASH_DISTANCE, name


def test_no_false_pair_among_distinct_photos_their_crops_and_flips():
    boxes = [(0, 0, 0.5, 0.5), (0.5, 0.5, 1, 1), (0.25, 0.25, 0.75, 0.75), (0, 0, 0.7, 1)]
    images = []
    for name in PHOTOS:
        im = _photo(name)
        images.append((f"{name}|full", im))
        images.append((f"{name}|mirror", ImageOps.mirror(im)))
        images.append((f"{name}|q60", _encode(im.convert("RGB"), "JPEG", quality=60)))
        images += [(f"{name}|crop{k}", _crop(im, *b)) for k, b in enumerate(boxes)]
    hs = ov.hash_images(images)
    assert not hs.skipped
    pairs = ov.find_overlaps(hs, hs)
    cross = [(p.train, p.bench, p.distance, p.dhash_distance) for p in pairs
             if p.train.split("|")[0] != p.bench.split("|")[0]]
    assert cross == []
    # the re-encoded copy of every photo is found
    found = {(p.train, p.bench) for p in pairs}
    assert all((f"{n}|full", f"{n}|q60") in found for n in PHOTOS)


def test_exif_orientation_and_transparency_are_applied():
    im = _photo("chelsea.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer turns it back
    rotated = _encode(im.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif.tobytes())
    p0, d0 = ov.hash_image(im)
    p, d = ov.hash_image(rotated)
    assert (p ^ p0).bit_count() <= 3 and (d ^ d0).bit_count() <= 3
    # transparent pixels are white whatever colour they store
    rgba = np.zeros((100, 120, 4), np.uint8)
    rgba[..., :3] = 37
    rgba[20:80, 30:90] = (200, 10, 10, 255)
    white = np.full((100, 120, 3), 255, np.uint8)
    white[20:80, 30:90] = (200, 10, 10)
    assert ov.hash_image(_encode(Image.fromarray(rgba), "PNG")) == ov.hash_image(white)


def test_unusable_files_are_skipped_with_a_reason(tmp_path):
    shutil.copy(os.path.join(DATA, "rocket.jpg"), tmp_path / "good.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(_encode(_photo("coffee.png"), "JPEG")[:300])
    (tmp_path / "fake.png").write_bytes(b"this is not an image")
    Image.new("RGB", (20, 300), (10, 20, 30)).save(tmp_path / "thin.png")
    Image.new("RGB", (200, 200), (90, 90, 90)).save(tmp_path / "flat.png")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    for workers in (1, 2):
        hs = ov.hash_folder(str(tmp_path), workers=workers)
        assert [os.path.basename(n) for n in hs.names] == ["good.jpg"]
        reasons = {os.path.basename(n): r.split(":")[0] for n, r in hs.skipped}
        assert reasons == {"corrupt.jpg": "corrupt", "fake.png": "not_an_image", "thin.png": "too_small",
                           "flat.png": "flat"}
        assert hs.skip_counts() == {"corrupt": 1, "flat": 1, "not_an_image": 1, "too_small": 1}
    missing = ov.hash_images([("gone", str(tmp_path / "gone.jpg")), ("obj", object())])
    assert [r.split(":")[0] for _, r in missing.skipped] == ["missing", "not_an_image"]
    with pytest.raises(ov.OverlapError, match="does not exist"):
        ov.hash_folder(str(tmp_path / "nowhere"))


def test_index_and_brute_force_search_agree():
    rng = np.random.default_rng(1)
    n, m = 3000, 700
    train = rng.integers(0, 2**63, n, dtype=np.uint64) << np.uint64(1)
    bench = rng.integers(0, 2**63, m, dtype=np.uint64) << np.uint64(1)
    for k in range(40):  # planted copies, 0..9 bits apart
        flips = rng.choice(64, k % 10, replace=False)
        bench[k] = train[k * 11] ^ np.uint64(sum(1 << int(b) for b in flips))
    t = ov.HashSet([f"t{i}" for i in range(n)], train, train.copy())
    b = ov.HashSet([f"b{j}" for j in range(m)], bench, bench.copy())
    for d in (0, 3, 9):
        results = [ov.find_overlaps(t, b, max_distance=d, method=meth, max_dhash_distance=None)
                   for meth in ("index", "brute", "auto")]
        assert results[0] == results[1] == results[2]
        planted = {(f"t{k * 11}", f"b{k}") for k in range(40) if k % 10 <= d}
        assert planted <= {(p.train, p.bench) for p in results[0]}
    assert ov.find_overlaps(t, ov.HashSet()) == []


def test_hash_set_round_trips_through_npz(tmp_path):
    hs = ov.hash_images([("a", os.path.join(DATA, "coffee.png")), ("b", b"junk")])
    hs.save(str(tmp_path / "h.npz"))
    back = ov.HashSet.load(str(tmp_path / "h.npz"))
    assert back.names == hs.names and back.skipped == hs.skipped
    assert np.array_equal(back.phash, hs.phash) and np.array_equal(back.dhash, hs.dhash)


def test_benchmark_adapter_names_every_image(monkeypatch):
    from spatial_ssrl.eval import benchmarks

    coffee = os.path.join(DATA, "coffee.png")

    class Fake(Benchmark):
        name = "fake"

        def load(self, path, **options):
            assert path == "/bench" and options == {"split": "val"}
            return [EvalItem("one", "<image>", images=[open(coffee, "rb").read()]),
                    EvalItem("two", "<image><image>", images=[coffee, _photo("rocket.jpg")]),
                    EvalItem("text-only", "no image")], [Skipped("broken", "undecodable_image")]

    monkeypatch.setattr(benchmarks, "get_benchmark", lambda name: Fake())
    hs = ov.hash_benchmark("fake", "/bench", load_options={"split": "val"})
    assert hs.names == ["one", "two#0", "two#1"]
    assert [(n, r.split(":")[0]) for n, r in hs.skipped] == [("broken", "benchmark_skip"), ("text-only", "no_image")]
    assert hs.phash[0] == hs.phash[1]


# -- exclusion lists --------------------------------------------------------------------------
def test_read_exclude_list_reads_pairs_json_and_text(tmp_path):
    pairs = [ov.Pair("/data/a.jpg", "b1", 2, 3, 0.96), ov.Pair("/data/a.jpg", "b2", 4, 1, 0.96),
             ov.Pair("/data/c.png", "b3", 0, 0, 1.0)]
    assert overlapping_sources(pairs) == {"/data/a.jpg", "/data/c.png"}
    (tmp_path / "p.json").write_text(json.dumps({"pairs": [p.to_dict() for p in pairs]}))
    assert read_exclude_list(str(tmp_path / "p.json")) == {"/data/a.jpg", "/data/c.png"}
    (tmp_path / "list.txt").write_text("# leave out\n/data/a.jpg\n\nsub/x.jpg\n")
    assert read_exclude_list(str(tmp_path / "list.txt")) == {"/data/a.jpg", str(tmp_path / "sub" / "x.jpg")}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ov.OverlapError, match="not valid JSON"):
        read_exclude_list(str(tmp_path / "bad.json"))
    with pytest.raises(ov.OverlapError, match="does not exist"):
        read_exclude_list(str(tmp_path / "none.json"))


# -- the command ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from spatial_ssrl.cli import main

    out = tmp_path_factory.mktemp("overlap") / "D"
    res = CliRunner().invoke(main, ["generate", "--out", str(out), "--num", "6", "--tasks", "flip", "-q",
                                    "--workers", "1"])
    assert res.exit_code == 0, res.output
    return out


def test_cli_reports_a_benchmark_copy_of_a_training_source(tiny_dataset, tmp_path):
    from spatial_ssrl.sources.naming import resolve

    sources = ov.dataset_sources(str(tiny_dataset))
    assert sources and not any(s.startswith("procedural:") for s in sources)
    roots = json.loads((tiny_dataset / "manifest.json").read_text())["source_roots"]
    src = resolve(sources[0], roots)  # the file the dataset's portable name stands for
    assert not os.path.isabs(sources[0]) and os.path.isfile(src)
    bench = tmp_path / "bench"
    bench.mkdir()
    with Image.open(src) as im:
        _scaled(im.convert("RGB"), 0.5).save(bench / "copy.jpg", quality=75)
    names = {os.path.basename(s) for s in sources}
    other = next(p for p in PHOTOS if p not in names and p != "motorcycle_left.png")
    shutil.copy(os.path.join(DATA, other), bench / other)
    (bench / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")

    out = tmp_path / "pairs.json"
    res = _invoke(["--train", str(tiny_dataset), "--bench-images", str(bench), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "  ~  " in ln]
    assert len(lines) == 1 and src in lines[0] and str(bench / "copy.jpg") in lines[0]
    assert "1 overlapping pair: 1 training source, 1 benchmark image" in res.output
    assert "1 skipped (not_an_image: 1)" in res.output, res.output
    doc = json.loads(out.read_text())
    assert doc["num_pairs"] == 1 and doc["pairs"][0]["train"] == src
    assert read_exclude_list(str(out)) == {src}


def test_cli_counts_missing_sources(tmp_path):
    from spatial_ssrl.cli import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("coffee.png", "rocket.jpg"):
        shutil.copy(os.path.join(DATA, name), inputs / name)
    ds = tmp_path / "ds"
    res = CliRunner().invoke(main, ["generate", "--input", str(inputs), "--out", str(ds), "--num", "4",
                                    "--tasks", "flip", "-q", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert len(ov.dataset_sources(str(ds))) == 2
    os.unlink(inputs / "rocket.jpg")
    hs = ov.hash_dataset_sources(str(ds))
    assert [os.path.basename(n) for n in hs.names] == ["coffee.png"]
    assert hs.skip_counts() == {"missing": 1}
    res = _invoke(["--train", str(ds), "--train-images", str(inputs), "--bench-images", str(inputs)])
    assert res.exit_code == 2 and "one of --train" in res.output
    res = _invoke(["--train", str(ds), "--bench-images", str(inputs), "-w", "1"])
    assert res.exit_code == 0, res.output
    assert "1 skipped (missing: 1)" in res.output and "1 overlapping pair" in res.output


@pytest.mark.parametrize("args, message", [
    (["--train", "NOWHERE", "--bench-images", "."], "does not exist"),
    (["--train-images", ".", "--bench", "no-such-benchmark", "--bench-path", "."], "unknown benchmark"),
    (["--train-images", ".", "--bench", "pretext"], "--bench needs --bench-path"),
])
def test_cli_errors_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _invoke(args)
    assert res.exit_code != 0
    err = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert len(err) == 1 and message in err[0], res.output
    assert "Traceback" not in res.output


def test_generate_excludes_the_overlapping_sources(tmp_path):
    """A planted copy of one source shows up in `ssrl overlap`; `generate --exclude-overlap-with`
    then leaves that source out and counts it."""
    import json

    from click.testing import CliRunner
    from PIL import Image

    from spatial_ssrl.cli import main
    from spatial_ssrl.sources import builtin_photos

    photos = [p for p in builtin_photos()][:4]
    src = tmp_path / "src"
    src.mkdir()
    for p in photos:
        Image.open(p.path).convert("RGB").save(src / (os.path.basename(p.path).rsplit(".", 1)[0] + ".png"))
    data = tmp_path / "d"
    r = CliRunner().invoke(main, ["generate", "-i", str(src), "--out", str(data), "--num", "8", "--tasks", "flip",
                                  "-q", "--workers", "1"])
    assert r.exit_code == 0, r.output
    bench = tmp_path / "bench"
    bench.mkdir()
    victim = min(src.iterdir())
    im = Image.open(victim)
    im.resize((im.width // 2, im.height // 2)).save(bench / "copy.jpg", quality=70)
    pairs = tmp_path / "pairs.json"
    r = CliRunner().invoke(main, ["overlap", "--train", str(data), "--bench-images", str(bench), "--out", str(pairs)])
    assert r.exit_code == 0, r.output
    again = tmp_path / "d2"
    r = CliRunner().invoke(main, ["generate", "-i", str(src), "--out", str(again), "--num", "8", "--tasks", "flip",
                                  "-q", "--workers", "1", "--exclude-overlap-with", str(pairs)])
    assert r.exit_code == 0, r.output
    manifest = json.loads((again / "manifest.json").read_text())
    assert manifest["skips"].get("excluded_overlap") == 1
    from spatial_ssrl.readers import open_dataset

    sources = {rec.source for rec in open_dataset(str(again)).index()}
    assert str(victim) not in sources and len(sources) == 3
