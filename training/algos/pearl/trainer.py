"""PEARL meta-training loop (Rakelly et al. 2019, Algorithm 1) with resumable run dirs.

Per iteration:
  1. for `tasks_per_iteration` random train tasks: clear the task's encoder buffer, collect
     `steps_prior` steps with z ~ N(0, I) and `steps_posterior` steps with z ~ q(z | c) (both
     into the RL and encoder buffers), then `steps_extra_posterior` steps with z ~ q(z | c)
     into the RL buffer only (oyster's num_extra_rl_steps_posterior);
  2. `updates_per_iteration` gradient steps, each on `meta_batch` tasks: RL batch from the RL
     buffer, context from the encoder buffer (random transitions, as oyster samples it).

Collection runs on `cfg.workers` rollout workers (training/algos/pearl/collection.py: one
unit per task per round, its own random stream `task_rng(seed, task, round)`, the current
policy's weights sent once per round), so the run does not depend on the worker count;
the task choice and the meta-batches draw from the run's own stream.

The run dir holds `config.yaml`, `checkpoint.pt` (networks, optimizers, both replay buffers,
every RNG state, counters, history; written atomically), TensorBoard logs under `tb/`,
periodic few-shot evaluations in `history.json` and PNG learning curves at the end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from training.algos.pearl.agent import TorchAgent
from training.algos.pearl.collection import (
    PearlCollector,
    Unit,
    collection_weights,
    initial_phases,
    refresh_phases,
    store,
)
from training.algos.pearl.losses import PearlOptimizers, pearl_update
from training.algos.pearl.networks import PearlNets, make_nets
from training.common.batches import MetaBatch, assemble_batch
from training.common.parallel import WorkerPool
from training.common.replay import MultiTaskReplayBuffer
from training.common.run_state import RunState
from training.common.tasks import (
    observation_index,
    open_run,
)
from training.config import TrainConfig
from training.evaluate import FewShotReport, few_shot_eval
from zshot.jsonio import write_json

ALGORITHM = "pearl"
CHECKPOINT_VERSION = 1
"""Bump when the checkpoint's keys change in a way an older reader would misread."""


class Trainer(RunState):
    """Owns the env, networks, optimizers, buffers and RNGs of one run."""

    ALGORITHM = ALGORITHM
    CHECKPOINT_VERSION = CHECKPOINT_VERSION

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        run = open_run(cfg, "PEARL here")
        self.rng, self.source, self.worker = run.rng, run.source, run.worker
        self.env = run.env
        self.obs_dim, self.act_dim, self.control_hz = run.obs_dim, run.act_dim, run.control_hz
        self.max_steps = cfg.max_episode_steps
        self.nets: PearlNets = make_nets(self.obs_dim, self.act_dim, cfg, observation_index(cfg))
        self.optimizers = PearlOptimizers.create(self.nets, cfg)
        n = len(self.source.train_tasks)
        self.rl_buffer = MultiTaskReplayBuffer(n, cfg.buffer_capacity, self.obs_dim, self.act_dim)
        self.enc_buffer = MultiTaskReplayBuffer(n, cfg.buffer_capacity, self.obs_dim, self.act_dim)
        self.start_counters()
        self._writer: Any = None
        self._pool: WorkerPool | None = None

    # ------------------------------------------------------------------ data collection
    def collection_pool(self) -> WorkerPool:
        """The rollout workers (training.algos.pearl.collection), started on first use and
        kept for the run: `cfg.workers` Ray actors, or a collector in this process that
        shares the trainer's networks."""
        if self._pool is None:
            args = (self.cfg, self.obs_dim, self.act_dim)
            local = PearlCollector(*args, nets=self.nets) if self.cfg.workers == 1 else None
            self._pool = WorkerPool(
                PearlCollector,
                args,
                workers=self.cfg.workers,  # a Ray running already, $RAY_ADDRESS or a local one
                local=local,
                in_flight=2,
            )
        return self._pool

    def collect(self, units: list[Unit]) -> dict[str, list[float]]:
        """Play `units` on the rollout workers with the current policy (its weights
        `ray.put` once for them all) and store their transitions in unit order: every
        phase into the RL buffer, the prior/posterior phases into the (cleared) encoder
        buffer. Returns each phase's mean return, successes and episodes."""
        pool = self.collection_pool()
        weights = pool.put(collection_weights(self.nets)) if pool.remote else None
        stats: dict[str, list[float]] = {"return": [], "successes": [], "episodes": []}
        for k, phases in pool.map("collect", units, weights):
            task = units[k].task
            self.enc_buffer.clear(task)  # the context reflects the current policy only
            for data in phases:
                store(self.rl_buffer, task, data)
                if data.to_enc:
                    store(self.enc_buffer, task, data)
                self.env_steps += data.steps
                stats["return"].append(float(np.mean(data.returns)))
                stats["successes"].append(data.successes)
                stats["episodes"].append(len(data.returns))
        return stats

    def _initial_collection(self) -> None:
        """initial_steps per train task with z from the prior; then freeze obs statistics."""
        phases = initial_phases(self.cfg)
        self.collect([Unit(task, 1, phases) for task in range(len(self.source.train_tasks))])
        n = self.rl_buffer.sizes
        obs = np.concatenate([self.rl_buffer.obs[i, : n[i]] for i in range(len(n))])
        self.nets.set_obs_stats(torch.from_numpy(obs.mean(0)), torch.from_numpy(obs.std(0)))

    def close(self) -> None:
        """Stop the rollout workers (a later collection starts them again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ training
    def sample_batch(self) -> MetaBatch:
        """A meta-batch: tasks without replacement when there are enough of them; RL
        transitions from the RL buffer, context from the encoder buffer."""
        cfg = self.cfg
        n = len(self.source.train_tasks)
        tasks = self.rng.choice(n, size=cfg.meta_batch, replace=cfg.meta_batch > n)
        return assemble_batch(
            self.rl_buffer,
            self.enc_buffer.sample_context,
            tasks,
            cfg.batch_size,
            cfg.context_size,
            self.rng,
        )

    def train_iteration(self) -> dict[str, float]:
        """One PEARL iteration (collect, then update); returns logged scalars."""
        cfg = self.cfg
        if self.iteration == 0 and self.updates == 0:
            self._initial_collection()
        n = len(self.source.train_tasks)
        t0 = time.perf_counter()
        tasks = self.rng.choice(n, size=min(cfg.tasks_per_iteration, n), replace=False)
        phases = refresh_phases(cfg)
        stats = self.collect([Unit(int(t), self.iteration + 2, phases) for t in tasks])
        t_collect = time.perf_counter() - t0
        t0 = time.perf_counter()
        logs: dict[str, float] = {}
        for _ in range(cfg.updates_per_iteration):
            logs = pearl_update(self.sample_batch(), self.nets, self.optimizers, cfg)
            self.updates += 1
        t_update = time.perf_counter() - t0
        self.iteration += 1
        episodes = sum(stats["episodes"])
        logs.update(
            {
                "train/return": float(np.mean(stats["return"])) if stats["return"] else 0.0,
                "train/success": sum(stats["successes"]) / episodes if episodes else 0.0,
                "time/collect_s": t_collect,
                "time/update_ms": 1000 * t_update / cfg.updates_per_iteration,
                "counters/env_steps": float(self.env_steps),
                "counters/updates": float(self.updates),
            }
        )
        return logs

    def evaluate(self, seed_offset: int = 1) -> FewShotReport:
        """Few-shot evaluation on the test tasks with the current networks."""
        agent = TorchAgent(self.nets, self.cfg.use_latent, self.cfg.encoder.prior_in_posterior)
        return few_shot_eval(
            self.source,
            agent,
            self.cfg.eval,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.max_steps,
        )

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict[str, Any]:
        """The optimizers and both replay buffers (RL and encoder)."""
        return {
            "optimizers": self.optimizers.state_dict(),
            "rl_buffer": self.rl_buffer.state_dict(),
            "enc_buffer": self.enc_buffer.state_dict(),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the optimizers and both replay buffers."""
        self.optimizers.load_state_dict(state["optimizers"])
        self.rl_buffer.load_state_dict(state["rl_buffer"])
        self.enc_buffer.load_state_dict(state["enc_buffer"])

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train until cfg.iterations, with TensorBoard, progress bar, periodic eval, plots."""
        # lazy: TensorBoard's writer pulls in tensorboard (slow to import) for training only
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.iteration)
        bar = tqdm(
            total=cfg.iterations,
            initial=self.iteration,
            disable=not progress,
            desc="PEARL",
            unit="it",
        )
        has_success = self.source.has_success
        eval_key = "eval_success" if has_success else "eval_return"
        last_eval = next((h[eval_key] for h in reversed(self.history) if eval_key in h), None)
        report = None
        budget = cfg.max_minutes * 60.0 if cfg.max_minutes is not None else None
        session_start, before = time.perf_counter(), self.train_seconds
        try:
            while self.iteration < cfg.iterations:
                logs = self.train_iteration()
                # wall clock of this session so far (collection, updates, evaluations and
                # checkpoints alike) plus that of the sessions before a resume
                self.train_seconds = before + time.perf_counter() - session_start
                logs["time/train_min"] = self.train_seconds / 60.0
                record: dict[str, Any] = {"iteration": self.iteration, **logs}
                out_of_time = budget is not None and self.train_seconds >= budget
                last = self.iteration == cfg.iterations or out_of_time
                if out_of_time and self.iteration < cfg.iterations:
                    bar.write(
                        f"time budget of {cfg.max_minutes:g} min reached after iteration "
                        f"{self.iteration} of {cfg.iterations}: final evaluation and checkpoint"
                    )
                if last or (cfg.eval_every and self.iteration % cfg.eval_every == 0):
                    report = self.evaluate(seed_offset=self.iteration)
                    record["eval_success"] = report.success_rate
                    record["eval_return"] = float(np.mean([p.mean_return for p in report.tasks]))
                    last_eval = record[eval_key]
                    writer.add_scalar("eval/success", report.success_rate, self.iteration)
                    writer.add_scalar("eval/return", record["eval_return"], self.iteration)
                for k, v in logs.items():
                    writer.add_scalar(k, v, self.iteration)
                self.history.append(record)
                bar.update(1)
                bar.set_postfix(progress_postfix(logs, last_eval, has_success))
                if last or self.iteration % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                    write_json(self.run_dir / "history.json", self.history, indent=1)
                if last:
                    break
        finally:
            bar.close()
            writer.close()
            self.close()
        if report is not None:
            report.write_json(self.run_dir / "eval.json")
        plot_curves(self.history, self.run_dir / "curves.png", has_success=has_success)
        return report


def progress_postfix(
    logs: dict[str, float], last_eval: float | None, has_success: bool
) -> dict[str, str]:
    """The progress bar's figures: success rates (train collection, last few-shot eval) for
    envs with a success notion, mean episode returns for the others (locomotion)."""
    if has_success:
        postfix = {"train_succ": f"{logs['train/success']:.2f}"}
        if last_eval is not None:
            postfix["eval_succ"] = f"{last_eval:.2f}"
        return postfix
    postfix = {"train_ret": f"{logs['train/return']:.1f}"}
    if last_eval is not None:
        postfix["eval_ret"] = f"{last_eval:.1f}"
    return postfix


def plot_curves(
    history: list[dict[str, Any]], path: str | Path, *, has_success: bool = True
) -> None:
    """PNG learning curves (see `curves_figure`); nothing without history."""
    if not history:
        return
    import matplotlib.pyplot as plt  # lazy: plotting only at the end of a run

    fig = curves_figure(history, has_success=has_success)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def curves_figure(history: list[dict[str, Any]], *, has_success: bool = True) -> Any:
    """Learning curves per iteration: train/eval success rate (few-shot eval return for
    envs without a success notion, `TaskSource.has_success`), train return, losses, KL."""
    import matplotlib  # lazy: plotting only at the end of a run

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [h["iteration"] for h in history]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    if has_success:
        ax.plot(it, [h.get("train/success", np.nan) for h in history], label="train (collection)")
        ev = [(h["iteration"], h["eval_success"]) for h in history if "eval_success" in h]
        if ev:
            ax.plot(*zip(*ev, strict=True), "o-", label="few-shot eval (test tasks)")
        ax.set(title="success rate", xlabel="iteration", ylim=(-0.02, 1.02))
        ax.legend()
    else:
        ev = [(h["iteration"], h["eval_return"]) for h in history if "eval_return" in h]
        if ev:
            ax.plot(*zip(*ev, strict=True), "o-", label="few-shot eval (test tasks)")
            ax.legend()
        ax.set(title="few-shot eval return", xlabel="iteration", ylabel="mean episode return")
    axes[0, 1].plot(it, [h.get("train/return", np.nan) for h in history])
    axes[0, 1].set(title="train episode return", xlabel="iteration")
    axes[1, 0].plot(it, [h.get("loss/qf", np.nan) for h in history], label="qf")
    axes[1, 0].plot(it, [h.get("loss/policy", np.nan) for h in history], label="policy")
    axes[1, 0].set(title="losses", xlabel="iteration", yscale="symlog")
    axes[1, 0].legend()
    axes[1, 1].plot(it, [h.get("loss/kl_div", np.nan) for h in history])
    axes[1, 1].set(title="KL(q(z|c) || N(0,I)), summed over tasks", xlabel="iteration")
    fig.tight_layout()
    return fig
