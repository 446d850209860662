"""The training loop HER and contrastive RL share (training/algos/her, training/algos/crl):
whole episodes on a goal env into an `EpisodeBuffer`, then gradient steps on batches the
algorithm samples from it (`update`), evaluation by the algorithm (`evaluate`).

Before the first update, `initial_steps` env steps (whole episodes) with the untrained
stochastic policy, after which the observation and goal normalisers are frozen; then per
iteration `steps_prior + steps_posterior + steps_extra_posterior` steps (one budget: no
posterior here), each episode on a random train task with the goal its env draws, and
`updates_per_iteration` updates. The run dir holds `config.yaml`, `checkpoint.pt`
(networks, optimizers, episodes, RNG states, counters, history), TensorBoard logs under
`tb/`, `history.json` and `eval.json`, as MT-SAC's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.common.goals import (
    EpisodeBuffer,
    FlatGoalEnv,
    GoalLayout,
    GoalPolicy,
    set_goal_stats,
)
from training.common.loop import train_loop
from training.common.rollout import Episode
from training.common.run_state import RunState
from training.common.tasks import goal_dim_of, open_run, same_tasks
from training.config import TrainConfig


def goal_layout(cfg: TrainConfig, flat_dim: int) -> GoalLayout:
    """The layout of `cfg`'s goal env with flat observations of `flat_dim` entries."""
    g = goal_dim_of(cfg.env)
    if flat_dim <= 2 * g:
        raise ValueError(f"env {cfg.env}: flat observation {flat_dim} too small for goal {g}")
    return GoalLayout(flat_dim - 2 * g, g)


class GoalActor:
    """A collection actor: the policy's sampled action for the episode's desired goal."""

    def __init__(self, trainer: GoalTrainer) -> None:
        self.trainer = trainer

    def begin_episode(self, rng: np.random.Generator) -> None:
        """Nothing: the env draws the goal."""

    def act(self, flat: np.ndarray) -> np.ndarray:
        """A sampled action of the current policy."""
        t = self.trainer
        obs, _, goal = t.layout.split(np.asarray(flat, np.float32))
        eps = torch.from_numpy(t.rng.standard_normal(t.act_dim).astype(np.float32))
        with torch.no_grad():
            a, _ = t.policy.sample(
                torch.from_numpy(obs)[None], torch.from_numpy(goal)[None], eps[None]
            )
        return a[0].numpy()

    def end_episode(self, episode: Episode) -> None:
        """Nothing: the trainer stores the episode."""


class GoalTrainer(RunState):
    """Owns the env, networks, optimizers, episode buffer and RNGs of one goal run.

    A subclass sets ALGORITHM, LABEL, CHECKPOINT_VERSION, `nets_of` (the algorithm's
    `make_nets(flat_dim, act_dim, cfg)`), `optimizers_of` (a class whose `create(nets, cfg)`
    has `state_dict` / `load_state_dict`), `evaluator` (training/evaluate.py `goal_eval`,
    which this layer may not import) and `update` (one gradient step; the logged scalars).
    Its networks have `policy` (a `GoalPolicy`) and `normalised_modules()` (every module
    with the frozen normalisers)."""

    ALGORITHM = ""
    LABEL = ""
    CHECKPOINT_VERSION = 1
    nets_of: Callable[[int, int, TrainConfig], nn.Module]
    optimizers_of: Any
    evaluator: Callable[..., Any]

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        run = open_run(cfg, self.LABEL)
        self.rng, self.source, self.worker = run.rng, run.source, run.worker
        env = run.env
        if not isinstance(env, FlatGoalEnv):
            raise ValueError(f"{self.LABEL}: env {cfg.env} is not a goal env")
        self.layout = goal_layout(cfg, run.obs_dim)
        if self.layout != env.layout:
            raise ValueError(f"{cfg.env}: goal layout {env.layout}, expected {self.layout}")
        self.epsilon = env.epsilon
        self.flat_dim, self.act_dim = run.obs_dim, run.act_dim
        horizon = cfg.max_episode_steps or env.horizon
        if horizon < 1:
            raise ValueError(f"{cfg.env}: episode limit unknown; set max_episode_steps")
        self.horizon = horizon
        self.buffer = EpisodeBuffer(
            max(1, cfg.buffer_capacity // horizon), horizon, self.layout, self.act_dim
        )
        self.nets: Any = type(self).nets_of(self.flat_dim, self.act_dim, cfg)
        self.optimizers: Any = type(self).optimizers_of.create(self.nets, cfg)
        self.start_counters()

    # ------------------------------------------------------------------ the algorithm's
    def update(self) -> dict[str, float]:
        """One gradient step on a batch from `self.buffer`; the logged scalars."""
        raise NotImplementedError

    def eval_protocol(self) -> dict[str, Any]:
        """What the evaluation report states about the run's algorithm."""
        return {"algorithm": self.ALGORITHM}

    def evaluate(self, seed_offset: int = 1) -> Any:
        """`eval.eval_episodes` deterministic episodes per train task, each told the goal
        its env draws (`evaluator`: training/evaluate.py `goal_eval`)."""
        return type(self).evaluator(
            self.source,
            self.deterministic_action,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol=self.eval_protocol(),
        )

    @property
    def policy(self) -> GoalPolicy:
        """pi(a | s, g)."""
        policy = self.nets.policy
        assert isinstance(policy, GoalPolicy)
        return policy

    def deterministic_action(self, obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """tanh(mean) for (observation, goal): what the exported artifact computes."""
        zero = torch.zeros(1, self.act_dim)
        with torch.no_grad():
            a, _ = self.policy.sample(
                torch.as_tensor(obs, dtype=torch.float32)[None],
                torch.as_tensor(goal, dtype=torch.float32)[None],
                zero,
            )
        return a[0].numpy()

    # ------------------------------------------------------------------ collection
    def collect(self, num_steps: int) -> dict[str, float]:
        """Whole episodes, each on a random train task, until >= num_steps steps."""
        eps: list[Episode] = []
        actor = GoalActor(self)
        n = len(self.source.train_tasks)
        while sum(e.steps for e in eps) < num_steps:
            task = self.source.train_tasks[int(self.rng.integers(n))]
            eps += self.worker.run(
                task, actor, self.rng, num_episodes=1, on_episode=self.buffer.add
            )
        self.env_steps += sum(e.steps for e in eps)
        return {
            "return": float(np.mean([e.ret for e in eps])),
            "successes": float(sum(bool(e.infos[-1].get("is_success")) for e in eps)),
            "episodes": float(len(eps)),
        }

    def _initial_collection(self) -> None:
        self.collect(max(self.cfg.initial_steps, 1))
        s = self.buffer.size
        flat = np.concatenate([self.buffer.obs[i, : self.buffer.lengths[i] + 1] for i in range(s)])
        set_goal_stats(self.nets.normalised_modules(), self.layout, flat)

    def train_iteration(self) -> dict[str, float]:
        """Collect, then `updates_per_iteration` updates; the logged scalars."""
        cfg = self.cfg
        if self.iteration == 0 and self.updates == 0:
            self._initial_collection()
        stats = self.collect(cfg.steps_prior + cfg.steps_posterior + cfg.steps_extra_posterior)
        t0 = time.perf_counter()
        logs: dict[str, float] = {}
        for _ in range(cfg.updates_per_iteration):
            logs = self.update()
            self.updates += 1
        self.iteration += 1
        logs.update(
            {
                "train/return": stats["return"],
                "train/success": stats["successes"] / stats["episodes"],
                "time/update_ms": 1000 * (time.perf_counter() - t0) / cfg.updates_per_iteration,
                "counters/env_steps": float(self.env_steps),
                "counters/updates": float(self.updates),
            }
        )
        return logs

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_dims(self) -> tuple[int, int]:
        """(flat observation, action) sizes."""
        return self.flat_dim, self.act_dim

    def train_tasks_state(self) -> list[Any]:
        """The train tasks as JSON values (None for a family without task models)."""
        return [
            t.model_dump(mode="json") if t is not None else None for t in self.source.train_tasks
        ]

    def same_train_tasks(self, stored: list[Any]) -> bool:
        """Whether a checkpoint's `train_tasks` are this run's."""
        tasks = self.source.train_tasks
        return stored == [None] * len(tasks) if tasks[0] is None else same_tasks(stored, tasks)

    def extra_state(self) -> dict[str, Any]:
        """The optimizers and the episode buffer."""
        return {"optimizers": self.optimizers.state_dict(), "episodes": self.buffer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the optimizers and the episode buffer."""
        self.optimizers.load_state_dict(state["optimizers"])
        self.buffer.load_state_dict(state["episodes"])

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True) -> Any:
        """Train until cfg.iterations (or `max_minutes`), with TensorBoard, a progress bar,
        periodic evaluation and checkpoints (training/common/loop.py `train_loop`); the
        final evaluation report."""
        return train_loop(
            self, self.LABEL, "train/success", progress, label="train_succ", eval_return=False
        )
