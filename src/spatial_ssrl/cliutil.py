"""What several commands' options share: one spelling for the same thing everywhere.

A dataset folder is ``--data`` / ``-d`` in every command; the commands that took it as their
first argument (preview, validate, split, stats) still do, so both spellings work there.
"""

from __future__ import annotations

import click


def dataset_option(exists: bool = False):
    """``[DATASET]`` as an optional argument and ``--data/-d``: one of them names the folder."""
    def wrap(f):
        f = click.option("--data", "-d", "data_option", default=None,
                         type=click.Path(exists=exists, file_okay=False),
                         help="Dataset folder (or give it as the first argument).")(f)
        return click.argument("dataset", required=False, type=click.Path(exists=exists, file_okay=False))(f)

    return wrap


def pick_dataset(dataset: str | None, data_option: str | None) -> str:
    if dataset and data_option and dataset != data_option:
        raise click.UsageError(f"two datasets given: {dataset} and --data {data_option}")
    if not (dataset or data_option):
        raise click.UsageError("no dataset given: pass --data FOLDER (or the folder as the first argument)")
    return dataset or data_option
