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

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.algos.rl2.agent import rl2_agent
from training.algos.rl2.losses import Trial, ppo_step, trial_batch
from training.algos.rl2.networks import RL2Nets, make_nets
from training.algos.rl2.rollout import run_trials
from training.common.loop import OnPolicyState, train_loop
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
        """One trial per task, run in lockstep on one env each (`rollout.run_trials`);
        counts their steps."""
        envs = [self.env(i) for i in range(len(tasks))]
        trials = run_trials(
            envs,
            tasks,
            self.nets.policy,
            self.rng,
            self.cfg.rl2.episodes_per_trial,
            self.cfg.max_episode_steps,
            stochastic,
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
        logs, _ = ppo_step(
            self.nets, trial_batch(trials), cfg.ppo, cfg.rl2.bptt, self.optimizer, self.generator
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
