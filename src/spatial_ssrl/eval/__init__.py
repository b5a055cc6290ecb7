"""Evaluation: pretext hold-outs and the spatial benchmarks, scored from model responses.

- :mod:`.base`: :class:`EvalItem` (one question, its images and ground truth) and
  :class:`Benchmark` (load items from local files, score responses);
- :mod:`.answers`: the answer parser shared with the reward (final ``\\boxed{}`` of the
  answer region, hedging refused) and readers for letters, numbers with units, yes/no;
- :mod:`.benchmarks`: one module per benchmark (``pretext``, ``threedsrbench``, ...);
- generation backends live in :mod:`spatial_ssrl.backends`.

Torch-free: scoring predictions made elsewhere needs only the standard library and pyarrow.
"""
