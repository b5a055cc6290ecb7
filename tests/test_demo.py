"""``ssrl demo`` end to end: the page is served by the real command on 127.0.0.1 with a tiny
model, both tabs are driven through ``gradio_client`` (answers stream and parse as the
reward reads them; playground draws are re-derived by ``ssrl validate``'s code from their
images and sources), the page is loaded in headless chromium (both tabs render without
console errors; bad uploads get a message in the page), and stopping the server leaves
nothing behind outside the demo's own temporary folder.

Needs the demo extra (gradio, gradio_client), the train extra (the tiny model), playwright
and Debian's chromium (``.ci/run`` installs it); each is skipped where absent locally and
required under CI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

import pytest
from deps import require, run_cli

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------ helpers


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A few dozen bytes whose PNG header declares ``width`` x ``height`` RGB pixels (the
    data is nowhere near complete: a decoder that trusted the header would allocate it all)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        _chunk(b"IEND", b"")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        raise AssertionError("chromium is missing: .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def artifact_dir() -> Path:
    path = Path(os.environ.get("SSRL_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "ssrl-test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for_server(proc: subprocess.Popen, log: Path, url: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the demo did not answer at {url} in {timeout} s:\n{log.read_text()}")


def clean_env(home: Path, tmp: Path) -> dict:
    """The environment of a served demo: its own HOME and TMPDIR (so what it writes there can
    be seen), none of the variables that would send its caches elsewhere."""
    env = dict(os.environ)
    for name in ("GRADIO_TEMP_DIR", "MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR",
                 "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SSRL_DEMO_MODEL", "SSRL_DEMO_DATA"):
        env.pop(name, None)
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONUSERBASE=site.getuserbase(),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def photos() -> Path:
    import skimage

    return Path(skimage.data_dir)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    require("torch")
    require("transformers")
    out = tmp_path_factory.mktemp("demo-model") / "tiny"
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", out)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny, builtin_dataset):
    """``ssrl demo --model TINY --data DATASET --port P`` in a process of its own, in an empty
    working folder with an empty HOME and TMPDIR."""
    require("gradio")
    require("gradio_client")
    root = tmp_path_factory.mktemp("demo-server")
    home, tmp, cwd = root / "home", root / "tmp", root / "cwd"
    for p in (home, tmp, cwd):
        p.mkdir()
    port = free_port()
    log = root / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spatial_ssrl.cli", "demo", "--model", str(tiny), "--data", str(builtin_dataset),
             "--port", str(port)], cwd=cwd, env=clean_env(home, tmp), stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(proc, log, url)
        yield {"url": url, "proc": proc, "log": log, "home": home, "tmp": tmp, "cwd": cwd, "root": root,
               "tiny": tiny, "data": builtin_dataset}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server["url"], verbose=False, download_files=str(tmp_path / "downloads"))


# ------------------------------------------------------------------------ Ask the model


def test_ask_streams_the_models_own_answer_and_parses_it(server, client, photos):
    """The streamed text grows piece by piece and ends as the greedy answer the same model
    gives through ``ssrl infer``'s backend; the answer field is the reward parser's reading."""
    from gradio_client import handle_file
    from PIL import Image

    from spatial_ssrl.backends.transformers_backend import Item, generate
    from spatial_ssrl.models import load_model, load_processor
    from spatial_ssrl.prompts import with_format_suffix
    from spatial_ssrl.reward import parse_response

    image = photos / "chelsea.png"
    question = "Which is closer to the camera, the cat's nose or its ear?"
    job = client.submit([handle_file(str(image))], question, True, 24, 0.0, api_name="/ask")
    updates = list(job)
    status, answer, reasoning, response = job.result()
    assert reasoning == ""  # no think block in the tiny model's noise (splitting: the test below)
    assert len(updates) > 2 and all(u[0] == "answering..." for u in updates[:-1])
    assert [len(u[3]) for u in updates] == sorted(len(u[3]) for u in updates)  # it only grows
    assert status.startswith("done; format:")

    model, processor = load_model(str(server["tiny"]), training=False), load_processor(str(server["tiny"]))
    with Image.open(image) as im:
        expected = generate(model, processor, [Item(with_format_suffix("<image>" + question), [im.convert("RGB")])],
                            max_new_tokens=24)[0]
    assert response == expected
    parsed = parse_response(response)
    assert answer == (parsed.final_box if parsed.final_box is not None
                      else f"none ({parsed.box_problem or parsed.region_reason or 'no_box'})")
    assert ("format: ok" in status) == parsed.format_ok


def test_a_visitor_who_leaves_stops_the_generation(tiny, photos):
    """Closing the stream (the page gone) ends ``model.generate`` at its next token, before
    another answer may start, instead of running to max_new_tokens."""
    import threading

    from PIL import Image

    from spatial_ssrl.demo.model import ModelRunner

    runner = ModelRunner(str(tiny))
    with Image.open(photos / "coffee.png") as im:
        stream = runner.stream("<image>Describe the scene.", [im.convert("RGB")], max_new_tokens=4096)  # about 12 s to the end here
    first = next(stream)
    assert isinstance(first, str)
    t0 = time.perf_counter()
    stream.close()
    assert time.perf_counter() - t0 < 3
    assert not [t for t in threading.enumerate() if t.name == "ssrl-demo-generate"]
    assert runner._lock.acquire(timeout=1)  # the next visitor is not kept waiting
    runner._lock.release()


def test_reasoning_is_folded_apart_from_the_boxed_answer():
    """How the page splits a response (the tiny model's text is noise, so a written one)."""
    require("gradio")
    from spatial_ssrl.demo.app import parsed_answer
    from spatial_ssrl.demo.model import split_response

    done = "<think>The mug hides part of the plate, so it is nearer.</think> So: \\boxed{B}"
    assert split_response(done) == ("The mug hides part of the plate, so it is nearer.", "So: \\boxed{B}")
    assert parsed_answer(done) == "B"
    assert split_response("<think>still thinking") == ("still thinking", "")  # mid-stream
    assert parsed_answer("<think>still thinking") == "none (unclosed_think)"
    assert split_response("\\boxed{3-0}") == ("", "\\boxed{3-0}")
    assert parsed_answer("<think>\\boxed{A}</think> no box") == "none (box_inside_think)"


def test_bad_questions_and_uploads_get_a_message(client, tmp_path):
    from gradio_client import handle_file

    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(30000, 30000))  # 900 MP: past Pillow's own guard
    big = tmp_path / "big.png"
    big.write_bytes(png_declaring(8000, 8000))  # 64 MP: past ours (40 MP), under Pillow's
    cases = [
        ([], "", "type a question first"),
        ([handle_file(str(text))], "What is this?", "notes.png: not an image"),
        ([handle_file(str(bomb))], "What is this?", "decompression bomb"),
        ([handle_file(str(big))], "What is this?", "8000x8000"),
        ([handle_file(str(text))], "<image><image> compare them", "2 <image> placeholder(s) but 1 image"),
    ]
    for files, question, message in cases:
        status, answer, reasoning, response = client.predict(files, question, True, 16, 0.0, api_name="/ask")
        assert message in status and status.startswith("⚠️"), (message, status)
        assert answer == reasoning == response == ""


def test_upload_limits(tmp_path):
    """The bytes bound (Gradio refuses larger uploads before they reach us; this is ours)."""
    from spatial_ssrl.demo.files import MAX_UPLOAD_BYTES, UploadError, check_image_file

    big = tmp_path / "huge.png"
    with open(big, "wb") as fh:
        fh.write(png_declaring(640, 480))
        fh.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(UploadError, match="larger than the 20 MiB"):
        check_image_file(str(big))
    small = tmp_path / "small.png"
    small.write_bytes(png_declaring(8, 8))
    with pytest.raises(UploadError, match="smaller than 16 px"):
        check_image_file(str(small))


# ------------------------------------------------------------------------ Pretext playground

BUILTIN = {  # a task, one of its levels and a built-in input it takes
    "shuffle": ("paper", "astronaut.png (photo)"),
    "flip": ("3x3", "coffee.png (photo)"),
    "crop": ("4-options", "chelsea.png (photo)"),
    "depth": ("3-regions", "procedural scene 2 (RGB-D)"),
    "position": ("auto", "motorcycle_left.png (RGB-D, Middlebury)"),
    "rotation": ("patch-2x2", "rocket.jpg (photo)"),
    "distance": ("pair", "procedural scene 5 (RGB-D)"),
    "temporal": ("4-frames", "procedural scene 1 (RGB-D)"),
    "camera_motion": ("single-large", "procedural scene 3 (RGB-D)"),
    "correspondence": ("4-candidates-far", "motorcycle_left.png (RGB-D, Middlebury)"),
    "counting": ("distractors", "coffee.png (photo)"),
}


def revalidate(draw_output) -> dict:
    """``ssrl validate``'s verdict on a draw: the images as the page handed them out, the
    record from the page's sample JSON, the source re-read from disk by the validator."""
    from spatial_ssrl.checks import AmbiguityThresholds
    from spatial_ssrl.readers import Record
    from spatial_ssrl.sources import LoadOptions
    from spatial_ssrl.validate.common import SourceCache
    from spatial_ssrl.validate.runner import validate_record

    gallery, question, rec = draw_output[1], draw_output[2], draw_output[6]
    images = [Path(g["image"]).read_bytes() for g in gallery]
    record = Record(id=rec["id"], task=rec["task"], variant=rec["variant"], problem=question, answer=rec["answer"],
                    answer_type=rec["answer_type"], options=rec["options"], source=rec["source"],
                    depth_source=rec["depth_source"], meta=json.dumps(rec["meta"]), images=images,
                    image_names=rec["image_names"], image_errors=[None] * len(images))
    return validate_record(record, SourceCache(LoadOptions(min_side=0)), AmbiguityThresholds(), "canonical")


def test_every_task_draws_a_sample_that_validate_re_derives(client):
    from spatial_ssrl.tasks import available_tasks

    assert set(BUILTIN) <= set(available_tasks())
    for task, (level, source) in BUILTIN.items():
        out = client.predict(task, level, "built-in input", source, None, 0, 7, api_name="/draw")
        status, gallery, question, options, answer, seed, rec = out[:7]
        assert gallery, (task, status)
        assert seed == 7 and rec["seed"] == 7 and rec["task"] == task and rec["level"] == level
        assert question.count("<image>") == len(gallery) == len(rec["image_names"])
        assert answer.startswith(rec["answer"]) and rec["answer"]
        if rec["options"]:
            assert options.splitlines() == rec["options"]
        verdict = revalidate(out)
        assert verdict["status"] == "passed", (task, verdict)
        assert verdict["derived"] == rec["answer"]


def test_another_draw_and_the_seed(client):
    args = ("crop", "3-options", "built-in input", "coffee.png (photo)", None, 0)
    first = client.predict(*args, 11, api_name="/draw")
    again = client.predict(*args, 11, api_name="/draw")
    assert first[6] == again[6]  # the same input, task, level and seed: the same sample
    nxt = client.predict(*args, 11, api_name="/another_draw")
    assert nxt[5] == 12 and nxt[6]["seed"] == 12
    assert nxt[6] == client.predict(*args, 12, api_name="/draw")[6]
    assert revalidate(nxt)["status"] == "passed"


def test_a_draw_from_an_upload_and_from_a_dataset_row(client, tmp_path, photos):
    from gradio_client import handle_file

    mine = tmp_path / "my photo.png"
    shutil.copy(photos / "coffee.png", mine)
    out = client.predict("shuffle", "2x2", "upload", None, handle_file(str(mine)), 0, 3, api_name="/draw")
    assert out[1] and "upload my photo.png" in out[0], out[0]
    assert revalidate(out)["status"] == "passed"

    out = client.predict("flip", "2x2", "dataset row", None, None, 5, 3, api_name="/draw")
    assert out[1] and "row 5" in out[0], out[0]
    assert revalidate(out)["status"] == "passed"
    # a task the input cannot serve, a row out of range, a bomb: a line, no sample
    for args, message in [
        (("depth", "3-regions", "upload", None, handle_file(str(mine)), 0, 3), "depth needs"),
        (("flip", "2x2", "dataset row", None, None, 10_000, 3), "row must be a whole number"),
        (("flip", "2x2", "built-in input", "nowhere.png", None, 0, 3), "no built-in input"),
        (("flip", "no-such-level", "built-in input", "coffee.png (photo)", None, 0, 3), "no difficulty level"),
    ]:
        out = client.predict(*args, api_name="/draw")
        assert message in out[0] and out[1] == [], (message, out[0])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(30000, 30000))
    out = client.predict("flip", "2x2", "upload", None, handle_file(str(bomb)), 0, 3, api_name="/draw")
    assert "decompression bomb" in out[0] and out[1] == []


def test_ask_the_model_on_a_sample_is_scored_by_the_reward(client):
    from spatial_ssrl.demo.app import parsed_answer
    from spatial_ssrl.reward import score

    out = client.predict("depth", "3-regions", "built-in input", "procedural scene 2 (RGB-D)", None, 0, 1,
                         api_name="/draw")
    rec = out[6]
    status, answer, response = client.predict(True, 24, 0.0, api_name="/ask_sample")
    r = score(response, rec["answer"], rec["answer_type"], options=rec["options"])
    assert answer == parsed_answer(response)
    assert status.startswith(f"reward {r['overall']:.2f} (accuracy {r['accuracy']:.2f}")
    assert f"truth {rec['answer']}" in status


# ------------------------------------------------------------------------ the page in a browser


def test_the_page_renders_in_chromium_and_shows_messages(server, tmp_path, photos, record_property):
    executable = chromium_path()
    sync_api = require("playwright.sync_api")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(30000, 30000))
    shots = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(120_000)  # a loaded CI machine is slow; a broken page still fails
        problems: list[str] = []
        try:
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(server["url"])  # not "networkidle": the page keeps a stream open
            page.get_by_role("tab", name="Ask the model").wait_for()
            page.locator("#ask-button").wait_for()
            status = page.locator("#ask-status")

            def ask(question: str, upload: Path | None, expected: str) -> None:
                files = page.locator("#ask-images input[type=file]")
                if upload is not None:
                    files.set_input_files(str(upload))
                    page.locator("#ask-images").get_by_text(upload.name).first.wait_for()
                page.locator("#ask-question textarea").fill(question)
                page.locator("#ask-button").click()
                page.wait_for_function("([sel, text]) => document.querySelector(sel)?.innerText.includes(text)",
                                       arg=["#ask-status", expected])

            ask("", None, "type a question first")
            ask("What is this?", text, "not an image")
            page.locator("#ask-images button[aria-label='Clear']").first.click()
            ask("What is this?", bomb, "decompression bomb")
            assert "Traceback" not in page.content()
            shots.append(tmp_path / "demo-ask.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            assert "decompression bomb" in status.inner_text()

            page.get_by_role("tab", name="Pretext playground").click()
            page.locator("#pg-draw").click()
            page.locator("#pg-images img").first.wait_for()
            page.wait_for_function("() => document.querySelector('#pg-question textarea')?.value.includes('<image>')")
            assert "shuffle/" in page.locator("#pg-status").inner_text()
            shots.append(tmp_path / "demo-playground.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            page.locator("#pg-mode").get_by_text("upload").click()  # the upload box appears
            page.locator("#pg-upload input[type=file]").set_input_files(str(bomb))
            page.locator("#pg-upload").get_by_text(bomb.name).first.wait_for()
            page.locator("#pg-draw").click()
            page.wait_for_function("() => document.querySelector('#pg-status')?.innerText.includes('bomb')")
            assert page.locator("#pg-images img").count() == 0
            assert problems == [], problems
        except Exception:
            failed = artifact_dir() / "demo-failure.png"
            page.screenshot(path=str(failed), full_page=True)
            print(f"the page when the test failed: {failed}; console: {problems}")
            raise
        finally:
            browser.close()
    kept = artifact_dir()
    for shot in shots:
        assert shot.stat().st_size > 10_000
        shutil.copy(shot, kept / shot.name)
    print(f"screenshots: {', '.join(str(kept / s.name) for s in shots)}")
    record_property("screenshots", [str(kept / s.name) for s in shots])


# ------------------------------------------------------------------------ stopping


def test_ctrl_c_stops_it_and_nothing_is_left_outside_its_temp_folder(server):
    """Run last in this module: it stops the server."""
    proc = server["proc"]
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    log = server["log"].read_text()
    assert "serving on http://127.0.0.1:" in log and "interrupted" in log
    assert "Traceback" not in log, log
    assert files_under(server["cwd"]) == []
    assert files_under(server["tmp"]) == []  # the demo's folder (uploads, draws, caches) is gone
    assert files_under(server["home"]) == []


# ------------------------------------------------------------------------ the command and app.py


def test_the_command_refuses_bad_input_in_one_line(tmp_path, monkeypatch):
    require("gradio")
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SSRL_DEMO_MODEL", "SSRL_DEMO_DATA"):
        monkeypatch.delenv(name, raising=False)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    empty = tmp_path / "empty"
    empty.mkdir()
    try:
        cases = [
            (["--port", "0"], "Invalid value for '--port'"),
            (["--port", str(taken.getsockname()[1])], "another program is using it"),
            (["--host", "no-such-host.invalid"], "not an address of this machine"),
            (["--data", str(tmp_path / "missing")], "does not exist"),
            (["--data", str(empty)], "holds no dataset"),
            (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1"),  # TEST-NET-1: no machine's own address
            (["--model", str(tmp_path / "nowhere" / "model")], "does not exist"),
            (["--model", str(empty)], "has no config.json"),
        ]
        for args, message in cases:
            result = run_cli("demo", *args, ok=False)
            assert result.exit_code != 0 and message in result.output, (args, result.output)
            assert "Traceback" not in result.output
            assert [line for line in result.output.splitlines() if line.startswith("Error:")] == \
                [line for line in result.output.splitlines() if line.strip() and not line.startswith(("Usage:", "Try "))]
    finally:
        taken.close()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    result = run_cli("demo", ok=False)
    assert result.exit_code == 1 and "pip install 'spatial-ssrl[demo]'" in result.output


def test_app_py_serves_the_page_as_a_space_does(tmp_path):
    """The Space's entry point with its environment: no model (the Ask tab says how to pass
    one), host and port from Gradio's variables; SIGTERM stops it and cleans up."""
    require("gradio")
    from gradio_client import Client

    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    port = free_port()
    env = clean_env(home, tmp)
    env.update(SSRL_DEMO_MODEL="none", GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])))
    log = tmp_path / "app.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=tmp_path, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_server(proc, log, f"http://127.0.0.1:{port}/")
        c = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "dl"))
        status = c.predict([], "Which is nearer?", True, 16, 0.0, api_name="/ask")[0]
        assert "no model is loaded" in status
        out = c.predict("rotation", "4-way", "built-in input", "rocket.jpg (photo)", None, 0, 2, api_name="/draw")
        assert out[1] and revalidate(out)["status"] == "passed"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    assert files_under(tmp) == [] and files_under(home) == []
