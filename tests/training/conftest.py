"""Shared fixtures: one tiny trained run on the toy task, reused by export/eval tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "train" / "smoke.yaml"


def tiny_config(**over: object) -> TrainConfig:
    """A toy-task config small enough for a unit test (a second or two)."""
    base: dict[str, object] = {
        "env": "point",
        "iterations": 2,
        "initial_steps": 20,
        "tasks_per_iteration": 2,
        "steps_prior": 20,
        "steps_extra_posterior": 20,
        "updates_per_iteration": 10,
        "meta_batch": 3,
        "batch_size": 16,
        "context_size": 8,
        "buffer_capacity": 500,
        "num_train_tasks": 5,
        "sac": {"hidden": [32, 32]},
        "encoder": {"hidden": [32], "latent_dim": 3},
        "eval": {"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 2},
        "eval_every": 0,
        "checkpoint_every": 1,
    }
    base.update(over)
    return TrainConfig.model_validate(base)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir trained by the tiny config (checkpoint, history, eval.json, curves.png)."""
    from training.algos.pearl.trainer import Trainer

    run = tmp_path_factory.mktemp("run")
    Trainer(tiny_config(), run).run(progress=False)
    return run


def recorded_step(
    t: int,
    terminated: bool,
    *,
    obs_dim: int = 3,
    act: float = 0.5,
    commanded: float = 0.0,
    t_wall: float = 0.0,
    latent_dim: int = 2,
) -> Any:
    """One `StepRecord` for recorder-based tests: obs = t, next obs = t + 1, reward -1."""
    import numpy as np

    from hardware_bridge.loop import StepRecord

    return StepRecord(
        t_wall=t_wall,
        t_mono=float(t),
        obs=np.full(obs_dim, t, np.float32),
        commanded=np.full(2, commanded),
        sent=np.full(2, act),
        reward=-1.0,
        terminated=terminated,
        truncated=False,
        next_obs=np.full(obs_dim, t + 1, np.float32),
        z_mean=np.zeros(latent_dim),
        z_var=np.ones(latent_dim),
        latency_s=0.001,
        flags=0,
        wrench=np.zeros(6),
    )
