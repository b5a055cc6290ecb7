"""The wheels a GPU machine without network needs to run spatial-ssrl's GPU check.

    python bench/gpu_wheels.py --device-packages device_packages.txt --out wheels

``device_packages.txt`` is what the GPU machine has (``python -m pip list --format=freeze``
there, one ``name==version`` a line). This downloads, from the package index, the wheels of the
``train`` extra and of the core requirements for that machine's Python and platform (by default
CPython 3.12 on manylinux x86-64), with their dependencies, then drops every wheel of a
distribution the machine already has in a version the requirements accept, and prints the total
size: the wheels travel with the working tree, which the lending tool caps at 64 MiB. On the
machine: ``pip install --no-index --find-links wheels wheels/*.whl`` and
``PYTHONPATH=src python bench/gpu_check.py``. See docs/gpu.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

LIMIT = 64 << 20


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(extra: str) -> list[str]:
    import tomllib

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    reqs = list(project["dependencies"])
    for req in project["optional-dependencies"][extra]:
        if not req.startswith("spatial-ssrl"):
            reqs.append(req)
    return reqs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device-packages", required=True, help="the machine's `pip list --format=freeze`")
    ap.add_argument("--out", default="wheels")
    ap.add_argument("--extra", default="train")
    ap.add_argument("--python-version", default="3.12")
    ap.add_argument("--platform", action="append", default=None,
                    help="wheel platform tags (default: manylinux_2_28_x86_64 and manylinux2014_x86_64)")
    ap.add_argument("--keep", nargs="*", default=["torch", "torchvision", "nvidia-*", "triton"],
                    help="distributions never downloaded (the machine's own build must serve)")
    ap.add_argument("--skip", nargs="*", default=["scipy", "scikit-image", "h5py", "tensorboard"],
                    help="requirements the GPU check does not use (built-in photos, RGB-D inputs, "
                         "TensorBoard logs), left out to stay under the size cap")
    args = ap.parse_args()
    from packaging.requirements import Requirement
    from packaging.version import Version

    have = {}
    with open(args.device_packages, encoding="utf-8") as fh:
        for line in fh:
            name, sep, version = line.strip().partition("==")
            if sep:
                have[_norm(name)] = Version(version)
    reqs = [r for r in _requirements(args.extra)
            if not any(re.fullmatch(k.replace("*", ".*"), _norm(Requirement(r).name)) for k in args.keep)
            and _norm(Requirement(r).name) not in {_norm(x) for x in args.skip}]
    wanted = [r for r in reqs if _norm(Requirement(r).name) not in have
              or not Requirement(r).specifier.contains(have[_norm(Requirement(r).name)], prereleases=True)]
    print("needed beyond the machine's packages:", ", ".join(wanted) or "nothing")
    if not wanted:
        return 0
    platforms = args.platform or ["manylinux_2_28_x86_64", "manylinux2014_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", args.python_version,
           "--implementation", "cp", "-d", args.out, *[x for p in platforms for x in ("--platform", p)], *wanted]
    subprocess.run(cmd, check=True)
    total = 0
    for name in sorted(os.listdir(args.out)):
        dist = _norm(name.split("-")[0])
        version = Version(name.split("-")[1])
        direct = next((Requirement(r) for r in wanted if _norm(Requirement(r).name) == dist), None)
        keep_glob = any(re.fullmatch(k.replace("*", ".*"), dist) for k in args.keep)
        already = dist in have and (direct is None or direct.specifier.contains(have[dist], prereleases=True))
        if keep_glob or already:
            os.unlink(os.path.join(args.out, name))
            continue
        total += os.path.getsize(os.path.join(args.out, name))
        print(f"{name:<70} {os.path.getsize(os.path.join(args.out, name)) / 2**20:7.1f} MiB  (have "
              f"{have.get(dist, '-')}, get {version})")
    print(f"total {total / 2**20:.1f} MiB of {LIMIT >> 20} MiB")
    return 0 if total <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
