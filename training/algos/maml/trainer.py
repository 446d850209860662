"""MAML meta-training (Finn et al. 2017) with ProMP's outer loop (Rothfuss et al. 2019).

Before the first iteration, `initial_steps` steps per task of a meta-batch with the initial
policy fix the observation normaliser (then frozen, as every algorithm's). Per iteration,
`meta_batch` train tasks; per task, `maml.inner_steps` times: K = `maml.episodes_per_task`
episodes with the policy adapted so far (sampled: the policy gradient needs them) and one
inner step on them; then K post-update episodes with the adapted policy. The meta-update is
`maml.outer_steps` Adam steps on ProMP's clipped surrogate of the post-update batches,
the inner steps recomputed from their fixed batches at every step (losses.py).

Evaluation, the adaptation curve: per test task (at most `maml.eval_tasks`), K sampled
episodes with theta (return after 0 steps), an inner step on them, K episodes with the
adapted policy (after 1 step), ... up to `maml.eval_steps` steps; `adaptation.json` holds
the per-task and mean returns by step.

The run dir holds `config.yaml`, `checkpoint.pt` (networks, optimizer, RNG states,
counters, history), `history.json` and `adaptation.json`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from training.algos.maml.losses import MetaTask, TaskBatch, adapt, make_batch, meta_gradient
from training.algos.maml.networks import MAMLNets, Params, forward_with, make_nets
from training.common.rollout import Episode
from training.common.run_state import RunState
from training.common.tasks import open_run
from training.config import TrainConfig
from training.evaluate import FewShotReport
from zshot.jsonio import write_json

ALGORITHM = "maml"
CHECKPOINT_VERSION = 1


class GaussianActor:
    """A collection actor (`EpisodeActor`): samples of the policy with `params` (raw, the
    env clips them), noise from `rng`."""

    def __init__(self, nets: MAMLNets, params: Params, rng: np.random.Generator) -> None:
        self.nets, self.params, self.rng = nets, params, rng

    def begin_episode(self, rng: np.random.Generator) -> None:
        """Nothing: the policy has no per-episode state."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """mean + std * noise for `obs`."""
        noise = self.rng.standard_normal(self.nets.act_dim).astype(np.float32)
        with torch.no_grad():
            mean, log_std = forward_with(self.nets.policy, self.params, torch.as_tensor(obs)[None])
            a = mean[0] + log_std.exp() * torch.from_numpy(noise)
        return a.numpy()

    def end_episode(self, episode: Episode) -> None:
        """Nothing."""


def episode_arrays(ep: Episode) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs acted in (T, obs), actions (T, act), rewards (T,)) of an episode."""
    return ep.obs[:-1], ep.actions, ep.rewards


class MAMLTrainer(RunState):
    """Owns the env, the meta-policy, its optimizer and the RNGs of one MAML run."""

    ALGORITHM = ALGORITHM
    CHECKPOINT_VERSION = CHECKPOINT_VERSION

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        run = open_run(cfg, "MAML")
        self.rng, self.source, self.worker = run.rng, run.source, run.worker
        self.obs_dim, self.act_dim = run.obs_dim, run.act_dim
        self.nets: MAMLNets = make_nets(self.obs_dim, self.act_dim, cfg)
        self.optimizer = torch.optim.Adam(self.nets.policy.parameters(), lr=cfg.maml.outer_lr)
        self.start_counters()

    # ------------------------------------------------------------------ sampling
    def sample(self, task: Any, params: Params) -> list[Episode]:
        """K episodes of `task` with the policy `params`."""
        actor = GaussianActor(self.nets, params, self.rng)
        eps = self.worker.run(task, actor, self.rng, num_episodes=self.cfg.maml.episodes_per_task)
        self.env_steps += sum(ep.steps for ep in eps)
        return eps

    def batch(self, episodes: list[Episode], params: Params) -> TaskBatch:
        """The episodes (sampled with `params`) as a TaskBatch."""
        m = self.cfg.maml
        return make_batch(
            self.nets.policy,
            params,
            [episode_arrays(ep) for ep in episodes],
            gamma=m.gamma,
            reg=m.baseline_reg,
            normalize=m.normalize_advantages,
        )

    def step(self, params: Params, batch: TaskBatch) -> Params:
        """One inner step (no meta-gradient: sampling only)."""
        m = self.cfg.maml
        out = adapt(self.nets.policy, params, [batch], m.inner_lr, estimator=m.inner_estimator)
        return {k: v.detach() for k, v in out.items()}

    def _initial_stats(self) -> None:
        """The observation normaliser from `initial_steps` steps per task of one meta-batch."""
        theta = self.nets.policy.detached_params()
        n = len(self.source.train_tasks)
        obs: list[np.ndarray] = []
        for task in self.rng.choice(n, size=min(self.cfg.meta_batch, n), replace=False):
            actor = GaussianActor(self.nets, theta, self.rng)
            eps = self.worker.run(
                self.source.train_tasks[int(task)],
                actor,
                self.rng,
                num_steps=max(self.cfg.initial_steps, 1),
            )
            self.env_steps += sum(ep.steps for ep in eps)
            obs.extend(ep.obs for ep in eps)
        o = torch.from_numpy(np.concatenate(obs))
        self.nets.policy.normaliser.set_stats(o.mean(0), o.std(0))

    # ------------------------------------------------------------------ training
    def train_iteration(self) -> dict[str, float]:
        """One meta-update (sample the meta-batch, `outer_steps` ProMP steps); logs."""
        cfg, m = self.cfg, self.cfg.maml
        if self.iteration == 0 and self.updates == 0:
            self._initial_stats()
        n = len(self.source.train_tasks)
        theta = self.nets.policy.detached_params()
        tasks: list[MetaTask] = []
        pre_returns: list[float] = []
        for task_index in self.rng.choice(n, size=cfg.meta_batch, replace=cfg.meta_batch > n):
            task = self.source.train_tasks[int(task_index)]
            params, pre = theta, []
            for _ in range(m.inner_steps):
                b = self.batch(self.sample(task, params), params)
                pre.append(b)
                params = self.step(params, b)
            tasks.append(MetaTask(pre, self.batch(self.sample(task, params), params)))
            pre_returns.append(pre[0].mean_return)
        t0 = time.perf_counter()
        losses = []
        for _ in range(m.outer_steps):
            grads, loss = meta_gradient(
                self.nets.policy,
                self.nets.policy.params(),
                tasks,
                inner_lr=m.inner_lr,
                clip_eps=m.clip_eps,
                estimator=m.inner_estimator,
                first_order=m.first_order,
            )
            self.optimizer.zero_grad(set_to_none=True)
            for name, p in self.nets.policy.named_parameters():
                p.grad = grads[name].detach()
            self.optimizer.step()
            self.updates += 1
            losses.append(float(loss.detach()))
        self.iteration += 1
        return {
            "train/return_pre": float(np.mean(pre_returns)),
            "train/return_post": float(np.mean([t.post.mean_return for t in tasks])),
            "loss/outer_first": losses[0],
            "loss/outer_last": losses[-1],
            "policy/std": float(self.nets.policy.log_std.detach().exp().mean()),
            "time/update_ms": 1000 * (time.perf_counter() - t0) / m.outer_steps,
            "counters/env_steps": float(self.env_steps),
            "counters/updates": float(self.updates),
        }

    def adaptation_curve(self, steps: int | None = None, seed_offset: int = 1) -> dict[str, Any]:
        """Per test task (at most `maml.eval_tasks`): mean return of K sampled episodes
        after 0, 1, .., `steps` inner steps (default `maml.eval_steps`), each step on the
        previous K episodes. Its own random stream: evaluation never moves training's."""
        m = self.cfg.maml
        steps = m.eval_steps if steps is None else steps
        saved, self.rng = self.rng, np.random.default_rng([self.cfg.seed, 7919, seed_offset])
        counted = self.env_steps
        rows: list[dict[str, Any]] = []
        curves: list[list[float]] = []
        try:
            for task in self.source.test_tasks[: m.eval_tasks]:
                params = self.nets.policy.detached_params()
                returns = []
                for s in range(steps + 1):
                    eps = self.sample(task, params)
                    returns.append(float(np.mean([ep.ret for ep in eps])))
                    if s < steps:
                        params = self.step(params, self.batch(eps, params))
                rows.append({"task": self.source.task_label(task), "returns": returns})
                curves.append(returns)
        finally:
            self.rng, self.env_steps = saved, counted
        mean = np.mean(np.asarray(curves), axis=0)
        return {
            "steps": list(range(steps + 1)),
            "mean_return": [float(x) for x in mean],
            "episodes_per_step": m.episodes_per_task,
            "inner_lr": m.inner_lr,
            "tasks": rows,
            "iteration": self.iteration,
        }

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict[str, Any]:
        """The meta-optimizer."""
        return {"optimizer": self.optimizer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the meta-optimizer."""
        self.optimizer.load_state_dict(state["optimizer"])

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train until cfg.iterations (or `max_minutes`), with a progress bar, the adaptation
        curve every `eval_every` iterations and at the end, and checkpoints. Returns None
        (MAML's figure is the adaptation curve, `adaptation.json`, not a few-shot report)."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        bar = tqdm(total=cfg.iterations, initial=self.iteration, disable=not progress, desc="MAML")
        budget = cfg.max_minutes * 60.0 if cfg.max_minutes is not None else None
        start, before = time.perf_counter(), self.train_seconds
        curve: dict[str, Any] | None = None
        try:
            while self.iteration < cfg.iterations:
                logs = self.train_iteration()
                self.train_seconds = before + time.perf_counter() - start
                out_of_time = budget is not None and self.train_seconds >= budget
                last = self.iteration == cfg.iterations or out_of_time
                record: dict[str, Any] = {"iteration": self.iteration, **logs}
                if last or (cfg.eval_every and self.iteration % cfg.eval_every == 0):
                    curve = self.adaptation_curve(seed_offset=self.iteration)
                    record["eval/return_by_step"] = curve["mean_return"]
                self.history.append(record)
                bar.update(1)
                bar.set_postfix(
                    {
                        "pre": f"{logs['train/return_pre']:.1f}",
                        "post": f"{logs['train/return_post']:.1f}",
                    }
                )
                if last or self.iteration % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                    write_json(self.run_dir / "history.json", self.history, indent=1)
                if last:
                    break
        finally:
            bar.close()
        if curve is not None:
            write_json(self.run_dir / "adaptation.json", curve, indent=1)
            steps = ", ".join(
                f"{s}: {r:.1f}" for s, r in zip(curve["steps"], curve["mean_return"], strict=True)
            )
            print(f"MAML adaptation curve (mean return after n inner steps) {steps}")
        return None
