"""``ssrl demo``: serve the demo page. Every option is checked, in one line each, before a
model or the page loads."""

from __future__ import annotations

import errno
import importlib.util
import socket

import click

DEMO_EXTRA_HINT = "the demo needs gradio: pip install 'spatial-ssrl[demo]'"


def _check_address(host: str, port: int) -> None:
    """Refuse a host that does not resolve or a port already taken, before anything loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise click.BadParameter(f"{host!r} is not an address of this machine ({exc})", param_hint="--host") \
            from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.BadParameter(f"cannot listen on {host}:{port}: another program is using it; "
                                         "pick another --port", param_hint="--port") from None
            raise click.BadParameter(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                                     param_hint="--host") from None


@click.command("demo")
@click.option("--model", "-m", default=None, metavar="PATH|HUB_ID", envvar="SSRL_DEMO_MODEL", show_envvar=True,
              help="Checkpoint to ask: a local folder or a Hub id (e.g. internlm/Spatial-SSRL-7B). Without it "
                   "the playground works and the Ask tab explains how to pass one.")
@click.option("--data", "-d", default=None, type=click.Path(exists=True, file_okay=False), metavar="FOLDER",
              envvar="SSRL_DEMO_DATA", show_envvar=True,
              help="A dataset folder (any format ssrl generate writes): the playground can draw from the "
                   "source of any of its rows.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="GRADIO_SERVER_NAME", show_envvar=True,
              help="Address to listen on; 0.0.0.0 makes the page reachable from other machines.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535),
              envvar="GRADIO_SERVER_PORT", show_envvar=True, help="Port to listen on.")
def demo_command(model, data, host, port):
    """Serve a web page to ask a model about images and to explore every pretext task at
    every level (a Gradio app; needs the demo extra)."""
    if importlib.util.find_spec("gradio") is None:
        raise click.ClickException(DEMO_EXTRA_HINT)
    _check_address(host, port)
    if data is not None:
        from ..readers import DatasetError, open_dataset

        try:
            reader = open_dataset(data)
            if not reader.index():
                raise DatasetError(f"{data} holds no rows")
        except DatasetError as exc:
            raise click.BadParameter(str(exc), param_hint="--data") from None
    if model is not None:
        from .model import ModelLoadError, check_model

        try:
            check_model(model)
        except ModelLoadError as exc:
            raise click.BadParameter(str(exc), param_hint="--model") from None
        click.echo(f"loading {model} ...", err=True)
    from .app import build_app, launch, serve_until_stopped
    from .model import ModelLoadError

    try:
        app = build_app(model, data)
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        launch(app, host, port, block=False, quiet=True)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    anywhere = " (every address of this machine)" if host in ("0.0.0.0", "::") else ""
    click.echo(f"ssrl demo: serving on http://{shown}:{port}{anywhere}; Ctrl-C stops it", err=True)
    if serve_until_stopped(app):
        click.echo("ssrl demo: stopped", err=True)
