"""docs/config.md and docs/cli.md are generated from the code (python -m spatial_ssrl.reference):
a key, option or default changed without regenerating them fails here."""

from __future__ import annotations

import re
from pathlib import Path

from deps import require

require("trl")

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_is_up_to_date():
    from spatial_ssrl.reference import cli_reference

    assert (DOCS / "cli.md").read_text() == cli_reference(), "run python -m spatial_ssrl.reference"


def test_config_reference_is_up_to_date():
    """Our keys always; TRL's part (types and defaults) when the installed TRL is the one the
    page was written with."""
    import trl

    from spatial_ssrl.reference import TRL_SECTION, config_reference

    page, made = (DOCS / "config.md").read_text(), config_reference()
    recorded = re.search(r"those of TRL (\S+)\.", page).group(1)
    if recorded != trl.__version__:
        page, made = (re.sub(r"those of TRL \S+\.", "", t).split(TRL_SECTION)[0] for t in (page, made))
    assert page == made, "run python -m spatial_ssrl.reference"


def test_the_pages_cover_every_key_and_command():
    from spatial_ssrl.cli import main
    from spatial_ssrl.training.config import OUR_KEYS

    config, cli = (DOCS / "config.md").read_text(), (DOCS / "cli.md").read_text()
    assert all(f"| `{key}` |" in config for key in OUR_KEYS)
    rows = [line for line in config.splitlines() if line.startswith("| `")]
    assert all(not line.rstrip().endswith("|  |") for line in rows[:len(OUR_KEYS)])  # each key explained
    for name, cmd in main.commands.items():
        subs = getattr(cmd, "commands", None)
        shown = [s for s, c in subs.items() if not c.hidden] if subs else []
        for full in ([f"ssrl {name} {s}" for s in shown] if subs else [f"ssrl {name}"]):
            assert f"## `{full}`" in cli, full
    assert "`--request-deadline`" in cli and "`--min-pixels`" in cli


def test_a_changed_option_makes_the_page_stale(tmp_path):
    """The check is real: a page that lacks a line is reported stale and rewritten."""
    from spatial_ssrl.reference import main as reference

    for name in ("config.md", "cli.md"):
        (tmp_path / name).write_text((DOCS / name).read_text().replace("--request-deadline", "--deadline"))
    assert reference(["--docs", str(tmp_path), "--check"]) == 1
    assert reference(["--docs", str(tmp_path)]) == 0
    assert reference(["--docs", str(tmp_path), "--check"]) == 0
