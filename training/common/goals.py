"""Goal-conditioned pieces HER and contrastive RL share (training/algos/her, training/algos/crl).

- `FlatGoalEnv`: a goal env with Gymnasium-Robotics' `Dict` observation (`observation`,
  `achieved_goal`, `desired_goal`: ours, sim/insertion_goal.py and the toy `PointReachEnv`,
  or FetchReach / FetchPush) as the flat vector [observation, achieved, desired] the rollout
  worker stores, its reward replaced by `zshot.goal.sparse_goal_reward` with the env's
  epsilon (`distance_threshold`), `info["is_success"]` = that goal reached.
- `GoalPolicy`, `GoalQFunction`: the shared tanh-Gaussian policy and Q with the goal as
  their task input, the goal normalised by its own frozen statistics.
- `EpisodeBuffer`: whole episodes (hindsight needs each transition's future), and the two
  samplers: `sample_her` (HER's `future` strategy, Andrychowicz et al. 2017, arXiv
  1707.01495: k relabelled goals per real one, each an achieved goal later in the same
  episode, the reward recomputed by the env's own function) and `sample_future` (contrastive
  RL's positives, Eysenbach et al. 2022, arXiv 2206.07568: the achieved goal Δ ~ Geom(1 - γ)
  steps later).

Nothing here imports another training module but `networks` and `rollout`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from training.common.networks import ObsNormaliser, QFunction, TanhGaussianPolicy
from training.common.rollout import Episode
from zshot.goal import sparse_goal_reward


class GoalLayout(NamedTuple):
    """Where each part sits in a flat goal observation [observation, achieved, desired]."""

    obs_dim: int
    goal_dim: int

    @property
    def flat_dim(self) -> int:
        """obs_dim + 2 goal_dim."""
        return self.obs_dim + 2 * self.goal_dim

    def split(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(..., flat) -> observation (..., O), achieved (..., G), desired (..., G)."""
        o, g = self.obs_dim, self.goal_dim
        return flat[..., :o], flat[..., o : o + g], flat[..., o + g : o + 2 * g]


class FlatGoalEnv(gym.Env):
    """A `Dict`-observation goal env as a flat `Box` env with the shared sparse reward."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        env: Any,
        epsilon: float | None = None,
        env_id: str = "",
        goal_names: tuple[str, ...] | None = None,
    ) -> None:
        self.env = env
        inner = env.unwrapped
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or set(space.spaces) != {
            "observation",
            "achieved_goal",
            "desired_goal",
        }:
            raise ValueError(
                f"{env_id or type(inner).__name__}: not a goal env (needs a Dict observation "
                "of observation, achieved_goal, desired_goal)"
            )
        eps = epsilon if epsilon is not None else getattr(inner, "distance_threshold", None)
        if eps is None or not eps > 0:
            raise ValueError(f"{env_id}: no goal epsilon (give goal.epsilon > 0)")
        self.epsilon = float(eps)
        o = int(np.prod(space["observation"].shape or (0,)))
        g = int(np.prod(space["desired_goal"].shape or (0,)))
        self.layout = GoalLayout(o, g)
        self.env_id = env_id
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, (self.layout.flat_dim,), np.float32
        )
        self.action_space = env.action_space
        hz = getattr(inner, "control_hz", None)
        dt = getattr(inner, "dt", None)
        self.control_hz = float(hz) if hz else (1.0 / float(dt) if dt else 10.0)
        obs_names = getattr(inner, "obs_names", None) or [f"obs{i}" for i in range(o)]
        names_of_goal = (
            goal_names or getattr(inner, "goal_names", None) or [f"goal{i}" for i in range(g)]
        )
        self.goal_names = [str(n) for n in names_of_goal]
        self.obs_names = [
            *map(str, obs_names),
            *(f"achieved_{n}" for n in self.goal_names),
            *(f"desired_{n}" for n in self.goal_names),
        ]
        names = getattr(inner, "action_names", None)
        act = int(np.prod(env.action_space.shape or (0,)))
        self.action_names = [str(n) for n in names] if names else [f"act{i}" for i in range(act)]
        spec_limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
        own = getattr(getattr(inner, "config", None), "max_steps", None)
        self.horizon = int(spec_limit or own or getattr(inner, "max_steps", 0) or 0)
        """The env's episode limit in steps (0: unknown; give max_episode_steps)."""

    def _flat(self, obs: dict[str, Any]) -> np.ndarray:
        parts = (obs["observation"], obs["achieved_goal"], obs["desired_goal"])
        return np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in parts])

    def set_task(self, task: Any) -> None:
        """The inner env's task (insertion: the plug); envs without tasks take None."""
        inner = self.env.unwrapped
        if hasattr(inner, "set_task"):
            inner.set_task(task)
        elif task is not None:
            raise ValueError(f"{self.env_id}: has no tasks, got {task!r}")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The inner reset, flattened."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self._flat(obs), dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The inner step, flattened; reward = sparse_goal_reward(achieved, desired, eps)."""
        obs, _, terminated, truncated, info = self.env.step(action)
        reward = float(sparse_goal_reward(obs["achieved_goal"], obs["desired_goal"], self.epsilon))
        info = {**info, "is_success": reward > 0.0}
        info.setdefault("peak_force", 0.0)
        return self._flat(obs), reward, bool(terminated), bool(truncated), info

    def close(self) -> None:
        """Close the inner env."""
        self.env.close()


class GoalPolicy(TanhGaussianPolicy):
    """pi(a | s, g): the shared tanh-Gaussian policy, g normalised by `goal_normaliser`."""

    def __init__(self, obs_dim: int, goal_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__(obs_dim, goal_dim, act_dim, hidden)
        self.goal_normaliser = ObsNormaliser(goal_dim)

    def forward(self, obs: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """obs (N, O) raw, goal z (N, G) raw -> pre-tanh mean, log-std."""
        return super().forward(obs, self.goal_normaliser(z))


class GoalQFunction(QFunction):
    """Q(s, a, g), g normalised by `goal_normaliser`."""

    def __init__(self, obs_dim: int, act_dim: int, goal_dim: int, hidden: list[int]) -> None:
        super().__init__(obs_dim, act_dim, goal_dim, hidden)
        self.goal_normaliser = ObsNormaliser(goal_dim)

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> Tensor:
        """obs (N, O) raw, action (N, A), goal z (N, G) raw -> Q (N, 1)."""
        return super().forward(obs, action, self.goal_normaliser(z))


def set_goal_stats(
    modules: list[Any], layout: GoalLayout, flat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Freeze every module's observation and goal normalisers (`normaliser`,
    `goal_normaliser`) from flat observations (N, flat): the observation part's statistics,
    and the goal's over the achieved and desired goals together (a relabelled goal is an
    achieved one). Returns the goal's (mean, std)."""
    obs, achieved, desired = layout.split(flat)
    goals = np.concatenate([achieved, desired])
    om, os_ = torch.from_numpy(obs.mean(0)), torch.from_numpy(obs.std(0))
    gm, gs = goals.mean(0), goals.std(0)
    for m in modules:
        m.normaliser.set_stats(om, os_)
        if hasattr(m, "goal_normaliser"):
            m.goal_normaliser.set_stats(torch.from_numpy(gm), torch.from_numpy(gs))
    return gm, gs


class GoalBatch(NamedTuple):
    """B transitions with the goal each is trained for (real or relabelled)."""

    obs: Tensor  # (B, O): the observation part only
    goals: Tensor  # (B, G)
    actions: Tensor  # (B, A)
    rewards: Tensor  # (B, 1): sparse_goal_reward(achieved', goal)
    next_obs: Tensor  # (B, O)
    dones: Tensor  # (B, 1): 1.0 only for true terminals
    relabelled: Tensor  # (B,) bool: the goal is a hindsight one


class EpisodeBuffer:
    """A ring of whole episodes: flat observations (E, H + 1, F), actions (E, H, A),
    terminal flags (E, H) and lengths (E,); `capacity` episodes of at most `horizon` steps."""

    def __init__(self, capacity: int, horizon: int, layout: GoalLayout, act_dim: int) -> None:
        if capacity < 1 or horizon < 1:
            raise ValueError(f"need capacity >= 1 and horizon >= 1, got {capacity}, {horizon}")
        self.capacity, self.horizon, self.layout = capacity, horizon, layout
        self.obs = np.zeros((capacity, horizon + 1, layout.flat_dim), np.float32)
        self.actions = np.zeros((capacity, horizon, act_dim), np.float32)
        self.terminated = np.zeros((capacity, horizon), bool)
        self.lengths = np.zeros(capacity, np.int64)
        self.size = 0
        self.head = 0

    def add(self, episode: Episode) -> None:
        """Store one episode (overwriting the oldest when full)."""
        n = episode.steps
        if not 1 <= n <= self.horizon:
            raise ValueError(f"episode of {n} steps; the buffer holds 1..{self.horizon}")
        i = self.head
        self.obs[i, : n + 1] = episode.obs
        self.actions[i, :n] = episode.actions
        self.terminated[i] = False
        self.terminated[i, :n] = episode.terminated
        self.lengths[i] = n
        self.head = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    @property
    def transitions(self) -> int:
        """Transitions stored."""
        return int(self.lengths[: self.size].sum())

    def sample_steps(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n (episode, step) pairs, uniform over the stored transitions."""
        if self.size == 0:
            raise ValueError("the episode buffer is empty")
        lengths = self.lengths[: self.size]
        ep = rng.choice(self.size, size=n, p=lengths / lengths.sum())
        t = np.floor(rng.uniform(size=n) * lengths[ep]).astype(np.int64)
        return ep, t

    def state_dict(self) -> dict[str, Any]:
        """The stored episodes, as tensors (torch.load(weights_only=True) reads them)."""
        s = self.size
        out: dict[str, Any] = {"head": self.head, "capacity": self.capacity}
        for name in ("obs", "actions", "terminated", "lengths"):
            out[name] = torch.from_numpy(getattr(self, name)[:s].copy())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the capacity must be this buffer's."""
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"checkpoint holds {state['capacity']} episodes, this run {self.capacity}"
            )
        s = len(state["lengths"])
        for name in ("obs", "actions", "terminated", "lengths"):
            getattr(self, name)[:s] = state[name].numpy()
        self.size, self.head = s, int(state["head"])


def relabel_count(batch_size: int, k: int) -> int:
    """Transitions of a batch that get a hindsight goal: HER's k relabelled per real one,
    round(B k / (k + 1)) (future_p = 1 - 1 / (1 + k); k = 0: none, plain SAC)."""
    return round(batch_size * k / (k + 1))


def sample_her(
    buffer: EpisodeBuffer,
    batch_size: int,
    k: int,
    epsilon: float,
    rng: np.random.Generator,
    reward_fn: Callable[[np.ndarray, np.ndarray, float], np.ndarray] = sparse_goal_reward,
) -> GoalBatch:
    """HER's `future` strategy: `relabel_count(B, k)` transitions (s_t, a_t, s_{t+1}) of the
    batch, chosen at random, are trained for the achieved goal of a state s_{t'} with t' ~
    U{t + 1, .., T} of the same episode; the rest for the episode's own desired goal. Every
    reward is `reward_fn(achieved_{t+1}, goal, epsilon)`, the function the env rewards with."""
    lay = buffer.layout
    ep, t = buffer.sample_steps(batch_size, rng)
    obs, _, desired = lay.split(buffer.obs[ep, t])
    nxt, achieved_next, _ = lay.split(buffer.obs[ep, t + 1])
    goals = desired.copy()
    relabel = np.zeros(batch_size, bool)
    relabel[rng.permutation(batch_size)[: relabel_count(batch_size, k)]] = True
    if relabel.any():
        e, s = ep[relabel], t[relabel]
        lengths = buffer.lengths[e]
        future = s + 1 + np.floor(rng.uniform(size=len(e)) * (lengths - s)).astype(np.int64)
        goals[relabel] = lay.split(buffer.obs[e, future])[1]
    rewards = reward_fn(achieved_next, goals, epsilon).astype(np.float32)
    dones = buffer.terminated[ep, t].astype(np.float32)
    f = torch.from_numpy
    return GoalBatch(
        obs=f(np.ascontiguousarray(obs)),
        goals=f(np.ascontiguousarray(goals)),
        actions=f(buffer.actions[ep, t]),
        rewards=f(rewards[:, None]),
        next_obs=f(np.ascontiguousarray(nxt)),
        dones=f(dones[:, None]),
        relabelled=f(relabel),
    )


class FutureBatch(NamedTuple):
    """Contrastive RL's positives: (s_t, a_t) and an achieved goal of its own future."""

    obs: Tensor  # (B, O)
    actions: Tensor  # (B, A)
    future_goals: Tensor  # (B, G)
    offsets: Tensor  # (B,) int64: t' - t >= 1


def sample_future(
    buffer: EpisodeBuffer, batch_size: int, gamma: float, rng: np.random.Generator
) -> FutureBatch:
    """B (s_t, a_t) with the achieved goal of s_{t'}, t' = min(t + Δ, T), Δ ~ Geom(1 - γ)
    (Δ >= 1: the discounted state-occupancy measure of the future that contrastive RL's
    critic classifies)."""
    lay = buffer.layout
    ep, t = buffer.sample_steps(batch_size, rng)
    delta = rng.geometric(1.0 - gamma, size=batch_size)
    future = np.minimum(t + delta, buffer.lengths[ep])
    obs = lay.split(buffer.obs[ep, t])[0]
    goals = lay.split(buffer.obs[ep, future])[1]
    f = torch.from_numpy
    return FutureBatch(
        obs=f(np.ascontiguousarray(obs)),
        actions=f(buffer.actions[ep, t]),
        future_goals=f(np.ascontiguousarray(goals)),
        offsets=f((future - t).astype(np.int64)),
    )
