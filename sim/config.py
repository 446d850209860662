"""Simulation configuration; defaults live here, `configs/sim/*.yaml` override.

All quantities are SI (m, rad, N, s) in the config; the simulator works in millimetres
internally (see `sim/insertion.py`), converting at the boundary.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from zshot.config import ProfileName, StrictModel
from zshot.reward import RewardConfig

__all__ = [
    "PROFILES",
    "InsertionEnvConfig",
    "ProfileName",
    "RewardConfig",
    "TaskSamplingConfig",
    "profile_of",
    "with_profile",
]

PROFILES: dict[str, dict[str, float]] = {
    # no socket error: the pose is known (the start noise stays, observed); the skill's ceiling
    "known": {"socket_xy_error": 0.0, "socket_yaw_error": 0.0, "episode_socket_xy_error": 0.0},
    # Zhao et al. 2022 (ODA): a fresh, unobserved U(-1 mm, 1 mm) x/y error every episode,
    # no yaw error; a task is plug + clearance + friction
    "oda": {"socket_xy_error": 0.0, "socket_yaw_error": 0.0, "episode_socket_xy_error": 0.001},
    # ±2 mm / ±3° fixed per task (what a context can learn across episodes), redrawn per task
    "hard": {"socket_xy_error": 0.002, "socket_yaw_error": 0.05236, "episode_socket_xy_error": 0.0},
}
"""The three benchmark profiles: the hidden socket error each draws (m, rad)."""

_PROFILE_FIELDS: tuple[tuple[str, bool], ...] = (
    ("socket_xy_error", True),  # (field, lives in `tasks`)
    ("socket_yaw_error", True),
    ("episode_socket_xy_error", False),
)
"""Where each field a profile sets lives in an InsertionEnvConfig mapping."""


def _range_ok(lo: float, hi: float, what: str) -> None:
    if lo > hi:
        raise ValueError(f"{what}: low {lo} > high {hi}")


class TaskSamplingConfig(StrictModel):
    """How `TaskFamily` draws the hidden parameters of each task (uniform in each range)."""

    socket_xy_error: float = Field(default=0.002, ge=0, le=0.02)
    """Socket position error: dx, dy ~ U(-e, e) in m (default ±2 mm)."""
    socket_yaw_error: float = Field(default=0.05236, ge=0, le=0.5)
    """Socket yaw error: dyaw ~ U(-e, e) in rad (default ±3°)."""
    clearance_scale: tuple[float, float] = (0.5, 1.5)
    """Per-side clearance = spec clearance × U(lo, hi)."""
    friction_scale: tuple[float, float] = (0.7, 1.3)
    """Coefficient of friction = spec friction × U(lo, hi)."""
    n_train_per_plug: int = Field(default=8, ge=1)
    """Training tasks per training plug."""
    n_test_per_plug: int = Field(default=4, ge=1)
    """Test tasks per plug (held-out plugs and training plugs alike)."""
    held_out: list[str] | None = None
    """Plugs held out of training; None = the 9 named plugs of the ODA table."""
    include_plugs: list[str] | None = None
    """Restrict the family to these plugs; None = every plug in `list_plugs()`."""

    @model_validator(mode="after")
    def _check(self) -> TaskSamplingConfig:
        _range_ok(*self.clearance_scale, "clearance_scale")
        _range_ok(*self.friction_scale, "friction_scale")
        if self.clearance_scale[0] <= 0 or self.friction_scale[0] <= 0:
            raise ValueError("clearance_scale and friction_scale must be > 0")
        return self


class InsertionEnvConfig(StrictModel):
    """The insertion environment's rates, controller, physics and limits."""

    control_hz: float = Field(default=10.0, gt=0, le=1000)
    """Control rate of the policy (the ODA robot ran at 10 Hz)."""
    max_steps: int = Field(default=100, ge=1)
    """Episode time limit in control steps."""
    substeps: int = Field(default=10, ge=1, le=100)
    """Physics steps per control step (physics dt = 1 / (control_hz · substeps))."""
    solver_iterations: int = Field(default=10, ge=1, le=200)
    """Bullet constraint-solver iterations per physics step."""

    # --- compliant Cartesian controller (impedance-like, bounded force) ---
    max_lin_speed: float = Field(default=0.02, gt=0, le=0.5)
    """m/s at |action| = 1 (x, y, z)."""
    speed_limit: float = Field(default=0.03, gt=0, le=1.0)
    """m/s; the arm's Cartesian speed limit: a physics step that would end faster is shortened
    to speed_limit · physics_dt (so a plug never moves further than that in one step)."""
    max_yaw_rate: float = Field(default=0.2, gt=0, le=5)
    """rad/s at |action| = 1."""
    stiffness: float = Field(default=1000.0, gt=0)
    """N/m, translational impedance stiffness K."""
    damping_ratio: float = Field(default=1.0, gt=0)
    """ζ; D = 2ζ√(K·m)."""
    rot_stiffness: float = Field(default=10.0, gt=0)
    """N·m/rad, rotational stiffness (roll/pitch held upright, yaw tracked)."""
    max_force: float = Field(default=60.0, gt=0)
    """N; the controller's force is clipped to this (and the target cannot run further ahead
    than max_force / stiffness), so a blocked plug pushes with at most this force."""
    max_torque: float = Field(default=3.0, gt=0)
    """N·m; clip on the controller's torque."""
    effective_mass: float = Field(default=2.0, gt=0)
    """kg; the arm's apparent mass at the flange plus the plug."""
    effective_inertia: float = Field(default=0.02, gt=0)
    """kg·m²; apparent rotational inertia at the flange."""
    workspace: float = Field(default=0.03, gt=0)
    """m; the target is clamped to ±workspace in x, y around the believed socket."""

    # --- safety and sensing ---
    force_limit: float = Field(default=40.0, gt=0)
    """N; a wrist force above this ends the episode as a safety violation."""
    force_ref: float = Field(default=20.0, gt=0)
    """N; wrist force is divided by this in the observation."""
    torque_ref: float = Field(default=1.0, gt=0)
    """N·m; wrist torque is divided by this in the observation."""

    # --- start pose ---
    start_height: float = Field(default=0.008, ge=0, le=0.1)
    """m; pin tips start this far above the socket face."""
    start_xy_noise: float = Field(default=0.001, ge=0, le=0.02)
    """m; per-episode start perturbation, U(-n, n) in x and y."""
    start_yaw_noise: float = Field(default=0.01745, ge=0, le=0.5)
    """rad; per-episode start yaw perturbation (default ±1°)."""
    start_z_noise: float = Field(default=0.002, ge=0, le=0.05)
    """m; per-episode start height perturbation U(0, n)."""

    # --- hidden socket error (besides the per-task draw in `tasks`) ---
    episode_socket_xy_error: float = Field(default=0.0, ge=0, le=0.02)
    """m; a fresh, unobserved socket offset U(-e, e) in x and y at every reset, on top of the
    task's (dx, dy): the `oda` profile's ±1 mm. Drawn from the reset's seed."""
    profile: ProfileName | None = None
    """Benchmark profile (`PROFILES`): sets `tasks.socket_xy_error`, `tasks.socket_yaw_error`
    and `episode_socket_xy_error` to the profile's values (setting one of those to another
    value as well is an error). None: those fields as given (their defaults are `hard`'s)."""

    tasks: TaskSamplingConfig = Field(default_factory=TaskSamplingConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: object) -> object:
        if not isinstance(data, dict) or data.get("profile") is None:
            return data
        name = data["profile"]
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
        values = PROFILES[name]
        out = dict(data)
        tasks = dict(out.get("tasks") or {})
        for key, in_tasks in _PROFILE_FIELDS:
            owner = tasks if in_tasks else out
            given = owner.get(key)
            if given is not None and not math.isclose(float(given), values[key], abs_tol=1e-12):
                raise ValueError(
                    f"profile {name!r} sets {key} = {values[key]}, but {key} = {given} is set too"
                )
            owner[key] = values[key]
        out["tasks"] = tasks
        return out

    @model_validator(mode="after")
    def _check(self) -> InsertionEnvConfig:
        # The controller is integrated explicitly at the physics step: ω·dt and (D/m)·dt must
        # stay well below 2 (the semi-implicit Euler stability bound) or the plug oscillates.
        dt = self.physics_dt
        for what, k, m in (
            ("stiffness / effective_mass", self.stiffness, self.effective_mass),
            ("rot_stiffness / effective_inertia", self.rot_stiffness, self.effective_inertia),
        ):
            omega = math.sqrt(k / m)
            if omega * dt > 1.2 or 2 * self.damping_ratio * omega * dt > 1.6:
                raise ValueError(
                    f"controller unstable at physics dt {dt:.4f} s: {what} gives ω·dt = "
                    f"{omega * dt:.2f}; raise substeps or lower the stiffness"
                )
        if self.force_limit <= self.max_force * 0.5:
            raise ValueError(
                f"force_limit ({self.force_limit} N) must exceed half of max_force "
                f"({self.max_force} N), or every contact would be a violation"
            )
        return self

    @property
    def physics_dt(self) -> float:
        """Seconds per physics step."""
        return 1.0 / (self.control_hz * self.substeps)

    @property
    def control_dt(self) -> float:
        """Seconds per control step."""
        return 1.0 / self.control_hz


def with_profile(data: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """An InsertionEnvConfig mapping with `profile` in force: the profile's fields that the
    mapping set are dropped (a --profile switch wins over a file's values). None: unchanged."""
    if profile is None:
        return data
    top = {k for k, in_tasks in _PROFILE_FIELDS if not in_tasks}
    nested = {k for k, in_tasks in _PROFILE_FIELDS if in_tasks}
    out = {k: v for k, v in data.items() if k not in top}
    tasks = out.get("tasks")
    if isinstance(tasks, dict):
        out["tasks"] = {k: v for k, v in tasks.items() if k not in nested}
    out["profile"] = profile  # an unknown name is refused when the mapping is validated
    return out


def profile_of(config: InsertionEnvConfig) -> str:
    """The profile whose values `config` has (its `profile` if set), else "custom"."""
    if config.profile is not None:
        return config.profile
    have = {
        key: getattr(config.tasks if in_tasks else config, key) for key, in_tasks in _PROFILE_FIELDS
    }
    for name, values in PROFILES.items():
        if all(math.isclose(have[k], v, abs_tol=1e-12) for k, v in values.items()):
            return name
    return "custom"
