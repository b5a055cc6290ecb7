"""Tiny random checkpoints of the real Qwen-VL architectures, for fast tests of training and
evaluation pipelines (``ssrl tiny-model``).

:func:`build_tiny_model` writes a folder that ``AutoModelForImageTextToText`` and
``AutoProcessor`` load like a Hub checkpoint. Importing this package needs neither torch nor
transformers; building needs both (``pip install 'spatial-ssrl[train]'``).
"""

from spatial_ssrl.tiny.builder import (
    ARCHES,
    DEFAULT_SIZES,
    build_tiny_model,
    count_parameters,
)
from spatial_ssrl.tiny.tokenizer import chat_template

__all__ = ["ARCHES", "DEFAULT_SIZES", "build_tiny_model", "chat_template", "count_parameters"]
