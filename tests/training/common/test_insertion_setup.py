"""The insertion task setup: held-out named plugs, the procedural training plug family."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.config import EvalConfig, TrainConfig
from training.plug_family import PLUG_DIR, generate, plug_paths
from zshot.config import load_config

ROOT = Path(__file__).resolve().parents[3]
NAMED = {
    "US-AC-plug", "EU-AC-plug", "UK-AC-plug", "NEMA14-30P", "Metal-peg-rec",
    "Metal-peg-rd", "Metal-peg-sq", "Car-plug-3p", "Car-plug-4p",
}  # fmt: skip


def test_committed_family_is_what_the_generator_makes() -> None:
    specs = generate()
    committed = {Path(p).stem: yaml.safe_load(Path(p).read_text()) for p in plug_paths()}
    assert committed == {s["name"]: s for s in specs}
    assert PLUG_DIR.is_dir() and len(committed) == 24
    assert not (set(committed) & NAMED)


def test_insertion_source_holds_out_the_named_plugs() -> None:
    from training.common.tasks import make_task_source

    cfg = load_config(TrainConfig, ROOT / "configs" / "train" / "insertion.yaml")
    source = make_task_source(cfg)
    train_labels = {source.task_label(t) for t in source.train_tasks}
    test_labels = {source.task_label(t) for t in source.test_tasks}
    assert test_labels == NAMED
    assert not (train_labels & NAMED)
    # the 24 procedural plugs and every shipped plug that is not held out (14)
    from sim.plugs import list_plugs

    shipped = set(list_plugs()) - NAMED
    assert len(shipped) == 14 and shipped <= train_labels
    assert len(train_labels) == 24 + 14 and len(source.train_tasks) == 38 * 4
    assert len(source.test_tasks) == 9 * 10
    assert sorted(source.env_info["held_out_plugs"]) == sorted(NAMED)


def test_training_on_a_held_out_plug_is_refused() -> None:
    from training.common.tasks import make_task_source

    cfg = TrainConfig(train_plugs=["family", "UK-AC-plug"])
    with pytest.raises(ValueError, match="held-out plugs.*UK-AC-plug"):
        make_task_source(cfg)


@pytest.mark.slow
def test_spiral_baseline_runs_in_the_same_protocol() -> None:
    from training.behaviours import SpiralAgent
    from training.common.tasks import make_task_source
    from training.evaluate import few_shot_eval

    cfg = TrainConfig(sim_overrides={"tasks": {"n_train_per_plug": 1, "n_test_per_plug": 1}})
    source = make_task_source(cfg)
    env = source.make_env()
    agent = SpiralAgent(env.config)
    env.close()
    report = few_shot_eval(
        source, agent, EvalConfig(explore_episodes=0, eval_episodes=1, max_tasks=2), seed=0
    )
    assert sum(p.episodes for p in report.tasks) == 2
    for p in report.tasks:
        assert p.peak_force >= 0 and p.mean_return < 100
        if p.successes:
            assert p.mean_time_to_insert is not None and p.mean_time_to_insert > 0
