"""Per-sample random streams.

Every sample gets its own seed, derived from the run seed and the sample's identity
(source id, task key and the sample's index among that source's samples). A sample's
content therefore does not depend on how many workers run or in which order they finish.

Source ids can hold file names that are not valid UTF-8 (file names are bytes on Linux;
Python hands them over as ``str`` with the undecodable bytes as lone surrogates,
"surrogateescape"). Hashing encodes with ``surrogateescape``, so such a name hashes its
own bytes, and a valid UTF-8 name hashes exactly the bytes it always did (seeds and ids of
existing datasets do not change).
"""

from __future__ import annotations

import hashlib

import numpy as np


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates from undecodable file-name bytes become
    those bytes again (identical to ``str.encode()`` for every valid string)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate not from a file-name byte (e.g. JSON "\\ud800")
        return text.encode("utf-8", "surrogatepass")


def sample_seed(run_seed: int, source_id: str, task_key: str, index: int) -> int:
    """A 64-bit seed that is a pure function of the run seed and the sample identity."""
    text = f"{int(run_seed)}\x1f{source_id}\x1f{task_key}\x1f{int(index)}"
    text = _utf8(text)
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def sample_rng(run_seed: int, source_id: str, task_key: str, index: int) -> np.random.Generator:
    return np.random.default_rng(sample_seed(run_seed, source_id, task_key, index))


def short_hash(*parts: object, length: int = 10) -> str:
    text = "\x1f".join(str(p) for p in parts)
    text = _utf8(text)
    return hashlib.blake2b(text, digest_size=16).hexdigest()[:length]
