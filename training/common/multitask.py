"""The loop every off-policy multi-task trainer shares (MT-SAC, Distral): train tasks with
known indices, one replay buffer per task, a policy told its task.

Before the first update, `initial_steps` per train task with the untrained (stochastic)
policy, then the observation statistics are frozen; then per iteration
`tasks_per_iteration` random train tasks collect `steps_prior + steps_posterior +
steps_extra_posterior` steps each (no posterior here: the three are one budget of on-task
steps), then `updates_per_iteration` gradient steps on `meta_batch` tasks x `batch_size`
transitions (`MTBatch`), with PCGrad (training/common/pcgrad.py) on the per-task losses
when the config says `pcgrad: true`. Periodic evaluation, TensorBoard under `tb/`, a
progress bar, `history.json`, `eval.json` (training/common/loop.py `train_loop`) and
`checkpoint.pt` (networks, optimizers, buffer, RNG states, the PCGrad generator, counters,
history: a `RunState`, training/common/run_state.py) as PEARL's trainer writes them.

An algorithm subclasses `MultiTaskTrainer` and provides `build` (its networks, which
need `set_obs_stats`, and optimizers with `state_dict` / `load_state_dict`), `actor` (the
collection policy of one task), `update` (one gradient step on an `MTBatch`) and
`evaluate`; `finish` runs after the final evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor

from training.common.loop import Report, train_loop
from training.common.pcgrad import PCGrad
from training.common.replay import MultiTaskReplayBuffer
from training.common.rollout import Episode, EpisodeActor
from training.common.run_state import RunState
from training.common.tasks import open_run
from training.config import TrainConfig

R = TypeVar("R", bound=Report)


class MTBatch(NamedTuple):
    """T tasks x B transitions, and which train task each row of tasks is."""

    obs: Tensor  # (T, B, obs)
    actions: Tensor  # (T, B, act)
    rewards: Tensor  # (T, B, 1)
    next_obs: Tensor  # (T, B, obs)
    dones: Tensor  # (T, B, 1), 1.0 only for true terminals (time-outs bootstrap)
    tasks: Tensor  # (T,) int64: train-task indices (the one-hot ids)


def sample_batch(
    buffer: MultiTaskReplayBuffer, tasks: np.ndarray, batch_size: int, rng: np.random.Generator
) -> MTBatch:
    """`batch_size` transitions of each task of `tasks` from `buffer`."""
    obs, act, rew, nxt, done = buffer.sample(tasks, batch_size, rng)
    t = torch.from_numpy
    return MTBatch(t(obs), t(act), t(rew), t(nxt), t(done), t(np.asarray(tasks, np.int64)))


class MultiTaskTrainer(RunState, Generic[R]):
    """Owns the env, networks, optimizers, buffer and RNGs of one multi-task run."""

    ALGORITHM = ""
    """The checkpoint's algorithm tag (training/registry.py's name)."""
    CHECKPOINT_VERSION = 1
    LABEL = ""
    """How progress bars and errors name the algorithm."""
    nets: Any
    optimizers: Any

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        run = open_run(cfg, self.LABEL)
        self.rng, self.source, self.worker = run.rng, run.source, run.worker
        self.env = run.env
        self.obs_dim, self.act_dim, self.control_hz = run.obs_dim, run.act_dim, run.control_hz
        n = len(self.source.train_tasks)
        if n != cfg.num_train_tasks:
            raise ValueError(
                f"{self.ALGORITHM}: num_train_tasks is {cfg.num_train_tasks} but the env family has {n} "
                "train tasks; the one-hot id needs num_train_tasks <= the family's size"
            )
        self.build()
        self.pcgrad = PCGrad(seed=cfg.seed) if cfg.pcgrad else None
        self.buffer = MultiTaskReplayBuffer(n, cfg.buffer_capacity, self.obs_dim, self.act_dim)
        self.start_counters()

    # ------------------------------------------------------------------ the algorithm's
    def build(self) -> None:
        """Create `self.nets` and `self.optimizers` (the env's sizes and tasks are set)."""
        raise NotImplementedError

    def actor(self, task: int) -> EpisodeActor:
        """The collection policy of train task `task` (sampled actions)."""
        raise NotImplementedError

    def update(self, batch: MTBatch) -> dict[str, float]:
        """One gradient step on `batch`; the loss terms as floats for logging."""
        raise NotImplementedError

    def evaluate(self, seed_offset: int = 1) -> R:
        """The periodic and final evaluation."""
        raise NotImplementedError

    def finish(self, report: R) -> None:
        """After the final evaluation (eval.json is written): nothing by default."""

    # ------------------------------------------------------------------ collection
    def collect_steps(self, task: int, num_steps: int) -> dict[str, float]:
        """Whole episodes on train task `task` until >= num_steps steps, into the buffer."""

        def store(ep: Episode) -> None:
            for i in range(ep.steps):
                self.buffer.add(
                    task,
                    ep.obs[i],
                    ep.actions[i],
                    ep.rewards[i],
                    ep.obs[i + 1],
                    bool(ep.terminated[i]),
                )

        episodes = self.worker.run(
            self.source.train_tasks[task],
            self.actor(task),
            self.rng,
            num_steps=num_steps,
            on_episode=store,
        )
        self.env_steps += sum(ep.steps for ep in episodes)
        return {
            "return": float(np.mean([ep.ret for ep in episodes])),
            "successes": sum(ep.success for ep in episodes),
            "episodes": len(episodes),
        }

    def _initial_collection(self) -> None:
        """initial_steps per train task; then freeze the observation statistics."""
        for task in range(len(self.source.train_tasks)):
            self.collect_steps(task, max(self.cfg.initial_steps, 1))
        n = self.buffer.sizes
        obs = np.concatenate([self.buffer.obs[i, : n[i]] for i in range(len(n))])
        self.nets.set_obs_stats(torch.from_numpy(obs.mean(0)), torch.from_numpy(obs.std(0)))

    # ------------------------------------------------------------------ training
    def train_iteration(self) -> dict[str, float]:
        """One iteration (collect, then update); returns logged scalars."""
        cfg = self.cfg
        if self.iteration == 0 and self.updates == 0:
            self._initial_collection()
        n = len(self.source.train_tasks)
        steps = cfg.steps_prior + cfg.steps_posterior + cfg.steps_extra_posterior
        stats: dict[str, list[float]] = {"return": [], "successes": [], "episodes": []}
        for task in self.rng.choice(n, size=min(cfg.tasks_per_iteration, n), replace=False):
            s = self.collect_steps(int(task), steps)
            for k in stats:
                stats[k].append(s[k])
        t0 = time.perf_counter()
        logs: dict[str, float] = {}
        for _ in range(cfg.updates_per_iteration):
            tasks = self.rng.choice(n, size=cfg.meta_batch, replace=cfg.meta_batch > n)
            batch = sample_batch(self.buffer, tasks, cfg.batch_size, self.rng)
            logs = self.update(batch)
            self.updates += 1
        self.iteration += 1
        episodes = sum(stats["episodes"])
        logs.update(
            {
                "train/return": float(np.mean(stats["return"])),
                "train/success": sum(stats["successes"]) / episodes if episodes else 0.0,
                "time/update_ms": 1000 * (time.perf_counter() - t0) / cfg.updates_per_iteration,
                "counters/env_steps": float(self.env_steps),
                "counters/updates": float(self.updates),
            }
        )
        if self.pcgrad is not None:
            logs["pcgrad/conflicts"] = float(self.pcgrad.conflicts)
        return logs

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict[str, Any]:
        """The optimizers and the replay buffer."""
        return {"optimizers": self.optimizers.state_dict(), "rl_buffer": self.buffer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the optimizers and the replay buffer."""
        self.optimizers.load_state_dict(state["optimizers"])
        self.buffer.load_state_dict(state["rl_buffer"])

    def extra_rng_state(self) -> dict[str, Any]:
        """PCGrad's generator (when PCGrad is on)."""
        return {} if self.pcgrad is None else {"pcgrad": self.pcgrad.generator.get_state()}

    def restore_extra_rng(self, rng: dict[str, Any]) -> None:
        """Restore PCGrad's generator."""
        if self.pcgrad is not None and "pcgrad" in rng:
            self.pcgrad.generator.set_state(rng["pcgrad"])

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True) -> R | None:
        """Train until cfg.iterations (or `max_minutes`), with TensorBoard, a progress bar,
        periodic evaluation on the train tasks and checkpoints (training/common/loop.py
        `train_loop`); `finish` after the final evaluation."""
        report = train_loop(
            self, self.LABEL, "train/success", progress, label="train_succ", eval_return=False
        )
        if report is not None:
            self.finish(report)
        return report
