"""Pretext samples generated while GRPO trains (``ssrl train grpo --online``).

:class:`OnlineFeeder` gives the trainer an endless stream of GRPO rows made on demand by
the same code as ``ssrl generate`` (the engine's dealer and ``run_unit``), so a sample drawn
online is the sample ``ssrl generate`` makes for the same (seed, source, task, variant, k):
same id, same pixels, same answer. Worker processes generate ahead of the trainer (a window
of a few samples per worker), and the time the trainer spends waiting on them is measured.

What is drawn at position ``i`` of the stream:

- ``fixed`` curriculum (the paper): the offline plan. Positions ``0 .. plan_size - 1`` are
  the task slots ``ssrl generate -n plan_size`` deals, dealt to the same sources with the same
  sample numbers; the next positions repeat that with the next plan block (another seed).
- ``schedule`` / ``adaptive``: the task by the curriculum's current weights and its variant
  from the task's current difficulty level (see :mod:`spatial_ssrl.tasks.levels`), both drawn
  with a random stream of (seed, i); the source by the same round-robin dealer.

With several training processes (``torchrun``, ``accelerate launch``) the main process runs
the one feeder of the run and sends each row it yields to the others
(:meth:`OnlineFeeder.shared_rows`); they take their own slice of that one stream, so nothing is
generated twice and the curriculum's moves reach every rank's prompts at the same position.

Every drawn sample is appended to a record file (JSON lines: position, id, source, task,
variant, level, k and the params), so a run can be audited and its data re-created. A slot
whose source turns out unusable, or that stays ambiguous, is skipped (and recorded as such).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass

from ..engine.executors import ProcessPool
from ..engine.mix import MixEntry
from ..engine.run import _Dealer, _initial_slots
from ..engine.worker import Job, WorkerConfig, run_unit
from ..prompts import content_parts
from ..tasks.levels import level_by_name, paper_level, task_levels
from .curriculum import Curriculum, CurriculumSettings

ONLINE_STATE = "online_state.json"  # in each checkpoint of an online run: OnlineFeeder.state()
AHEAD_PER_WORKER = 4  # samples a generator process may make before the trainer asks for them
ROW_COLUMNS = ("prompt", "images", "answer", "answer_type", "options", "task", "variant", "level", "id")


class OnlineError(RuntimeError):
    """The online stream cannot go on (the message says why)."""


@dataclass
class _Draw:
    position: int
    task: str
    variant: str
    level: str
    ref: object
    job: Job


def curriculum_for(mix: list[MixEntry], settings: CurriculumSettings, start: dict[str, str] | None = None) -> Curriculum:
    """A curriculum over the mix's tasks: base weights from the mix, levels from the task
    table, each task starting at its paper level unless ``start`` says otherwise."""
    base: dict[str, float] = Counter()
    for e in mix:
        base[e.task] += e.weight
    levels = {t: [lv.name for lv in task_levels(t)] for t in base}
    first = {t: (start or {}).get(t, paper_level(t)) for t in base}
    return Curriculum(levels, dict(base), first, settings)


class OnlineFeeder:
    """An endless, deterministic stream of GRPO rows generated on demand.

    ``refs``: the sources (``spatial_ssrl.sources``); ``mix``: the task mix (base weights);
    ``curriculum``: levels and weights (``None``: the fixed paper plan); ``plan_size``: how
    many slots one fixed plan block holds (``ssrl generate -n plan_size``); ``workers``:
    generator processes (0: generate in the calling thread); ``record``: the JSON-lines
    record path (``None``: no record)."""

    def __init__(self, refs, mix: list[MixEntry], seed: int = 0, curriculum: Curriculum | None = None,
                 plan_size: int = 1000, workers: int = 2, worker_config: WorkerConfig | None = None,
                 record: str | None = None, max_consecutive_failures: int = 200, receive: bool = False):
        self.receive = bool(receive)  # another process generates and sends the rows
        if not refs and not self.receive:
            raise OnlineError("online generation needs at least one source image")
        self.refs = list(refs)
        self.mix = list(mix)
        self.seed = int(seed)
        self.curriculum = curriculum if curriculum is not None and curriculum.settings.mode != "fixed" else None
        self.plan_size = max(1, int(plan_size))
        self.workers = max(0, int(workers))
        self.wcfg = worker_config or WorkerConfig(seed=self.seed)
        if self.wcfg.seed != self.seed:
            raise OnlineError("the worker config's seed must be the feeder's seed")
        self.record_path = record
        self.max_consecutive_failures = max_consecutive_failures
        self.dealer = _Dealer(self.refs, self.seed)
        self.produced = 0
        self.failed: Counter = Counter()
        self.wait_seconds = 0.0
        self.started: float | None = None
        self._pool: ProcessPool | None = None
        self._pool_fresh = False
        self._record = None
        self._recorded_upto = -1
        self._position = 0
        self._draws_gen: Iterator[_Draw] | None = None
        self._failures: list[list] = []  # [position, source id, marked bad, marked bad for depth]
        self._placeholders = 0
        self.received = 0  # rows another process sent (``receive``)

    # -- the plan ------------------------------------------------------------------------
    def _fixed_slots(self) -> Iterator[tuple[str, str]]:
        block = 0
        while True:
            seed = self.seed if block == 0 else self.seed + 1_000_003 * block
            yield from _initial_slots(self.plan_size, self.mix, seed)
            block += 1

    def _draws(self) -> Iterator[_Draw]:
        fixed = self._fixed_slots() if self.curriculum is None else None
        while True:
            i = self._position
            self._position += 1
            if fixed is not None:
                task, variant = next(fixed)
                level = variant
            else:
                rng = random.Random(f"ssrl-online:{self.seed}:{i}")
                task, level = self.curriculum.draw(rng)
                lv = level_by_name(task, level)
                names = [v for v, _ in lv.variants]
                variant = rng.choices(names, weights=[w for _, w in lv.variants])[0]
            units, undealt = self.dealer.deal([(task, variant)])
            if undealt or not units:
                self.failed["no_usable_source"] += 1
                self._note({"i": i, "task": task, "variant": variant, "level": level, "skipped": "no_usable_source"})
                if self.failed["no_usable_source"] > self.max_consecutive_failures and self.produced == 0:
                    raise OnlineError(f"no usable source for {task}/{variant}")
                continue
            ref, jobs = units[0]
            yield _Draw(i, task, variant, level, ref, jobs[0])

    def _draw_iter(self) -> Iterator[_Draw]:
        """The one stream of draws (kept across reads of the stream and a fast-forward)."""
        if self._draws_gen is None:
            self._draws_gen = self._draws()
        return self._draws_gen

    # -- resuming ------------------------------------------------------------------------
    def state(self) -> dict:
        """What a resumed run needs to reach its place in the stream without generating:
        the positions whose generation gave no sample, and which source they condemned, and
        the size of the fixed plan's blocks (a resume with another ``max_steps`` keeps it)."""
        return {"failures": [list(f) for f in self._failures], "plan_size": self.plan_size}

    def fast_forward(self, rows: int, state: dict | None) -> None:
        """Pass the first ``rows`` rows of the stream without generating them. The draws are
        made again (cheap: the plan, the curriculum and the dealer, no pixels), each
        position's outcome taken from ``state`` (a saved :meth:`state`: every position it
        does not list as a failure gave a row). The stream then yields ``rows`` placeholder
        rows, which the resumed trainer skips, before the first real one."""
        self._placeholders = rows
        if self.receive:
            return  # the main process replays the draws; this one only skips the rows
        if (state or {}).get("plan_size") and self._draws_gen is None:
            self.plan_size = int(state["plan_size"])  # the stream the checkpoint's run was drawing
        failed = {int(f[0]): f for f in (state or {}).get("failures", [])}
        draws = self._draw_iter()
        done = 0
        while done < rows:
            d = next(draws)
            f = failed.get(d.position)
            if f is None:
                done += 1
                continue
            _pos, source, bad, bad_depth = f
            if bad:
                self.dealer.bad.add(source)
            if bad_depth:
                self.dealer.bad_depth.add(source)
            self._failures.append(list(f))

    # -- running -------------------------------------------------------------------------
    def _note(self, rec: dict) -> None:
        if self._record is not None and rec["i"] > self._recorded_upto:
            self._record.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self._record.flush()

    def _open_record(self) -> None:
        """Append to the record; positions it already holds (a resumed run draws the stream
        again from its start to reach its data position) are not written twice."""
        self._recorded_upto = -1
        try:
            with open(self.record_path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        self._recorded_upto = max(self._recorded_upto, int(json.loads(line)["i"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a kill
        except FileNotFoundError:
            pass
        self._record = open(self.record_path, "a", encoding="utf-8")  # noqa: SIM115 (open for the stream)
        if self._record.tell() > 0:
            with open(self.record_path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self._record.write("\n")  # end a line a kill cut short; it is skipped when read

    def rows(self) -> Iterator[dict]:
        """GRPO rows (:data:`ROW_COLUMNS`, images as PNG/JPEG bytes), forever."""
        if self.record_path and self._record is None:
            self._open_record()
        if self._pool is not None and not self._pool_fresh:
            # a stream read anew (a new epoch, say): results of the old one may still be in
            # flight, so its workers go and fresh ones start
            self._pool.terminate()
            self._pool = None
        self.start()
        self._pool_fresh = False
        draws: deque[_Draw] = deque()

        while self._placeholders > 0:  # rows a resumed trainer skips: never generated
            self._placeholders -= 1
            yield placeholder_row()

        def args() -> Iterator[tuple]:
            for d in self._draw_iter():
                draws.append(d)
                yield (d.ref, [d.job], self.wcfg)

        results = (self._pool.map(run_unit, args(), _nothing, key=_source_of, ahead=AHEAD_PER_WORKER * self.workers)
                   if self._pool is not None else map(run_unit, args()))
        self.started = self.started or time.perf_counter()
        consecutive = 0
        while True:
            t0 = time.perf_counter()
            res = next(results)
            self.wait_seconds += time.perf_counter() - t0
            d = draws.popleft()
            sample = res.results[0].sample if res.results else None
            if sample is None:
                reason = res.skip_reason or res.depth_skip_reason or "ambiguous_after_max_attempts"
                if res.skip_reason:
                    self.dealer.bad.add(d.ref.id)
                if res.depth_skip_reason:
                    self.dealer.bad_depth.add(d.ref.id)
                self._failures.append([d.position, d.ref.id, bool(res.skip_reason), bool(res.depth_skip_reason)])
                self.failed[reason] += 1
                self._note({"i": d.position, "source": d.ref.id, "task": d.task, "variant": d.variant,
                            "level": d.level, "k": d.job.k, "skipped": reason})
                consecutive += 1
                if consecutive > self.max_consecutive_failures:
                    raise OnlineError(f"{consecutive} draws in a row gave no sample (last: {reason})")
                continue
            consecutive = 0
            self.produced += 1
            params = json.loads(sample.meta_json).get("params")
            self._note({"i": d.position, "id": sample.id, "source": d.ref.id, "task": d.task,
                        "variant": d.variant, "level": d.level, "k": d.job.k, "params": params})
            yield to_row(sample, d.level)

    def shared_rows(self) -> Iterator[dict]:
        """:meth:`rows` for the whole launch. Alone, the rows themselves. With several
        processes, the main one generates and broadcasts each row; the others (``receive``)
        yield what they get, so every rank reads one stream in the same order and takes its
        slice of it. A resumed run's placeholder rows are made on every process, not sent."""
        from .runs import world_size

        if world_size() == 1:
            yield from self.rows()
            return
        import torch.distributed as dist

        while self._placeholders > 0:
            self._placeholders -= 1
            yield placeholder_row()
        if not self.receive:
            try:
                for row in self.rows():
                    dist.broadcast_object_list([row], src=0)
                    yield row
            except Exception as exc:  # the others are waiting for a row: tell them why none comes
                dist.broadcast_object_list([{_FAILED: f"{type(exc).__name__}: {exc}"}], src=0)
                raise
            return
        while True:
            box = [None]
            dist.broadcast_object_list(box, src=0)
            row = box[0]
            if _FAILED in row:
                raise OnlineError(f"the main process's online stream stopped ({row[_FAILED]})")
            self.received += 1
            yield row

    def start(self) -> None:
        """Start the generator processes now (they import and warm up while the trainer
        loads its model); :meth:`rows` otherwise starts them on the first read."""
        if self.workers and self._pool is None and not self.receive:
            import multiprocessing

            # spawn: the trainer process holds torch's threads, which a fork must not copy
            self._pool = ProcessPool(self.workers, context=multiprocessing.get_context("spawn"))
            self._pool_fresh = True

    def stats(self) -> dict[str, float]:
        wall = time.perf_counter() - self.started if self.started else 0.0
        out = {"online/samples": float(self.produced), "online/wait_seconds": round(self.wait_seconds, 4),
               "online/failed": float(sum(self.failed.values()))}
        if wall > 0:
            out["online/wait_share"] = self.wait_seconds / wall
        return out

    def close(self) -> None:
        _LIVE.pop(f"{id(self)}", None)
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None
        if self._record is not None:
            self._record.close()
            self._record = None

    def __enter__(self) -> OnlineFeeder:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def dataset(self):
        """A ``datasets.IterableDataset`` over :meth:`rows` (images decoded to PIL), for
        ``GRPOTrainer(train_dataset=...)``; set ``shuffle_dataset=False`` (the stream is
        random already, and a shuffle buffer would draw far ahead)."""
        from datasets import IterableDataset

        from .data import features_grpo

        features = features_grpo(level=True)
        key = f"{id(self)}"
        _LIVE[key] = self
        # the generator is found by key, not captured: `datasets` may pickle or copy the
        # generator and its arguments, and the feeder (its processes, its curriculum) must
        # stay the one live object
        return IterableDataset.from_generator(_stream, features=features, gen_kwargs={"key": key})


_LIVE: dict[str, OnlineFeeder] = {}


def _nothing() -> None:
    return None


def _source_of(args) -> tuple[str, str]:
    return args[0].id, args[0].id


_FAILED = "ssrl_online_failed"  # the key of the message the main process sends when its stream stops


def _stream(key: str):
    yield from _LIVE[key].shared_rows()


def placeholder_row() -> dict:
    """A row with the GRPO columns and nothing in them: what a resumed run's stream yields
    for the rows its trainer skips to reach its data position (never trained on)."""
    return {"prompt": [{"role": "user", "content": [{"type": "text", "text": ""}]}], "images": [], "answer": "",
            "answer_type": "", "options": [], "task": "", "variant": "", "level": "", "id": ""}


def to_row(sample, level: str) -> dict:
    """The GRPO row of an encoded sample (the same columns as the offline GRPO rows)."""
    return {
        "prompt": [{"role": "user", "content": content_parts(sample.problem)}],
        "images": [{"bytes": bytes(b), "path": None} for b in sample.images],  # a worker's are views
        "answer": sample.answer,
        "answer_type": sample.answer_type,
        "options": sample.options,
        "task": sample.task,
        "variant": sample.variant,
        "level": level,
        "id": sample.id,
    }


@dataclass
class OnlinePlan:
    """What an online GRPO run draws from, checked before any model loads."""

    refs: list
    mix: list[MixEntry]
    curriculum: Curriculum
    recorder: object
    seed: int
    workers: int
    plan_size: int | None

    @property
    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.mix})

    def feeder(self, output: str, args) -> OnlineFeeder:
        size = self.plan_size
        if not size:
            rounds = -(-int(args.max_steps) // int(args.steps_per_generation))
            size = max(1, rounds * int(args.generation_batch_size) // int(args.num_generations))
        from ..engine.run import GenerateConfig
        from .runs import is_main_process

        wcfg = GenerateConfig(seed=self.seed, mix=self.mix).worker_config()
        main = is_main_process()
        return OnlineFeeder(self.refs, self.mix, seed=self.seed, curriculum=self.curriculum, plan_size=size,
                            workers=self.workers if main else 0, worker_config=wcfg,
                            record=os.path.join(output, "online_samples.jsonl") if main else None,
                            receive=not main)

    def restore(self, checkpoint: str) -> dict | None:
        """Load the curriculum's state from ``checkpoint``; return the feeder's saved state
        (for :meth:`OnlineFeeder.fast_forward`), or None."""
        path = os.path.join(checkpoint, "curriculum_state.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                self.curriculum.load_state_dict(json.load(fh))
        path = os.path.join(checkpoint, ONLINE_STATE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)


def _check_some_usable(refs) -> None:
    """At least one input image must open (probed in order until one does: usually the
    first), so a folder of broken files fails here, before any model loads."""
    from ..readers import image_problem
    from .config import ConfigError

    probed = []
    for ref in refs:
        if ref.kind == "procedural":
            return
        if ref.kind == "video":
            from ..sources.base import SourceSkip
            from ..sources.video import open_clip

            try:
                open_clip(ref.path)
                return
            except (SourceSkip, OSError):
                probed.append(os.path.basename(ref.path))
                continue
        try:
            with open(ref.path, "rb") as fh:
                problem = image_problem(fh.read())
        except OSError as exc:
            problem = exc.strerror or str(exc)
        if problem is None:
            return
        probed.append(os.path.basename(ref.path))
    shown = ", ".join(probed[:3]) + (f" and {len(probed) - 3} more" if len(probed) > 3 else "")
    raise ConfigError(f"online_inputs: none of the {len(probed)} input image(s) can be read as an image ({shown})")


def online_plan(cfg) -> OnlinePlan:
    """Sources, task mix and curriculum of an online run, from its config keys."""
    from ..engine.mix import MixError, parse_mix
    from ..sources import default_refs, discover_rgbd
    from ..sources.files import InputError
    from .config import ConfigError
    from .curriculum import CurriculumError, GroupRecorder

    o = cfg.opts
    max_steps = cfg.trl.get("max_steps", -1)
    if not isinstance(max_steps, int) or max_steps <= 0:
        raise ConfigError("an online run needs max_steps (the stream of samples has no end): pass --max-steps N")
    inputs = o["online_inputs"]
    if isinstance(inputs, str):
        inputs = [inputs]
    try:
        refs = discover_rgbd([os.fspath(p) for p in inputs])[0] if inputs else default_refs()
    except InputError as exc:
        raise ConfigError(f"online_inputs: {exc}") from None
    if not refs:
        raise ConfigError("online_inputs: no image files found")
    _check_some_usable(refs)
    from ..engine.run import DEPTH_KINDS

    with_depth = any(r.kind in DEPTH_KINDS for r in refs)  # (a video has no depth)
    try:
        mix = parse_mix(o["online_tasks"], with_depth=with_depth)
    except MixError as exc:
        raise ConfigError(f"online_tasks: {exc}") from None
    if not with_depth and any(getattr(e, "task", "") in ("depth", "position") for e in mix):
        raise ConfigError("online_tasks: depth and position need RGB-D inputs; none were found")
    workers = o["online_workers"]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"online_workers must be an integer >= 0, got {workers!r}")
    try:
        settings = CurriculumSettings(
            mode=str(o["curriculum"]), target=float(o["curriculum_target"]), band=float(o["curriculum_band"]),
            min_groups=int(o["curriculum_min_groups"]), cooldown=int(o["curriculum_cooldown"]),
            schedule_every=int(o["curriculum_schedule_every"]))
        curriculum = curriculum_for(mix, settings, o["curriculum_start"])
    except (CurriculumError, KeyError) as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"curriculum settings: {exc}") from None
    return OnlinePlan(refs, mix, curriculum, GroupRecorder(), int(cfg.trl.get("seed", 42)), workers,
                      o["online_plan_size"])
