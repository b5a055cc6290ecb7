"""Benchmark of spatial_ssrl.reward.score.

1. Throughput on typical responses: 300-800 characters of reasoning in a think block, then
   a boxed answer, for a mix of the three answer types and a mix of answer spellings
   (right, wrong, hedged, malformed). Reports responses per second on one core.
2. Latency on hostile responses of about 1 MB each (deeply nested braces, thousands of
   boxes, unclosed tags, long whitespace runs inside tags). Reports milliseconds.

Every figure is the median of several repeats. Targets: >= 50,000 responses/s and
< 50 ms per hostile response.

    python bench/bench_reward.py [--repeats 7] [--n 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

from spatial_ssrl.reward import score

WORDS = [
    "the", "patch", "on", "the", "left", "shows", "a", "continuous", "edge", "with", "the",
    "upper", "region", "so", "it", "probably", "belongs", "at", "the", "top", "while",
    "the", "strip", "with", "the", "horizon", "line", "must", "come", "next", "because",
    "the", "sky", "gradient", "and", "the", "roof", "line", "align", "the", "texture", "of",
    "the", "grass", "continues", "across", "the", "boundary", "region", "marked", "two",
    "looks", "nearer", "than", "region", "three", "given", "the", "occlusion",
]

MIB = 1 << 20


def _reasoning(rng: random.Random, n_chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def _answer(rng: random.Random) -> tuple[str, str, str, list[str] | None]:
    """(box content, ground truth, answer type, options) for one random sample."""
    kind = rng.choice(("choice", "permutation", "flip"))
    if kind == "choice":
        truth = rng.choice("ABCD")
        opts = ["Left", "Right", "Front", "Back"] if rng.random() < 0.5 else None
        guess = truth if rng.random() < 0.6 else rng.choice("ABCD")
        forms = [guess, f"({guess})", f"{guess}.", f"\\text{{{guess}}}", f"Option {guess}", guess.lower()]
        if opts:
            forms.append(f"{guess}. {opts['ABCD'.index(guess)]}")
        return rng.choice(forms), truth, kind, opts
    if kind == "permutation":
        n = rng.choice((3, 4))
        labels = list(range(n)) if rng.random() < 0.7 else list(range(1, n + 1))
        rng.shuffle(labels)
        truth = "-".join(map(str, labels))
        guess = labels[:] if rng.random() < 0.5 else rng.sample(labels, len(labels))
        forms = ["-".join(map(str, guess)), ", ".join(map(str, guess)), " ".join(map(str, guess)),
                 "[" + ", ".join(map(str, guess)) + "]"]
        return rng.choice(forms), truth, kind, None
    label, direction = rng.randrange(4), rng.randrange(2)
    truth = f"{label}-{direction}"
    g_label = label if rng.random() < 0.6 else rng.randrange(4)
    forms = [f"{g_label}-{direction}", f"{g_label}, {direction}", f"({g_label},{direction})",
             f"{g_label}-{'vertical' if direction == 0 else 'horizontal'}"]
    return rng.choice(forms), truth, kind, None


def typical_responses(n: int, seed: int = 0) -> list[tuple[str, str, str, list[str] | None]]:
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        content, truth, kind, opts = _answer(rng)
        body = _reasoning(rng, rng.randint(275, 735))
        tail = rng.random()
        if tail < 0.8:
            resp = f"<think>\n{body}\n</think>\nThe answer is \\boxed{{{content}}}."
        elif tail < 0.9:
            resp = f"<think>{body}</think> \\boxed{{{content}}} or maybe \\boxed{{{truth}}}"
        else:
            resp = f"< think >{body}</ think > final: {content}"
        items.append((resp, truth, kind, opts))
    return items


def hostile_responses() -> dict[str, str]:
    think = "<think>reasoning</think>"
    return {
        "nested-open-braces": think + "\\boxed{" + "{" * MIB,
        "nested-balanced-braces": think + "\\boxed{" + "{" * (MIB // 2) + "}" * (MIB // 2),
        "many-boxes": think + "\\boxed{A}" * (MIB // 9),
        "many-distinct-boxes": think + "".join(f"\\boxed{{{i}}}" for i in range(MIB // 12)),
        "nested-boxes": think + "\\boxed{" * (MIB // 7),
        "box-then-brace-pairs": think + "\\boxed{" * 8 + "{}" * (MIB // 2),
        "unclosed-open-tags": "<think>" * (MIB // 7),
        "unclosed-close-tags": "</think" * (MIB // 7) + "\\boxed{A}",
        "alternating-tags": "<think></think>" * (MIB // 15) + "\\boxed{A}",
        "boxes-in-unclosed-think": "<think>" + "\\boxed{A}" * (MIB // 9),
        "tag-whitespace": "<" + " " * MIB + "/ think",
        "many-lt-spaces": "< " * (MIB // 2),
        "think-words": "think " * (MIB // 6) + "\\boxed{A}",
        "long-box-content": think + "\\boxed{" + "A, " * (MIB // 3) + "}",
    }


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="typical responses per repeat")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        except OSError:
            pass

    items = typical_responses(args.n)
    lengths = sorted(len(r) for r, *_ in items)

    def run_typical():
        for resp, truth, kind, opts in items:
            score(resp, truth, kind, options=opts)

    run_typical()  # warm caches the way a training run would
    t = _median_time(run_typical, args.repeats)
    rate = args.n / t
    results = {
        "typical": {
            "responses": args.n,
            "median_chars": lengths[len(lengths) // 2],
            "min_chars": lengths[0],
            "max_chars": lengths[-1],
            "median_seconds": t,
            "responses_per_second": rate,
            "us_per_response": 1e6 * t / args.n,
        },
        "hostile_ms": {},
    }
    print(f"typical responses ({lengths[0]}-{lengths[-1]} chars, median {lengths[len(lengths) // 2]}):")
    print(f"  {rate:,.0f} responses/s on one core ({1e6 * t / args.n:.1f} us each; target >= 50,000/s)")

    print("hostile responses (median ms; target < 50 ms):")
    worst = 0.0
    for name, text in hostile_responses().items():
        ms = 1e3 * _median_time(lambda text=text: score(text, "A", "choice"), args.repeats)
        worst = max(worst, ms)
        results["hostile_ms"][name] = ms
        print(f"  {name:28s} {len(text) / MIB:5.2f} MiB  {ms:7.2f} ms")
    results["hostile_worst_ms"] = worst
    print(f"  worst: {worst:.2f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    ok = rate >= 50_000 and worst < 50.0
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
