"""Shared fixtures: one tiny trained run on the toy task, reused by export/eval tests."""

from __future__ import annotations

from pathlib import Path

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
    from training.trainer import Trainer

    run = tmp_path_factory.mktemp("run")
    Trainer(tiny_config(), run).run(progress=False)
    return run
