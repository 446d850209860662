"""RL² training (Duan et al. 2016) with PPO over whole trials.

Before training, `rl2.stats_trials` trials of the untrained policy fix the observation
normalisation. Then per iteration: `rl2.trials_per_iteration` trials, each on a random
train task: `rl2.episodes_per_trial` episodes in a row with one hidden state (reset only
at the trial's start), the policy fed (s_t, a_{t-1}, r_{t-1}, d_{t-1}) exactly as the
runtime feeds the exported step (training/common/agents.py `RecurrentAgent`) and sampling
u ~ N(mean, std), a = tanh(u); then one PPO update (`ppo.epochs` x `ppo.minibatches` over
the trials, or over their `rl2.bptt`-step chunks: losses.py). Evaluation is the few-shot
protocol (training/evaluate.py) on the test tasks with the deterministic policy: the hidden
state runs from the first exploration episode through the evaluation episodes of a task.

The run dir holds `config.yaml`, `checkpoint.pt` (networks, optimizer, RNG states,
counters, history), TensorBoard logs under `tb/`, `history.json` and `eval.json`.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.algos.rl2.agent import rl2_agent
from training.algos.rl2.losses import Trial, chunked, rl2_evaluate, trial_batch, with_targets
from training.algos.rl2.networks import RL2Nets, make_nets
from training.common.loop import OnPolicyState, train_loop
from training.common.ppo import ppo_update
from training.config import TrainConfig
from training.evaluate import FewShotReport, few_shot_eval


class RL2Trainer(OnPolicyState):
    """Owns the env, networks, optimizer and RNGs of one RL² run."""

    ALGORITHM = "rl2"
    CHECKPOINT_VERSION = 1

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        run = self.open(cfg, run_dir, "RL²")
        self.envs: list[Any] = [run.env]
        self.nets: RL2Nets = make_nets(self.obs_dim, self.act_dim, cfg)
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=cfg.ppo.lr)

    # ------------------------------------------------------------------ collection
    def env(self, i: int) -> Any:
        """The i-th env of the lockstep collection (built on first use; env 0 is the
        worker's)."""
        while len(self.envs) <= i:
            self.envs.append(self.source.make_env())
        return self.envs[i]

    def run_trials(self, tasks: list[Any], stochastic: bool = True) -> list[Trial]:
        """One trial per task, run in lockstep on one env each (one batched policy step per
        tick): `rl2.episodes_per_trial` episodes of its task with one hidden state from
        zeros, the policy fed (s_t, a_{t-1}, r_{t-1}, d_{t-1}) with d = 1 at the first step
        of each later episode. Episodes end as training/common/rollout.py's do (terminated,
        truncated, or `max_episode_steps`); every reset seed is drawn from the run's
        generator at the episode's start, in task order, then each tick's noise."""
        n, A, o = len(tasks), self.act_dim, self.obs_dim
        E, limit = self.cfg.rl2.episodes_per_trial, self.cfg.max_episode_steps
        policy = self.nets.policy
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
        episode = np.zeros(n, int)
        t_ep = np.zeros(n, int)
        ret, hit = np.zeros(n), np.zeros(n, bool)
        for i, task in enumerate(tasks):
            self.env(i).set_task(task)
        for i in range(n):
            obs[i] = self.env(i).reset(seed=int(self.rng.integers(2**31)))[0]
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
            eps = self.rng.standard_normal((len(idx), A)) if stochastic else np.zeros((len(idx), A))
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
                next_obs, reward, terminated, truncated, info = self.env(i).step(action)
                r["rewards"].append(float(reward))
                prev_a[i], prev_r[i], prev_d[i] = action, float(reward), 0.0
                obs[i] = next_obs
                ret[i] += float(reward)
                hit[i] |= bool(info.get("is_success", False))
                t_ep[i] += 1
                if terminated or truncated or (limit is not None and t_ep[i] >= limit):
                    returns[i].append(float(ret[i]))
                    successes[i].append(bool(hit[i]))
                    ret[i], hit[i], t_ep[i] = 0.0, False, 0
                    episode[i] += 1
                    prev_d[i] = 1.0  # the next step is the first of the trial's next episode
                    if episode[i] < E:
                        starts.append(i)
                    else:
                        active[i] = False
            for i in starts:  # seeds in task order, after the tick's noise
                obs[i] = self.env(i).reset(seed=int(self.rng.integers(2**31)))[0]
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
                )
            )
        self.env_steps += sum(t.steps for t in trials)
        return trials

    def _trials(self, n: int) -> list[Trial]:
        tasks = self.source.train_tasks
        return self.run_trials([tasks[int(i)] for i in self.rng.integers(len(tasks), size=n)])

    def _obs_stats(self) -> None:
        """`rl2.stats_trials` trials of the untrained policy; freeze the obs statistics."""
        obs = np.concatenate([t.obs for t in self._trials(self.cfg.rl2.stats_trials)])
        self.nets.set_obs_stats(torch.from_numpy(obs.mean(0)), torch.from_numpy(obs.std(0)))

    # ------------------------------------------------------------------ training
    def train_iteration(self) -> dict[str, float]:
        """One iteration (trials, then one PPO update); returns logged scalars."""
        cfg = self.cfg
        if self.iteration == 0 and self.updates == 0:
            self._obs_stats()
        trials = self._trials(cfg.rl2.trials_per_iteration)
        t0 = time.perf_counter()
        batch = with_targets(self.nets, trial_batch(trials), cfg.ppo)
        if cfg.rl2.bptt is not None:
            batch = chunked(batch, cfg.rl2.bptt)
        else:
            del batch["hs_pi"], batch["hs_v"]
        logs = ppo_update(
            batch,
            functools.partial(rl2_evaluate, self.nets),
            self.optimizer,
            list(self.nets.parameters()),
            cfg.ppo,
            self.generator,
        )
        self.updates += 1
        self.iteration += 1
        rets = np.asarray([t.episode_returns for t in trials])  # (trials, episodes)
        succ = np.asarray([t.episode_successes for t in trials], np.float64)
        logs.update(
            {
                "train/return": float(rets.mean()),
                "train/return_first": float(rets[:, 0].mean()),
                "train/return_last": float(rets[:, -1].mean()),
                "train/success": float(succ.mean()),
                "train/success_last": float(succ[:, -1].mean()),
                "time/update_ms": 1000 * (time.perf_counter() - t0),
                "counters/env_steps": float(self.env_steps),
                "counters/updates": float(self.updates),
            }
        )
        return logs

    def evaluate(self, seed_offset: int = 1) -> FewShotReport:
        """The few-shot protocol on the test tasks (training/evaluate.py) with the
        deterministic policy, its hidden state kept over each task's episodes."""
        return few_shot_eval(
            self.source,
            rl2_agent(self.nets, self.cfg),
            self.cfg.eval,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
        )

    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train to the config's end (training/common/loop.py): TensorBoard, a progress
        bar, periodic few-shot evaluation, checkpoints."""
        return train_loop(self, "RL²", "train/return_last", progress)
