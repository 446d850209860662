"""Per-task replay buffers, as PEARL keeps them.

PEARL holds two buffers per training task (oyster's `replay_buffer` and
`enc_replay_buffer`): the RL buffer gets every transition; the encoder buffer only the
transitions collected with z from the prior or the posterior (not the extra RL-only
posterior steps), and it is cleared each time the task's data is refreshed, so the context
the encoder trains on looks like the context it will see at test time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class MultiTaskReplayBuffer:
    """A ring buffer per task; arrays are (task, capacity, feat) float32."""

    def __init__(self, num_tasks: int, capacity: int, obs_dim: int, act_dim: int) -> None:
        if num_tasks < 1 or capacity < 1:
            raise ValueError(f"need num_tasks >= 1 and capacity >= 1, got {num_tasks}, {capacity}")
        self.num_tasks, self.capacity = num_tasks, capacity
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs = np.zeros((num_tasks, capacity, obs_dim), np.float32)
        self.actions = np.zeros((num_tasks, capacity, act_dim), np.float32)
        self.rewards = np.zeros((num_tasks, capacity, 1), np.float32)
        self.next_obs = np.zeros((num_tasks, capacity, obs_dim), np.float32)
        self.dones = np.zeros((num_tasks, capacity, 1), np.float32)
        self.sizes = np.zeros(num_tasks, np.int64)
        self.heads = np.zeros(num_tasks, np.int64)  # next write position per task

    def add(
        self,
        task: int,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        done: bool,
    ) -> None:
        """Append one transition to `task`'s buffer (overwrites the oldest when full)."""
        i = int(self.heads[task])
        self.obs[task, i] = obs
        self.actions[task, i] = action
        self.rewards[task, i, 0] = reward
        self.next_obs[task, i] = next_obs
        self.dones[task, i, 0] = float(done)
        self.heads[task] = (i + 1) % self.capacity
        self.sizes[task] = min(self.sizes[task] + 1, self.capacity)

    def add_rows(
        self,
        task: int,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        dones: np.ndarray,
    ) -> None:
        """Append rows (n, .) in order: the same buffer as `add` row by row (the oldest
        overwritten when full; of more than `capacity` rows only the last ones stay)."""
        n = len(obs)
        m = min(n, self.capacity)
        head = int(self.heads[task])
        idx = (head + (n - m) + np.arange(m)) % self.capacity
        self.obs[task, idx] = obs[n - m :]
        self.actions[task, idx] = actions[n - m :]
        self.rewards[task, idx, 0] = rewards[n - m :]
        self.next_obs[task, idx] = next_obs[n - m :]
        self.dones[task, idx, 0] = np.asarray(dones[n - m :], bool)
        self.heads[task] = (head + n) % self.capacity
        self.sizes[task] = min(int(self.sizes[task]) + n, self.capacity)

    def clear(self, task: int) -> None:
        """Forget `task`'s transitions."""
        self.sizes[task] = 0
        self.heads[task] = 0

    def _indices(self, tasks: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        sizes = self.sizes[tasks]
        if (sizes == 0).any():
            empty = [int(t) for t in tasks[sizes == 0]]
            raise ValueError(f"replay buffer of task(s) {empty} is empty; collect data first")
        # Uniform with replacement within each task's filled part: (T, n)
        return (rng.random((len(tasks), n)) * sizes[:, None]).astype(np.int64)

    def sample(self, tasks: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """n transitions per task: obs, actions, rewards, next_obs, dones, each (T, n, .)."""
        idx = self._indices(tasks, n, rng)
        t = tasks[:, None]
        return (
            self.obs[t, idx],
            self.actions[t, idx],
            self.rewards[t, idx],
            self.next_obs[t, idx],
            self.dones[t, idx],
        )

    def sample_context(self, tasks: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n random transitions per task as encoder rows (s, a, r, s'): (T, n, D)."""
        obs, act, rew, nxt, _ = self.sample(tasks, n, rng)
        return np.concatenate([obs, act, rew, nxt], axis=-1)

    def state_dict(self) -> dict[str, Any]:
        """Filled parts only, as tensors (torch.load(weights_only=True) reads them)."""
        n = int(self.sizes.max()) if self.sizes.size else 0
        out: dict[str, Any] = {
            "num_tasks": self.num_tasks,
            "capacity": self.capacity,
            "sizes": torch.from_numpy(self.sizes.copy()),
            "heads": torch.from_numpy(self.heads.copy()),
        }
        for name in ("obs", "actions", "rewards", "next_obs", "dones"):
            out[name] = torch.from_numpy(getattr(self, name)[:, :n].copy())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; shapes must match this buffer's."""
        if state["num_tasks"] != self.num_tasks or state["capacity"] != self.capacity:
            raise ValueError(
                f"checkpoint buffer is {state['num_tasks']} tasks x {state['capacity']}, "
                f"this run's is {self.num_tasks} x {self.capacity}"
            )
        self.sizes[:] = state["sizes"].numpy()
        self.heads[:] = state["heads"].numpy()
        for name in ("obs", "actions", "rewards", "next_obs", "dones"):
            arr = state[name].numpy()
            getattr(self, name)[:, : arr.shape[1]] = arr
