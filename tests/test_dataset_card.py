"""`ssrl generate` writes a dataset card (README.md with the Hub's YAML header) that the Hub's
own tools read: huggingface_hub's card parser, and `datasets.load_dataset(folder)` taking the
splits from the card's configs, before and after `ssrl split`. A README.md of the user's is
never replaced."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from deps import require

from spatial_ssrl.cli import main

hub = require("huggingface_hub")
datasets = require("datasets")


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_the_card_reads_on_the_hub_and_names_the_splits(tmp_path):
    out = tmp_path / "ds"
    _run("generate", "--out", out, "--num", 12, "--tasks", "flip,crop", "--seed", 5, "--workers", 1, "-q")
    card = hub.DatasetCard.load(out / "README.md")
    meta = card.data.to_dict()
    assert "visual-question-answering" in meta["task_categories"] and meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default",
                                "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]
    assert "ssrl generate --out OUT --num 12 --seed 5 --tasks " in card.text
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache1"))
    assert list(loaded) == ["train"] and loaded["train"].num_rows == 12

    _run("split", out, "--test-fraction", 0.3)
    meta = hub.DatasetCard.load(out / "README.md").data.to_dict()
    assert [f["split"] for f in meta["configs"][0]["data_files"]] == ["train", "test"]
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache2"))
    assert sorted(loaded) == ["test", "train"] and loaded["train"].num_rows + loaded["test"].num_rows == 12
    assert loaded["test"].num_rows > 0

    # regenerated with --overwrite: our card is rewritten with the new run's figures
    _run("generate", "--out", out, "--num", 8, "--tasks", "flip", "--workers", 1, "-q", "--overwrite")
    card = hub.DatasetCard.load(out / "README.md")
    assert "--num 8 " in card.text and datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache3"))["train"].num_rows == 8


@pytest.mark.parametrize("fmt", ["canonical", "llamafactory"])
def test_a_readme_of_the_user_is_kept(tmp_path, fmt):
    out = tmp_path / "ds"
    out.mkdir()
    mine = b"# my notes\n\nnot a card\n"
    (out / "README.md").write_bytes(mine)
    result = _run("generate", "--out", out, "--num", 4, "--tasks", "flip", "--workers", 1, "-q", "--format", fmt)
    assert (out / "README.md").read_bytes() == mine
    assert "no dataset card written" in result.output


def test_the_card_is_written_while_the_folder_is_still_locked(tmp_path, monkeypatch):
    """Between the dataset moving in and its card, no other run may take the folder: the card
    is written before generate lets its lock go."""
    from spatial_ssrl.locking import is_locked
    from spatial_ssrl.writers import card as card_module

    seen = []
    real = card_module.write_card

    def watching(out, manifest):
        seen.append(is_locked(str(out)))
        return real(out, manifest)

    monkeypatch.setattr(card_module, "write_card", watching)
    out = tmp_path / "ds"
    _run("generate", "--out", out, "--num", 4, "--tasks", "flip", "--workers", 1, "-q")
    assert seen == [True] and (out / "README.md").is_file() and not is_locked(str(out))
