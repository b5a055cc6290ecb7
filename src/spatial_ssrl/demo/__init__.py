"""``ssrl demo``: a Gradio page to ask a model about images and to explore the pretext tasks.

:func:`build_app` makes the page (a ``gr.Blocks``); :func:`launch` serves it. Gradio comes
with the ``demo`` extra (``pip install 'spatial-ssrl[demo]'``); asking a model needs the
``train`` extra too (torch, transformers). Nothing here imports gradio until a page is built.
"""

from __future__ import annotations

from .files import (
    MAX_IMAGES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    DemoFiles,
    UploadError,
)


def build_app(model: str | None = None, data: str | None = None, **kwargs):
    """The demo page; see :func:`spatial_ssrl.demo.app.build_app`."""
    from .app import build_app as _build

    return _build(model, data, **kwargs)


def launch(app, host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = False):
    """Serve a page :func:`build_app` made; see :func:`spatial_ssrl.demo.app.launch`."""
    from .app import launch as _launch

    return _launch(app, host, port, block=block, quiet=quiet)


__all__ = ["MAX_IMAGES", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "DemoFiles", "UploadError", "build_app", "launch"]
