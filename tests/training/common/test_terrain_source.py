"""The terrain TaskSource: the same PEARL code trains, evaluates and exports on locomotion."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tests.training.conftest import ROOT, tiny_config
from training.common.tasks import env_control_hz, make_task_source, terrain_label
from training.config import TrainConfig
from training.evaluate import FewShotReport, TaskResult

pytest.importorskip("pybullet")

VEL = "configs/terrain/cheetah_vel.yaml"
TERRAIN = "configs/terrain/cheetah_terrain.yaml"


def terrain_config(**over: object) -> TrainConfig:
    """The toy tiny config moved onto cheetah-vel with a handful of short episodes."""
    base: dict[str, object] = {
        "env": "terrain",
        "terrain_config": VEL,
        "sim_overrides": {"max_steps": 20, "n_train_tasks": 4, "n_test_tasks": 3},
        "eval": {"explore_episodes": 1, "eval_episodes": 1},
    }
    base.update(over)
    return tiny_config(**base)


def test_terrain_source_follows_the_terrain_family() -> None:
    from sim.terrain_config import TerrainEnvConfig
    from sim.terrain_tasks import TerrainTaskFamily
    from zshot.config import load_config

    cfg = terrain_config(seed=3, sim_overrides={}, num_train_tasks=None)
    source = make_task_source(cfg)
    family = TerrainTaskFamily(load_config(TerrainEnvConfig, ROOT / VEL), seed=3)
    assert source.kind == "terrain" and source.metric == "return"
    assert not source.has_success  # locomotion: bars and curves show return, not success
    assert source.train_tasks == family.train_tasks and source.test_tasks == family.test_tasks
    assert len(source.train_tasks) == 100 and len(source.test_tasks) == 30
    assert source.env_info["env"] == "zshot/CheetahVel-v0"
    assert source.env_info["terrain_config"]["family"] == "cheetah-vel"
    env = source.make_env()
    try:
        assert env_control_hz(env) == pytest.approx(20.0)  # dt = 0.01 s x 5 substeps
        assert env.observation_space.shape == (17,) and env.action_space.shape == (6,)
    finally:
        env.close()
    # labels are the 1 m/s bins of the target velocity
    for task in source.test_tasks:
        lo = int(task.target_velocity)
        assert source.task_label(task) == f"v{lo}-{lo + 1}"


def test_overrides_apply_and_path_resolves_from_anywhere(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the config path is relative to the repository root
    source = make_task_source(terrain_config(num_train_tasks=2))
    assert len(source.train_tasks) == 2 and len(source.test_tasks) == 3
    env = source.make_env()
    assert env.config.max_steps == 20
    env.close()


def test_bad_terrain_configs_are_named() -> None:
    with pytest.raises(ValidationError, match="terrain_config"):
        TrainConfig.model_validate({"env": "terrain"})
    with pytest.raises(ValueError, match="no such file"):
        make_task_source(terrain_config(terrain_config="configs/terrain/nope.yaml"))
    with pytest.raises(ValueError, match="max_steps"):
        make_task_source(terrain_config(sim_overrides={"max_steps": 0}))


def test_terrain_labels_name_the_held_out_parameters() -> None:
    from sim.terrain_config import TerrainEnvConfig
    from sim.terrain_tasks import TerrainTask, TerrainTaskFamily
    from zshot.config import load_config

    cfg = load_config(TerrainEnvConfig, ROOT / TERRAIN)
    task = TerrainTask(family="cheetah-terrain", friction=0.3, payload=7.0)
    assert terrain_label(task, cfg) == "friction-low+payload-high"
    assert terrain_label(TerrainTask(family="cheetah-terrain"), cfg) == "in-range"
    # every held-out test task names at least one parameter outside the training ranges
    for t in TerrainTaskFamily(cfg, seed=0).test_tasks:
        label = terrain_label(t, cfg)
        assert label != "in-range"
        for part in label.split("+"):
            name, side = part.rsplit("-", 1)
            rng = cfg.train.range_of(name)
            value = getattr(t, name)
            assert value < rng.low if side == "low" else value > rng.high
    pi = TerrainTask(family="cheetah-dir", direction=math.pi)
    assert terrain_label(pi, cfg) == "dir180"


def test_report_is_return_based_for_locomotion_and_unchanged_for_insertion() -> None:
    row = TaskResult("v0-1", 0, 2, -50.0, None, 0.0, 0.0, 0, 200.0, 0, 2, 5.0, -80.0)
    loco = FewShotReport([row], {"metric": "return"})
    text = loco.table()
    assert text.splitlines()[0].split()[:3] == ["task", "episodes", "return"]
    assert "-50.00" in text and "-80.00" in text and "success" not in text
    assert loco.to_json()["mean_return"] == -50.0
    insertion = FewShotReport([row], {})
    assert insertion.table().splitlines()[0].split()[:2] == ["plug", "success"]


@pytest.mark.slow
def test_pearl_trains_evaluates_and_exports_on_cheetah_vel(tmp_path: Path) -> None:
    """The unchanged Trainer and export run on the terrain source (no per-env fork)."""
    from runtime.artifact import load_artifact
    from training.algos.pearl.export import PARITY_ATOL
    from training.algos.pearl.trainer import Trainer
    from training.common.agents import OnnxAgent
    from training.evaluate import few_shot_eval
    from training.registry import export_run

    cfg = terrain_config(iterations=1, updates_per_iteration=5)
    trainer = Trainer(cfg, tmp_path / "run")
    report = trainer.run(progress=False)
    assert report is not None and report.protocol["metric"] == "return"
    assert {p.label for p in report.tasks} <= {"v0-1", "v1-2", "v2-3"}
    assert all(p.episodes >= 1 and p.mean_steps == 20 for p in report.tasks)
    # cheetah-vel: reward = -|v - target| - ctrl <= 0 per step
    assert all(np.isfinite(p.mean_return) and p.mean_return <= 0 for p in report.tasks)

    _, errors = export_run(tmp_path / "run", tmp_path / "art")
    assert max(errors.values()) <= PARITY_ATOL  # onnxruntime vs torch on the cheetah's dims
    m = load_artifact(tmp_path / "art").manifest
    assert (m.obs_dim, m.act_dim, m.control_hz) == (17, 6, 20.0)
    assert m.env["family"] == "cheetah-vel" and m.obs_names[0] == "rootz"
    onnx_report = few_shot_eval(
        trainer.source, OnnxAgent(tmp_path / "art"), cfg.eval, seed=1, max_steps=20
    )
    assert onnx_report.protocol["metric"] == "return" and len(onnx_report.tasks) >= 1
    assert all(np.isfinite(p.mean_return) for p in onnx_report.tasks)
