"""Locomotion tasks: one `TerrainTask` = family + hidden parameters; seeded task families.

A task is data (pydantic, JSON-serialisable through `model_dump` / `model_validate`) so it
travels in checkpoints and recordings. The policy never sees these values: it has to infer
them from its own transitions (PEARL's context), which is the point of the benchmark.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.terrain_config import (
    BODY_OF_FAMILY,
    TASK_PARAMS,
    FamilyName,
    ParamRange,
    TaskRanges,
    TerrainEnvConfig,
)

__all__ = ["TerrainTask", "TerrainTaskFamily"]

# A seed for numpy's generator that fits every platform's C long.
_SEED_HIGH = 2**31 - 1


class TerrainTask(BaseModel):
    """One locomotion task: the family (body + reward) and the hidden terrain parameters.

    Bounds are physical sanity limits, not the sampling ranges (those live in the config).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    family: FamilyName
    """Task family ('cheetah-vel', 'cheetah-dir', 'ant-dir', 'cheetah-terrain', 'ant-terrain')."""
    friction: float = Field(default=1.0, gt=0.0, le=10.0)
    """Ground lateral friction coefficient."""
    slope: float = Field(default=0.0, ge=-0.6, le=0.6)
    """Ground slope, rad about y; positive = uphill along +x."""
    roughness: float = Field(default=0.0, ge=0.0, le=0.3)
    """Heightfield amplitude, m (0 = flat plane)."""
    payload: float = Field(default=0.0, ge=0.0, le=500.0)
    """Mass added to the torso, kg."""
    motor_strength: float = Field(default=1.0, gt=0.0, le=5.0)
    """Scale on the joint torque limits."""
    target_velocity: float = Field(default=0.0, ge=-20.0, le=20.0)
    """Target forward velocity, m/s ('*-vel' families)."""
    direction: float = Field(default=0.0, ge=-2 * math.pi, le=2 * math.pi)
    """Heading to run along in the ground plane, rad (0 = +x; the cheetah uses cos of it)."""
    terrain_seed: int = Field(default=0, ge=0, le=_SEED_HIGH)
    """Seed of the heightfield's random heights (matters only when roughness > 0)."""
    task_id: str = ""
    """Free-form label, e.g. `train/3` (as `sim.tasks.InsertionTask.task_id`)."""

    @property
    def body(self) -> str:
        """The robot this task's family drives."""
        return BODY_OF_FAMILY[self.family]

    def params(self) -> np.ndarray:
        """The hidden parameters as a float64 vector in `TASK_PARAMS` order, shape (7,)."""
        return np.array([getattr(self, name) for name in TASK_PARAMS], dtype=np.float64)

    @property
    def name(self) -> str:
        """A short human-readable label, e.g. 'cheetah-vel[v=1.20]'."""
        if self.family.endswith("-vel"):
            detail = f"v={self.target_velocity:.2f}"
        elif self.family.endswith("-dir"):
            detail = f"dir={self.direction:.2f}"
        else:
            detail = (
                f"mu={self.friction:.2f},slope={self.slope:+.2f},rough={self.roughness:.3f},"
                f"payload={self.payload:.1f},motor={self.motor_strength:.2f}"
            )
        return f"{self.family}[{detail}]"


def _outside_parts(train: ParamRange, test: ParamRange) -> list[tuple[float, float]]:
    """The pieces of the test interval outside the train interval (0, 1 or 2 of them).

    A test interval wholly outside the train one is one piece, possibly a single point.
    """
    if test.high < train.low or test.low > train.high:
        return [(test.low, test.high)]
    parts = []
    if test.low < train.low:
        parts.append((test.low, train.low))
    if test.high > train.high:
        parts.append((train.high, test.high))
    return parts


def _draw(rng: np.random.Generator, r: ParamRange) -> float:
    return float(r.low) if not r.varies else float(rng.uniform(r.low, r.high))


class TerrainTaskFamily:
    """Seeded train and held-out test tasks of one family.

    `TerrainTaskFamily(config, seed)`: same config and seed -> the same task lists. Train
    and test tasks come from independent random streams (`SeedSequence(seed).spawn(2)`), so
    changing `n_test_tasks` leaves the train tasks unchanged. With `config.heldout ==
    "outside"`, every test task has at least one parameter outside its train range (one such
    parameter is picked at random and drawn from the outside part of its test range; the
    others from their full test range), so train and test sets are disjoint.
    """

    def __init__(self, config: TerrainEnvConfig | None = None, seed: int = 0) -> None:
        if config is None:
            config = TerrainEnvConfig()
        if not isinstance(config, TerrainEnvConfig):
            raise TypeError(f"config must be a TerrainEnvConfig, got {type(config).__name__}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.config = config
        self.seed = int(seed)
        train_ss, test_ss = np.random.SeedSequence(self.seed).spawn(2)
        self.train_tasks: list[TerrainTask] = self._sample(
            np.random.default_rng(train_ss), config.train, config.n_train_tasks, None, "train"
        )
        self.test_tasks: list[TerrainTask] = self._sample(
            np.random.default_rng(test_ss),
            config.test,
            config.n_test_tasks,
            config.train if config.heldout == "outside" else None,
            "test",
        )

    def _sample(
        self,
        rng: np.random.Generator,
        ranges: TaskRanges,
        n: int,
        outside: TaskRanges | None,
        split: str,
    ) -> list[TerrainTask]:
        # Parameters that can be pushed outside the train range (validated non-empty in the
        # config when heldout == "outside").
        extrapolable = []
        if outside is not None:
            extrapolable = [
                name
                for name in TASK_PARAMS
                if _outside_parts(outside.range_of(name), ranges.range_of(name))
            ]
        tasks = []
        for i in range(n):
            values = {name: _draw(rng, ranges.range_of(name)) for name in TASK_PARAMS}
            if ranges.directions is not None:
                # Cycle through the listed headings so n >= len(directions) covers all of them.
                values["direction"] = float(ranges.directions[i % len(ranges.directions)])
            if outside is not None:
                name = extrapolable[int(rng.integers(len(extrapolable)))]
                parts = _outside_parts(outside.range_of(name), ranges.range_of(name))
                widths = np.array([hi - lo for lo, hi in parts])
                pick = int(rng.choice(len(parts), p=widths / widths.sum())) if len(parts) > 1 else 0
                lo, hi = parts[pick]
                u = float(rng.uniform(0.0, hi - lo))  # in [0, width)
                # Open at the end that touches the train range, so the value is strictly
                # outside it: [lo, hi) below the train range, (lo, hi] above it.
                train_r = outside.range_of(name)
                if hi <= train_r.low:
                    v = lo + u
                    # lo + u can round up onto the train range's low end when the piece is
                    # a few ulps wide; lo itself is strictly below it
                    values[name] = v if v < train_r.low else lo
                else:
                    v = hi - u
                    values[name] = v if v > train_r.high else hi
            try:
                task = TerrainTask(
                    family=self.config.family,
                    terrain_seed=int(rng.integers(_SEED_HIGH)),
                    task_id=f"{split}/{i}",
                    **values,
                )
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}"
                    for e in exc.errors()
                )
                raise ValueError(
                    f"{self.config.family}: the task ranges produce an invalid task ({problems}); "
                    "narrow the ranges in the config"
                ) from None
            tasks.append(task)
        return tasks

    def is_held_out(self, task: TerrainTask) -> bool:
        """Does any of the task's parameters lie outside the training ranges?"""
        ranges = self.config.train
        if ranges.directions is not None and not any(
            math.isclose(task.direction, d, abs_tol=1e-9) for d in ranges.directions
        ):
            return True
        names = [n for n in TASK_PARAMS if not (n == "direction" and ranges.directions is not None)]
        return not all(ranges.range_of(n).contains(getattr(task, n)) for n in names)

    def __repr__(self) -> str:
        return (
            f"TerrainTaskFamily({self.config.family!r}, seed={self.seed}, "
            f"train={len(self.train_tasks)}, test={len(self.test_tasks)})"
        )
