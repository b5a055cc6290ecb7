"""Optional dependencies of the training and evaluation tests."""

from __future__ import annotations

import importlib
import os

import pytest


def require(module: str):
    """Import ``module``; skip when it is missing, except under CI (``CI`` set), where a
    missing training dependency must fail the run rather than skip the tests."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def run_cli(*args, ok: bool = True):
    """Run ``ssrl ARGS`` in-process (paths may be Path objects); with ``ok``, assert exit 0."""
    from click.testing import CliRunner

    from spatial_ssrl.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result
