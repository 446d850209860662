"""`RunState`: the counters and checkpoint save / load / resume every trainer shares.

A trainer's checkpoint (training/common/checkpoint.py) is always `run_state`'s keys
(config, counters, networks, dims), then `train_seconds`, then the trainer's own parts
(`extra_state`: optimizers, buffers), then `rng` (`rng_state` of the run's numpy
generator, torch's and Python's, plus `extra_rng_state`: e.g. PPO's minibatch
generator), `history` (JSON) and `train_tasks` (JSON; a resume refuses other tasks).
`RunState` writes and reads exactly those keys, so checkpoints of the trainers that
wrote them by hand before load unchanged and resumed runs continue bit for bit.

A subclass sets `ALGORITHM` and `CHECKPOINT_VERSION`, has `cfg`, `run_dir`, `nets`,
`rng`, `source`, `obs_dim`, `act_dim`, calls `start_counters` and overrides the hooks
it needs (`extra_state` / `load_extra_state`, `extra_rng_state` / `restore_extra_rng`,
`checkpoint_dims`, `train_tasks_state` / `same_train_tasks`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from training.common.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    restore_rng,
    rng_state,
    run_state,
    save_checkpoint,
)
from training.common.tasks import same_tasks
from training.config import TrainConfig


class RunState:
    """Counters and checkpoints of one run (module docstring)."""

    ALGORITHM: str
    """The checkpoint's algorithm tag (training/registry.py's name)."""
    CHECKPOINT_VERSION: int
    cfg: TrainConfig
    run_dir: Path
    nets: nn.Module
    rng: np.random.Generator
    source: Any
    obs_dim: int
    act_dim: int

    def start_counters(self) -> None:
        """Iteration, env steps, updates and training time at 0, an empty history."""
        self.iteration = 0
        self.env_steps = 0
        self.updates = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the hooks
    def extra_state(self) -> dict[str, Any]:
        """The trainer's own checkpoint entries (optimizers, buffers), in key order."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` saved (`state` is the whole checkpoint)."""

    def extra_rng_state(self) -> dict[str, Any]:
        """Random streams beyond `rng_state`'s, saved under `rng` too."""
        return {}

    def restore_extra_rng(self, rng: dict[str, Any]) -> None:
        """Restore what `extra_rng_state` saved (`rng` is the checkpoint's `rng`)."""

    def checkpoint_dims(self) -> tuple[int, int]:
        """The (obs, act) sizes the checkpoint's `dims` records."""
        return self.obs_dim, self.act_dim

    def train_tasks_state(self) -> list[Any]:
        """The train tasks as JSON values (what a resume compares)."""
        return [t.model_dump(mode="json") for t in self.source.train_tasks]

    def same_train_tasks(self, stored: list[Any]) -> bool:
        """Whether a checkpoint's `train_tasks` are this run's."""
        return same_tasks(stored, self.source.train_tasks)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit."""
        obs_dim, act_dim = self.checkpoint_dims()
        state = run_state(
            self.cfg,
            self.nets,
            obs_dim,
            act_dim,
            iteration=self.iteration,
            env_steps=self.env_steps,
            updates=self.updates,
        )
        rng = {**rng_state(self.rng), **self.extra_rng_state()}
        return {
            **state,
            "train_seconds": self.train_seconds,
            **self.extra_state(),
            "rng": rng,
            "history": json.dumps(self.history),
            "train_tasks": json.dumps(self.train_tasks_state()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the train tasks must be the same ones."""
        if not self.same_train_tasks(json.loads(state["train_tasks"])):
            raise ValueError(
                "checkpoint was trained on other train tasks (seed or task config changed)"
            )
        self.nets.load_state_dict(state["nets"])
        self.load_extra_state(state)
        restore_rng(self.rng, state["rng"])
        self.restore_extra_rng(state["rng"])
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.history = json.loads(state["history"])

    def save_checkpoint(self) -> Path:
        """Write checkpoint.pt atomically (temp file + fsync + rename)."""
        return save_checkpoint(
            self.run_dir / CHECKPOINT,
            self.state_dict(),
            algorithm=self.ALGORITHM,
            version=self.CHECKPOINT_VERSION,
        )

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Restore the run from `path` (default: the run dir's checkpoint)."""
        self.load_state_dict(load_checkpoint(path or self.run_dir / CHECKPOINT))
