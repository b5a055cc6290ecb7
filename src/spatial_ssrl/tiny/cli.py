"""``ssrl tiny-model``: write a tiny random Qwen-VL checkpoint for tests.

The command object is :data:`tiny_model_command`; the ``ssrl`` group registers it as
``tiny-model``. It prints one line: the folder and the parameter count.
"""

from __future__ import annotations

import importlib.util

import click

from spatial_ssrl.tiny.builder import ARCHES

_INSTALL_HINT = "pip install 'spatial-ssrl[train]'"
_NEEDED = ("torch", "torchvision", "transformers", "tokenizers")


def _missing_modules() -> list[str]:
    missing = []
    for name in _NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


@click.command("tiny-model")
@click.option("--arch", type=click.Choice(ARCHES), required=True, help="The architecture to instantiate.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, dir_okay=True),
    required=True,
    help="Folder to create (absent or empty).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Weight initialisation seed.")
def tiny_model_command(arch: str, out: str, seed: int) -> None:
    """Write a tiny, randomly initialised ARCH checkpoint (model, tokenizer, processor and
    chat template) that transformers loads like a Hub checkpoint, for fast pipeline tests."""
    missing = _missing_modules()
    if missing:
        raise click.ClickException(f"building a tiny model needs {', '.join(missing)}: {_INSTALL_HINT}")
    from spatial_ssrl.tiny.builder import build_tiny_model, count_parameters

    try:
        path = build_tiny_model(arch, out, seed=seed)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except ImportError as exc:
        name = getattr(exc, "name", None) or str(exc)
        raise click.ClickException(f"building a tiny model failed to import {name}: {_INSTALL_HINT}") from None
    except OSError as exc:
        raise click.ClickException(f"could not write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path} ({arch}, {count_parameters(path):,} parameters)")
