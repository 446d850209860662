"""The meta-RL family's insertion configs (issue 21: RL², MAML, VariBAD beside PEARL on the
held-out named plugs): each keeps PEARL's train plugs and task split
(configs/train/insertion.yaml), so bench/meta_compare.py measures every method on the same
test tasks; a trial / inner-step batch covers the curve's k <= 3; and (slow) each trains an
iteration on insertion and gives an adaptation curve there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.meta_compare import _parser, measure
from tests.training.conftest import ROOT
from training.common.tasks import make_task_source, select_test_tasks
from training.config import TrainConfig
from training.registry import make_trainer
from zshot.config import load_config

TRAIN = ROOT / "configs" / "train"
METHODS = {"rl2": "rl2_insertion.yaml", "maml": "maml_insertion.yaml",
           "varibad": "varibad_insertion.yaml"}  # fmt: skip


def _load(name: str, sets: list[str] | None = None) -> TrainConfig:
    return load_config(TrainConfig, TRAIN / name, sets or [])


@pytest.mark.parametrize("algo", sorted(METHODS))
def test_an_insertion_config_keeps_pearl_s_plugs_and_split(algo: str) -> None:
    pearl, cfg = _load("insertion.yaml"), _load(METHODS[algo])
    assert cfg.algorithm == algo and cfg.env == "insertion"
    assert cfg.train_plugs == pearl.train_plugs
    assert cfg.sim_overrides == pearl.sim_overrides
    assert cfg.eval_held_out_only and cfg.profile is None  # `--set profile=` picks it


def test_the_insertion_configs_measure_the_same_held_out_test_tasks() -> None:
    tasks = {}
    for name in ("insertion.yaml", *METHODS.values()):
        source = make_task_source(_load(name, ["profile=hard", "seed=1"]))
        tasks[name] = [t.model_dump() for t in select_test_tasks(source, None, 10, 90)]
    first = tasks["insertion.yaml"]
    assert len(first) == 90 and len({t["plug"] for t in first}) == 9
    assert all(t == first for t in tasks.values())


def test_trials_and_inner_batches_cover_the_curve_s_three_adaptation_episodes() -> None:
    assert _load(METHODS["rl2"]).rl2.episodes_per_trial >= 4  # k = 0..3 inside a trial
    assert _load(METHODS["varibad"]).varibad.episodes_per_trial >= 4
    assert _load(METHODS["maml"]).maml.episodes_per_task == 3  # as many as the curve's k = 3


TINY = [
    "rl2.trials_per_iteration=1", "rl2.stats_trials=1", "rl2.episodes_per_trial=2",
    "rl2.gru_hidden=8", "varibad.trials_per_iteration=1", "varibad.episodes_per_trial=2",
    "varibad.gru_hidden=8", "varibad.vae_updates=1", "ppo.hidden=[8]", "ppo.epochs=1",
    "meta_batch=1", "maml.episodes_per_task=1", "maml.hidden=[8]", "maml.outer_steps=1",
    "maml.eval_tasks=1", "maml.eval_steps=0", "initial_steps=10", "max_episode_steps=20",
    "iterations=1", "eval_every=0", "eval.max_tasks=1", "eval.explore_episodes=1",
    "profile=hard",
]  # fmt: skip


@pytest.mark.slow  # 3-6 s each: an insertion iteration, then 2 tasks x 2 episodes (+ MAML's)
@pytest.mark.parametrize("algo", sorted(METHODS))
def test_each_trains_an_iteration_on_insertion_and_gives_a_curve(algo: str, tmp_path: Path) -> None:
    cfg = _load(METHODS[algo], TINY)
    make_trainer(cfg, tmp_path).run(progress=False)
    (tmp_path / "train.json").write_text(json.dumps({"env_steps": 1}))
    # the harness's own flags (defaults for the rest: one episode per task at each k)
    args = _parser().parse_args(
        ["insertion", "--tasks-per-label", "1", "--max-tasks", "2", "--k", "1"]
    )
    curve = measure(tmp_path, algo, 0, "test", None, args)
    assert curve.labels == ["US-AC-plug", "EU-AC-plug"]  # the held-out plugs, one task each
    assert curve.has_success and len(curve.returns) == 2
    assert all(len(r) == 2 for r in curve.returns)  # k = 0, 1
    assert all(-1000 < r < 20 for row in curve.returns for r in row)  # >= 1 step each
