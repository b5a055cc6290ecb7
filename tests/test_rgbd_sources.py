"""RGB-D sources: depth readers per format, bad depth as named skips, discovery by manifest
and by folder conventions, the real DIODE/MegaDepth samples and the Middlebury built-in."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from spatial_ssrl.sources import LoadOptions, SourceRef, SourceSkip, discover
from spatial_ssrl.sources.depth_formats import read_pfm
from spatial_ssrl.sources.rgbd import discover_rgbd, load_rgbd_item, scale_intrinsics

H, W = 120, 160


def _photo(h=H, w=W, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=2).astype(np.uint8)
    img[rng.random((h, w)) < 0.05] = 255
    return img


def _ramp(h=H, w=W, lo=1.0, hi=5.0):
    """Depth increasing down the rows, distinct values per row."""
    return np.repeat(np.linspace(lo, hi, h, dtype=np.float32)[:, None], w, axis=1)


def _rgb(tmp_path, name="x.png", h=H, w=W, **save):
    p = tmp_path / name
    Image.fromarray(_photo(h, w)).save(p, **save)
    return p


def _write_h5(path, **datasets):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as fh:
        for k, v in datasets.items():
            fh[k] = v


def _write_pfm(path, a, little_endian=True):
    h, w = a.shape
    data = np.ascontiguousarray(a[::-1].astype("<f4" if little_endian else ">f4"))
    with open(path, "wb") as fh:
        fh.write(f"Pf\n{w} {h}\n{-1.0 if little_endian else 1.0}\n".encode())
        fh.write(data.tobytes())


def _load(tmp_path, depth_name, writer, **ref_kw):
    rgb = _rgb(tmp_path)
    dp = tmp_path / depth_name
    writer(dp)
    return load_rgbd_item(SourceRef(id="x", path=str(rgb), kind="rgbd", depth=str(dp), **ref_kw))


def _skip_reason(tmp_path, depth_name, writer, **ref_kw):
    with pytest.raises(SourceSkip) as exc:
        _load(tmp_path, depth_name, writer, **ref_kw)
    return exc.value.reason


def _check_contract(item):
    assert item.depth.dtype == np.float32 and item.mask.dtype == bool
    assert item.depth.shape == item.mask.shape == item.rgb.shape[:2]
    assert np.all(np.isnan(item.depth[~item.mask]))
    assert np.all(np.isfinite(item.depth[item.mask])) and np.all(item.depth[item.mask] > 0)


# ------------------------------------------------------------------ formats


def test_npy_metres_with_scale_and_nan_invalid(tmp_path):
    d = _ramp()
    d[0, :10] = np.nan
    d[1, :10] = np.inf
    d[2, :10] = 0.0
    item = _load(tmp_path, "d.npy", lambda p: np.save(p, d), depth_scale=2.0)
    _check_contract(item)
    assert item.depth_kind == "metric" and item.info["depth_format"] == "npy"
    assert not item.mask[:3, :10].any() and item.mask[:3, 10:].all()
    np.testing.assert_allclose(item.depth[50, 50], 2.0 * d[50, 50], rtol=1e-6)
    assert item.info["depth_valid_fraction"] == pytest.approx(1 - 30 / (H * W), abs=1e-6)


def test_png16_millimetres_default_and_custom_scale(tmp_path):
    mm = (_ramp() * 1000).astype(np.uint16)
    mm[:5] = 0  # missing
    item = _load(tmp_path, "x_depth.png", lambda p: Image.fromarray(mm).save(p))
    _check_contract(item)
    assert item.info["depth_format"] == "png16" and item.depth_kind == "metric"
    assert not item.mask[:5].any() and item.mask[5:].all()
    np.testing.assert_allclose(item.depth[60, 3], mm[60, 3] / 1000.0, rtol=1e-6)
    item2 = _load(tmp_path, "x_depth.png", lambda p: None, depth_scale=0.0002, depth_format="png16")
    np.testing.assert_allclose(item2.depth[60, 3], mm[60, 3] * 0.0002, rtol=1e-6)


def test_png16_refuses_8bit_png(tmp_path):
    reason = _skip_reason(tmp_path, "x_depth.png", lambda p: Image.fromarray(_photo()[..., 0]).save(p),
                          depth_format="png16")
    assert reason == "depth_bad_dtype"


def test_disparity_with_calibration_is_metric(tmp_path):
    disp = np.linspace(10, 50, W, dtype=np.float32)[None].repeat(H, 0)
    disp[:, :4] = 0  # no match
    disp[0, 10] = np.inf
    disp[1, 10] = -3
    fx, baseline = 500.0, 0.1
    item = _load(tmp_path, "x_disp.npz", lambda p: np.savez(p, disparity=disp),
                 intrinsics=(fx, fx, W / 2, H / 2), baseline=baseline)
    _check_contract(item)
    assert item.depth_kind == "metric" and item.info["depth_format"] == "disparity"
    assert not item.mask[:, :4].any() and not item.mask[0, 10] and not item.mask[1, 10]
    np.testing.assert_allclose(item.depth[30, 40], fx * baseline / disp[30, 40], rtol=1e-5)
    assert item.intrinsics == (fx, fx, W / 2, H / 2)


def test_disparity_offset_enters_formula(tmp_path):
    disp = np.linspace(10, 50, W, dtype=np.float32)[None].repeat(H, 0)
    rgb = _rgb(tmp_path)
    np.save(tmp_path / "x_disp.npy", disp)
    ref = SourceRef(id="x", path=str(rgb), kind="rgbd", depth=str(tmp_path / "x_disp.npy"),
                    depth_format="disparity", intrinsics=(400.0, 400.0, 80.0, 60.0), baseline=0.2,
                    disparity_offset=7.5)
    item = load_rgbd_item(ref)
    np.testing.assert_allclose(item.depth[5, 100], 400 * 0.2 / (disp[5, 100] + 7.5), rtol=1e-5)


def test_disparity_without_calibration_is_order_only(tmp_path):
    disp = np.linspace(10, 50, W, dtype=np.float32)[None].repeat(H, 0)
    disp[:, 0] = np.nan
    item = _load(tmp_path, "x_disp.npy", lambda p: np.save(p, disp))
    _check_contract(item)
    assert item.depth_kind == "order" and item.intrinsics is None
    row = item.depth[10, 1:]
    assert np.all(np.diff(row) < 0)  # larger disparity = nearer
    np.testing.assert_allclose(row, 1.0 / disp[10, 1:], rtol=1e-6)


def test_pfm_disparity_rows_are_bottom_up(tmp_path):
    disp = np.linspace(5, 40, H, dtype=np.float32)[:, None].repeat(W, 1)  # grows downwards
    for le in (True, False):
        _write_pfm(tmp_path / "d.pfm", disp, little_endian=le)
        np.testing.assert_array_equal(read_pfm(str(tmp_path / "d.pfm"), 10**8), disp)
    item = _load(tmp_path, "x.pfm", lambda p: _write_pfm(p, disp))
    assert item.info["depth_format"] == "disparity"
    assert item.depth[0, 0] > item.depth[-1, 0]  # top has the smallest disparity: farthest


def test_png16_disparity_uses_kitti_scale(tmp_path):
    disp = np.full((H, W), 20.0, np.float32)
    disp[:, W // 2:] = 40.0
    stored = (disp * 256).astype(np.uint16)
    item = _load(tmp_path, "x_disp.png", lambda p: Image.fromarray(stored).save(p),
                 intrinsics=(100.0, 100.0, 80.0, 60.0), baseline=0.5)
    assert item.info["disparity_scale"] == pytest.approx(1 / 256)
    np.testing.assert_allclose(item.depth[0, 0], 100 * 0.5 / 20.0, rtol=1e-6)
    np.testing.assert_allclose(item.depth[0, -1], 100 * 0.5 / 40.0, rtol=1e-6)


def test_megadepth_h5_relative(tmp_path):
    d = _ramp()
    d[:, :20] = 0
    item = _load(tmp_path, "x.h5", lambda p: _write_h5(p, depth=d))
    _check_contract(item)
    assert item.depth_kind == "relative" and item.info["depth_format"] == "megadepth"
    assert not item.mask[:, :20].any() and item.mask[:, 20:].all()


# ------------------------------------------------------------------ grid handling


def test_depth_of_other_size_is_resampled_nearest(tmp_path):
    small = _ramp(H // 2, W // 2)
    small[0, 0] = np.nan
    item = _load(tmp_path, "x.npy", lambda p: np.save(p, small), intrinsics=(100.0, 100.0, 79.5, 59.5))
    _check_contract(item)
    assert item.info["depth_resampled"] == {"from": [W // 2, H // 2], "to": [W, H], "method": "nearest"}
    assert set(np.unique(item.depth[item.mask])) <= set(np.unique(small[np.isfinite(small)]))  # no new values
    assert not item.mask[:2, :2].any() and item.mask.sum() == H * W - 4
    np.testing.assert_array_equal(item.depth[2::2, 0], small[1:, 0])
    assert item.intrinsics == (100.0, 100.0, 79.5, 59.5)  # given on the RGB grid, not rescaled


def test_aspect_mismatch_is_skipped(tmp_path):
    assert _skip_reason(tmp_path, "x.npy", lambda p: np.save(p, _ramp(H, W // 2))) == "depth_shape_mismatch"


def test_rgb_downscale_carries_depth_and_intrinsics(tmp_path):
    rgb = _rgb(tmp_path, h=200, w=400)
    np.save(tmp_path / "d.npy", _ramp(200, 400))
    ref = SourceRef(id="x", path=str(rgb), kind="rgbd", depth=str(tmp_path / "d.npy"),
                    intrinsics=(300.0, 300.0, 199.5, 99.5))
    item = load_rgbd_item(ref, LoadOptions(resize_max_pixels=200 * 400 // 4))
    _check_contract(item)
    assert item.info["resize"]["to"] == [200, 100]
    assert item.info["depth_resampled"]["to"] == [200, 100]
    assert item.intrinsics == pytest.approx((150.0, 150.0, 99.5, 49.5))
    assert scale_intrinsics((300.0, 300.0, 199.5, 99.5), 0.5, 0.5) == pytest.approx(item.intrinsics)


def test_exif_rotated_rgb_is_refused(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb = _rgb(tmp_path, "r.jpg", exif=exif)
    np.save(tmp_path / "d.npy", _ramp())
    with pytest.raises(SourceSkip) as exc:
        load_rgbd_item(SourceRef(id="r", path=str(rgb), kind="rgbd", depth=str(tmp_path / "d.npy")))
    assert exc.value.reason == "depth_orientation_mismatch"


# ------------------------------------------------------------------ bad depth


def _bad_h5_string(p):
    h5py = pytest.importorskip("h5py")
    with h5py.File(p, "w") as fh:
        fh["depth"] = np.array([b"a", b"b"])


def _obj_npy(p):
    np.save(p, np.array([[{"a": 1}] * 4] * 4, dtype=object), allow_pickle=True)


def _mixed_negative(p):
    d = _ramp()
    d[:20] *= -1  # 1/6 of the map, many distinct values
    np.save(p, d)


def _few_valid(p):
    d = np.full((H, W), np.nan, np.float32)
    d[:3] = _ramp()[:3]  # 2.5 % valid
    np.save(p, d)


BAD_DEPTH = [
    ("missing.npy", None, "depth_not_found"),
    ("junk.npy", lambda p: p.write_bytes(b"\x00garbage" * 50), "depth_unreadable"),
    ("junk.h5", lambda p: p.write_bytes(b"not hdf5" * 50), "depth_unreadable"),
    ("junk.npz", lambda p: p.write_bytes(b"PK\x03\x04broken"), "depth_unreadable"),
    ("junk.pfm", lambda p: p.write_bytes(b"Pf\n160 120\n-1.0\n" + b"\x00" * 100), "depth_unreadable"),
    ("junk.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\nbroken"), "depth_unreadable"),
    ("nokey.h5", lambda p: _write_h5(p, disparity=_ramp()), "depth_missing_key"),
    ("str.h5", _bad_h5_string, "depth_bad_dtype"),
    ("complex.npy", lambda p: np.save(p, _ramp().astype(np.complex64)), "depth_bad_dtype"),
    ("object.npy", _obj_npy, "depth_bad_dtype"),
    ("flat.npy", lambda p: np.save(p, np.ones(100, np.float32)), "depth_bad_shape"),
    ("rgb.npy", lambda p: np.save(p, np.ones((H, W, 3), np.float32)), "depth_bad_shape"),
    ("zeros.h5", lambda p: _write_h5(p, depth=np.zeros((H, W), np.float32)), "depth_all_invalid"),
    ("nan.npy", lambda p: np.save(p, np.full((H, W), np.nan, np.float32)), "depth_all_invalid"),
    ("few.npy", _few_valid, "depth_too_few_valid"),
    ("const.npy", lambda p: np.save(p, np.full((H, W), 3.0, np.float32)), "depth_constant"),
    ("neg.npy", _mixed_negative, "depth_negative"),
    ("what.xyz", lambda p: p.write_bytes(b"1234"), "depth_unknown_format"),
]


@pytest.mark.parametrize("name,writer,reason", BAD_DEPTH, ids=[b[2] + ":" + b[0] for b in BAD_DEPTH])
def test_bad_depth_is_a_named_skip(tmp_path, name, writer, reason):
    got = _skip_reason(tmp_path, name, writer or (lambda p: None))
    assert got == reason
    assert got.startswith("depth_")  # the engine keeps the RGB for depth-free tasks


def test_bad_mask_shape_and_missing_mask(tmp_path):
    np.save(tmp_path / "m.npy", np.ones((H, W + 1), np.float32))
    reason = _skip_reason(tmp_path, "d.npy", lambda p: np.save(p, _ramp()), mask=str(tmp_path / "m.npy"))
    assert reason == "depth_bad_shape"
    reason = _skip_reason(tmp_path, "d.npy", lambda p: None, mask=str(tmp_path / "none.npy"))
    assert reason == "depth_not_found"


def test_bad_intrinsics_is_a_named_skip(tmp_path):
    reason = _skip_reason(tmp_path, "d.npy", lambda p: np.save(p, _ramp()), intrinsics=(0.0, 100.0, 80.0, 60.0))
    assert reason == "depth_bad_intrinsics"


def test_few_negatives_and_sentinel_become_invalid(tmp_path):
    d = _ramp()
    d[0, :5] = [-0.1, -0.2, -0.3, -0.4, -0.5]  # noise: 5 of 19200 pixels
    item = _load(tmp_path, "d.npy", lambda p: np.save(p, d))
    assert item.info["depth_negative_invalid"] == 5 and not item.mask[0, :5].any()
    d = _ramp()
    d[:40] = -1.0  # a third of the map, but one sentinel value
    item = _load(tmp_path, "d.npy", lambda p: np.save(p, d))
    assert item.info["depth_negative_sentinel"] == -1.0
    assert not item.mask[:40].any() and item.mask[40:].all()


def test_rgb_problem_keeps_its_image_reason(tmp_path):
    np.save(tmp_path / "d.npy", _ramp())
    with pytest.raises(SourceSkip) as exc:
        load_rgbd_item(SourceRef(id="x", path=str(tmp_path / "nope.png"), kind="rgbd", depth=str(tmp_path / "d.npy")))
    assert exc.value.reason == "not_found"


def test_h5py_absent_is_a_named_skip(tmp_path, monkeypatch):
    _write_h5(tmp_path / "x.h5", depth=_ramp())
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    assert _skip_reason(tmp_path, "x.h5", lambda p: None) == "depth_h5py_not_installed"


# ------------------------------------------------------------------ discovery


def test_manifest_jsonl(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "dep").mkdir()
    for i in range(2):
        Image.fromarray(_photo(seed=i)).save(tmp_path / "rgb" / f"{i}.png")
        Image.fromarray((_ramp() * 1000).astype(np.uint16)).save(tmp_path / "dep" / f"{i}.png")
    lines = [
        json.dumps({"rgb": "rgb/0.png", "depth": "dep/0.png", "depth_format": "png16",
                    "intrinsics": [200, 200, 80, 60], "depth_scale": 0.001}),
        "# a comment",
        "",
        "{not json",
        json.dumps({"depth": "dep/1.png"}),  # no rgb
        json.dumps({"rgb": "rgb/1.png", "depth": "dep/1.png", "depth_format": "lidar"}),
        json.dumps({"rgb": "rgb/1.png", "depth": "dep/1.png", "id": "scene/one", "note": "extra"}),
        json.dumps({"rgb": "rgb/0.png"}),  # duplicate rgb: dropped
    ]
    man = tmp_path / "pairs.jsonl"
    man.write_text("\n".join(lines) + "\n")
    refs, report = discover_rgbd([str(man)])
    assert [r.id for r in refs] == ["rgb/0.png", "scene/one"]
    assert all(r.kind == "rgbd" for r in refs)
    assert refs[0].intrinsics == (200.0, 200.0, 80.0, 60.0) and refs[0].depth_format == "png16"
    assert refs[1].depth == str(tmp_path / "dep" / "1.png")
    assert report["manifest_bad_line"] == 3
    assert [w.split(" ")[0].rsplit(":", 1)[1] for w in report.details["manifest_bad_line"]] == ["4", "5", "6"]
    assert report["manifest_unknown_key"] == 1
    for r in refs:
        item = load_rgbd_item(r)
        assert item.depth_kind == "metric" and item.info["depth_format"] == "png16"
    assert load_rgbd_item(refs[0]).intrinsics == (200.0, 200.0, 80.0, 60.0)


def test_manifest_without_usable_lines_is_an_input_error(tmp_path):
    from spatial_ssrl.sources.files import InputError

    (tmp_path / "bad.jsonl").write_text("nonsense\n")
    with pytest.raises(InputError):
        discover_rgbd([str(tmp_path / "bad.jsonl")])


@pytest.fixture()
def paired_folder(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    # DIODE
    Image.fromarray(_photo(seed=1)).save(root / "room.png")
    np.save(root / "room_depth.npy", _ramp()[..., None])
    np.save(root / "room_depth_mask.npy", np.ones((H, W), np.float32))
    # MegaDepth, X.jpg + X.h5
    Image.fromarray(_photo(seed=2)).save(root / "city.jpg")
    _write_h5(root / "city.h5", depth=_ramp())
    # the sample repository's naming: img -> depth
    Image.fromarray(_photo(seed=3)).save(root / "RGB-D_img7.jpg")
    _write_h5(root / "RGB-D_depth7.h5", depth=_ramp())
    # NYU: 16-bit depth PNG beside the image
    Image.fromarray(_photo(seed=4)).save(root / "kitchen.png")
    Image.fromarray((_ramp() * 1000).astype(np.uint16)).save(root / "kitchen_depth.png")
    # plain image, an 8-bit depth visualisation (an image), a stray depth file, an ambiguous image
    Image.fromarray(_photo(seed=5)).save(root / "street.png")
    Image.fromarray(_photo(seed=6)[..., 0]).save(root / "street_depth.png")
    np.save(root / "orphan_depth.npy", _ramp())
    Image.fromarray(_photo(seed=7)).save(root / "both.png")
    np.save(root / "both_depth.npy", _ramp())
    _write_h5(root / "both.h5", depth=_ramp())
    (root / "notes.txt").write_text("hello")
    sub = root / "sub"
    sub.mkdir()
    Image.fromarray(_photo(seed=8)).save(sub / "desk.png")
    Image.fromarray((_ramp() * 1000).astype(np.uint16)).save(sub / "desk_depth.png")
    return root


def test_folder_auto_pairing(paired_folder):
    refs, report = discover_rgbd([str(paired_folder)])
    by_id = {r.id: r for r in refs}
    assert list(by_id) == [
        "data/RGB-D_img7.jpg", "data/both.png", "data/city.jpg", "data/kitchen.png", "data/room.png",
        "data/street.png", "data/street_depth.png", "data/sub/desk.png",
    ]
    expect = {
        "data/room.png": ("diode", "room_depth.npy", "room_depth_mask.npy"),
        "data/city.jpg": ("megadepth", "city.h5", None),
        "data/RGB-D_img7.jpg": ("megadepth", "RGB-D_depth7.h5", None),
        "data/kitchen.png": ("png16", "kitchen_depth.png", None),
        "data/sub/desk.png": ("png16", "desk_depth.png", None),
    }
    for sid, ref in by_id.items():
        if sid in expect:
            fmt, depth, mask = expect[sid]
            assert ref.kind == "rgbd" and ref.depth_format == fmt
            assert ref.depth.endswith("/" + depth)
            assert (ref.mask or "").endswith(mask or "")
            if mask is None:
                assert ref.mask is None
            item = load_rgbd_item(ref)
            _check_contract(item)
        else:
            assert ref.kind == "image" and ref.depth is None
    # the 16-bit depth PNGs are depth, not images; the masks and h5 files are not images
    assert not any(r.path.endswith(("kitchen_depth.png", "desk_depth.png")) for r in refs)
    assert report["ambiguous_depth_pair"] == 1 and "both.png" in report.details["ambiguous_depth_pair"][0]
    assert report["unpaired_depth_file"] == 3  # orphan_depth.npy, both_depth.npy, both.h5
    assert report["not_an_image_extension"] == 1  # notes.txt


def test_plain_images_discovered_like_files_discover(paired_folder):
    plain, _ = discover([str(paired_folder)])
    refs, _ = discover_rgbd([str(paired_folder)])
    ours = {r.path: r.id for r in refs}
    theirs = {r.path: r.id for r in plain}
    # every image we list has the id files.discover gives it, in the same order
    assert [p for p in theirs if p in ours] == list(ours)
    assert all(theirs[p] == ours[p] for p in ours)
    # files.discover lists the two 16-bit depth PNGs as images; we do not
    assert sorted(set(theirs) - set(ours)) == sorted(
        str(paired_folder / n) for n in ("kitchen_depth.png", "sub/desk_depth.png"))


def test_folder_without_depth_equals_files_discover(tmp_path):
    for i, name in enumerate(["a.png", "b.jpg", "c/d.png"]):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(_photo(seed=i)).save(tmp_path / name)
    assert discover_rgbd([str(tmp_path)])[0] == discover([str(tmp_path)])[0]


def test_single_file_input_is_paired(paired_folder):
    refs, _ = discover_rgbd([str(paired_folder / "kitchen.png"), str(paired_folder / "street.png")])
    assert [(r.id, r.kind) for r in refs] == [("kitchen.png", "rgbd"), ("street.png", "image")]


# ------------------------------------------------------------------ real samples


def test_shared_samples_discovered_and_loaded(shared_samples):
    h5py = pytest.importorskip("h5py")
    refs, _ = discover_rgbd([str(shared_samples)])
    kinds = {r.path.rsplit("/", 1)[1]: (r.kind, r.depth_format) for r in refs}
    assert kinds == {
        "RGB-D_img1.jpg": ("rgbd", "megadepth"),
        "RGB-D_img2.jpg": ("rgbd", "megadepth"),
        "RGB-D_img3.png": ("rgbd", "diode"),
        "RGB_img.png": ("image", None),
    }
    items = {r.path.rsplit("/", 1)[1]: load_rgbd_item(r) for r in refs if r.kind == "rgbd"}
    for it in items.values():
        _check_contract(it)

    diode = items["RGB-D_img3.png"]
    assert diode.rgb.shape == (768, 1024, 3) and diode.depth_kind == "metric"
    raw = np.load(shared_samples / "RGB-D_depth3.npy")[..., 0]
    mask = np.load(shared_samples / "RGB-D_depth_mask3.npy") > 0.5
    np.testing.assert_array_equal(diode.mask, mask & (raw > 0))
    assert diode.mask.mean() == pytest.approx(0.8934, abs=0.001)
    np.testing.assert_array_equal(diode.depth[diode.mask], raw[diode.mask])
    assert np.isnan(diode.depth[~mask]).all()  # masked pixels hold depth values in the file

    for name, n, shape, frac, top in (("RGB-D_img1.jpg", 1, (1064, 1600), 0.6618, 757.6),
                                      ("RGB-D_img2.jpg", 2, (1062, 1600), 0.0662, 21.05)):
        it = items[name]
        assert it.rgb.shape[:2] == shape and it.depth_kind == "relative" and it.intrinsics is None
        with h5py.File(shared_samples / f"RGB-D_depth{n}.h5") as fh:
            file_depth = fh["depth"][()]
        np.testing.assert_array_equal(it.mask, file_depth > 0)
        assert it.mask.mean() == pytest.approx(frac, abs=0.001)
        assert float(np.nanmax(it.depth)) == pytest.approx(top, rel=1e-3)


# ------------------------------------------------------------------ built-in Middlebury


def test_middlebury_builtin_metric_depth():
    from spatial_ssrl.sources.middlebury import builtin_rgbd

    (ref,) = builtin_rgbd()
    assert ref.kind == "rgbd" and ref.depth_format == "disparity"
    item = load_rgbd_item(ref)
    _check_contract(item)
    assert item.rgb.shape == (500, 741, 3) and item.depth_kind == "metric"
    assert item.mask.mean() == pytest.approx(0.9265, abs=0.001)  # inf = no ground truth
    lo, hi = float(np.nanmin(item.depth)), float(np.nanmax(item.depth))
    assert 1.8 < lo < 2.5 and 4.5 < hi < 5.5
    centre = float(np.nanmedian(item.depth[150:350, 250:500]))  # the motorcycle
    assert 2.0 < centre < 3.0
    fx, fy, cx, cy = item.intrinsics
    assert fx == pytest.approx(994.978, abs=1e-3) and cx == pytest.approx(311.193, abs=1e-3)
