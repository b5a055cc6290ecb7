"""Training: splits, cold-start data, SFT and GRPO on TRL.

Torch-free at import: ``split`` and ``coldstart`` need only pyarrow; ``sft``, ``grpo``,
``callbacks`` and ``models`` import torch / transformers / TRL when used (the ``train``
extra). Configs are TRL's ``SFTConfig`` / ``GRPOConfig`` fields plus ours
(:mod:`spatial_ssrl.training.config`); reward functions are plain callables
(:mod:`spatial_ssrl.training.rewards`); shipped configs live in ``configs/``.
"""
