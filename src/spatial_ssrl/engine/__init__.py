"""The run engine: plan which source each sample comes from, cut the plan into batches, run
them on local worker processes or Ray (each batch writes its own part of the dataset), take
their summaries in plan order, journal them, and assemble the dataset and its manifest."""

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
