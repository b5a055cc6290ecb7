"""Dataset validation: every answer re-derived from the source and the rendered images
through code separate from the generator's (see :mod:`.runner` and ``ssrl validate``)."""

from .runner import VALIDATORS, validate_dataset, validate_record

__all__ = ["VALIDATORS", "validate_dataset", "validate_record"]
