"""Difficulty and task share steered by the live group pass rates of GRPO.

GRPO learns only from groups whose rollouts disagree: a group the model always solves, or
never solves, has zero reward variance and gives no advantage. :class:`Curriculum` keeps,
for each task, a difficulty level (an index into that task's ordered levels) and a sampling
weight, and moves them from what the reward functions saw:

- ``fixed``: the start levels and the base weights, never moved (the paper's setting);
- ``schedule``: one level up every ``schedule_every`` steps, weights fixed;
- ``adaptive``: per task and level, a smoothed pass rate (mean accuracy over the rollouts
  of the groups drawn at that level). Above ``target + band`` the task moves one level up,
  below ``target - band`` one level down; inside the band it stays. A move needs
  ``min_groups`` groups seen at the level since the last move and ``cooldown`` steps
  after it, and a move to a level whose remembered pass rate is no nearer the target than
  the current one's is not made (hysteresis: a noisy estimate does not make the level flap;
  as the model improves, the current level's pass rate moves away from the target and the
  neighbour is tried again). Weights follow each task's share of informative groups (groups whose
  rewards are not all equal): the aim is the base weight times twice that share, bounded below by ``weight_floor`` and above by
  ``weight_ceiling`` times the base weight, so a task that only gives zero-variance groups
  loses share but never disappears.

:class:`GroupRecorder` collects (task, level, group, accuracy) from the accuracy reward
functions; the trainer callback (:class:`spatial_ssrl.training.callbacks.CurriculumCallback`)
feeds each step's groups to :meth:`Curriculum.update` and logs levels and weights. Nothing
here needs torch.
"""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict
from dataclasses import asdict, dataclass, field

MODES = ("fixed", "schedule", "adaptive")


class CurriculumError(ValueError):
    """A curriculum setting that cannot work (the message says which)."""


@dataclass
class CurriculumSettings:
    mode: str = "fixed"
    target: float = 0.5
    """Pass rate the adaptive mode aims at."""
    band: float = 0.1
    """No level move while the pass rate is within ``target +- band``."""
    smoothing: float = 0.5
    """Weight of the newest step in the smoothed pass rate and informative share."""
    min_groups: int = 4
    """Groups seen at a level (since the last move) before it may move."""
    cooldown: int = 2
    """Steps after a move before the next move of the same task."""
    weight_floor: float = 0.1
    weight_ceiling: float = 3.0
    """Bounds of a task's weight, as multiples of its base weight."""
    weight_rate: float = 0.5
    """How far a weight moves toward its aim in one step (0..1)."""
    schedule_every: int = 100
    """``schedule`` mode: steps per level."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CurriculumError(f"curriculum must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not 0.0 < self.target < 1.0:
            raise CurriculumError(f"curriculum target must be between 0 and 1, not {self.target}")
        if not 0.0 <= self.band < min(self.target, 1.0 - self.target):
            raise CurriculumError(f"curriculum band {self.band} must be >= 0 and leave room around the target")
        if not 0.0 < self.smoothing <= 1.0 or not 0.0 < self.weight_rate <= 1.0:
            raise CurriculumError("curriculum smoothing and weight_rate must be in (0, 1]")
        if not 0.0 < self.weight_floor <= 1.0 <= self.weight_ceiling:
            raise CurriculumError("curriculum weight bounds need 0 < weight_floor <= 1 <= weight_ceiling")
        if self.min_groups < 1 or self.cooldown < 0 or self.schedule_every < 1:
            raise CurriculumError("curriculum min_groups and schedule_every must be >= 1, cooldown >= 0")


@dataclass
class Group:
    """The rollouts of one prompt: its task, the level it was drawn at, their accuracies."""

    task: str
    level: str
    rewards: list[float]

    @property
    def zero_variance(self) -> bool:
        return len(self.rewards) > 1 and max(self.rewards) - min(self.rewards) < 1e-9


@dataclass
class _TaskState:
    level: int
    weight: float
    pass_rate: dict[int, float] = field(default_factory=dict)   # smoothed, per level index
    informative: float | None = None                            # smoothed share of informative groups
    groups_since_move: int = 0
    last_move_step: int = -(10**9)


class Curriculum:
    """Levels and weights per task (see the module docstring).

    ``levels``: each task's ordered level names, easiest first. ``base_weights``: the
    sampling weight of each task before any adaptation (the paper mix by default).
    ``start``: each task's starting level name (default: its first level)."""

    def __init__(self, levels: dict[str, list[str]], base_weights: dict[str, float] | None = None,
                 start: dict[str, str] | None = None, settings: CurriculumSettings | None = None):
        if not levels or any(not v for v in levels.values()):
            raise CurriculumError("a curriculum needs at least one task with at least one level")
        self.settings = settings or CurriculumSettings()
        self.levels = {t: list(v) for t, v in levels.items()}
        base = base_weights or {t: 1.0 for t in levels}
        unknown = sorted(set(base) - set(levels))
        if unknown:
            raise CurriculumError(f"weights name task(s) without levels: {', '.join(unknown)}")
        if any(base.get(t, 0.0) < 0 for t in levels) or sum(base.get(t, 0.0) for t in levels) <= 0:
            raise CurriculumError("task weights must be >= 0 and not all zero")
        self.base = {t: float(base.get(t, 0.0)) for t in levels}
        self.start = {}
        for t, names in self.levels.items():
            name = (start or {}).get(t, names[0])
            if name not in names:
                raise CurriculumError(f"{t} has no level {name!r}; its levels: {', '.join(names)}")
            self.start[t] = names.index(name)
        self.state = {t: _TaskState(level=self.start[t], weight=self.base[t]) for t in self.levels}
        self.step = 0
        self._lock = threading.Lock()

    # -- what the feeder asks -----------------------------------------------------------
    def level(self, task: str) -> str:
        return self.levels[task][self.state[task].level]

    def level_index(self, task: str) -> int:
        return self.state[task].level

    def weights(self) -> dict[str, float]:
        """Current sampling weights, normalised to sum 1."""
        with self._lock:
            total = sum(s.weight for s in self.state.values())
            return {t: s.weight / total for t, s in self.state.items()}

    def draw(self, rng: random.Random) -> tuple[str, str]:
        """A task by the current weights and its current level."""
        w = self.weights()
        tasks = sorted(w)
        task = rng.choices(tasks, weights=[w[t] for t in tasks])[0]
        return task, self.level(task)

    # -- what the trainer tells ---------------------------------------------------------
    def update(self, groups: list[Group], step: int | None = None) -> dict[str, float]:
        """Take one step's groups; move levels and weights; return the log metrics."""
        s = self.settings
        with self._lock:
            self.step = self.step + 1 if step is None else int(step)
            by_task: dict[str, list[Group]] = defaultdict(list)
            for g in groups:
                if g.task in self.state and g.rewards:
                    by_task[g.task].append(g)
            for task, st in self.state.items():
                seen = by_task.get(task, [])
                if s.mode == "schedule":
                    top = len(self.levels[task]) - 1
                    st.level = min(top, self.start[task] + self.step // s.schedule_every)
                    continue
                if s.mode == "fixed" or not seen:
                    continue
                current = [g for g in seen if g.level == self.levels[task][st.level]]
                for idx in {self.levels[task].index(g.level) for g in seen if g.level in self.levels[task]}:
                    at = [g for g in seen if g.level == self.levels[task][idx]]
                    p = sum(sum(g.rewards) / len(g.rewards) for g in at) / len(at)
                    old = st.pass_rate.get(idx)
                    st.pass_rate[idx] = p if old is None else (1 - s.smoothing) * old + s.smoothing * p
                share = sum(not g.zero_variance for g in seen) / len(seen)
                st.informative = share if st.informative is None else (
                    (1 - s.smoothing) * st.informative + s.smoothing * share)
                st.groups_since_move += len(current)
                self._move_level(task, st)
                aim = self.base[task] * min(s.weight_ceiling, max(s.weight_floor, 2.0 * st.informative))
                st.weight = (1 - s.weight_rate) * st.weight + s.weight_rate * aim
                lo, hi = self.base[task] * s.weight_floor, self.base[task] * s.weight_ceiling
                st.weight = min(hi, max(lo, st.weight))
            return self._metrics(by_task)

    def _move_level(self, task: str, st: _TaskState) -> None:
        s = self.settings
        p = st.pass_rate.get(st.level)
        if p is None or st.groups_since_move < s.min_groups or self.step - st.last_move_step < s.cooldown:
            return
        top = len(self.levels[task]) - 1
        new = st.level
        if p > s.target + s.band and st.level < top:
            new = st.level + 1
        elif p < s.target - s.band and st.level > 0:
            new = st.level - 1
        if new != st.level:
            seen = st.pass_rate.get(new)
            if seen is not None and abs(seen - s.target) >= abs(p - s.target):
                return  # that level was measured and is no nearer the target than this one
            st.level = new
            st.groups_since_move = 0
            st.last_move_step = self.step

    def _metrics(self, by_task: dict[str, list[Group]]) -> dict[str, float]:
        total = sum(s.weight for s in self.state.values())
        out: dict[str, float] = {}
        for task, st in self.state.items():
            out[f"curriculum/{task}/level"] = float(st.level)
            out[f"curriculum/{task}/weight"] = st.weight / total
            p = st.pass_rate.get(st.level)
            if p is not None:
                out[f"curriculum/{task}/pass_rate"] = p
            seen = by_task.get(task, [])
            if seen:
                out[f"curriculum/{task}/zero_variance_share"] = sum(g.zero_variance for g in seen) / len(seen)
        return out

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"step": self.step, "settings": asdict(self.settings),
                "tasks": {t: {"level": s.level, "weight": s.weight,
                              "pass_rate": {str(k): v for k, v in s.pass_rate.items()},
                              "informative": s.informative, "groups_since_move": s.groups_since_move,
                              "last_move_step": s.last_move_step} for t, s in self.state.items()}}

    def load_state_dict(self, d: dict) -> None:
        with self._lock:
            self.step = int(d.get("step", 0))
            for t, v in (d.get("tasks") or {}).items():
                if t not in self.state:
                    continue
                st = self.state[t]
                st.level = min(int(v["level"]), len(self.levels[t]) - 1)
                st.weight = float(v["weight"])
                st.pass_rate = {int(k): float(p) for k, p in (v.get("pass_rate") or {}).items()}
                st.informative = v.get("informative")
                st.groups_since_move = int(v.get("groups_since_move", 0))
                st.last_move_step = int(v.get("last_move_step", -(10**9)))


class GroupRecorder:
    """Collects accuracies by prompt from the accuracy reward functions.

    ``record(task, ids, levels, values)`` is called by each ``accuracy_<task>`` function
    with the rows it scored; :meth:`drain` returns the groups seen since the last drain
    (rows of one prompt id make one group). With several processes each sees its own part
    of the step; the trainer's callback gathers every process's rows (:meth:`drain_rows`)
    so that each curriculum moves on the same, whole step."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], list[float]] = {}
        self._lock = threading.Lock()

    def record(self, task: str, ids: list, levels: list, values: list) -> None:
        with self._lock:
            for pid, level, v in zip(ids, levels, values):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                self._rows.setdefault((task, str(level), str(pid)), []).append(float(v))

    def drain(self) -> list[Group]:
        return groups_of(self.drain_rows())

    def drain_rows(self) -> list[tuple[str, str, str, list[float]]]:
        """(task, level, prompt id, accuracies) seen since the last drain: what each process
        sends the others, so every process's curriculum sees the whole step."""
        with self._lock:
            rows, self._rows = self._rows, {}
        return [(task, level, pid, vals) for (task, level, pid), vals in rows.items()]


def groups_of(rows) -> list[Group]:
    """Groups from the rows of one or more processes (one prompt's rollouts may be split
    across processes: their accuracies are joined)."""
    merged: dict[tuple[str, str, str], list[float]] = {}
    for task, level, pid, vals in rows:
        merged.setdefault((task, level, pid), []).extend(vals)
    return [Group(task, level, vals) for (task, level, _pid), vals in merged.items()]
