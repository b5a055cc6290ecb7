"""Generation backends: turn (question, images) items into model responses.

One module per backend. ``transformers_backend`` runs a checkpoint in-process (used by
in-training validation and, later, ``ssrl infer`` / ``ssrl eval``).
"""
