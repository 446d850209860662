"""Terrain locomotion configuration; defaults live here, `configs/terrain/*.yaml` override.

One `TerrainEnvConfig` describes one task family (`family`), the physics rates, the reward
weights and the parameter ranges from which `sim.terrain_tasks.TerrainTaskFamily` draws its
train and held-out test tasks. Keys a YAML file leaves out take the family's defaults
(`FAMILY_DEFAULTS`), so `family: ant-dir` alone is a complete config.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from zshot.config import StrictModel

__all__ = [
    "BODY_OF_FAMILY",
    "FAMILIES",
    "FAMILY_DEFAULTS",
    "TASK_PARAMS",
    "FamilyName",
    "ParamRange",
    "TaskRanges",
    "TerrainEnvConfig",
]

FamilyName = Literal["cheetah-vel", "cheetah-dir", "ant-dir", "cheetah-terrain", "ant-terrain"]
FAMILIES: tuple[FamilyName, ...] = get_args(FamilyName)

# Which robot each family drives ("half_cheetah" or "ant": the MJCF files in pybullet_data).
BODY_OF_FAMILY: dict[str, str] = {
    "cheetah-vel": "half_cheetah",
    "cheetah-dir": "half_cheetah",
    "ant-dir": "ant",
    "cheetah-terrain": "half_cheetah",
    "ant-terrain": "ant",
}

# The continuous hidden parameters of a task, in the order used by `TerrainTask.params()`.
TASK_PARAMS: tuple[str, ...] = (
    "friction",
    "slope",
    "roughness",
    "payload",
    "motor_strength",
    "target_velocity",
    "direction",
)


class ParamRange(StrictModel):
    """A closed interval `[low, high]`; `low == high` holds the parameter fixed."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        return self

    @property
    def varies(self) -> bool:
        """True when the interval has positive width."""
        return self.high > self.low

    def contains(self, value: float) -> bool:
        """`low <= value <= high`."""
        return self.low <= value <= self.high


def _fixed(value: float) -> ParamRange:
    return ParamRange(low=value, high=value)


class TaskRanges(StrictModel):
    """Where each hidden task parameter is drawn from (uniformly)."""

    friction: ParamRange = Field(default_factory=lambda: _fixed(1.0))
    """Ground lateral friction coefficient (the robot's links are 1.0; Bullet multiplies)."""
    slope: ParamRange = Field(default_factory=lambda: _fixed(0.0))
    """Ground slope in rad about the y axis; positive = uphill along +x (gravity is tilted)."""
    roughness: ParamRange = Field(default_factory=lambda: _fixed(0.0))
    """Heightfield amplitude in m (cell heights uniform in [-a, a]); 0 = a flat plane."""
    payload: ParamRange = Field(default_factory=lambda: _fixed(0.0))
    """Mass added to the torso, kg."""
    motor_strength: ParamRange = Field(default_factory=lambda: _fixed(1.0))
    """Scale on every joint's torque limit (1 = nominal motors)."""
    target_velocity: ParamRange = Field(default_factory=lambda: _fixed(0.0))
    """Target forward velocity, m/s (the `*-vel` families)."""
    direction: ParamRange = Field(default_factory=lambda: _fixed(0.0))
    """Heading to run along, rad in the ground plane (0 = +x)."""
    directions: list[float] | None = None
    """If set, headings are taken from this list in turn instead of from `direction`."""

    def range_of(self, name: str) -> ParamRange:
        """The range of one parameter of `TASK_PARAMS`."""
        if name not in TASK_PARAMS:
            raise KeyError(f"unknown task parameter {name!r}; known: {', '.join(TASK_PARAMS)}")
        rng: ParamRange = getattr(self, name)
        return rng


_PI = math.pi

# Defaults per family. cheetah-vel / cheetah-dir / ant-dir follow PEARL (Rakelly et al. 2019,
# rand_param_envs / oyster): targets in [0, 3] m/s, 100 train and 30 test velocity tasks,
# forward/backward for the direction tasks, 200-step episodes, ctrl cost 0.05|a|² on the
# cheetah and 0.5|a|² plus a survive bonus of 1 on the ant. The terrain families train on
# moderate terrains and test on held-out ones outside the training ranges.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "cheetah-vel": {
        "n_train_tasks": 100,
        "n_test_tasks": 30,
        "heldout": "inside",
        "train": {"target_velocity": {"low": 0.0, "high": 3.0}},
        "test": {"target_velocity": {"low": 0.0, "high": 3.0}},
    },
    "cheetah-dir": {
        "n_train_tasks": 2,
        "n_test_tasks": 2,
        "heldout": "inside",
        "train": {"directions": [0.0, _PI]},
        "test": {"directions": [0.0, _PI]},
    },
    "ant-dir": {
        "n_train_tasks": 2,
        "n_test_tasks": 2,
        "heldout": "inside",
        "train": {"directions": [0.0, _PI]},
        "test": {"directions": [0.0, _PI]},
    },
    "cheetah-terrain": {
        "n_train_tasks": 40,
        "n_test_tasks": 10,
        "heldout": "outside",
        "train": {
            "friction": {"low": 0.4, "high": 1.2},
            "slope": {"low": -0.1, "high": 0.1},
            "roughness": {"low": 0.0, "high": 0.04},
            "payload": {"low": 0.0, "high": 5.0},
            "motor_strength": {"low": 0.7, "high": 1.3},
        },
        "test": {
            "friction": {"low": 0.2, "high": 1.6},
            "slope": {"low": -0.2, "high": 0.2},
            "roughness": {"low": 0.0, "high": 0.08},
            "payload": {"low": 0.0, "high": 8.0},
            "motor_strength": {"low": 0.5, "high": 1.5},
        },
    },
    "ant-terrain": {
        "n_train_tasks": 40,
        "n_test_tasks": 10,
        "heldout": "outside",
        "train": {
            "friction": {"low": 0.4, "high": 1.2},
            "slope": {"low": -0.1, "high": 0.1},
            "roughness": {"low": 0.0, "high": 0.04},
            "payload": {"low": 0.0, "high": 30.0},
            "motor_strength": {"low": 0.7, "high": 1.3},
        },
        "test": {
            "friction": {"low": 0.2, "high": 1.6},
            "slope": {"low": -0.2, "high": 0.2},
            "roughness": {"low": 0.0, "high": 0.08},
            "payload": {"low": 0.0, "high": 50.0},
            "motor_strength": {"low": 0.5, "high": 1.5},
        },
    },
}

# Reward and termination defaults per body (classic MuJoCo task weights).
BODY_DEFAULTS: dict[str, dict[str, Any]] = {
    "half_cheetah": {
        "ctrl_cost_weight": 0.05,
        "survive_reward": 0.0,
        "healthy_z_range": None,
        "heightfield_width": 1.0,
    },
    # The pybullet ant's torso sphere has radius 0.25: below 0.26 it scrapes the ground
    # (pybullet_envs' criterion); above 1.0 it has been thrown (the MuJoCo ant's bound).
    "ant": {
        "ctrl_cost_weight": 0.5,
        "survive_reward": 1.0,
        "healthy_z_range": (0.26, 1.0),
        "heightfield_length": 40.0,
        "heightfield_width": 20.0,
    },
}


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class TerrainEnvConfig(StrictModel):
    """A terrain/locomotion task family: body, physics rates, rewards and task ranges."""

    family: FamilyName = "cheetah-vel"
    """Task family; fixes the body (half-cheetah or ant) and the reward."""
    max_steps: int = Field(default=200, ge=1)
    """Episode length in control steps (PEARL used 200)."""
    physics_timestep: float = Field(default=0.01, gt=0, le=0.05)
    """Bullet's fixed time step, s (the MuJoCo originals use 0.01)."""
    substeps: int = Field(default=5, ge=1, le=100)
    """Physics steps per control step: control dt = physics_timestep * substeps (0.05 s)."""
    solver_iterations: int = Field(default=10, ge=1, le=200)
    """Bullet constraint-solver iterations per physics step."""
    ctrl_cost_weight: float = Field(default=0.05, ge=0)
    """Weight of sum(a²) in the reward (family default: 0.05 cheetah, 0.5 ant)."""
    survive_reward: float = Field(default=0.0, ge=0)
    """Per-step bonus while healthy (family default: 0 cheetah, 1 ant)."""
    healthy_z_range: tuple[float, float] | None = None
    """Torso heights (m) outside which the episode terminates; None never terminates."""
    init_noise_scale: float = Field(default=0.1, ge=0, le=1)
    """Joint angles start uniform ±scale rad off nominal, joint rates N(0, scale²)."""
    heightfield_length: float = Field(default=64.0, gt=1, le=500)
    """Extent of the rough-terrain patch along x, m, centred on the start (flat floor beyond)."""
    heightfield_width: float = Field(default=1.0, gt=0.1, le=500)
    """Extent along y, m (body default: a 1 m strip for the planar cheetah, 40 x 20 m for the ant;
    creating the patch costs ~2 ms per 1000 samples, paid when a task's terrain changes)."""
    heightfield_cache: int = Field(default=64, ge=1, le=10_000)
    """How many built heightfields to keep for reuse when tasks come round again."""
    heightfield_cell: float = Field(default=0.25, gt=0.01, le=5)
    """Spacing of heightfield samples, m."""
    n_train_tasks: int = Field(default=40, ge=1, le=100_000)
    """How many training tasks `TerrainTaskFamily` draws."""
    n_test_tasks: int = Field(default=10, ge=0, le=100_000)
    """How many held-out test tasks it draws."""
    heldout: Literal["inside", "outside"] = "outside"
    """'inside': test tasks drawn from `test` like train ones (unseen tasks, same kind);
    'outside': every test task has at least one parameter outside the `train` range."""
    train: TaskRanges = Field(default_factory=lambda: TaskRanges())
    """Ranges of the training tasks."""
    test: TaskRanges = Field(default_factory=lambda: TaskRanges())
    """Ranges of the held-out test tasks."""

    @model_validator(mode="before")
    @classmethod
    def _family_defaults(cls, data: Any) -> Any:
        # Fill what the file leaves out from the family's (and its body's) defaults, merging
        # nested range tables key by key, so a YAML names only what it changes.
        if not isinstance(data, dict):
            return data
        family = data.get("family", "cheetah-vel")
        if family not in FAMILY_DEFAULTS:
            return data  # the Literal check reports the bad family name
        defaults = _merge(BODY_DEFAULTS[BODY_OF_FAMILY[family]], FAMILY_DEFAULTS[family])
        return _merge(defaults, data)

    @model_validator(mode="after")
    def _check(self) -> TerrainEnvConfig:
        if self.healthy_z_range is not None and self.healthy_z_range[0] >= self.healthy_z_range[1]:
            raise ValueError(
                f"healthy_z_range {self.healthy_z_range} must be (low, high), low < high"
            )
        if self.heldout == "outside" and self.n_test_tasks > 0:
            if not any(
                _extends_beyond(self.train.range_of(n), self.test.range_of(n)) for n in TASK_PARAMS
            ):
                raise ValueError(
                    "heldout='outside' needs at least one test range reaching beyond its train "
                    "range (else no test task can lie outside the training set)"
                )
        for split in ("train", "test"):
            ranges: TaskRanges = getattr(self, split)
            if ranges.directions is not None and not ranges.directions:
                raise ValueError(f"{split}.directions is empty; leave it out or list headings")
        return self

    @property
    def body(self) -> str:
        """'half_cheetah' or 'ant'."""
        return BODY_OF_FAMILY[self.family]

    @property
    def dt(self) -> float:
        """Control period, s."""
        return self.physics_timestep * self.substeps


def _extends_beyond(train: ParamRange, test: ParamRange) -> bool:
    return test.low < train.low or test.high > train.high
