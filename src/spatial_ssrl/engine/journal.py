"""The run journal: what lets ``ssrl generate --resume`` continue a run that was stopped.

A run writes, next to its staged dataset, an append-only ``journal.jsonl``:

- a first line with the run's *fingerprint* (a hash of everything that decides the output:
  the package version, every option but the worker count and the engine, the batch size, the
  PNG encoder, and each input's identity, size and modification time) and a short
  description of the run;
- for each batch, once its summary is taken (in plan order): one line per unit of the batch
  (which source and jobs it was, what became of each job, the skips it caused, the rows the
  dataset held after it), then a checkpoint line naming the batch's part files and their
  rows. The parts were synced and renamed by whoever ran the batch before its summary came
  back, and the checkpoint line is synced: a checkpointed batch is on disk for good.

Everything a run decides follows from the plan and the unit outcomes, so replaying the unit
lines of the checkpointed batches rebuilds its state exactly (which source is unusable,
which slots go to the next round, every counter) without making a sample again; the run then
goes on with the first batch not checkpointed. The batches, their parts and so the dataset
are an uninterrupted run's. Both engines keep this journal the same way: a run stopped on
one can be resumed on the other.

A line cut short by a kill is ignored; lines after the last checkpoint are dropped on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from .. import __version__
from ..writers.parts import is_part, part_contents
from .worker import Job, JobResult, UnitResult

JOURNAL = "journal.jsonl"
_RESULT_OK = object()  # stands for a sample that is already in a durable part of the dataset


class ResumeError(Exception):
    """A one-line reason a run cannot be resumed."""


def _stat(path: str | None) -> list | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_size, st.st_mtime_ns]


def fingerprint(config, refs: Iterable, png_encoder: str, batch: int) -> str:
    """A hash of everything that decides a run's output (not the worker count, nor the
    engine: both write the same parts). ``batch``: the most samples a batch holds."""
    h = hashlib.sha256()
    opts = {k: v for k, v in asdict(config).items() if k not in ("workers", "batch_samples")}
    head = {"version": __version__, "png_encoder": png_encoder, "config": opts, "batch": batch}
    h.update(json.dumps(head, sort_keys=True, default=repr).encode())
    for ref in refs:
        d = asdict(ref)
        d["_stat"] = [_stat(ref.path), _stat(ref.depth), _stat(ref.mask)]
        if getattr(ref, "pair", None) is not None:  # a posed pair's second view is an input too
            d["_stat"] += [_stat(ref.pair.rgb), _stat(ref.pair.depth)]
        h.update(json.dumps(d, sort_keys=True, default=repr).encode(errors="surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()


def _job(j: Job) -> list:
    return [j.task, j.variant, j.k]


def _jobs(raw) -> list[Job]:
    return [Job(str(t), str(v), int(k)) for t, v, k in raw]


def unit_record(round_no: int, index: int, dealt: list[Job], res: UnitResult, rows: int) -> dict:
    """The journal line for one processed unit (``rows``: dataset rows after it)."""
    return {
        "u": [round_no, index],
        "src": res.ref.id,
        "dealt": [_job(j) for j in dealt],
        "jobs": [_job(j) for j in res.jobs],
        "skip": [res.skip_reason, res.skip_detail] if res.skip_reason else None,
        "dskip": [res.depth_skip_reason, res.depth_skip_detail] if res.depth_skip_reason else None,
        "refused": [_job(j) for j in res.depth_jobs_refused],
        "conv": res.conversions,
        "res": [[_job(r.job), r.sample is not None, dict(r.rejections)] for r in res.results],
        "rows": rows,
    }


def replayed_result(rec: dict, ref) -> UnitResult:
    """The UnitResult a unit line stands for; a job that gave a sample carries a marker in
    place of the sample (its row is already on disk)."""
    skip = rec.get("skip") or (None, "")
    dskip = rec.get("dskip") or (None, "")
    out = UnitResult(
        ref=ref,
        jobs=_jobs(rec["jobs"]),
        skip_reason=skip[0],
        skip_detail=skip[1] or "",
        depth_skip_reason=dskip[0],
        depth_skip_detail=dskip[1] or "",
        depth_jobs_refused=_jobs(rec.get("refused") or []),
        conversions=dict(rec.get("conv") or {}),
    )
    for job, ok, rej in rec.get("res") or []:
        t, v, k = job
        out.results.append(JobResult(job=Job(t, v, int(k)), sample=_RESULT_OK if ok else None,
                                     rejections=Counter(rej)))
    return out


def matches(rec: dict, round_no: int, index: int, ref, dealt: list[Job]) -> bool:
    return (rec.get("u") == [round_no, index] and rec.get("src") == ref.id
            and rec.get("dealt") == [_job(j) for j in dealt])


@dataclass
class JournalState:
    """What an interrupted run's journal says, up to its last checkpoint."""

    fingerprint: str | None = None
    about: dict = field(default_factory=dict)
    replay: list[dict] = field(default_factory=list)   # unit lines of the checkpointed batches
    parts: list[tuple[str, int]] = field(default_factory=list)  # their parts, plan order
    rows: int = 0                                       # rows durable at the last checkpoint
    seconds: float = 0.0                                # run time spent up to the last checkpoint
    keep: list[bytes] = field(default_factory=list)     # the raw lines a resume keeps

    @property
    def resumable(self) -> bool:
        return self.fingerprint is not None and self.rows > 0


def read_journal(folder: str) -> JournalState:
    """Parse ``folder/journal.jsonl`` (a missing or unreadable one reads as empty)."""
    state = JournalState()
    try:
        with open(os.path.join(folder, JOURNAL), "rb") as fh:
            raw = fh.read()
    except OSError:
        return state
    lines = raw.split(b"\n")[:-1]  # the last piece: empty, or a line cut short by a kill
    recs: list[tuple[bytes, dict]] = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            break
        if not isinstance(rec, dict):
            break
        recs.append((line, rec))
    if not recs or "fingerprint" not in recs[0][1]:
        return state
    state.fingerprint = str(recs[0][1]["fingerprint"])
    state.about = dict(recs[0][1].get("about") or {})
    last = max((i for i, (_line, rec) in enumerate(recs) if "ckpt" in rec), default=None)
    if last is None:
        return state
    try:
        for line, rec in recs[:last + 1]:
            state.keep.append(line)
            if "u" in rec:
                state.replay.append(rec)
            elif "ckpt" in rec:
                for rel, n in rec["ckpt"].get("parts") or []:
                    if not (isinstance(rel, str) and is_part(rel)):
                        raise ValueError(rel)
                    state.parts.append((rel, int(n)))
                state.rows, state.seconds = int(rec["rows"]), float(rec.get("secs", 0.0))
    except (AttributeError, KeyError, TypeError, ValueError):
        return JournalState(fingerprint=state.fingerprint, about=state.about)  # damaged: nothing to resume
    return state


def check_parts(out_dir: str, fmt: str, state: JournalState) -> list[str]:
    """Each part of a checkpointed batch must be there with its rows (and, llamafactory, the
    images its records name); returns those images. ResumeError otherwise."""
    def bad(why: str) -> ResumeError:
        return ResumeError(f"the interrupted run's files are not as it left them: {why}")

    total = sum(n for _rel, n in state.parts)
    if total != state.rows:
        raise bad(f"its journal records {state.rows} rows and parts of {total}")
    images: list[str] = []
    for rel, n in state.parts:
        try:
            found, named = part_contents(out_dir, fmt, rel)
        except ValueError as exc:
            raise bad(str(exc)) from None
        if found != n:
            raise bad(f"{os.path.join(out_dir, rel)}: the interrupted run recorded {n} rows, the file holds {found}")
        images += named
    for rel in images:
        if not os.path.isfile(os.path.join(out_dir, rel)):
            raise bad(f"{os.path.join(out_dir, rel)} is missing")
    return images


class Journal:
    """Appends to ``folder/journal.jsonl``; checkpoints are synced to disk."""

    def __init__(self, folder: str, fp: str, about: dict, resume_from: JournalState | None = None):
        self.path = os.path.join(folder, JOURNAL)
        if resume_from is not None:
            tmp = os.path.join(folder, ".tmp-" + JOURNAL)
            with open(tmp, "wb") as fh:
                fh.write(b"".join(line + b"\n" for line in resume_from.keep))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open for the run)
        else:
            self._fh = open(self.path, "wb", buffering=0)  # noqa: SIM115 (kept open for the run)
            self._write({"fingerprint": fp, "about": about})

    def _write(self, rec: dict) -> None:
        self._fh.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())

    def batch(self, units: list[dict], batch: list[int], parts: list[tuple[str, int]], rows: int,
              seconds: float) -> None:
        """A taken batch: its unit lines, then its checkpoint, synced."""
        self._fh.write(b"".join((json.dumps(rec, separators=(",", ":")) + "\n").encode() for rec in units))
        self._write({"ckpt": {"batch": batch, "parts": [list(p) for p in parts]}, "rows": rows,
                     "secs": round(seconds, 3)})
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
