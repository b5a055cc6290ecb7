"""Per-sample random streams.

Every sample gets its own seed, derived from the run seed and the sample's identity
(source id, task key and the sample's index among that source's samples). A sample's
content therefore does not depend on how many workers run or in which order they finish.
"""

from __future__ import annotations

import hashlib

import numpy as np


def sample_seed(run_seed: int, source_id: str, task_key: str, index: int) -> int:
    """A 64-bit seed that is a pure function of the run seed and the sample identity."""
    text = f"{int(run_seed)}\x1f{source_id}\x1f{task_key}\x1f{int(index)}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def sample_rng(run_seed: int, source_id: str, task_key: str, index: int) -> np.random.Generator:
    return np.random.default_rng(sample_seed(run_seed, source_id, task_key, index))


def short_hash(*parts: object, length: int = 10) -> str:
    text = "\x1f".join(str(p) for p in parts).encode()
    return hashlib.blake2b(text, digest_size=16).hexdigest()[:length]
