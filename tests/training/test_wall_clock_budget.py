"""The wall-clock budget (`max_minutes`) stops every trainer bench/meta_compare.py compares:
RL² and VariBAD (training/common/loop.py), MAML (its own loop) and PEARL (its own; also
tests/training/algos/pearl/test_trainer.py), and rdistill (its rounds, then its RL phase),
each after the first iteration past it, with a checkpoint of that iteration. A budget far below one iteration's time: no clock asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import ROOT, tiny_config
from training.common.checkpoint import CHECKPOINT, load_checkpoint
from training.config import TrainConfig
from training.registry import make_trainer
from zshot.config import load_config


def _from(config: str, sets: dict[str, object]) -> TrainConfig:
    path = ROOT / "configs" / "train" / config
    return load_config(TrainConfig, path, [f"{k}={json.dumps(v)}" for k, v in sets.items()])


CONFIGS = {
    "rl2": lambda: _from(
        "rl2_point.yaml",
        {"rl2.trials_per_iteration": 2, "rl2.stats_trials": 1, "rl2.gru_hidden": 8,
         "ppo.hidden": [8], "eval.max_tasks": 1},
    ),
    "maml": lambda: _from(
        "maml_point.yaml",
        {"meta_batch": 2, "initial_steps": 20, "maml.episodes_per_task": 2,
         "maml.outer_steps": 1, "maml.eval_tasks": 1, "maml.eval_steps": 0},
    ),
    "varibad": lambda: _from(
        "varibad_point.yaml",
        {"varibad.trials_per_iteration": 2, "varibad.gru_hidden": 8, "varibad.vae_updates": 1,
         "ppo.hidden": [8], "ppo.epochs": 1, "eval.max_tasks": 1},
    ),
    "pearl": lambda: tiny_config(),
    # two rounds and an RL phase: the budget ends it after round 0, the RL phase never starts
    "rdistill": lambda: _from(
        "rdistill_insertion.yaml",
        {"rdistill.rounds": 2, "rdistill.trials_per_round": 1, "rdistill.episodes_per_trial": 1,
         "rdistill.updates_per_round": 1, "rdistill.batch_trials": 1, "rl2.gru_hidden": 8,
         "ppo.hidden": [8], "rdistill.rl_iterations": 3, "rdistill.rl_trials": 1,
         "eval.max_tasks": 1, "eval.explore_episodes": 1, "eval.eval_episodes": 1},
    ),
}  # fmt: skip


@pytest.mark.slow  # 1-6 s each on the shared machine
@pytest.mark.parametrize("algo", sorted(CONFIGS))
def test_max_minutes_ends_the_run_after_the_first_iteration_past_it(
    algo: str, tmp_path: Path
) -> None:
    cfg = CONFIGS[algo]().model_copy(
        update={"iterations": 50, "max_minutes": 1e-6, "eval_every": 0, "checkpoint_every": 100}
    )
    trainer = make_trainer(cfg, tmp_path)
    trainer.run(progress=False)
    assert trainer.iteration == 1
    state = load_checkpoint(tmp_path / CHECKPOINT)  # the last iteration is always saved
    assert state["iteration"] == 1 and state["train_seconds"] > 0
