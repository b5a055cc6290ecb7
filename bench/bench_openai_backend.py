#!/usr/bin/env python
"""Throughput of spatial_ssrl.backends.openai_backend against the local test server.

A benchmark, not a test. The server (tests/openai_server.py, on 127.0.0.1) answers every
chat request after a fixed delay standing in for the model's generation time; each item
carries one JPEG image (sent as a base64 data URL, decoded from JSON by the server). The
same items are generated with 1 request in flight and with ``--in-flight`` requests in
flight, each run repeated ``--reps`` times (median kept). Reported: items per second for
both, their ratio (target >= 6x at 8 in flight with a 0.2 s delay), the ideal items/s
(in-flight / delay) and the client's overhead per item at 1 in flight (wall time per item
minus the delay). The server runs in a child process by default, so that its Python work
does not compete with the client's for one interpreter lock (``--same-process`` to keep
it in this process, as the tests do).

    python bench/bench_openai_backend.py [--items 48] [--delay 0.2] [--in-flight 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from openai_server import OpenAIServer

from spatial_ssrl.backends.openai_backend import Item, OpenAIBackend


def make_items(n: int, size: int, seed: int = 0) -> list[Item]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        # A smooth image with some noise: a JPEG of a realistic size, not of pure noise.
        y, x = np.mgrid[0:size, 0:size]
        base = np.stack([(x + 3 * i) % 256, (y * 2) % 256, ((x + y) // 2) % 256], axis=-1)
        pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        items.append(Item(f"<image>Item {i}: which region is closer to the camera?", [buf.getvalue()]))
    return items


ANSWER = "\\boxed{1-2-3}"


def _serve(conn, delay: float) -> None:
    """Child process: serve until told to stop, then report the peak concurrency."""
    with OpenAIServer(answer=lambda body: ANSWER, delay=delay) as server:
        conn.send(server.api_base)
        while True:
            msg = conn.recv()
            if msg == "reset":
                server.reset()
                conn.send(None)
            elif msg == "peak":
                conn.send(server.max_concurrent)
            else:
                break


class _RemoteServer:
    """The test server in a child process, with the attributes ``run`` and ``main`` use."""

    def __init__(self, delay: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, delay), daemon=True)
        self._proc.start()
        self.api_base = self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    @property
    def max_concurrent(self) -> int:
        self._conn.send("peak")
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=10)


@contextlib.contextmanager
def serving(delay: float, same_process: bool):
    if same_process:
        with OpenAIServer(answer=lambda body: ANSWER, delay=delay) as server:
            yield server
    else:
        server = _RemoteServer(delay)
        try:
            yield server
        finally:
            server.close()


def run(server, items: list[Item], in_flight: int, reps: int, through_eval: bool = False) -> tuple[float, list[float]]:
    times = []
    for _ in range(reps):
        if through_eval:
            t0 = time.perf_counter()
            _eval_run(server, items, in_flight)
            times.append(time.perf_counter() - t0)
            continue
        backend = OpenAIBackend(server.api_base, "bench-model", api_key="", max_in_flight=in_flight, timeout=30)
        t0 = time.perf_counter()
        results = backend.generate(items)
        times.append(time.perf_counter() - t0)
        bad = [r.error for r in results if not r.ok]
        if bad:
            raise SystemExit(f"{len(bad)} requests failed: {bad[:3]}")
    return statistics.median(times), times


def _eval_run(server, items: list[Item], in_flight: int) -> None:
    """The ``ssrl eval ... --api-base`` path: the runner appending each prediction to a fresh
    predictions.jsonl as it arrives."""
    import tempfile

    from spatial_ssrl.eval.base import EvalItem
    from spatial_ssrl.eval.cli import _openai_generate
    from spatial_ssrl.eval.runner import Decoding, run_generation

    decoding = Decoding(max_new_tokens=64, format_prompt=True)
    generate = _openai_generate(server.api_base, "bench-model", in_flight, decoding, timeout=30, retries=0)
    evals = [EvalItem(id=str(i), question=it.question, images=list(it.images)) for i, it in enumerate(items)]
    with tempfile.TemporaryDirectory(prefix="ssrl-bench-eval-") as out:
        done = run_generation(evals, generate, out, decoding, {"benchmark": "bench"})
    bad = [p.get("error") for p in done.values() if p.get("response") is None]
    if bad:
        raise SystemExit(f"{len(bad)} requests failed: {bad[:3]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=48, help="items per run (default 48)")
    p.add_argument("--delay", type=float, default=0.2, help="server seconds per answer (default 0.2)")
    p.add_argument("--in-flight", type=int, default=8, help="requests in flight for the parallel run (default 8)")
    p.add_argument("--image-size", type=int, default=448, help="side of each item's JPEG image (default 448)")
    p.add_argument("--reps", type=int, default=3, help="runs per setting, median kept (default 3)")
    p.add_argument("--same-process", action="store_true", help="run the server in this process (default: a child)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    p.add_argument("--through-eval", action="store_true",
                   help="go through ssrl eval's runner (predictions.jsonl appended per item), not the backend alone")
    args = p.parse_args()

    items = make_items(args.items, args.image_size)
    jpeg_kib = statistics.mean(len(it.images[0]) for it in items) / 1024
    print(f"{args.items} items, one {args.image_size}x{args.image_size} JPEG each ({jpeg_kib:.0f} KiB), "
          f"server delay {args.delay:.3f} s, median of {args.reps} runs")
    where = "this process" if args.same_process else "a child process"
    print(f"server in {where}; " + ("through ssrl eval's runner" if args.through_eval else "the backend alone"))
    with serving(args.delay, args.same_process) as server:
        run(server, items[:4], args.in_flight, 1, args.through_eval)  # warm-up (imports, first connections)
        t1, all1 = run(server, items, 1, args.reps, args.through_eval)
        tn, alln = run(server, items, args.in_flight, args.reps, args.through_eval)
        server.reset()
        run(server, items, args.in_flight, 1)
        peak = server.max_concurrent

    ips1, ipsn = args.items / t1, args.items / tn
    ratio = ipsn / ips1
    overhead_ms = (t1 / args.items - args.delay) * 1000
    def ideal(k: int) -> str:
        return f"{k / args.delay:.2f}/s" if args.delay > 0 else "unbounded"

    print(f"  1 in flight:  {ips1:7.2f} items/s  ({t1:.2f} s; ideal {ideal(1)}; "
          f"client+server overhead {overhead_ms:.1f} ms/item)")
    print(f"  {args.in_flight} in flight:  {ipsn:7.2f} items/s  ({tn:.2f} s; ideal {ideal(args.in_flight)}; "
          f"server saw at most {peak} at once)")
    target = 6.0
    verdict = "ok" if ratio >= target else "BELOW TARGET"
    print(f"  ratio:        {ratio:7.2f}x  (target >= {target:.0f}x at 8 in flight: {verdict})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"items": args.items, "delay_s": args.delay, "in_flight": args.in_flight,
                       "image_size": args.image_size,
                       "same_process": args.same_process, "seconds_1": all1, f"seconds_{args.in_flight}": alln,
                       "items_per_s_1": ips1, f"items_per_s_{args.in_flight}": ipsn, "ratio": ratio,
                       "overhead_ms_per_item": overhead_ms, "peak_concurrent": peak}, fh, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
