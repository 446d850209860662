"""A 2-D point robot with a hidden goal: PEARL's sanity-check meta-RL task, CI-fast.

Each task hides a goal on the upper half of the unit circle (PEARL's "point-robot"); the
observation is only the position, so the goal must be inferred from rewards. A hidden
per-task actuator gain also makes the dynamics (s -> s') differ between tasks, which is why
the encoder reads s'. Same interface as the insertion env: `set_task`, `info["is_success"]`,
`info["peak_force"]` (always 0 here), `obs_names`, `action_names`.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from zshot.goal import sparse_goal_reward


class PointTask(BaseModel):
    """One hidden goal (x, y) and actuator gain; `label` names it in reports.

    `plug` is read as the old spelling of `label` (datasets, checkpoints and reports written
    before the rename store it so); what is written says `label`."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(validation_alias=AliasChoices("label", "plug"))
    goal_x: float
    goal_y: float
    gain: float = 1.0


class PointGoalEnv(gym.Env[np.ndarray, np.ndarray]):
    """Move from the origin to within `goal_radius` of a hidden goal in `max_steps` steps."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)
    control_hz = 10.0
    max_steps = 20
    step_size = 0.1  # metres per step at full action: the goal (1 m away) needs >= 10 steps
    goal_radius = 0.15
    start_noise = 0.02  # m, std of the start position around the origin

    def __init__(self, task: PointTask | None = None) -> None:
        self.observation_space = gym.spaces.Box(-5.0, 5.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.obs_names = ["x", "y"]
        self.obs_units = ["m", "m"]
        self.action_names = ["vx", "vy"]
        self.action_units = ["1", "1"]  # fraction of step_size per step
        self._task = task or PointTask(label="goal-0", goal_x=1.0, goal_y=0.0)
        self._pending: PointTask | None = None
        self._pos = np.zeros(2)
        self._t = 0

    def set_task(self, task: PointTask) -> None:
        """Switch task; takes effect at the next reset()."""
        self._pending = task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to the origin (with the pending task, if any)."""
        super().reset(seed=seed)
        if self._pending is not None:
            self._task, self._pending = self._pending, None
        self._pos = self.np_random.normal(0.0, self.start_noise, 2)
        self._t = 0
        return self._pos.astype(np.float32), {"task": self._task.model_dump()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move by gain * step_size * clip(action); reward = -distance to the goal."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self._pos = np.clip(self._pos + self._task.gain * self.step_size * a, -5.0, 5.0)
        self._t += 1
        dist = math.hypot(self._pos[0] - self._task.goal_x, self._pos[1] - self._task.goal_y)
        success = dist < self.goal_radius
        info = {
            "is_success": success,
            "safety_violation": False,
            "peak_force": 0.0,
            "task": self._task.model_dump(),
        }
        return self._pos.astype(np.float32), -dist, success, self._t >= self.max_steps, info


def point_tasks(n: int, seed: int, prefix: str) -> list[PointTask]:
    """n goals at random angles on the upper unit half-circle, gains in [0.7, 1.3]."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0.0, math.pi, n)
    gains = rng.uniform(0.7, 1.3, n)
    return [
        PointTask(label=f"{prefix}-{i}", goal_x=math.cos(a), goal_y=math.sin(a), gain=g)
        for i, (a, g) in enumerate(zip(angles, gains, strict=True))
    ]


class PointReachEnv(gym.Env):
    """The 2-D point told its goal: Gymnasium-Robotics' goal-env layout (`observation` =
    position, `achieved_goal` = position, `desired_goal` = a goal drawn per episode in the
    disc of radius `goal_range`), the sparse reward `zshot.goal.sparse_goal_reward` with
    epsilon `distance_threshold`. The CI-fast goal-reaching task of HER and contrastive RL."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)
    control_hz = 10.0
    max_steps = 20
    step_size = 0.1
    distance_threshold = 0.15
    goal_range = 1.0

    def __init__(self) -> None:
        box = gym.spaces.Box(-5.0, 5.0, (2,), np.float32)
        self.observation_space = gym.spaces.Dict(
            {"observation": box, "achieved_goal": box, "desired_goal": box}
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.obs_names = ["x", "y"]
        self.goal_names = ["x", "y"]
        self.action_names = ["vx", "vy"]
        self._pos = np.zeros(2)
        self._goal = np.zeros(2, np.float32)
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        pos = self._pos.astype(np.float32)
        return {"observation": pos, "achieved_goal": pos.copy(), "desired_goal": self._goal.copy()}

    def compute_reward(self, achieved: Any, desired: Any, info: Any = None) -> np.ndarray:
        """The sparse reward (vectorised)."""
        return sparse_goal_reward(achieved, desired, self.distance_threshold)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start near the origin; draw the goal (or take `options["goal"]`)."""
        super().reset(seed=seed)
        self._pos = self.np_random.normal(0.0, 0.02, 2)
        if options and "goal" in options:
            self._goal = np.asarray(options["goal"], np.float32).reshape(2)
        else:
            r = self.goal_range * math.sqrt(self.np_random.uniform())
            a = self.np_random.uniform(0.0, 2 * math.pi)
            self._goal = np.array([r * math.cos(a), r * math.sin(a)], np.float32)
        self._t = 0
        obs = self._obs()
        reached = bool(self.compute_reward(obs["achieved_goal"], self._goal) > 0)
        return obs, {"is_success": reached}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Move by step_size * clip(action); never terminates (the goal is held, not left)."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self._pos = np.clip(self._pos + self.step_size * a, -5.0, 5.0)
        self._t += 1
        obs = self._obs()
        reward = float(self.compute_reward(obs["achieved_goal"], self._goal))
        info = {"is_success": reward > 0, "peak_force": 0.0, "safety_violation": False}
        return obs, reward, False, self._t >= self.max_steps, info
