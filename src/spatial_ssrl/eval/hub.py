"""Benchmarks by name from the Hugging Face Hub: ``ssrl eval benchmark NAME`` without ``--bench-path``.

A benchmark module names its official dataset repository in ``hub_repo`` (None: not on the Hub,
the user passes ``--bench-path``) and, when that repository holds several configurations of
which it reads some, ``hub_config`` (one name or several): then only the folders and files
named by them, and the repository's ``.zip`` archives (media), are downloaded. :data:`HUB_FILES`
narrows large repositories to the files a module reads. The repository is fetched with
``huggingface_hub.snapshot_download(repo_type="dataset")`` into the standard Hugging Face cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``, read when the
download starts), and the snapshot folder it returns is given to the module's ``load``
unchanged, so each module reads the layout the Hub holds; for the benchmarks of :data:`UNPACK`,
whose media the Hub ships zipped, a folder of ours with the archives unpacked beside the
snapshot's files (:func:`unpacked`).

Offline (``HF_HUB_OFFLINE=1``) only the cache is read. As huggingface_hub resolves it (2.4,
``_snapshot_download.py``: no network call when ``local_files_only``; the commit named by
``datasets--<owner>--<name>/refs/<revision>``; the folder ``snapshots/<commit>`` returned when
it exists), a repository never downloaded is a one-line error naming the command that fetches
it; so are a gated or private repository without a token and an unreachable Hub.
"""

from __future__ import annotations

import os
from typing import Any

from .base import BenchmarkError

# benchmark name -> the files its module reads, as allow_patterns (only where the repository
# holds much more than that). ``questions``: enough to score a predictions file.
HUB_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "3dsrbench": {"all": ("3dsrbench_v1_vlmevalkit_circular.tsv",)},  # not the raw csv, images or other TSVs
    "qspatial-plus": {"all": ("data/QSpatial_plus-*",)},  # the ScanNet split needs ScanNet's own images
    "vsi-bench": {"questions": ("*.parquet", "*.jsonl", "README.md")},  # the video archives are most of it
}


# benchmarks whose modules read their media only as plain files, while the Hub holds them in
# top-level .zip archives: those are unpacked once (:func:`unpacked`). Other modules read their
# archives themselves (MindCube, SITE) and get the snapshot as it is.
UNPACK = frozenset({"vsi-bench", "viewspatial"})


class HubError(BenchmarkError):
    """A benchmark that cannot be had from the Hub (the message is one line saying what to do)."""


def hub_repo(bench: Any) -> str | None:
    return getattr(bench, "hub_repo", None) or None


def hub_configs(bench: Any) -> list[str]:
    config = getattr(bench, "hub_config", None)
    if not config:
        return []
    return [config] if isinstance(config, str) else [str(c) for c in config]


def allow_patterns(bench: Any, questions_only: bool = False) -> list[str] | None:
    """What to download of the benchmark's repository (None: all of it)."""
    files = HUB_FILES.get(bench.name, {})
    if questions_only and "questions" in files:
        return list(files["questions"])
    if "all" in files:
        return list(files["all"])
    configs = hub_configs(bench)
    if not configs:
        return None
    # a config's folder or the files named by it, and the archives the media ship in
    return [f"*{c}*" for c in configs] + ["*.zip"]  # fnmatch's * crosses folders: <config>/... too


def cache_dir() -> str | None:
    """The Hub cache as the environment says now (None: huggingface_hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def offline() -> bool:
    values = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any(str(v).strip().upper() in ("1", "ON", "YES", "TRUE") for v in values if v)


def download_hint(bench: Any) -> str:
    repo = hub_repo(bench)
    patterns = allow_patterns(bench)
    include = "".join(f" --include '{p}'" for p in patterns or ())
    return f"hf download {repo} --repo-type dataset{include}"


def fetch(bench: Any, questions_only: bool = False) -> str:
    """The local folder holding ``bench``'s files from the Hub (downloaded or cached)."""
    repo = hub_repo(bench)
    hint = getattr(bench, "default_path_hint", "") or "the benchmark's files"
    if repo is None:
        raise HubError(f"{bench.name} is not on the Hugging Face Hub: pass --bench-path ({hint})")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise HubError(f"{bench.name}: loading {repo} from the Hub needs huggingface_hub "
                       f"(pip install huggingface_hub), or pass --bench-path") from None
    is_offline = offline()
    try:
        folder = snapshot_download(repo_id=repo, repo_type="dataset", cache_dir=cache_dir(),
                                 allow_patterns=allow_patterns(bench, questions_only), local_files_only=is_offline)
    except GatedRepoError:
        raise HubError(f"{bench.name}: {repo} is gated: accept its terms at https://huggingface.co/datasets/{repo} "
                       "and log in (hf auth login, or set HF_TOKEN), or pass --bench-path") from None
    except RepositoryNotFoundError:
        raise HubError(f"{bench.name}: {repo} was not found on the Hub (a private repository needs a token: "
                       "hf auth login), or pass --bench-path") from None
    except LocalEntryNotFoundError:
        where = "HF_HUB_OFFLINE is set" if is_offline else "the Hub cannot be reached"
        raise HubError(f"{bench.name}: {repo} is not in the Hugging Face cache ({cache_dir() or 'the default'}) "
                       f"and {where}: download it online first ({download_hint(bench)}) or pass --bench-path") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        why = "needs a token (hf auth login, or set HF_TOKEN)" if status in (401, 403) else f"failed (HTTP {status})"
        raise HubError(f"{bench.name}: downloading {repo} {why}; or pass --bench-path") from None
    except Exception as exc:  # noqa: BLE001 (a proxy, a full disk, a partial snapshot ...: one line, whatever it is)
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise HubError(f"{bench.name}: could not fetch {repo} from the Hub ({first}); or pass --bench-path") from None
    return unpacked(folder) if getattr(bench, "hub_unpack", bench.name in UNPACK) else folder


def unpacked(snapshot: str) -> str:
    """``snapshot`` itself, or, when it holds ``.zip`` archives at its top (VSI-Bench's videos,
    ViewSpatial-Bench's images), a folder of ours beside the cache (``<cache>/../ssrl-unpacked/
    <repo>/<commit>``) holding links to the snapshot's files and the archives unpacked, once."""
    import shutil
    import sys
    import zipfile

    zips = sorted(n for n in os.listdir(snapshot) if n.lower().endswith(".zip") and os.path.isfile(os.path.join(snapshot, n)))
    if not zips:
        return snapshot
    snapshot = os.path.abspath(snapshot)
    repo_folder = os.path.dirname(os.path.dirname(snapshot))
    view = os.path.join(os.path.dirname(os.path.dirname(repo_folder)), "ssrl-unpacked",
                        os.path.basename(repo_folder), os.path.basename(snapshot))
    os.makedirs(view, exist_ok=True)
    for name in os.listdir(snapshot):
        link = os.path.join(view, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(snapshot, name), link)
    for name in zips:
        done = os.path.join(view, f".{name}.unpacked")
        if os.path.exists(done):
            continue
        stem = name[:-4]
        tmp = os.path.join(view, f".tmp-{stem}")
        shutil.rmtree(tmp, ignore_errors=True)  # ours, left by an interrupted unpacking
        print(f"unpacking {name} into {view} (once)", file=sys.stderr)
        with zipfile.ZipFile(os.path.join(snapshot, name)) as zf:
            members = [m for m in zf.namelist() if not m.startswith("__MACOSX/")]
            top = {m.replace("\\", "/").split("/", 1)[0] for m in members}
            target = tmp if top == {stem} else os.path.join(tmp, stem)
            zf.extractall(target, members)  # zipfile keeps every member inside target
        for child in os.listdir(tmp):
            dest = os.path.join(view, child)
            if os.path.lexists(dest):
                shutil.rmtree(dest) if os.path.isdir(dest) and not os.path.islink(dest) else os.remove(dest)
            os.replace(os.path.join(tmp, child), dest)
        os.rmdir(tmp)
        with open(done, "w", encoding="utf-8") as fh:
            fh.write("ok\n")
    return view
