"""An install from a built wheel, as users get it from an index (not the editable install the
tests otherwise run on): the wheel holds every non-Python file of the package, and the
installed program finds its shipped configs, the accelerate ones included."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "spatial_ssrl"


def _data_files() -> set[str]:
    """Every file of the package that is not Python source, as a wheel member name."""
    found = set()
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith((".py", ".pyc")):
                found.add(Path(root, name).relative_to(PACKAGE.parent).as_posix())
    return found


def _clean_copy(dest: Path) -> Path:
    """The project's files without build leftovers: an ``*.egg-info`` from an editable install
    lists every file, and setuptools would ship what it lists whatever package-data says."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=False)
    if listed.returncode == 0:
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:  # not a git checkout
        names = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]
    for name in names:
        parts = Path(name).parts
        if parts[0] in ("build", "dist", ".git") or any(p.endswith(".egg-info") or p == "__pycache__" for p in parts):
            continue
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(src.read_bytes())
    return dest


def test_wheel_install_has_every_data_file(tmp_path):
    source = _clean_copy(tmp_path / "project")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300,
                           check=False, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("spatial_ssrl-*.whl"))
    members = set(zipfile.ZipFile(wheel).namelist())
    wanted = _data_files()
    assert "spatial_ssrl/training/configs/accelerate/zero3.yaml" in wanted
    assert wanted - members == set()

    # installed into a fresh environment (dependencies from this one): the package and the
    # program are the wheel's, and `ssrl train configs` lists files that exist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    inst = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert inst.returncode == 0, inst.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import spatial_ssrl; print(spatial_ssrl.__file__)"], capture_output=True,
                           text=True, check=True, env=env, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(venv)), where
    listed = subprocess.run([str(venv / "bin" / "ssrl"), "train", "configs"], capture_output=True, text=True,
                            check=True, env=env, cwd=tmp_path).stdout.splitlines()
    paths = {line.split()[0]: line.split()[1] for line in listed}
    assert {"tiny_grpo", "qwen2_5_vl_7b_grpo", "accelerate/zero3", "accelerate/fsdp"} <= set(paths)
    for name, path in paths.items():
        assert path.startswith(str(venv)) and os.path.isfile(path), (name, path)
