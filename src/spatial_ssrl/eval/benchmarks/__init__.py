"""One module per benchmark; each defines ``BENCHMARK``, an instance of
:class:`spatial_ssrl.eval.base.Benchmark`. :func:`get_benchmark` finds them by name."""

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


def get_benchmark(name: str) -> Benchmark:
    benches = available()
    key = name.lower().replace("_", "-")
    for bench_name, bench in benches.items():
        if bench_name.lower() == key:
            return bench
    raise BenchmarkError(f"unknown benchmark {name!r}; available: {', '.join(benches)}")
