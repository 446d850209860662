"""Meta-World's MT10 (Yu et al. 2019, arXiv 1910.10897) as a task source for the multi-task
trainers (`env: metaworld_mt10`): its 10 environments are the train tasks, in MT10's order,
so task i's one-hot id is e_i (training/algos/mtsac). Each task fixes one of MT10's 50
goal variations of its environment, drawn by the run's seed.

`MetaWorldMT10Env` is one Gymnasium env over the 10: `set_task(task)` switches the
environment (built on first use) and its variation at the next reset. Observation: the 39
float32 entries every Meta-World v3 env has; action: [-1, 1]^4; `info["is_success"]` is
Meta-World's `success`; the episode truncates at the env's `max_path_length` (500).
Needs the `metaworld` package (`pip install 'zshot[metaworld]'`): this module imports it,
training/common/tasks.py imports this module only for that env.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import metaworld
import numpy as np
from pydantic import BaseModel, ConfigDict

CONTROL_HZ = 80.0
"""Meta-World's control rate: frame_skip 5 of MuJoCo's 2.5 ms step (12.5 ms per action)."""


class MetaWorldTask(BaseModel):
    """One MT10 task: the environment's name and which of MT10's variations of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    variation: int


@functools.lru_cache(maxsize=2)
def _benchmark(seed: int) -> Any:
    """metaworld.MT10(seed) (slow to build, ~10 s: built once per seed per process)."""
    return metaworld.MT10(seed=seed)


def mt10_tasks(seed: int) -> list[MetaWorldTask]:
    """The 10 train tasks in MT10's order, each with a variation drawn from `seed`."""
    bench = _benchmark(seed)
    rng = np.random.default_rng(seed)
    out = []
    for name in bench.train_classes:
        n = sum(t.env_name == name for t in bench.train_tasks)
        out.append(MetaWorldTask(name=name, variation=int(rng.integers(n))))
    return out


class MetaWorldMT10Env(gym.Env[np.ndarray, np.ndarray]):
    """The 10 MT10 environments behind one `set_task`."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)
    control_hz = CONTROL_HZ

    def __init__(self, seed: int) -> None:
        self.bench = _benchmark(seed)
        self.names = list(self.bench.train_classes)
        self._envs: dict[str, Any] = {}
        first = mt10_tasks(seed)[0]
        self._pending: MetaWorldTask | None = first
        self._env = self._switch(first)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (39,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.obs_names = [f"obs{i}" for i in range(39)]
        self.action_names = ["dx", "dy", "dz", "grip"]

    def _switch(self, task: MetaWorldTask) -> Any:
        if task.name not in self.names:
            raise ValueError(f"{task.name!r} is not an MT10 environment; known: {self.names}")
        env = self._envs.get(task.name)
        if env is None:
            env = self.bench.train_classes[task.name]()
            self._envs[task.name] = env
        variations = [t for t in self.bench.train_tasks if t.env_name == task.name]
        env.set_task(variations[task.variation])
        return env

    def set_task(self, task: MetaWorldTask) -> None:
        """Switch task; takes effect at the next reset()."""
        if not isinstance(task, MetaWorldTask):
            raise TypeError(f"set_task expects a MetaWorldTask, got {type(task).__name__}")
        self._pending = task

    @property
    def max_steps(self) -> int:
        """The current environment's episode limit."""
        return int(self._env.max_path_length)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the current (or pending) task's environment."""
        super().reset(seed=seed)
        if self._pending is not None:
            self._env = self._switch(self._pending)
            self._pending = None
        obs, info = self._env.reset(seed=seed)
        return np.asarray(obs, np.float32), dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One Meta-World step; `is_success` from its `success`."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self._env.step(a)
        info = {**info, "is_success": bool(info.get("success", 0.0)), "peak_force": 0.0}
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        """Close every environment built."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
