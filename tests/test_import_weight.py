"""Starting ``ssrl`` (and each generation worker, forked from it) stays light: importing the
command line, the engine, every task and every validator loads none of the big libraries.
Each one costs every worker its memory (scipy, imported at the top of a validator once,
added 21 MB to the parent and 12-14 MB to each worker), so a module that needs one imports
it where it is used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("scipy", "torch", "transformers", "trl", "skimage", "datasets", "h5py", "ray", "gradio", "av",
         "matplotlib", "pandas")


def test_starting_ssrl_loads_no_big_library():
    code = ("import json, sys\n"
            "import spatial_ssrl.cli, spatial_ssrl.engine, spatial_ssrl.engine.worker, spatial_ssrl.tasks\n"
            "import spatial_ssrl.validate.runner\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(done.stdout))
    assert "spatial_ssrl" in loaded
    assert sorted(loaded & set(HEAVY)) == []
