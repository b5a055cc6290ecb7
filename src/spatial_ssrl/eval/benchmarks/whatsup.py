"""What'sUp (Kamath et al., EMNLP 2023; github.com/amitakamath/whatsup_vlms), asked generatively:
the image and its caption options, the model boxes the letter of the caption that is true.

Files as the authors distribute them (their Google Drive folder, ``dataset_zoo/aro_datasets.py``),
all in one folder, ``path``:

- ``controlled_images_dataset.json`` + ``controlled_images/`` (subset ``controlled_a``, real
  photographs: on / under / left of / right of) and ``controlled_clevr_dataset.json`` +
  ``controlled_clevr/`` (``controlled_b``, CLEVR renders: in front of / behind / left / right).
  Each json row is ``{"image_path": "data/controlled_images/<name>.jpeg", "caption_options":
  [4 captions]}``; the path is relative to the authors' repository root (their ``data/`` is our
  ``path``). Four images of one object pair share one caption set, each caption true for one.
- ``coco_qa_one_obj.json`` / ``coco_qa_two_obj.json`` (images ``val2017/<id, 12 digits>.jpg``)
  and ``vg_qa_one_obj.json`` / ``vg_qa_two_obj.json`` (``vg_images/<id>.jpg``): rows
  ``[image_id, true_caption, false_caption]``.

In every file the FIRST caption is the true one. The paper's generative script shows them in
that order, so the answer is always A (and counts a hit when "A" occurs anywhere in the box);
here the options are shuffled with a fixed per-item seed (option ``seed``, default 0; the
permutation is in ``meta``), and the answer letter follows the true caption.

Options: ``subsets`` (names or aliases, comma-separated or a list; default the two controlled
sets, ``all`` for all six), ``seed``, ``circular`` (every rotation of the shuffled options is its
own row; a question counts only when all its rows are right).

Score, official rule (``accuracy``). The authors' ``dataset_zoo/aro_datasets.py``
(amitakamath/whatsup_vlms, commit 7c1f2550eace) scores a contrastive model: the caption it rates
highest is its pick, so it has no rule for reading text. The pick is read here with VLMEvalKit's
rule-based option matching (``can_infer``, ``vlmeval/utils/matching_util.py``, open-compass/VLMEvalKit
2cf2a36c6e79) from :func:`~spatial_ssrl.eval.answers.answer_text` (the last box's content, else the
text after the think block): the one option letter standing alone among the last words ("A. ...",
"The answer is (B) ..."), else "answer is X", else the one caption contained in a short answer;
nothing read is a parse failure. A row is right when the pick is the true caption; per subset the
authors' "individual accuracy" is the row mean (the per-question mean with circular rows), and
``accuracy`` is the unweighted mean over the loaded subsets. ``metrics["set_accuracy"]`` and
``metrics["pair_accuracy"]`` follow ``Controlled_Images.evaluate_scores``: the images of one
object pair are grouped by FILE NAME, (first ``_`` word, last ``_`` word less ``.jpeg``), the
preposition being the second word; a set counts when its four prepositions are right, a pair
when left and right (or on and under, in front and behind) are; divided by the number of object
pairs (twice that for pairs): the authors divide by a quarter (a half) of the rows, the same
figure for a complete subset, but one an image skipped here would shrink. ``strict``: the boxed letter (or the exact caption text) read
by the reward's parser, hedges refused, aggregated the same way. The row mean and the
per-question mean are in ``metrics``.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Mapping
from typing import Any

from ..answers import answer_text, read_choice, vlmeval_choice
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped, Tally, pct, with_strict
from ._io import check_options, check_row, read_json_list

LETTERS = "ABCDEFGH"
INSTRUCTION = "Answer with the option's letter."

# name: (json file, image folder, row layout)
SUBSETS: dict[str, tuple[str, str, str]] = {
    "controlled_a": ("controlled_images_dataset.json", "controlled_images", "controlled"),
    "controlled_b": ("controlled_clevr_dataset.json", "controlled_clevr", "controlled"),
    "coco_qa_one": ("coco_qa_one_obj.json", "val2017", "coco"),
    "coco_qa_two": ("coco_qa_two_obj.json", "val2017", "coco"),
    "vg_qa_one": ("vg_qa_one_obj.json", "vg_images", "vg"),
    "vg_qa_two": ("vg_qa_two_obj.json", "vg_images", "vg"),
}
ALIASES = {
    "a": "controlled_a", "controlled_images_a": "controlled_a", "controlled_images": "controlled_a",
    "b": "controlled_b", "controlled_images_b": "controlled_b", "clevr": "controlled_b",
    "controlled_clevr": "controlled_b",
    "coco_qa_one_obj": "coco_qa_one", "coco_qa_two_obj": "coco_qa_two",
    "vg_qa_one_obj": "vg_qa_one", "vg_qa_two_obj": "vg_qa_two",
}
DEFAULT_SUBSETS = ("controlled_a", "controlled_b")
OPTIONS = ("subsets", "seed", "circular")


def _subset_names(value: Any) -> list[str]:
    if value is None:
        return list(DEFAULT_SUBSETS)
    names = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in names:
        key = str(raw).strip().lower().replace("-", "_")
        if not key:
            continue
        if key == "all":
            out.extend(SUBSETS)
            continue
        key = ALIASES.get(key, key)
        if key not in SUBSETS:
            raise BenchmarkError(f"whatsup: unknown subset {raw!r}; known: {', '.join(SUBSETS)} (or all)")
        out.append(key)
    if not out:
        raise BenchmarkError("whatsup: no subset given")
    return list(dict.fromkeys(out))


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(value, int):
        return bool(value)
    raise BenchmarkError(f"whatsup: option {name} must be true or false, got {value!r}")


def permutation(seed: int, subset: str, index: int, k: int) -> list[int]:
    """The display order of an item's captions: position j shows caption ``perm[j]``
    (caption 0 is the true one). Fixed by (seed, subset, row index) across runs and machines."""
    digest = hashlib.sha256(f"whatsup:{seed}:{subset}:{index}".encode()).digest()
    perm = list(range(k))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(perm)
    return perm


def _rows(file: str, layout: str, image_dir: str, root: str) -> list[tuple[list[str], list[str]]]:
    """(caption options, image path candidates) per json row."""
    data = read_json_list(file, "rows")
    out = []
    for i, row in enumerate(data):
        if layout == "controlled":
            check_row(file, f"row {i}", row, ("image_path", "caption_options"))
            captions = row["caption_options"]
            rel = str(row["image_path"]).replace("\\", "/")
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            candidates = [os.path.join(root, *parts)]
            if parts and parts[0] == "data":  # relative to the authors' repository root
                candidates.insert(0, os.path.join(root, *parts[1:]))
            if parts:
                candidates.append(os.path.join(root, image_dir, parts[-1]))
        else:
            if not isinstance(row, (list, tuple)) or len(row) < 3:
                raise BenchmarkError(f"{file}: row {i} is not [image_id, true_caption, false_caption]")
            image_id = str(row[0])
            name = f"{image_id.zfill(12)}.jpg" if layout == "coco" else f"{image_id}.jpg"
            captions = [row[1], row[2]]
            candidates = [os.path.join(root, image_dir, name)]
        if (not isinstance(captions, list) or len(captions) < 2 or len(captions) > len(LETTERS)
                or not all(isinstance(c, str) and c.strip() for c in captions)):
            raise BenchmarkError(f"{file}: row {i}: 'caption_options' must be a list of 2 to 8 captions")
        out.append((captions, candidates))
    return out


PAIRS = (("left", "right"), ("on", "under"), ("in-front", "behind"))


def set_and_pair_accuracy(rows: list[tuple[str, bool]]) -> tuple[float | None, float | None]:
    """The authors' set and pair accuracy (percent) from ``(image file name, right)`` per
    question of a controlled subset: key (first word, last word less its 5-character
    ``.jpeg``), preposition the second word; a later image of the same key and preposition
    replaces an earlier one, as in their dictionary. Over the number of keys."""
    if not rows:
        return None, None
    table: dict[tuple[str, str], dict[str, bool]] = {}
    for name, ok in rows:
        words = name.split("_")
        table.setdefault((words[0], words[-1][:-5]), {})[words[1] if len(words) > 1 else ""] = ok
    sets = sum(sum(preps.values()) == 4 for preps in table.values())
    pairs = sum(preps.get(a, False) and preps.get(b, False) for preps in table.values() for a, b in PAIRS)
    return 100.0 * sets / len(table), 100.0 * pairs / (2 * len(table))


class WhatsUp(Benchmark):
    name = "whatsup"
    aliases = ("WhatsUp", "What'sUp", "whatsup_vlms")
    hub_repo = None  # the authors distribute it from Google Drive
    native_circular = True  # circular evaluation is the loader's own `circular` option
    default_path_hint = ("the folder holding controlled_images_dataset.json, controlled_clevr_dataset.json and "
                         "their image folders (the authors' data/ folder)")

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The rows of the chosen subsets. ``images=False`` (scoring predictions) looks for no
        image, so none is skipped for a missing one: ``images`` then holds the path the image
        is first looked for at (not checked)."""
        check_options("whatsup", options, OPTIONS)
        subsets = _subset_names(options.get("subsets"))
        try:
            seed = int(options.get("seed", 0) or 0)
        except (TypeError, ValueError):
            raise BenchmarkError(f"whatsup: option seed must be an integer, got {options.get('seed')!r}") from None
        circular = _flag(options.get("circular", False), "circular")
        if not os.path.isdir(path):
            raise BenchmarkError(f"{path}: not a folder (expected the folder holding the What'sUp json files)")

        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        for subset in subsets:  # every file present before any is read
            file = os.path.join(path, SUBSETS[subset][0])
            if not os.path.isfile(file):
                raise BenchmarkError(f"{file}: not found (What'sUp subset {subset})")
        for subset in subsets:
            json_name, image_dir, layout = SUBSETS[subset]
            file = os.path.join(path, json_name)
            for index, (captions, candidates) in enumerate(_rows(file, layout, image_dir, path)):
                base = f"{subset}-{index}"
                image = next((c for c in candidates if os.path.isfile(c)), None) if images else candidates[0]
                if image is None:
                    rest = [c for c in dict.fromkeys(candidates) if c != candidates[0]]
                    others = f" (nor {', '.join(rest)})" if rest else ""
                    skipped.append(Skipped(base, "missing_image", candidates[0] + others))
                    continue
                k = len(captions)
                perm = permutation(seed, subset, index, k)
                rotations = range(k) if circular else range(1)
                for r in rotations:
                    order = perm[r:] + perm[:r]
                    shown = [captions[j] for j in order]
                    lines = "\n".join(f"{LETTERS[j]}. {c}" for j, c in enumerate(shown))
                    question = (f"<image>\nWhich caption describes the image correctly?\n{lines}\n{INSTRUCTION}")
                    items.append(EvalItem(
                        id=f"{base}-r{r}" if circular else base,
                        question=question,
                        images=[image],
                        answer=LETTERS[order.index(0)],
                        options=shown,
                        category=subset,
                        meta={"subset": subset, "row": index, "group": base, "permutation": order,
                              "rotation": r if circular else None, "true_caption": captions[0],
                              "caption_set": sorted(captions), "seed": seed,
                              "image_name": os.path.basename(candidates[-1])},
                    ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        tally = Tally()
        row_right: dict[str, list[bool]] = {}
        groups: dict[tuple[str, str], list[bool]] = {}
        strict_groups: dict[tuple[str, str], list[bool]] = {}
        names: dict[tuple[str, str], str] = {}
        failures = missing = 0
        for it in items:
            response = responses.get(it.id)
            missing += response is None
            letter = vlmeval_choice(answer_text(response), it.options or [])
            failures += response is not None and letter is None
            ok = letter is not None and letter == it.answer
            boxed_letter = tally.read(response, read_choice, it.options, n_letters=len(it.options or ()))
            subset = it.meta.get("subset") or it.category or "all"
            key = (subset, it.meta.get("group", it.id))
            row_right.setdefault(subset, []).append(ok)
            groups.setdefault(key, []).append(ok)
            strict_groups.setdefault(key, []).append(boxed_letter is not None and boxed_letter == it.answer)
            names[key] = str(it.meta.get("image_name") or "")

        circular = any(it.meta.get("rotation") is not None for it in items)
        per_q: dict[str, list[bool]] = {}
        strict_q: dict[str, list[bool]] = {}
        by_name: dict[str, list[tuple[str, bool]]] = {}
        for (subset, group), oks in groups.items():
            per_q.setdefault(subset, []).append(all(oks))
            strict_q.setdefault(subset, []).append(all(strict_groups[(subset, group)]))
            by_name.setdefault(subset, []).append((names[(subset, group)], all(oks)))

        per_category = {}
        for subset in sorted(per_q):
            entry: dict[str, Any] = {"n": len(per_q[subset]), "accuracy": pct(per_q[subset]),
                                     "strict": pct(strict_q[subset])}
            if circular:
                entry["rows"] = len(row_right[subset])
                entry["row_accuracy"] = pct(row_right[subset])
            per_category[subset] = entry
        set_accuracy, pair_accuracy = {}, {}
        for subset in sorted(per_q):
            if SUBSETS.get(subset, ("", "", ""))[2] == "controlled":
                set_accuracy[subset], pair_accuracy[subset] = set_and_pair_accuracy(by_name[subset])
        macro = [v["accuracy"] for v in per_category.values() if v["accuracy"] is not None]
        strict_macro = [v["strict"] for v in per_category.values() if v["strict"] is not None]
        all_rows = [ok for v in row_right.values() for ok in v]
        all_q = [ok for v in per_q.values() for ok in v]
        metric = ("caption choice read by VLMEvalKit's rule-based can_infer (vlmeval/utils/matching_util.py; the "
                  "authors' dataset_zoo/aro_datasets.py scores contrastively and has no text rule), options shuffled "
                  "per item"
                  + ("; circular: a question counts only when every rotation of its options is right" if circular
                     else "")
                  + "; accuracy = unweighted mean over subsets")
        report = {
            "accuracy": sum(macro) / len(macro) if macro else None,
            "n": len(all_q),
            "parse_failures": failures,
            "missing": missing,
            "per_category": per_category,
            "metric": metric,
            "metrics": {
                "question_mean": pct(all_q),
                "row_mean": pct(all_rows),
                "rows": len(all_rows),
                "circular": circular,
                "set_accuracy": set_accuracy,
                "pair_accuracy": pair_accuracy,
            },
        }
        return with_strict(report, sum(strict_macro) / len(strict_macro) if strict_macro else None, tally)


BENCHMARK = WhatsUp()
