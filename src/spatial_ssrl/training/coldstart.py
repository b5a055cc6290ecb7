"""Cold-start data for the SFT stage (``ssrl coldstart``).

The paper's cold start is a few thousand samples (3.6k) with a short chain of thought; its
quality hardly matters, it teaches the answer format (without it, RL on the position task
collapses to under 5% valid formats). Here each chosen sample becomes one conversation:
the user turn is the question with its images and the format suffix, the assistant turn a
short task-specific rationale in ``<think>`` followed by ``\\boxed{answer}``.

Samples are picked evenly across (task, variant) groups, round-robin in a seeded order, from
the dataset's ``coldstart`` split (``ssrl split --coldstart-fraction``), whose source images
are in no other split, so the GRPO stage never trains on an image the cold start saw.

Written twice in ``OUT``:

- ``data/train-00000-of-0000N.parquet``: a TRL SFT dataset, ``messages`` (user content as
  image and text parts, assistant content as one text part) and ``images``, plus ``id``,
  ``task``, ``variant``, ``answer``, ``answer_type``, ``options``, ``source``;
- ``llamafactory/``: ``train.jsonl`` (sharegpt ``messages`` with ``<image>`` tokens),
  ``images/`` and ``dataset_info.json`` (dataset ``spatial_ssrl_coldstart``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import defaultdict

from ..locking import LOCK_FILE, FolderBusy, FolderLock, is_locked
from ..prompts import content_parts, with_format_suffix
from ..readers import DatasetError, Record, open_dataset, record_image_problem
from ..writers.base import IMAGE_LIST, STRING, atomic_write_json

DATASET_NAME = "spatial_ssrl_coldstart"
LLAMAFACTORY_DIR = "llamafactory"


class ColdStartError(ValueError):
    """The cold-start set cannot be made as asked (the message says why)."""


# ----------------------------------------------------------------------------------------
# rationales: short, task-specific, consistent with the answer


def _labels(answer: str) -> list[str]:
    return [p for p in answer.split("-") if p]


def _listing(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _shuffle_rationale(rec: Record) -> str:
    labels = _labels(rec.answer or "")
    rows, cols = _grid(rec.variant, len(labels))
    if rows == 1:
        where = "from left to right"
    elif cols == 1:
        where = "from top to bottom"
    else:
        where = "row by row, left to right"
    masked = " The white patch has no content of its own, so I place it where the others leave a gap." \
        if "masked" in rec.variant else ""
    return (f"I compare the borders of the labelled pieces and follow the lines, edges and objects that "
            f"continue from one piece into the next.{masked} Reading the original positions {where}, the "
            f"pieces that belong there are labelled {_listing(labels)}.")


def _grid(variant: str, n: int) -> tuple[int, int]:
    head = variant.split("-")[0]
    try:
        r, c = (int(x) for x in head.split("x"))
        return r, c
    except ValueError:
        return 1, n


def _flip_rationale(rec: Record) -> str:
    parts = _labels(rec.answer or "")
    label, direction = (parts + ["?", "?"])[:2]
    how = "upside down, so it was flipped vertically" if direction == "0" else \
        "mirrored left to right, so it was flipped horizontally"
    return (f"Three patches continue smoothly into their neighbours. Patch {label} breaks that continuity: "
            f"its content looks {how}.")


def _crop_rationale(rec: Record) -> str:
    letter = (rec.answer or "").strip()
    return ("The black square has to be filled by content that continues the surrounding edges at the same "
            "scale and orientation. The other candidates are rotated, zoomed in or cover a wider area than "
            f"the hole; option {letter} lines up with the surroundings.")


def _depth_rationale(rec: Record) -> str:
    labels = _labels(rec.answer or "")
    if len(labels) < 2:
        return "I compare occlusion, perspective and the size of familiar objects to order the regions."
    middle = f", then {_listing(labels[1:-1])}" if len(labels) > 2 else ""
    return (f"Using occlusion, perspective, texture density and the ground plane, region {labels[0]} is the "
            f"closest to the camera{middle}, and region {labels[-1]} is the farthest.")


def _position_rationale(rec: Record) -> str:
    letter = (rec.answer or "").strip()
    text = None
    if rec.options and letter in "ABCD" and len(letter) == 1:
        i = "ABCD".index(letter)
        if i < len(rec.options):
            text = rec.options[i]
    where = f"{text.lower().replace('-', ' and ')} of the camera" if text else "in the direction of one option"
    return ("I place a camera at the first marked region, facing the stated direction, and project the other "
            "region onto the ground plane, ignoring height. Comparing the lateral and the depth offsets, the "
            f"region lies {where}, which is option {letter}.")


def _option_text(rec: Record) -> tuple[str, str | None]:
    letter = (rec.answer or "").strip()
    if rec.options and len(letter) == 1 and "A" <= letter <= "Z" and ord(letter) - 65 < len(rec.options):
        return letter, rec.options[ord(letter) - 65]
    return letter, None


def _rotation_rationale(rec: Record) -> str:
    letter, text = _option_text(rec)
    said = f" ({text.lower()})" if text else ""
    return ("I look at which way gravity points in the picture: the sky and the ground, the horizon, upright "
            "objects and any text, and whether the turned part still continues into its surroundings. The turn "
            f"that brings them upright is option {letter}{said}.")


def _distance_rationale(rec: Record) -> str:
    if rec.variant == "camera":
        return ("I place the marked point in 3D from perspective, the ground plane and the sizes of familiar "
                f"objects around it, and take its straight-line distance from the camera: about {rec.answer} m.")
    return ("I place both marked points in 3D from perspective, the ground plane and the sizes of familiar "
            f"objects, then measure the straight line between them: about {rec.answer} m.")


def _camera_motion_rationale(rec: Record) -> str:
    letter, text = _option_text(rec)
    said = f": {text.lower()}" if text else ""
    return ("I compare the two views: whether the whole scene slid sideways or up and down, whether objects "
            "grew or shrank as the camera came nearer or went back, and whether near and far things shifted "
            f"together, as a turn makes them. That is option {letter}{said}.")


def _temporal_rationale(rec: Record) -> str:
    return ("I follow how the view changes from one frame to another and find the steady motion that links "
            f"them; ordering the frames along that motion gives {rec.answer}.")


def _correspondence_rationale(rec: Record) -> str:
    letter, _ = _option_text(rec)
    return ("I note what surrounds the marked point in the first view: the surface it lies on, nearby edges "
            "and how far it is, then find the candidate in the second view with the same surroundings, "
            f"allowing for the change of viewpoint. That is {letter}.")


def _counting_rationale(rec: Record) -> str:
    letter, text = _option_text(rec)
    said = f": {text}" if text else ""
    return ("I go over the shapes drawn on the photo one at a time, keep only those of the asked colour and "
            "kind, leave out the other shapes and anything in the photo itself, and count what is left"
            f"{said}. That is option {letter}.")


RATIONALES = {
    "rotation": _rotation_rationale,
    "counting": _counting_rationale,
    "distance": _distance_rationale,
    "camera_motion": _camera_motion_rationale,
    "temporal": _temporal_rationale,
    "correspondence": _correspondence_rationale,
    "shuffle": _shuffle_rationale,
    "flip": _flip_rationale,
    "crop": _crop_rationale,
    "depth": _depth_rationale,
    "position": _position_rationale,
}
FALLBACK = "I examine the spatial cues in the image and pick the answer they support."


def response_for(rec: Record) -> str:
    make = RATIONALES.get(rec.task)
    rationale = make(rec) if make else FALLBACK
    return f"<think>\n{rationale}\n</think>\n\\boxed{{{rec.answer}}}"


# ----------------------------------------------------------------------------------------
# picking


def pick_even(index: list[Record], num: int, seed: int = 0, ordered: bool = False) -> list[int]:
    """Positions of ``num`` records, round-robin over (task, variant) groups in a seeded
    order, each group's members in a seeded order (all of them when ``num`` is larger).
    Sorted, or in picking order with ``ordered`` (its first ``k`` are the pick for ``k``)."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for pos, rec in enumerate(index):
        groups[(rec.task, rec.variant)].append(pos)
    keys = sorted(groups)
    rng.shuffle(keys)
    for k in keys:
        rng.shuffle(groups[k])
    picked: list[int] = []
    depth = 0
    while len(picked) < num and any(depth < len(groups[k]) for k in keys):
        for k in keys:
            if depth < len(groups[k]) and len(picked) < num:
                picked.append(groups[k][depth])
        depth += 1
    return picked if ordered else sorted(picked)


# ----------------------------------------------------------------------------------------
# writing


def _schema():
    import pyarrow as pa

    part = pa.struct([("type", pa.string()), ("text", pa.string())])
    message = pa.struct([("role", pa.string()), ("content", pa.list_(part))])
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([
        ("id", pa.string()), ("messages", pa.list_(message)), ("images", pa.list_(image)),
        ("task", pa.string()), ("variant", pa.string()), ("answer", pa.string()),
        ("answer_type", pa.string()), ("options", pa.list_(pa.string())), ("source", pa.string()),
    ])
    features = {
        "id": STRING,
        "messages": [{"role": STRING, "content": [{"type": STRING, "text": STRING}]}],
        "images": IMAGE_LIST,
        "task": STRING, "variant": STRING, "answer": STRING, "answer_type": STRING,
        "options": [STRING], "source": STRING,
    }
    return schema.with_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})


def make_coldstart(data: str, out: str, num: int = 3600, split: str = "coldstart", seed: int = 0,
                   rows_per_shard: int = 1000, overwrite: bool = False) -> dict:
    """Write the cold-start set for ``data`` into ``out`` (a new folder, or with ``overwrite`` a
    cold-start folder of ours, replaced once the new one is complete); return its manifest."""
    if num < 1:
        raise ColdStartError("--num must be at least 1")
    try:
        reader = open_dataset(data)
        index = reader.index(split)
    except DatasetError as exc:
        if split == "coldstart" and "no 'coldstart' split" in str(exc):
            raise ColdStartError(
                f"{data} has no coldstart split: run `ssrl split {data} --test-fraction 0.05 "
                "--coldstart-fraction 0.05` first (cold-start images must not be GRPO images), or pass "
                "--split NAME") from None
        raise ColdStartError(str(exc)) from None
    missing_answer = [r.id for r in index if not r.answer]
    if missing_answer:
        raise ColdStartError(f"{len(missing_answer)} samples of {data} have no answer (e.g. {missing_answer[0]})")
    if not index:
        raise ColdStartError(f"the {split} split of {data} is empty")
    positions = pick_even(index, len(index), seed, ordered=True)  # the first num, then stand-ins

    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        if not overwrite:
            raise ColdStartError(f"--out {out} already exists and is not an empty folder; choose another "
                                 "(or --overwrite to replace a cold start of ours)")
        _check_replaceable(out)
    parent = os.path.dirname(os.path.abspath(out)) or "."
    try:
        os.makedirs(parent, exist_ok=True)
        _clear_leftovers(parent)
        work = os.path.join(parent, WORK_PREFIX + _work_key(out))
        os.makedirs(work, exist_ok=True)
        lock = FolderLock(work)
        lock.acquire()
    except FolderBusy:
        raise ColdStartError(f"another ssrl coldstart is writing {out}; wait for it to finish or choose "
                             "another --out") from None
    except OSError as exc:
        raise ColdStartError(f"cannot write in {parent}: {exc.strerror or exc}") from None
    try:
        for name in os.listdir(work):  # an earlier try's, killed: ours (we hold its lock now)
            if name != LOCK_FILE:
                path = os.path.join(work, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        manifest = _write(reader, index, positions, split, data, num, seed, rows_per_shard, work, out)
        lock.release()
    except OSError as exc:
        lock.release()
        shutil.rmtree(work, ignore_errors=True)  # our own temporary folder
        raise ColdStartError(f"cannot write {exc.filename or out}: {exc.strerror or exc}; nothing was written") \
            from None
    except BaseException:
        lock.release()
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


WORK_PREFIX = ".tmp-ssrl-coldstart-"


def _check_replaceable(out: str) -> None:
    """``--overwrite`` replaces only a folder this command wrote: its manifest says so and every
    file in it is one the manifest lists (or lies in a folder it lists)."""
    try:
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("kind") != "coldstart" or not isinstance(manifest.get("files"), list):
        raise ColdStartError(f"--out {out} is not a cold-start folder of ours (no manifest.json of ssrl coldstart); "
                             "--overwrite replaces only those: choose another folder")
    listed = {"manifest.json", *map(str, manifest["files"])}
    foreign = []
    for root, dirs, files in os.walk(out):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = os.path.relpath(os.path.join(root, name), out)
            if rel not in listed and not any(rel.startswith(d + os.sep) for d in listed):
                foreign.append(rel)
    if foreign:
        raise ColdStartError(f"--out {out} holds files this program did not write ({', '.join(sorted(foreign)[:3])}); "
                             "nothing was replaced")


def _work_key(out: str) -> str:
    import hashlib

    return hashlib.sha256(os.path.abspath(out).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _clear_leftovers(parent: str) -> None:
    """Remove the working folders of coldstart runs that were killed (no process holds their
    lock any more); a running one's folder is left alone."""
    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        if name.startswith(WORK_PREFIX) and os.path.isdir(path) and not os.path.islink(path) \
                and not is_locked(path):
            shutil.rmtree(path, ignore_errors=True)


def _good_records(reader, split: str, order: list[int], num: int, skipped: list[str]):
    """Records at the first ``num`` positions of ``order`` (read in storage order); each one
    whose images do not decode is named in ``skipped`` and replaced by the next in ``order``."""
    taken = 0
    while taken < num and order:
        batch, order = sorted(order[: num - taken]), order[num - taken:]
        for rec in reader.records(split, positions=batch):
            if record_image_problem(rec):
                skipped.append(rec.id)
                continue
            taken += 1
            yield rec


def _write(reader, index, positions, split, data, num, seed, rows_per_shard, work, out) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    skipped: list[str] = []
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    os.makedirs(os.path.join(work, "data"))
    lf_dir = os.path.join(work, LLAMAFACTORY_DIR)
    os.makedirs(os.path.join(lf_dir, "images"))
    schema = _schema()
    shard_paths: list[str] = []
    writer = None
    in_shard = 0
    written = 0
    with open(os.path.join(lf_dir, "train.jsonl"), "w", encoding="utf-8") as lf:
        for rec in _good_records(reader, split, positions, num, skipped):
            response = response_for(rec)
            row = {
                "id": rec.id,
                "messages": [
                    {"role": "user", "content": content_parts(rec.problem or "")},
                    {"role": "assistant", "content": [{"type": "text", "text": response}]},
                ],
                "images": [{"bytes": b, "path": n} for b, n in zip(rec.images, rec.image_names)],
                "task": rec.task, "variant": rec.variant, "answer": rec.answer,
                "answer_type": rec.answer_type, "options": rec.options, "source": rec.source,
            }
            if writer is None:
                path = os.path.join(work, "data", f".tmp-{len(shard_paths):05d}.parquet")
                writer = pq.ParquetWriter(path, schema, compression="zstd")
                shard_paths.append(path)
            writer.write_table(pa.Table.from_pylist([row], schema=schema))
            in_shard += 1
            if in_shard >= rows_per_shard:
                writer.close()
                writer, in_shard = None, 0
            image_paths = []
            for i, (b, name) in enumerate(zip(rec.images, rec.image_names)):
                ext = os.path.splitext(name)[1] or ".png"
                rel = f"images/{rec.id}-{i}{ext}"
                with open(os.path.join(lf_dir, rel), "wb") as fh:
                    fh.write(b)
                image_paths.append(rel)
            lf.write(json.dumps({
                "messages": [{"role": "user", "content": with_format_suffix(rec.problem or "")},
                             {"role": "assistant", "content": response}],
                "images": image_paths, "id": rec.id, "task": rec.task, "variant": rec.variant,
                "answer": rec.answer, "answer_type": rec.answer_type, "options": rec.options,
                "source": rec.source,
            }, ensure_ascii=False) + "\n")
            counts[rec.task][rec.variant] += 1
            written += 1
    if writer is not None:
        writer.close()
    files = []
    for i, p in enumerate(shard_paths):
        name = f"train-{i:05d}-of-{len(shard_paths):05d}.parquet"
        os.replace(p, os.path.join(work, "data", name))
        files.append(f"data/{name}")
    atomic_write_json(os.path.join(lf_dir, "dataset_info.json"), {
        DATASET_NAME: {
            "file_name": "train.jsonl", "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                     "assistant_tag": "assistant"},
        }
    })
    manifest = {
        "format": "sft",
        "kind": "coldstart",
        "from_dataset": os.path.abspath(data),
        "from_split": split,
        "seed": seed,
        "num_requested": num,
        "num_written": written,
        "available": len(index),
        "skipped_undecodable_image": skipped,
        "counts": {t: dict(sorted(v.items())) for t, v in sorted(counts.items())},
        "files": sorted(files + [f"{LLAMAFACTORY_DIR}/train.jsonl", f"{LLAMAFACTORY_DIR}/dataset_info.json",
                                 f"{LLAMAFACTORY_DIR}/images"]),
    }
    atomic_write_json(os.path.join(work, "manifest.json"), manifest)
    for root, dirs, fnames in os.walk(work):
        for n in dirs:
            os.chmod(os.path.join(root, n), 0o777 & ~_umask())
        for n in fnames:
            os.chmod(os.path.join(root, n), 0o666 & ~_umask())
    os.chmod(work, 0o777 & ~_umask())
    if written == 0:
        raise ColdStartError(f"every picked sample of the {split} split of {data} has an undecodable image "
                             f"(e.g. {skipped[0]}); nothing was written")
    if os.path.isdir(out) and os.listdir(out):  # --overwrite: an earlier cold start of ours, checked again
        _check_replaceable(out)
        old = os.path.join(os.path.dirname(work), WORK_PREFIX + "old-" + _work_key(out))
        os.replace(out, old)  # (a leftover of a killed run: removed by the next run's clean-up)
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if os.path.isdir(out):
            os.rmdir(out)  # empty, checked above
        os.replace(work, out)
    os.unlink(os.path.join(out, LOCK_FILE))  # still held through its descriptor until released
    return manifest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
