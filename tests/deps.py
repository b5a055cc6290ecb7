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
