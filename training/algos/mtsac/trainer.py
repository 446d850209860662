"""MT-SAC training over the train tasks, each told by its one-hot id (Yu et al. 2019).

Before the first update, `initial_steps` per train task with the untrained (stochastic)
policy; then per iteration `tasks_per_iteration` random train tasks collect
`steps_prior + steps_posterior + steps_extra_posterior` steps each (MT-SAC has no
posterior: the three are one budget of on-task steps), then `updates_per_iteration`
gradient steps on `meta_batch` tasks x `batch_size` transitions, with PCGrad
(training/common/pcgrad.py) on the per-task losses when the config says `pcgrad: true`.
Evaluation: `eval.eval_episodes` deterministic episodes per train task (MT-SAC is told the
task, so there is no exploration and no held-out task).

The run dir holds `config.yaml`, `checkpoint.pt` (networks, optimizers, buffer, RNG
states, the PCGrad generator, counters, history), TensorBoard logs under `tb/`,
`history.json` and `eval.json`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from training.algos.mtsac.losses import MTSACOptimizers, mtsac_update, sample_batch
from training.algos.mtsac.networks import MTSACNets, make_nets
from training.common.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    restore_rng,
    rng_state,
    run_state,
    save_checkpoint,
)
from training.common.pcgrad import PCGrad
from training.common.replay import MultiTaskReplayBuffer
from training.common.rollout import Episode
from training.common.tasks import open_run, same_tasks
from training.config import TrainConfig
from training.evaluate import FewShotReport, conditioned_eval
from zshot.jsonio import write_json

ALGORITHM = "mtsac"
CHECKPOINT_VERSION = 1


class DescriptorActor:
    """A collection actor (`EpisodeActor`): the policy's sampled actions for one task's
    descriptor."""

    def __init__(self, trainer: MTSACTrainer, task: int) -> None:
        self.trainer = trainer
        self.d = trainer.nets.one_hot(torch.tensor([task]))

    def begin_episode(self, rng: np.random.Generator) -> None:
        """Nothing: the descriptor is the task's."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """A sampled action of the current policy."""
        t = self.trainer
        with torch.no_grad():
            eps = torch.from_numpy(t.rng.standard_normal(t.act_dim).astype(np.float32))
            a, _ = t.nets.policy.sample(torch.as_tensor(obs)[None], self.d, eps[None])
        return a[0].numpy()

    def end_episode(self, episode: Episode) -> None:
        """Nothing: the trainer stores the episode."""


class MTSACTrainer:
    """Owns the env, networks, optimizers, buffer and RNGs of one MT-SAC run."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        run = open_run(cfg, "MT-SAC")
        self.rng, self.source, self.worker = run.rng, run.source, run.worker
        self.env = run.env
        self.obs_dim, self.act_dim, self.control_hz = run.obs_dim, run.act_dim, run.control_hz
        n = len(self.source.train_tasks)
        if n != cfg.num_train_tasks:
            raise ValueError(
                f"mtsac: num_train_tasks is {cfg.num_train_tasks} but the env family has {n} "
                "train tasks; the one-hot id needs num_train_tasks <= the family's size"
            )
        self.nets: MTSACNets = make_nets(self.obs_dim, self.act_dim, cfg)
        self.optimizers = MTSACOptimizers.create(self.nets, cfg)
        self.pcgrad = PCGrad(seed=cfg.seed) if cfg.pcgrad else None
        self.buffer = MultiTaskReplayBuffer(n, cfg.buffer_capacity, self.obs_dim, self.act_dim)
        self.iteration = 0
        self.env_steps = 0
        self.updates = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, Any]] = []

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
            DescriptorActor(self, task),
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
            logs = mtsac_update(batch, self.nets, self.optimizers, cfg, self.pcgrad)
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

    def evaluate(self, seed_offset: int = 1) -> FewShotReport:
        """`eval.eval_episodes` deterministic episodes (noise 0) per train task, each told
        its one-hot id (training/evaluate.py `conditioned_eval`)."""
        zero = torch.zeros(1, self.act_dim)

        def policy(obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                d = torch.as_tensor(descriptor)[None]
                a, _ = self.nets.policy.sample(torch.as_tensor(obs)[None], d, zero)
            return a[0].numpy()

        return conditioned_eval(
            self.source,
            policy,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol={"algorithm": ALGORITHM},
        )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit."""
        state = run_state(
            self.cfg,
            self.nets,
            self.obs_dim,
            self.act_dim,
            iteration=self.iteration,
            env_steps=self.env_steps,
            updates=self.updates,
        )
        rng = rng_state(self.rng)
        if self.pcgrad is not None:
            rng["pcgrad"] = self.pcgrad.generator.get_state()
        return {
            **state,
            "train_seconds": self.train_seconds,
            "optimizers": self.optimizers.state_dict(),
            "rl_buffer": self.buffer.state_dict(),
            "rng": rng,
            "history": json.dumps(self.history),
            "train_tasks": json.dumps([t.model_dump(mode="json") for t in self.source.train_tasks]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the train tasks must be the same ones."""
        if not same_tasks(json.loads(state["train_tasks"]), self.source.train_tasks):
            raise ValueError(
                "checkpoint was trained on other train tasks (seed or task config changed)"
            )
        self.nets.load_state_dict(state["nets"])
        self.optimizers.load_state_dict(state["optimizers"])
        self.buffer.load_state_dict(state["rl_buffer"])
        restore_rng(self.rng, state["rng"])
        if self.pcgrad is not None and "pcgrad" in state["rng"]:
            self.pcgrad.generator.set_state(state["rng"]["pcgrad"])
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.history = json.loads(state["history"])

    def save_checkpoint(self) -> Path:
        """Write checkpoint.pt atomically."""
        return save_checkpoint(
            self.run_dir / CHECKPOINT,
            self.state_dict(),
            algorithm=ALGORITHM,
            version=CHECKPOINT_VERSION,
        )

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Restore the run from `path` (default: the run dir's checkpoint)."""
        self.load_state_dict(load_checkpoint(path or self.run_dir / CHECKPOINT))

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train until cfg.iterations (or `max_minutes`), with TensorBoard, a progress bar,
        periodic evaluation on the train tasks and checkpoints."""
        # lazy: TensorBoard's writer pulls in tensorboard (slow to import) for training only
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.iteration)
        bar = tqdm(
            total=cfg.iterations, initial=self.iteration, disable=not progress, desc="MT-SAC"
        )
        report = None
        budget = cfg.max_minutes * 60.0 if cfg.max_minutes is not None else None
        start, before = time.perf_counter(), self.train_seconds
        try:
            while self.iteration < cfg.iterations:
                logs = self.train_iteration()
                self.train_seconds = before + time.perf_counter() - start
                out_of_time = budget is not None and self.train_seconds >= budget
                last = self.iteration == cfg.iterations or out_of_time
                record: dict[str, Any] = {"iteration": self.iteration, **logs}
                if last or (cfg.eval_every and self.iteration % cfg.eval_every == 0):
                    report = self.evaluate(seed_offset=self.iteration)
                    record["eval_success"] = report.success_rate
                    writer.add_scalar("eval/success", report.success_rate, self.iteration)
                for k, v in logs.items():
                    writer.add_scalar(k, v, self.iteration)
                self.history.append(record)
                bar.update(1)
                bar.set_postfix({"train_succ": f"{logs['train/success']:.2f}"})
                if last or self.iteration % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                    write_json(self.run_dir / "history.json", self.history, indent=1)
                if last:
                    break
        finally:
            bar.close()
            writer.close()
        if report is not None:
            report.write_json(self.run_dir / "eval.json")
        return report
