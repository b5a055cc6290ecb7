"""Shared fixtures. The ``../shared`` fixtures are optional: tests that need them skip
when the folder is absent (a fresh clone elsewhere has no ``../shared``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO.parent / "shared" / "fixtures" / "spatial-ssrl-samples"


@pytest.fixture(scope="session")
def shared_samples() -> Path:
    if not SHARED_SAMPLES.is_dir():
        pytest.skip("../shared/fixtures/spatial-ssrl-samples is not present")
    return SHARED_SAMPLES


@pytest.fixture(scope="session")
def builtin_dataset(tmp_path_factory) -> Path:
    """A small canonical dataset from the built-in photos (all depth-free tasks)."""
    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
    from spatial_ssrl.sources import builtin_photos

    out = tmp_path_factory.mktemp("builtin-canonical")
    run_generation(builtin_photos(), str(out), GenerateConfig(num=48, seed=7, mix=parse_mix(None), workers=1))
    return out


def pytest_configure(config):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The Ctrl-C tests interrupt this process and the commands it starts, as a terminal
    # would. A suite started in the background by a script (``cmd &``) finds SIGINT
    # ignored, and an ignored signal stays ignored in every process started from it: put
    # Python's handler back, so the tests see what someone at a terminal sees.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
