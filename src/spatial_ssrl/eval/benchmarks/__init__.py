"""One module per benchmark; each defines ``BENCHMARK``, an instance of
:class:`spatial_ssrl.eval.base.Benchmark`. :func:`get_benchmark` finds them by name or by one of
their ``aliases`` (the names lmms-eval and VLMEvalKit use), case-insensitively and ignoring
``-``, ``_``, spaces and apostrophes."""

from __future__ import annotations

import importlib
import pkgutil

from ..base import Benchmark, BenchmarkError


def available() -> dict[str, Benchmark]:
    """name -> benchmark, for every module of this package."""
    found: dict[str, Benchmark] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        bench = getattr(module, "BENCHMARK", None)
        if isinstance(bench, Benchmark):
            found[bench.name] = bench
    return dict(sorted(found.items()))


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c not in "-_ '’")


def get_benchmark(name: str) -> Benchmark:
    benches = available()
    key = _key(name)
    for bench_name, bench in benches.items():
        if key in {_key(n) for n in (bench_name, *bench.aliases)}:
            return bench
    raise BenchmarkError(f"unknown benchmark {name!r}; available: {', '.join(benches)}")
