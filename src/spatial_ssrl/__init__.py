"""spatial-ssrl: self-supervised spatial pretext tasks for vision-language models.

The package is layered; each layer lives in its own sub-package and can be used alone:

- :mod:`spatial_ssrl.sources`   where items (an RGB image plus optional extras) come from
- :mod:`spatial_ssrl.tasks`     the pretext tasks (one module per task) and their registry
- :mod:`spatial_ssrl.rendering` labels, borders and markers drawn on images
- :mod:`spatial_ssrl.writers`   dataset formats (canonical parquet, TRL, EasyR1, verl, LLaMA-Factory)
- :mod:`spatial_ssrl.engine`    planning a run and executing it on a local worker pool
"""

__version__ = "0.1.0"
