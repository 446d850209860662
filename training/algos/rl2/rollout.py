"""RL²'s rollouts: trials of a recurrent policy on tasks, fed exactly as the runtime feeds
the exported step (training/common/agents.py `RecurrentAgent`). `run_trials` is what
RL2Trainer collects with, and what rdistill's RL fine-tuning collects with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from training.algos.rl2.losses import Trial
from training.algos.rl2.networks import RecurrentPolicy

__all__ = ["run_trials"]


def run_trials(
    envs: Sequence[Any],
    tasks: Sequence[Any],
    policy: RecurrentPolicy,
    rng: np.random.Generator,
    episodes: int,
    limit: int | None,
    stochastic: bool = True,
) -> list[Trial]:
    """One trial per task, run in lockstep on `envs[i]` for `tasks[i]` (one batched policy
    step per tick): `episodes` episodes of its task with one hidden state from zeros, the
    policy fed (s_t, a_{t-1}, r_{t-1}, d_{t-1}) with d = 1 at the first step of each later
    episode, sampling u ~ N(mean, std) (`stochastic`; else u = mean), a = tanh(u). Episodes
    end as training/common/rollout.py's do (terminated, truncated, or `limit` steps); every
    reset seed is drawn from `rng` at the episode's start, in task order, then each tick's
    noise."""
    if len(envs) < len(tasks):
        raise ValueError(f"run_trials: {len(tasks)} tasks need as many envs, got {len(envs)}")
    n, A, o = len(tasks), policy.act_dim, policy.obs_dim
    E = episodes
    h = torch.zeros(n, policy.hidden_dim)
    prev_a = np.zeros((n, A), np.float32)
    prev_r = np.zeros(n, np.float32)
    prev_d = np.zeros(n, np.float32)
    obs = np.zeros((n, o), np.float32)
    rows: list[dict[str, list[Any]]] = [
        {k: [] for k in ("obs", "a", "r", "d", "u", "rewards")} for _ in range(n)
    ]
    returns: list[list[float]] = [[] for _ in range(n)]
    successes: list[list[bool]] = [[] for _ in range(n)]
    violations: list[list[bool]] = [[] for _ in range(n)]
    episode = np.zeros(n, int)
    t_ep = np.zeros(n, int)
    ret, hit, hurt = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
    for i, task in enumerate(tasks):
        envs[i].set_task(task)
    for i in range(n):
        obs[i] = envs[i].reset(seed=int(rng.integers(2**31)))[0]
    active = np.ones(n, bool)
    while active.any():
        idx = np.flatnonzero(active)
        with torch.no_grad():
            h_next, mean, log_std = policy.step(
                h[idx],
                torch.from_numpy(obs[idx]),
                torch.from_numpy(prev_a[idx]),
                torch.from_numpy(prev_r[idx, None]),
                torch.from_numpy(prev_d[idx, None]),
            )
        h[idx] = h_next
        eps = rng.standard_normal((len(idx), A)) if stochastic else np.zeros((len(idx), A))
        u = (mean.numpy() + log_std.detach().exp().numpy() * eps).astype(np.float32)
        starts = []
        for j, i in enumerate(idx.tolist()):
            r = rows[i]
            for key, val in (
                ("obs", obs[i]),
                ("a", prev_a[i]),
                ("r", prev_r[i]),
                ("d", prev_d[i]),
            ):
                r[key].append(np.array(val, np.float32))
            r["u"].append(u[j])
            action = np.tanh(u[j])
            next_obs, reward, terminated, truncated, info = envs[i].step(action)
            r["rewards"].append(float(reward))
            prev_a[i], prev_r[i], prev_d[i] = action, float(reward), 0.0
            obs[i] = next_obs
            ret[i] += float(reward)
            hit[i] |= bool(info.get("is_success", False))
            hurt[i] |= bool(info.get("safety_violation", False))
            t_ep[i] += 1
            if terminated or truncated or (limit is not None and t_ep[i] >= limit):
                returns[i].append(float(ret[i]))
                successes[i].append(bool(hit[i]))
                violations[i].append(bool(hurt[i]))
                ret[i], hit[i], hurt[i], t_ep[i] = 0.0, False, False, 0
                episode[i] += 1
                prev_d[i] = 1.0  # the next step is the first of the trial's next episode
                if episode[i] < E:
                    starts.append(i)
                else:
                    active[i] = False
        for i in starts:  # seeds in task order, after the tick's noise
            obs[i] = envs[i].reset(seed=int(rng.integers(2**31)))[0]
    trials = []
    for i in range(n):
        r = rows[i]
        trials.append(
            Trial(
                obs=np.stack(r["obs"]),
                last_action=np.stack(r["a"]),
                reward=np.asarray(r["r"], np.float32)[:, None],
                done=np.asarray(r["d"], np.float32)[:, None],
                u=np.stack(r["u"]),
                rewards=np.asarray(r["rewards"], np.float32),
                episode_returns=returns[i],
                episode_successes=successes[i],
                episode_violations=violations[i],
            )
        )
    return trials
