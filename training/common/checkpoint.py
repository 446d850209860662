"""The one checkpoint format of every algorithm: `checkpoint.pt` in a run dir.

A checkpoint is a `torch.save`d dict of tensors and plain types (read back with
`weights_only=True`), written atomically (temp file + fsync + rename, zshot/atomic.py) and
tagged with the algorithm that wrote it (`algorithm`, a `training.registry` name) and that
algorithm's checkpoint version (`algorithm_version`). Every checkpoint holds `run_state`'s
keys (config, counters, networks, dims); trainers add what resuming needs (optimizers,
buffers, RNG states, history).

Reading a run back (checkpoint -> config -> the algorithm's networks -> weights) is
`training.registry.load_run`, the one place that knows which algorithm builds which nets.
Checkpoints from before the tag: `checkpoint_algorithm` derives the name from the config.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig
from zshot.atomic import atomic_write

CHECKPOINT = "checkpoint.pt"
"""The checkpoint's file name in a run dir."""

ALIASES = {"offline_awac": "offline_pearl"}
"""Tags written before #18 -> registry names (offline AWAC is offline PEARL without latent)."""


def run_state(
    cfg: TrainConfig,
    nets: nn.Module,
    obs_dim: int,
    act_dim: int,
    *,
    iteration: int,
    env_steps: int,
    updates: int,
) -> dict[str, Any]:
    """The keys every checkpoint holds (what export, evaluation and fine-tuning read)."""
    return {
        "config": cfg.model_dump(mode="json"),
        "iteration": iteration,
        "env_steps": env_steps,
        "updates": updates,
        "nets": nets.state_dict(),
        "dims": {"obs": obs_dim, "act": act_dim},
    }


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A trainer's random streams as checkpoint values: its numpy generator, torch's global
    generator and Python's `random` (JSON strings and a tensor: `weights_only` loadable)."""
    return {
        "numpy": json.dumps(rng.bit_generator.state),
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
    }


def restore_rng(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Put back what `rng_state` saved, so a resumed run continues bit-for-bit."""
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    path: str | Path, state: dict[str, Any], *, algorithm: str, version: int
) -> Path:
    """Write `state` tagged with `algorithm` and its checkpoint `version`, atomically (a
    crash leaves the previous checkpoint or this one), readable by the owner only."""
    body = {**state, "algorithm": algorithm, "algorithm_version": version}
    return atomic_write(path, lambda f: torch.save(body, f), mode=0o600)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain types only: safe `weights_only` loading)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no checkpoint (is this a run dir of `zshot train`?)")
    return torch.load(p, map_location="cpu", weights_only=True)


def checkpoint_algorithm(state: dict[str, Any], cfg: TrainConfig) -> str:
    """The registry name of the algorithm that wrote `state`: its tag, else (checkpoints
    from before the tag) the config's algorithm."""
    tag = state.get("algorithm")
    if isinstance(tag, str) and tag:
        return ALIASES.get(tag, tag)
    return cfg.algorithm


class RoundsCheckpoint:
    """The checkpoints of a trainer that runs rounds and never resumes (the distillation
    trainers: their aggregated data is not checkpointed). The trainer names its
    `ALGORITHM` and keeps the attributes annotated here."""

    ALGORITHM = ""
    cfg: TrainConfig
    nets: nn.Module
    obs_dim: int
    act_dim: int
    round: int
    env_steps: int
    updates: int
    train_seconds: float
    history: list[dict[str, Any]]
    source: Any
    run_dir: Path

    @property
    def iteration(self) -> int:
        """Rounds done."""
        return self.round

    def state_dict(self) -> dict[str, Any]:
        """The keys every checkpoint holds (`run_state`), the history and the train tasks."""
        return {
            **run_state(
                self.cfg,
                self.nets,
                self.obs_dim,
                self.act_dim,
                iteration=self.round,
                env_steps=self.env_steps,
                updates=self.updates,
            ),
            "train_seconds": self.train_seconds,
            "history": json.dumps(self.history),
            "train_tasks": json.dumps([t.model_dump(mode="json") for t in self.source.train_tasks]),
        }

    def save_checkpoint(self) -> Path:
        """Write checkpoint.pt (atomic, tagged `ALGORITHM`, version 1)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(
            self.run_dir / CHECKPOINT, self.state_dict(), algorithm=self.ALGORITHM, version=1
        )

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """These runs do not resume (the aggregated data is not checkpointed)."""
        raise ValueError("--resume: a distillation run does not resume; start a new run dir")
