"""MT-PPO training over the train tasks, each told by its one-hot id (Yu et al. 2019's
multi-task PPO baseline).

Before training, `initial_steps` per train task with the untrained policy fix the
observation normalisation. Then per iteration `tasks_per_iteration` random train tasks
(without replacement) collect whole episodes of `steps_prior + steps_posterior +
steps_extra_posterior` steps each (as MT-SAC: one budget of on-task steps) with the current
policy, u ~ N(mean, std), a = tanh(u), and one PPO update runs over those episodes
(training/common/ppo.py: `ppo.epochs` x `ppo.minibatches`). Evaluation: `eval.eval_episodes`
deterministic episodes per train task, each told its id (`conditioned_eval`).

The run dir holds `config.yaml`, `checkpoint.pt` (networks, optimizer, RNG states,
counters, history), TensorBoard logs under `tb/`, `history.json` and `eval.json`.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import torch

from training.algos.mtppo.losses import TaskEpisode, episode_batch, mtppo_evaluate, with_targets
from training.algos.mtppo.networks import MTPPONets, make_nets
from training.common.loop import OnPolicyState, train_loop
from training.common.ppo import ppo_update
from training.common.rollout import Episode
from training.config import TrainConfig
from training.evaluate import FewShotReport, conditioned_eval


class SamplingActor:
    """A collection actor (`EpisodeActor`): the policy's sampled actions for one task's
    descriptor, recording each step's pre-tanh u."""

    def __init__(self, trainer: MTPPOTrainer, task: int) -> None:
        self.trainer = trainer
        self.d = trainer.nets.one_hot(torch.tensor([task]))
        self.u: list[np.ndarray] = []

    def begin_episode(self, rng: np.random.Generator) -> None:
        """A new episode's record of u."""
        self.u = []

    def act(self, obs: np.ndarray) -> np.ndarray:
        """tanh(u), u ~ N(mean(s, d), std)."""
        t = self.trainer
        with torch.no_grad():
            mean, log_std = t.nets.policy(torch.as_tensor(obs, dtype=torch.float32)[None], self.d)
        eps = t.rng.standard_normal(t.act_dim)
        u = (mean[0].numpy() + log_std[0].detach().exp().numpy() * eps).astype(np.float32)
        self.u.append(u)
        return np.tanh(u)

    def end_episode(self, episode: Episode) -> None:
        """Nothing: the trainer reads `u` in its `on_episode`."""


class MTPPOTrainer(OnPolicyState):
    """Owns the env, networks, optimizer and RNGs of one MT-PPO run."""

    ALGORITHM = "mtppo"
    CHECKPOINT_VERSION = 1

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.open(cfg, run_dir, "MT-PPO")
        n = len(self.source.train_tasks)
        if n != cfg.num_train_tasks:
            raise ValueError(
                f"mtppo: num_train_tasks is {cfg.num_train_tasks} but the env family has {n} "
                "train tasks; the one-hot id needs num_train_tasks <= the family's size"
            )
        self.nets: MTPPONets = make_nets(self.obs_dim, self.act_dim, cfg)
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=cfg.ppo.lr)

    # ------------------------------------------------------------------ collection
    def collect(self, task: int, num_steps: int) -> list[tuple[TaskEpisode, Episode]]:
        """Whole episodes of train task `task` until >= num_steps steps."""
        actor = SamplingActor(self, task)
        out: list[tuple[TaskEpisode, Episode]] = []

        def keep(ep: Episode) -> None:
            out.append(
                (
                    TaskEpisode(
                        task=task,
                        obs=ep.obs[:-1],
                        u=np.stack(actor.u),
                        rewards=ep.rewards.astype(np.float32),
                        terminated=bool(ep.terminated[-1]),
                        final_obs=ep.obs[-1],
                    ),
                    ep,
                )
            )

        self.worker.run(
            self.source.train_tasks[task], actor, self.rng, num_steps=num_steps, on_episode=keep
        )
        self.env_steps += sum(ep.steps for _, ep in out)
        return out

    def _initial_collection(self) -> None:
        """initial_steps per train task; then freeze the observation statistics."""
        obs = [
            e.obs
            for task in range(len(self.source.train_tasks))
            for e, _ in self.collect(task, max(self.cfg.initial_steps, 1))
        ]
        flat = np.concatenate(obs)
        self.nets.set_obs_stats(torch.from_numpy(flat.mean(0)), torch.from_numpy(flat.std(0)))

    # ------------------------------------------------------------------ training
    def train_iteration(self) -> dict[str, float]:
        """One iteration (collect on the sampled tasks, then one PPO update)."""
        cfg = self.cfg
        if self.iteration == 0 and self.updates == 0:
            self._initial_collection()
        n = len(self.source.train_tasks)
        steps = cfg.steps_prior + cfg.steps_posterior + cfg.steps_extra_posterior
        tasks = self.rng.choice(n, size=min(cfg.tasks_per_iteration, n), replace=False)
        collected = [pair for task in tasks for pair in self.collect(int(task), steps)]
        t0 = time.perf_counter()
        batch = episode_batch([e for e, _ in collected], self.nets.descriptor_dim)
        logs = ppo_update(
            with_targets(self.nets, batch, cfg.ppo),
            functools.partial(mtppo_evaluate, self.nets),
            self.optimizer,
            list(self.nets.parameters()),
            cfg.ppo,
            self.generator,
        )
        self.updates += 1
        self.iteration += 1
        logs.update(
            {
                "train/return": float(np.mean([ep.ret for _, ep in collected])),
                "train/success": float(np.mean([ep.success for _, ep in collected])),
                "time/update_ms": 1000 * (time.perf_counter() - t0),
                "counters/env_steps": float(self.env_steps),
                "counters/updates": float(self.updates),
            }
        )
        return logs

    def evaluate(self, seed_offset: int = 1) -> FewShotReport:
        """`eval.eval_episodes` deterministic episodes (noise 0) per train task, each told
        its one-hot id (training/evaluate.py `conditioned_eval`)."""

        def policy(obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                mean, _ = self.nets.policy(
                    torch.as_tensor(obs, dtype=torch.float32)[None],
                    torch.as_tensor(descriptor)[None],
                )
            return np.tanh(mean[0].numpy())

        return conditioned_eval(
            self.source,
            policy,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol={"algorithm": self.ALGORITHM},
        )

    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train to the config's end (training/common/loop.py): TensorBoard, a progress
        bar, periodic evaluation on the train tasks, checkpoints."""
        return train_loop(self, "MT-PPO", "train/success", progress)
