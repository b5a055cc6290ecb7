"""The Ray engine: the run's batches as Ray Data tasks, on a local Ray or a cluster.

The plan, the batches, the part writer, the journal and resume are the engine's own
(:mod:`.run`, :mod:`.journal`, :mod:`..writers.parts`); only where a batch runs differs.
:class:`RayData` is the executor: each call to :meth:`RayData.map` becomes a Ray Data dataset
with one row per batch, ``map_batches`` runs :func:`.worker.run_batch` on a Ray worker (which
writes the batch's part into the output folder) and the driver gets back the small summary,
reordered into plan order. The same seed, inputs and options give the same files as a local
run, byte for byte.

Workers write into the output folder themselves: on a cluster of several machines it must
be a path every node sees the same (a shared file system, or an object store mounted with
s3fs, gcsfuse, ...), and every node needs the same library versions as the driver (a worker
with others refuses, :class:`.worker.EnvironmentMismatch`). Nothing outside the package
imports this module unless ``--engine ray`` is asked for, and it imports Ray only when a run
starts.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket

from .executors import Executor

RAY_EXTRA = "pip install 'spatial-ssrl[ray]'"


class RayEngineError(Exception):
    """A one-line reason the Ray engine cannot run (Ray missing, cluster unreachable)."""


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayEngineError(f"--engine ray needs Ray, which is not installed ({exc.name or exc}); "
                             f"install the ray extra: {RAY_EXTRA}") from None
    return ray


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    return (text[:300] + "...") if len(text) > 300 else (text or type(exc).__name__)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must accept a TCP connection: Ray
    itself waits a minute or two on a wrong one before it gives up."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" or something Ray itself rejects at once
    host = host.strip("[]") or "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        if isinstance(exc, socket.timeout):
            why = f"no answer in {timeout:g} s"
        raise RayEngineError(f"cannot reach a Ray cluster at --ray-address {address}: {why}") from None


_OWN_SESSION = False
"""Whether the Ray session of this process was started by :func:`connect` (so it is ours
to end)."""


def connect(address: str | None, num_cpus: int | None):
    """Ray, initialised: connected to ``address`` or, without one, a local Ray with
    ``num_cpus`` CPUs. A Ray session already open in this process (a notebook, a test, an
    earlier call) is used as it is. A session this starts is ended by :func:`end_session`."""
    global _OWN_SESSION
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address:
        _check_reachable(address)
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt
        where = f"at --ray-address {address}" if address else "locally"
        raise RayEngineError(f"cannot start Ray {where}: {_one_line(exc)}") from None
    _OWN_SESSION = True
    return ray


def end_session() -> None:
    """Shut down the Ray session :func:`connect` started (a local Ray's processes end with
    it; on a cluster, the job's tasks); one opened by someone else is left alone."""
    global _OWN_SESSION
    if not _OWN_SESSION:
        return
    _OWN_SESSION = False
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()


@contextlib.contextmanager
def session(address: str | None, num_cpus: int | None):
    """Ray connected for the block (see :func:`connect`); ended after it when it started here."""
    import sys

    fresh = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    ray = connect(address, num_cpus)
    try:
        yield ray
    finally:
        if fresh:
            end_session()


def _quiet_ray_data(ray) -> None:
    """No progress bars or per-dataset log lines from Ray Data on the terminal (the run has
    its own progress bar); warnings and errors still show."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _call(batch: dict) -> dict:
    """The ``map_batches`` function: pickled ``(index, fn, arg)`` in, pickled ``(index,
    fn(arg))`` out."""
    import numpy as np

    out = []
    for job in batch["job"]:
        index, fn, arg = pickle.loads(job)
        out.append(pickle.dumps((index, fn(arg)), protocol=pickle.HIGHEST_PROTOCOL))
    return {"out": np.array(out, dtype=object)}


class RayData(Executor):
    """Ray Data tasks, one CPU each, on the Ray this process is connected to."""

    name = "ray"

    def __init__(self, ray, address: str | None = None):
        self.ray = ray
        self.address = address or "local"
        _quiet_ray_data(ray)
        self.workers = int(ray.cluster_resources().get("CPU", 0)) or 1

    def map(self, fn, args, check, key=None):
        if not args:
            return
        jobs = [{"job": pickle.dumps((i, fn, a), protocol=pickle.HIGHEST_PROTOCOL)} for i, a in enumerate(args)]
        ds = self.ray.data.from_items(jobs, override_num_blocks=len(jobs))
        ds = ds.map_batches(_call, batch_size=1, num_cpus=1, zero_copy_batch=True)
        done: dict = {}
        due = 0
        for row in ds.iter_rows():
            check()
            index, result = pickle.loads(row["out"])
            done[index] = result
            while due in done:  # argument order, whatever order the tasks finished in
                yield done.pop(due)
                due += 1
        if due != len(args):
            raise RuntimeError(f"Ray returned {due} of {len(args)} results")

    def terminate(self) -> None:
        # a session of ours ends (its workers with it); in a session opened by someone else
        # Ray Data stops the tasks of a dataset whose iteration was given up
        end_session()


__all__ = ["RAY_EXTRA", "RayData", "RayEngineError", "connect", "end_session", "import_ray", "session"]
