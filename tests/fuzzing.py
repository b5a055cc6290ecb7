"""Shared pieces of the fuzz tests: the skip-reason shape, and temporary folders for
hypothesis examples (it forbids function-scoped fixtures inside @given), removed when the
test module is done (import ``remove_tmpdirs`` into the module to enable that)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

REASON = re.compile(r"^[a-z][a-z0-9_]*$")
_CREATED: list[str] = []


def tmpdir(prefix: str) -> Path:
    d = tempfile.mkdtemp(prefix=prefix)
    _CREATED.append(d)
    return Path(d)


@pytest.fixture(scope="module", autouse=True)
def remove_tmpdirs():
    yield
    while _CREATED:
        shutil.rmtree(_CREATED.pop(), ignore_errors=True)
