"""Bad and unusual input files: converted or skipped with a named reason, never a traceback."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pixels import decode, read_rows

from spatial_ssrl.cli import main
from spatial_ssrl.sources import LoadOptions, SourceRef, SourceSkip, discover, load_item


def _photo(h=240, w=320, seed=0):
    """A smooth but non-uniform test picture (gradients plus blobs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=2).astype(np.float64)
    for _ in range(6):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(10, 60)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    return img.astype(np.uint8)


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("messy")
    good = _photo()
    Image.fromarray(good).save(d / "good.png")
    Image.fromarray(good).convert("L").save(d / "gray.png")
    Image.fromarray(good).convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    rgba = np.dstack([good, np.full(good.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    Image.fromarray(good).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(good[..., 0].astype(np.uint16) * 257).save(d / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_photo(200, 300, seed=1)).save(d / "rotated.jpg", exif=exif, quality=95)
    Image.fromarray(_photo(60, 80)).save(d / "tiny.png")
    Image.new("1", (11000, 10000)).save(d / "bomb.png")  # 110 Mpx header, tiny file
    Image.fromarray(np.full((200, 200, 3), 127, np.uint8)).save(d / "blank.png")
    (d / "random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("this is not a picture")
    buf = io.BytesIO()
    Image.fromarray(_photo(400, 400, seed=2)).save(buf, format="PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "notes.txt").write_text("a file that is not an image")
    (d / "sub").mkdir()
    Image.fromarray(_photo(seed=3)).save(d / "sub" / "nested.jpg", quality=95)
    return d


EXPECTED_SKIPS = {
    "tiny.png": "too_small",
    "bomb.png": "too_many_pixels",
    "random.jpg": "not_an_image",
    "empty.jpg": "not_an_image",
    "text.png": "not_an_image",
    "truncated.png": "corrupt_or_truncated",
}


@pytest.mark.parametrize("name, reason", sorted(EXPECTED_SKIPS.items()))
def test_load_item_names_the_reason(messy_folder, name, reason):
    with pytest.raises(SourceSkip) as exc:
        load_item(SourceRef(name, str(messy_folder / name)))
    assert exc.value.reason == reason
    assert name in str(exc.value)


@pytest.mark.parametrize(
    "name, conversion",
    [
        ("gray.png", "converted_grayscale"),
        ("palette.png", "converted_palette"),
        ("rgba.png", "converted_alpha"),
        ("cmyk.jpg", "converted_cmyk"),
        ("sixteen.png", "converted_16bit"),
    ],
)
def test_conversions(messy_folder, name, conversion):
    item = load_item(SourceRef(name, str(messy_folder / name)))
    assert item.info["conversion"] == conversion
    assert item.rgb.dtype == np.uint8 and item.rgb.shape == (240, 320, 3)


def test_sixteen_bit_is_scaled_not_clipped(messy_folder):
    item = load_item(SourceRef("s", str(messy_folder / "sixteen.png")))
    expected = _photo()[..., 0]
    assert np.abs(item.rgb[..., 0].astype(int) - expected).max() <= 1


def test_alpha_is_composited_on_white(messy_folder):
    item = load_item(SourceRef("a", str(messy_folder / "rgba.png")))
    good = _photo().astype(float)
    expected = np.rint(good * (128 / 255) + 255 * (1 - 128 / 255))
    assert np.abs(item.rgb - expected).max() <= 1


def test_exif_orientation_is_applied(messy_folder):
    item = load_item(SourceRef("r", str(messy_folder / "rotated.jpg")))
    assert item.info["exif_orientation"] == 6
    assert item.rgb.shape[:2] == (300, 200)  # stored 300 wide x 200 high, displayed upright


def test_resize_guard(messy_folder):
    item = load_item(SourceRef("g", str(messy_folder / "good.png")), LoadOptions(resize_max_pixels=240 * 320 // 4))
    assert item.rgb.shape[:2] == (120, 160)
    assert item.info["resize"]["from"] == [320, 240] and item.info["resize"]["to"] == [160, 120]


def test_discover_recurses_and_counts_non_images(messy_folder):
    refs, ignored = discover([str(messy_folder)])
    names = sorted(r.id.split("/", 1)[1] for r in refs)
    assert "sub/nested.jpg" in names and "notes.txt" not in names
    assert ignored["not_an_image_extension"] == 1
    assert len({r.id for r in refs}) == len(refs)


def test_list_file_input(tmp_path, messy_folder):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# two pictures\n{messy_folder / 'good.png'}\n\n{messy_folder / 'sub' / 'nested.jpg'}\n")
    refs, _ = discover([str(lst)])
    assert [r.id for r in refs] == ["good.png", "nested.jpg"]


def test_generate_on_messy_folder(tmp_path, messy_folder):
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["generate", "-i", str(messy_folder), "--out", str(out), "--num", "30", "-w", "2", "-q"]
    )
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    m = json.loads((out / "manifest.json").read_text())
    expected = {}
    for reason in EXPECTED_SKIPS.values():
        expected[reason] = expected.get(reason, 0) + 1
    expected["not_an_image_extension"] = 1
    assert m["skips"] == expected
    assert m["rejections"].get("near_uniform_image") == 1
    assert m["num_written"] == 30 and not m["unfilled"]
    for reason, paths in m["skipped_files"].items():
        if reason in EXPECTED_SKIPS.values():
            assert sorted(p.rsplit("/", 1)[1] for p in paths) == sorted(
                n for n, r in EXPECTED_SKIPS.items() if r == reason
            )
    assert m["conversions"] == {
        "converted_alpha": 1,
        "converted_cmyk": 1,
        "converted_grayscale": 1,
        "converted_palette": 1,
        "converted_16bit": 1,
        "exif_orientation_applied": 1,
    }
    rows = read_rows(out)
    used = {r["source"].rsplit("/", 1)[1] for r in rows}
    assert used.isdisjoint(EXPECTED_SKIPS) and "blank.png" not in used
    for r in rows:
        if r["source"].endswith("rotated.jpg") and r["task"] == "crop":
            assert decode(r["images"][0]).shape[:2] == (300, 200)


def test_strict_stops_at_first_bad_file(tmp_path, messy_folder):
    res = CliRunner().invoke(
        main,
        ["generate", "-i", str(messy_folder), "--out", str(tmp_path / "o"), "--num", "30", "-w", "1", "-q", "--strict"],
    )
    assert res.exit_code == 1
    assert "--strict: unusable input" in res.output and "Traceback" not in res.output
    assert any(name in res.output for name in EXPECTED_SKIPS)


def test_usage_errors_exit_2(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["generate", "-i", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(main, ["generate", "--out", str(tmp_path / "o"), "--tasks", "nope"])
    assert r.exit_code == 2 and "unknown task" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(main, ["generate", "-i", str(empty), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no image files" in r.output
