"""`InsertionGoalEnv`: the insertion arm as a goal-reaching task (issue #20).

The goal is a plug pose in the frame of the *believed* socket, the same one the observation
uses: g = (x mm, y mm, z mm, yaw deg) of the plug's origin (the pins' root), `GOAL_NAMES`.
Each episode draws one, with probability `inserted_fraction` the **inserted** pose (x = y =
yaw = 0, z = longest pin - success depth - epsilon: reaching it within epsilon means the pins
are at least the success depth below the face) and otherwise a **hover** pose above the
face (x, y within ±`hover_xy_mm`, yaw within ±`hover_yaw_deg`, pin tips 1 to 1 +
`hover_height_mm` mm above the face). `reset(options={"goal": g})` asks for a given one.

Observation (Gymnasium-Robotics' GoalEnv layout, a `Dict`): `observation` (the insertion
env's 18 entries), `achieved_goal` (the plug's pose now, as g) and `desired_goal` (g).
Reward: `zshot.goal.sparse_goal_reward(achieved, desired, epsilon)`, 1 where
|achieved - desired| <= epsilon (mm and deg alike) and 0 elsewhere; `compute_reward` is the
same function for relabelling. `info["is_success"]` says the goal is reached,
`info["inserted"]` what the insertion env calls success. The episode ends as the insertion
env's does: a safety violation or an insertion terminates it, `max_steps` truncates it.
Use the `known` profile (no hidden socket error) for goal reaching: the goal is a pose in the
believed frame, and with a hidden error the inserted pose is not where the hole is.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.config import InsertionEnvConfig
from sim.insertion import OBS_INDEX, InsertionEnv
from sim.tasks import InsertionTask
from zshot.goal import goal_reached, sparse_goal_reward
from zshot.plug_descriptor import inserted_goal_z

__all__ = ["GOAL_DIM", "GOAL_NAMES", "GOAL_OBS", "InsertionGoalEnv"]

GOAL_NAMES: tuple[str, ...] = ("x_mm", "y_mm", "z_mm", "yaw_deg")
GOAL_OBS: tuple[int, ...] = tuple(OBS_INDEX[n] for n in GOAL_NAMES)
"""Where each goal entry is in the insertion observation."""
GOAL_DIM = len(GOAL_NAMES)


class InsertionGoalEnv(gym.Env):
    """Reach a plug pose (hover or inserted) with the insertion env's controller."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        config: InsertionEnvConfig | None = None,
        task: InsertionTask | None = None,
        plug: str | None = None,
        epsilon: float = 1.0,
        inserted_fraction: float = 0.5,
        hover_xy_mm: float = 3.0,
        hover_yaw_deg: float = 5.0,
        hover_height_mm: float = 8.0,
    ) -> None:
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        if not 0.0 <= inserted_fraction <= 1.0:
            raise ValueError(f"inserted_fraction must be in [0, 1], got {inserted_fraction}")
        self.base = InsertionEnv(config=config, task=task, plug=plug)
        self.config = self.base.config
        self.control_hz = self.config.control_hz
        self.epsilon = float(epsilon)
        self.distance_threshold = self.epsilon  # Gymnasium-Robotics' name for it
        self.inserted_fraction = float(inserted_fraction)
        self.hover = (float(hover_xy_mm), float(hover_yaw_deg), float(hover_height_mm))
        self.goal_names = GOAL_NAMES
        self.obs_names = self.base.obs_names
        self.action_names = self.base.action_names
        box = self.base.observation_space
        assert isinstance(box, spaces.Box)
        high = np.asarray(box.high, np.float32)
        g_high = high[list(GOAL_OBS)]
        self.observation_space = spaces.Dict(
            {
                "observation": self.base.observation_space,
                "achieved_goal": spaces.Box(-g_high, g_high, dtype=np.float32),
                "desired_goal": spaces.Box(-g_high, g_high, dtype=np.float32),
            }
        )
        self.action_space = self.base.action_space
        self._goal = self.inserted_goal()

    @property
    def task(self) -> InsertionTask:
        """The insertion task in effect."""
        return self.base.task

    def set_task(self, task: InsertionTask) -> None:
        """Switch the insertion task (plug, hidden errors); applied at the next reset."""
        self.base.set_task(task)

    def inserted_goal(self) -> np.ndarray:
        """The inserted pose of the current plug: centred, yaw 0, pins success depth +
        epsilon below the face (z clamped at 0, the plug's body on the face)."""
        spec = self.base.plug_spec
        z = inserted_goal_z(spec.max_pin_length, spec.effective_success_depth, self.epsilon)
        return np.array([0.0, 0.0, z, 0.0], np.float32)

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """An inserted goal with probability `inserted_fraction`, else a hover pose."""
        if rng.uniform() < self.inserted_fraction:
            return self.inserted_goal()
        xy, yaw, height = self.hover
        z = self.base.plug_spec.max_pin_length + rng.uniform(1.0, 1.0 + height)
        g = [rng.uniform(-xy, xy), rng.uniform(-xy, xy), z, rng.uniform(-yaw, yaw)]
        return np.asarray(g, np.float32)

    @property
    def goal(self) -> np.ndarray:
        """The episode's desired goal."""
        return self._goal.copy()

    def _obs(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "observation": obs,
            "achieved_goal": obs[list(GOAL_OBS)].astype(np.float32),
            "desired_goal": self._goal.copy(),
        }

    def compute_reward(self, achieved: Any, desired: Any, info: Any = None) -> np.ndarray:
        """The sparse reward (vectorised over leading axes), as every step gives it."""
        return sparse_goal_reward(achieved, desired, self.epsilon)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the insertion env, then draw the goal (after its start pose, from the same
        seeded stream) unless `options["goal"]` gives it."""
        super().reset(seed=seed)
        opts = dict(options or {})
        goal = opts.pop("goal", None)
        obs, info = self.base.reset(seed=seed, options=opts or None)
        if goal is not None:
            g = np.asarray(goal, np.float32).reshape(-1)
            if g.shape != (GOAL_DIM,) or not np.all(np.isfinite(g)):
                raise ValueError(
                    f"goal must be {GOAL_DIM} finite numbers {GOAL_NAMES}, got {goal!r}"
                )
            self._goal = g
        else:
            self._goal = self.sample_goal(self.np_random)
        out = self._obs(obs)
        info = {**info, "inserted": info["is_success"]}
        info["is_success"] = bool(goal_reached(out["achieved_goal"], self._goal, self.epsilon))
        return out, info

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """One control step of the insertion env; the sparse goal reward."""
        obs, _, terminated, truncated, info = self.base.step(action)
        out = self._obs(obs)
        reward = float(self.compute_reward(out["achieved_goal"], self._goal))
        info = {**info, "inserted": info["is_success"], "is_success": reward > 0.0}
        return out, reward, terminated, truncated, info

    def close(self) -> None:
        """Close the insertion env."""
        self.base.close()
        super().close()
