"""The demo page: two tabs in one ``gr.Blocks``.

- **Ask the model**: images and a question in, the answer streamed out, the reasoning folded
  apart from the boxed answer, and the answer as the reward's parser reads it.
- **Pretext playground**: a task, a difficulty level and an input in; the generated
  question, images, options, answer and seed out, with "another draw", and the loaded model
  asked on the sample and scored with the reward.

Every handler turns a problem into a line in the page (``status`` outputs), never a
traceback. Each event has an ``api_name``, so ``gradio_client`` drives the page as a
visitor does.
"""

from __future__ import annotations

import functools
import logging

from ..prompts import IMAGE_TOKEN, with_format_suffix
from ..reward import parse_response, score
from .draw import DrawError, Inputs, default_level, draw, level_names, task_names
from .files import (
    MAX_IMAGES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    DemoFiles,
    UploadError,
    open_image,
    upload_name,
)
from .model import ModelRunner, split_response

log = logging.getLogger(__name__)

TITLE = "Spatial-SSRL demo"
INPUT_BUILTIN, INPUT_UPLOAD, INPUT_ROW = "built-in input", "upload", "dataset row"

NO_MODEL_TEXT = (
    "**No model is loaded.** Start the demo with one to ask it questions here and in the playground:\n\n"
    "```\nssrl demo --model internlm/Spatial-SSRL-7B      # a Hub id\n"
    "ssrl demo --model runs/my-grpo/final            # or a local checkpoint folder\n```\n\n"
    "Running a model needs torch and transformers: `pip install 'spatial-ssrl[demo,train]'`."
)

EXAMPLES = [
    ("Which object is closer to the camera: the one on the left or the one on the right? "
     "A. the left one B. the right one"),
    "From the camera's viewpoint, is the chair to the left or to the right of the table?",
    "If you walked forward through the doorway, what would be on your right?",
    "How many metres apart are the two people, roughly?",
    "Is the lamp above or below the painting? A. above B. below",
]

WARN = "⚠️ "


def _guard(fn, n_out: int):
    """Any unexpected failure in a handler becomes one line in the page (the handler's
    first output is its status; the others are left as they are); the traceback goes to the
    server's log only."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args):
        try:
            return fn(*args)
        except Exception as exc:
            log.exception("demo handler %s failed", fn.__name__)
            return (f"{WARN}{type(exc).__name__}: {exc}",) + tuple(gr.skip() for _ in range(n_out - 1))
    return wrapped


def _guard_stream(fn, n_out: int):
    """:func:`_guard` for generators: what was shown stays, the failure is added as a line."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args):
        try:
            yield from fn(*args)
        except Exception as exc:
            log.exception("demo handler %s failed", fn.__name__)
            yield (f"{WARN}{type(exc).__name__}: {exc}",) + tuple(gr.skip() for _ in range(n_out - 1))
    return wrapped


def _limits_text() -> str:
    return (f"Uploads: up to {MAX_IMAGES} images, {MAX_UPLOAD_BYTES // 2**20} MiB and "
            f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels each.")


def _question_and_images(paths, question: str):
    """The full question (``<image>`` placeholders in place) and the decoded images, or
    UploadError for the page."""
    paths = [p for p in (paths or []) if p]
    if len(paths) > MAX_IMAGES:
        raise UploadError(f"{len(paths)} images: this demo takes at most {MAX_IMAGES} per question")
    question = (question or "").strip()
    if not question:
        raise UploadError("type a question first")
    n = question.count(IMAGE_TOKEN)
    if n == 0:
        question = IMAGE_TOKEN * len(paths) + question
    elif n != len(paths):
        raise UploadError(f"the question has {n} {IMAGE_TOKEN} placeholder(s) but {len(paths)} image(s) were given")
    images = [open_image(p, upload_name(p)) for p in paths]
    return question, images


def parsed_answer(response: str) -> str:
    """The final box of the answer region as the reward's parser reads it, or why none."""
    parsed = parse_response(response)
    if parsed.final_box is not None:
        return parsed.final_box
    return f"none ({parsed.box_problem or parsed.region_reason or 'no_box'})"


def _format_line(response: str) -> str:
    parsed = parse_response(response)
    return "format: ok" if parsed.format_ok else f"format: not ok ({parsed.format_reason})"


def build_app(model: str | None = None, data: str | None = None, *, runner: ModelRunner | None = None,
              files: DemoFiles | None = None):
    """The demo as a ``gr.Blocks``. ``model``: a checkpoint folder or Hub id to load (or an
    already loaded ``runner``); ``data``: a dataset folder whose rows the playground offers.
    The app's temporary folder (``files``; made here when not given) holds Gradio's upload
    cache, the playground's images and library caches (:meth:`DemoFiles.claim_environment`). ``app.ssrl_files``
    is that folder; ``launch`` removes it when the server stops."""
    own = files is None
    files = files or DemoFiles()
    files.claim_environment()  # before gradio makes a component and before a model loads
    try:
        if runner is None and model is not None:
            runner = ModelRunner(model)
        return _make(files, runner, Inputs(files, data), data)
    except BaseException:
        if own:
            files.cleanup()
        raise


def _make(files: DemoFiles, runner: ModelRunner | None, inputs: Inputs, data: str | None):
    import gradio as gr

    tasks = task_names()
    first_task = "shuffle" if "shuffle" in tasks else tasks[0]
    input_modes = [INPUT_BUILTIN, INPUT_UPLOAD] + ([INPUT_ROW] if inputs.reader is not None else [])

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\nSelf-supervised spatial pretext tasks and the models trained on them. "
                    + (f"Model: `{runner.name}`." if runner else "No model loaded."))
        with gr.Tabs():
            with gr.Tab("Ask the model", id="ask"):
                if runner is None:
                    gr.Markdown(NO_MODEL_TEXT, elem_id="no-model")
                with gr.Row():
                    with gr.Column():
                        ask_files = gr.File(label="Images", file_count="multiple", type="filepath",
                                            elem_id="ask-images")
                        gr.Markdown(_limits_text())
                        ask_question = gr.Textbox(label="Question", lines=3, elem_id="ask-question",
                                                  placeholder="Ask about the images; <image> marks where each goes "
                                                              "(all first when the question has none)")
                        gr.Examples([[q] for q in EXAMPLES], inputs=[ask_question],
                                    label="Questions in the style of spatial benchmarks")
                        suffix = gr.Checkbox(value=True, label="Add the format suffix used in training "
                                                               "(think in <think></think>, answer in \\boxed{})")
                        with gr.Row():
                            max_new = gr.Slider(16, 4096, value=1024, step=16, label="Max new tokens")
                            temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05,
                                                    label="Temperature (0: greedy)")
                        ask_button = gr.Button("Ask", variant="primary", elem_id="ask-button")
                    with gr.Column():
                        ask_status = gr.Markdown(elem_id="ask-status")
                        ask_answer = gr.Textbox(label="Answer: the final \\boxed{} as the reward's parser reads it",
                                                elem_id="ask-answer")
                        with gr.Accordion("Reasoning", open=False):
                            ask_reasoning = gr.Textbox(show_label=False, lines=8, elem_id="ask-reasoning")
                        ask_response = gr.Textbox(label="Full response", lines=8, elem_id="ask-response")

            with gr.Tab("Pretext playground", id="playground"):
                gr.Markdown("Draw a sample of any pretext task at any difficulty level, as `ssrl generate` "
                            "makes it. The same input, task, level and seed give the same sample.")
                with gr.Row():
                    with gr.Column(scale=1):
                        pg_task = gr.Dropdown(tasks, value=first_task, label="Task", elem_id="pg-task")
                        pg_level = gr.Dropdown(level_names(first_task), value=default_level(first_task),
                                               label="Difficulty level (easiest first)", elem_id="pg-level",
                                               allow_custom_value=True)  # checked by the draw itself
                        pg_mode = gr.Radio(input_modes, value=INPUT_BUILTIN, label="Input", elem_id="pg-mode")
                        builtin = inputs.builtin_for(first_task)
                        pg_builtin = gr.Dropdown(builtin, value=builtin[0] if builtin else None,
                                                 label="Built-in input (those this task takes)", elem_id="pg-builtin",
                                                 allow_custom_value=True)
                        pg_upload = gr.File(label="Your image", file_count="single", type="filepath",
                                            elem_id="pg-upload", visible=False)
                        pg_row = gr.Number(value=0, precision=0, minimum=0, visible=False,
                                           label=f"Row of {data} (0 to {max(0, inputs.rows - 1)})",
                                           elem_id="pg-row")
                        pg_seed = gr.Number(value=0, precision=0, label="Seed", elem_id="pg-seed")
                        with gr.Row():
                            draw_button = gr.Button("Draw", variant="primary", elem_id="pg-draw")
                            again_button = gr.Button("Another draw", elem_id="pg-again")
                    with gr.Column(scale=2):
                        pg_status = gr.Markdown(elem_id="pg-status")
                        pg_images = gr.Gallery(label="Images", columns=3, height="auto", elem_id="pg-images")
                        pg_question = gr.Textbox(label="Question", lines=4, elem_id="pg-question")
                        pg_options = gr.Textbox(label="Options", lines=2, elem_id="pg-options")
                        pg_answer = gr.Textbox(label="Answer", elem_id="pg-answer")
                        with gr.Accordion("Sample record (what a dataset row stores, images aside)", open=False):
                            pg_record = gr.JSON(elem_id="pg-record")
                        gr.Markdown("Asking uses the decoding options of the *Ask the model* tab.")
                        pg_ask = gr.Button("Ask the model on this sample", elem_id="pg-ask")
                        pg_ask_status = gr.Markdown(elem_id="pg-ask-status")
                        pg_ask_answer = gr.Textbox(label="Model's answer (parsed)", elem_id="pg-ask-answer")
                        pg_ask_response = gr.Textbox(label="Model's response", lines=6, elem_id="pg-ask-response")
                sample_state = gr.State(None)

        # -- Ask the model -----------------------------------------------------------------
        def ask(paths, question, add_suffix, max_new_tokens, temp):
            if runner is None:
                yield WARN + "no model is loaded: start the demo with --model (see above)", "", "", ""
                return
            try:
                full, images = _question_and_images(paths, question)
            except UploadError as exc:
                yield f"{WARN}{exc}", "", "", ""
                return
            text = with_format_suffix(full) if add_suffix else full
            response = ""
            for response in runner.stream(text, images, int(max_new_tokens), float(temp)):
                reasoning, _ = split_response(response)
                yield "answering...", parsed_answer(response), reasoning, response
            reasoning, _ = split_response(response)
            yield f"done; {_format_line(response)}", parsed_answer(response), reasoning, response
        ask_button.click(_guard_stream(ask, 4), [ask_files, ask_question, suffix, max_new, temperature],
                         [ask_status, ask_answer, ask_reasoning, ask_response], api_name="ask")

        # -- Pretext playground --------------------------------------------------------------
        def task_changed(task, mode):
            levels = level_names(task)
            choices = inputs.builtin_for(task)
            note = "" if choices else f"{WARN}no built-in input suits {task}"
            return (note, gr.update(choices=levels, value=default_level(task)),
                    gr.update(choices=choices, value=choices[0] if choices else None))
        pg_task.change(_guard(task_changed, 3), [pg_task, pg_mode], [pg_status, pg_level, pg_builtin],
                       api_name="task_changed")

        def mode_changed(mode):
            return (gr.update(visible=mode == INPUT_BUILTIN), gr.update(visible=mode == INPUT_UPLOAD),
                    gr.update(visible=mode == INPUT_ROW))

        pg_mode.change(mode_changed, [pg_mode], [pg_builtin, pg_upload, pg_row], api_visibility="private")

        empty = ([], "", "", "", None, None)

        def make_draw(task, level, mode, label, upload, row, seed):
            try:
                seed = int(seed or 0)
                if mode == INPUT_UPLOAD:
                    item, shown, notes = inputs.load_upload(upload, task)
                elif mode == INPUT_ROW:
                    item, shown, notes = inputs.load_row(row, task)
                else:
                    item, shown, notes = inputs.load_builtin(label, task)
                d = draw(item, shown, task, level, seed, files, notes)
            except DrawError as exc:
                return (f"{WARN}{exc}", *empty[:4], seed, *empty[4:])
            s = d.sample
            captions = [f"image {i + 1}" for i in range(len(d.image_paths))]
            options = "\n".join(s.options or []) or "(none: the answer is written out)"
            status = f"{s.task}/{s.variant} (level {level}) from {shown}, seed {seed}" + \
                "".join(f"\n\n{n}" for n in d.notes)
            state = {"problem": s.problem, "answer": s.answer, "answer_type": s.answer_type,
                     "options": s.options, "images": d.image_paths}
            return (status, list(zip(d.image_paths, captions)), s.problem, options,
                    f"{s.answer}  ({s.answer_type})", seed, d.record(), state)

        def another_draw(task, level, mode, label, upload, row, seed):
            return make_draw(task, level, mode, label, upload, row, int(seed or 0) + 1)

        draw_inputs = [pg_task, pg_level, pg_mode, pg_builtin, pg_upload, pg_row, pg_seed]
        draw_outputs = [pg_status, pg_images, pg_question, pg_options, pg_answer, pg_seed, pg_record, sample_state]
        draw_button.click(_guard(make_draw, len(draw_outputs)), draw_inputs, draw_outputs, api_name="draw")
        again_button.click(_guard(another_draw, len(draw_outputs)), draw_inputs, draw_outputs, api_name="another_draw")

        def ask_sample(state, add_suffix, max_new_tokens, temp):
            if runner is None:
                yield WARN + "no model is loaded: start the demo with --model", "", ""
                return
            if not state:
                yield WARN + "draw a sample first", "", ""
                return
            images = [open_image(p) for p in state["images"]]
            text = with_format_suffix(state["problem"]) if add_suffix else state["problem"]
            response = ""
            for response in runner.stream(text, images, int(max_new_tokens), float(temp)):
                yield "answering...", parsed_answer(response), response
            r = score(response, state["answer"], state["answer_type"], options=state["options"])
            line = (f"reward {r['overall']:.2f} (accuracy {r['accuracy']:.2f}, format {r['format']:.0f}); "
                    f"truth {r['answer']}, read as {r['prediction']}"
                    + (f"; {r['reason']}" if r["reason"] else "")
                    + (f"; format: {r['format_reason']}" if r["format_reason"] else ""))
            yield line, parsed_answer(response), response
        pg_ask.click(_guard_stream(ask_sample, 3), [sample_state, suffix, max_new, temperature],
                     [pg_ask_status, pg_ask_answer, pg_ask_response], api_name="ask_sample")

    app.ssrl_files = files
    app.ssrl_runner = runner
    return app


def theme():
    """Gradio's default look with system fonts (the default theme fetches web fonts, which a
    machine without internet access cannot reach)."""
    import gradio as gr

    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


def launch(app, host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = False):
    """Serve ``app`` on ``host``:``port`` (uploads bounded, nothing kept in the browser's run
    history). With ``block``, serve until stopped (:func:`serve_until_stopped`); without,
    return once the server is up. The app's temporary folder goes when the server stops."""
    files: DemoFiles | None = getattr(app, "ssrl_files", None)
    app.queue(default_concurrency_limit=1)
    try:
        app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=quiet, theme=theme(),
                   max_file_size=MAX_UPLOAD_BYTES, run_history=False, show_error=False, share=False,
                   allowed_paths=[files.root] if files else None, footer_links=["api", "settings"])
    except BaseException:
        if files:
            files.cleanup()
        raise
    if block:
        serve_until_stopped(app)
    return app


class _Stop(Exception):
    """SIGTERM: stop serving, as a service manager or a Space's runtime asks."""


def serve_until_stopped(app) -> bool:
    """Wait while ``app`` serves. SIGTERM stops it (returns True); Ctrl-C stops it and the
    KeyboardInterrupt goes on to the caller. Either way the server is closed and the app's
    temporary folder removed first."""
    import signal
    import threading
    import time

    def on_term(signum, frame):
        raise _Stop

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while app.is_running:
            time.sleep(0.2)
        return False
    except _Stop:
        return True
    finally:
        app.close()
        files = getattr(app, "ssrl_files", None)
        if files:
            files.cleanup()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
