"""Every answer of a generated run, re-derived from the output pixels and the source file.

The checks use only the images, the source file, the task/variant columns and the answer
string; they never read the generator's params from ``meta``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pixels import black_square, cells, decode, interior_mask, load_source, read_rows

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import builtin_photos


@pytest.fixture(scope="module")
def rows(tmp_path_factory, shared_samples_optional):
    out = tmp_path_factory.mktemp("pixels")
    refs = builtin_photos()
    if shared_samples_optional is not None:
        from spatial_ssrl.sources import SourceRef

        refs = refs + [SourceRef("shared/RGB_img.png", str(shared_samples_optional / "RGB_img.png"))]
    # Enough samples that every variant appears several times.
    run_generation(refs, str(out), GenerateConfig(num=90, seed=11, mix=parse_mix(None), workers=2))
    return read_rows(out)


@pytest.fixture(scope="module")
def shared_samples_optional():
    from conftest import SHARED_SAMPLES

    return SHARED_SAMPLES if SHARED_SAMPLES.is_dir() else None


def _by_task(rows, task):
    picked = [r for r in rows if r["task"] == task]
    assert picked, f"the run produced no {task} samples"
    return picked


def test_every_variant_is_present(rows):
    seen = {(r["task"], r["variant"]) for r in rows}
    expected = {("shuffle", v) for v in ("2x2", "2x2-masked", "1x3", "1x4", "3x1", "4x1")}
    expected |= {("flip", "2x2"), ("crop", "4-options")}
    assert expected <= seen


def test_shuffle_reassembles_source(rows):
    for r in _by_task(rows, "shuffle"):
        m, n = (int(v) for v in r["variant"].split("-")[0].split("x"))
        (cell,) = r["images"]
        out = decode(cell)
        full = load_source(r["source"])
        # the image is cut to whole cells: only the remainder rows/columns are dropped
        assert out.shape[:2] == (full.shape[0] // m * m, full.shape[1] // n * n)
        src = full[: out.shape[0], : out.shape[1]]
        shown, orig = cells(out, m, n), cells(src, m, n)
        ph, pw = shown[0].shape[:2]
        mask = interior_mask(ph, pw)
        labels = [int(x) for x in r["answer"].split("-")]
        assert sorted(labels) == list(range(m * n)), r["answer"]
        white = [k for k in range(m * n) if np.all(shown[k][mask] == 255)]
        unmatched = []
        for p, k in enumerate(labels):
            if np.array_equal(shown[k][mask], orig[p][mask]):
                # the match is unique: no other displayed patch also reproduces patch p
                others = [q for q in range(m * n) if q != k and np.array_equal(shown[q][mask], orig[p][mask])]
                assert not others, (r["id"], p, others)
            else:
                unmatched.append(p)
        if r["variant"].endswith("-masked"):
            assert len(white) == 1 and len(unmatched) == 1, (r["id"], white, unmatched)
            assert labels[unmatched[0]] == white[0]
        else:
            assert unmatched == [], (r["id"], r["answer"], unmatched)


def test_flip_unflips_to_source(rows):
    for r in _by_task(rows, "flip"):
        (cell,) = r["images"]
        out = decode(cell)
        src = load_source(r["source"])[: out.shape[0], : out.shape[1]]
        label, direction = (int(x) for x in r["answer"].split("-"))
        assert direction in (0, 1) and 0 <= label < 4
        shown, orig = cells(out, 2, 2), cells(src, 2, 2)
        ph, pw = shown[0].shape[:2]
        plain = interior_mask(ph, pw)
        for k in range(4):
            if k != label:
                assert np.array_equal(shown[k][plain], orig[k][plain]), (r["id"], k)
        patch = shown[label]
        unflipped = patch[::-1] if direction == 0 else patch[:, ::-1]
        both = interior_mask(ph, pw, mirror=direction)
        assert np.array_equal(unflipped[both], orig[label][both]), r["id"]
        change = np.abs(patch[both].astype(float) - orig[label][both].astype(float)).mean()
        assert change > 3.0, (r["id"], change)
        # the other direction does not restore it: the answer's direction is the readable one
        other = patch[:, ::-1] if direction == 0 else patch[::-1]
        assert not np.array_equal(other[both], orig[label][both])


def test_crop_answer_is_the_blacked_region(rows):
    for r in _by_task(rows, "crop"):
        assert len(r["images"]) == 5
        assert r["options"] == ["A", "B", "C", "D"]
        masked = decode(r["images"][0])
        src = load_source(r["source"])
        assert masked.shape == src.shape
        side = min(src.shape[:2]) // 2
        x, y = black_square(masked, src, side)
        truth = src[y:y + side, x:x + side]
        options = [decode(c) for c in r["images"][1:]]
        letter = r["answer"]
        assert letter in "ABCD" and len(letter) == 1
        chosen = options["ABCD".index(letter)]
        assert np.array_equal(chosen, truth), r["id"]
        for i, opt in enumerate(options):
            if "ABCD"[i] == letter:
                continue
            assert opt.shape == truth.shape
            diff = np.abs(opt.astype(float) - truth.astype(float)).mean()
            assert diff > 2.0, (r["id"], "ABCD"[i], diff)


def test_correct_letters_are_spread(rows):
    letters = [r["answer"] for r in rows if r["task"] == "crop"]
    assert len(set(letters)) >= 3, letters
