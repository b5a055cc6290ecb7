"""The run engine: plan which source each sample comes from, execute the plan on a local
worker pool, stream samples to a writer in a deterministic order, write the manifest."""

from .mix import MixEntry, MixError, allocate, default_mix, parse_mix
from .run import GenerateConfig, RunResult, StrictModeError, run_generation

__all__ = [
    "GenerateConfig",
    "MixEntry",
    "MixError",
    "RunResult",
    "StrictModeError",
    "allocate",
    "default_mix",
    "parse_mix",
    "run_generation",
]
