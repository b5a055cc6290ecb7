"""The demo as a Hugging Face Space (or any machine): ``python app.py``.

A Space runs this file. It serves the same page as ``ssrl demo`` with the model named by the
``SSRL_DEMO_MODEL`` environment variable (a Hub id or a folder; default: the authors'
``internlm/Spatial-SSRL-7B``; ``none``: no model, the playground only) and, when
``SSRL_DEMO_DATA`` names a dataset folder, its rows in the playground. Host and port come
from Gradio's own variables, which a Space sets (``GRADIO_SERVER_NAME=0.0.0.0``,
``GRADIO_SERVER_PORT=7860``); elsewhere the page binds 127.0.0.1:7860. The Space needs
``spatial-ssrl[demo,train]`` in its requirements.txt and a GPU for the 7B model. See
docs/demo.md.
"""

from __future__ import annotations

import os

from spatial_ssrl.demo import build_app, launch

DEFAULT_MODEL = "internlm/Spatial-SSRL-7B"


def main() -> None:
    model = os.environ.get("SSRL_DEMO_MODEL", DEFAULT_MODEL).strip()
    if model.lower() in ("", "none"):
        model = None
    data = os.environ.get("SSRL_DEMO_DATA") or None
    host = os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    try:
        launch(build_app(model, data), host, port)  # SIGTERM (a Space stopping) ends it cleanly
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
