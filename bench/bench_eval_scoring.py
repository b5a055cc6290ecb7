"""Scoring speed of ``ssrl eval``: 100,000 predictions through the pretext benchmark's scorer
(the reward's parser and canonicaliser, the code of ``ssrl score``) and the results step.

    python bench/bench_eval_scoring.py [--n 100000] [--reps 3]

Target: under 5 s for 100,000 predictions on one core.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time


def make_items(n: int, seed: int = 0):
    from spatial_ssrl.eval.base import EvalItem

    rng = random.Random(seed)
    items, responses = [], {}
    kinds = [("shuffle", "2x2", "permutation"), ("flip", "2x2", "flip"), ("crop", "4-options", "choice"),
             ("depth", "3-regions", "permutation"), ("position", "auto", "choice")]
    for i in range(n):
        task, variant, atype = kinds[i % len(kinds)]
        if atype == "permutation":
            labels = [str(x) for x in range(4 if task == "shuffle" else 3)]
            rng.shuffle(labels)
            answer = "-".join(labels)
            options = None
        elif atype == "flip":
            answer, options = f"{rng.randrange(4)}-{rng.randrange(2)}", None
        else:
            answer = rng.choice("ABCD")
            options = ["Left", "Right", "Front", "Back"] if task == "position" else list("ABCD")
        sid = f"{task}-{i}"
        items.append(EvalItem(id=sid, question="<image>q", answer=answer, options=options, category=task,
                              meta={"variant": variant, "answer_type": atype}))
        guess = answer if rng.random() < 0.5 else (options[0] if options else answer[::-1])
        think = "The pieces continue each other along the borders, so " * rng.randint(1, 6)
        responses[sid] = f"<think>{think}</think>\nThe answer is \\boxed{{{guess}}}."
    return items, responses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    from spatial_ssrl.eval.benchmarks import get_benchmark
    from spatial_ssrl.eval.runner import results

    bench = get_benchmark("pretext")
    items, responses = make_items(args.n)
    predictions = {k: {"id": k, "response": v} for k, v in responses.items()}
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        res = results(bench, items, [], predictions, {"model": "bench"})
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"pretext: {args.n} predictions scored in {med:.2f} s (median of {args.reps}; "
          f"{args.n / med:,.0f}/s); accuracy {res['accuracy']:.1f}%; target < 5 s: {'met' if med < 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
