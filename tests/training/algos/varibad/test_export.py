"""VariBAD end to end on the robot path: `zshot train` -> `zshot export` (a `recurrent`
artifact, parity with torch) -> the runtime serves the torch agent's actions (hidden kept
by RESET_EPISODE, cleared by RESET_TASK) -> `zshot eval` through onnxruntime gives the
torch evaluation's returns -> `zshot trials --robot sim-locomotion` on cheetah-vel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.training.algos.varibad.test_trainer import varibad_config
from tests.training.recurrent_helpers import assert_runtime_follows_agent
from training.algos.varibad.trainer import varibad_agent
from training.common.agents import OnnxRecurrentAgent
from training.common.tasks import make_task_source
from training.evaluate import few_shot_eval
from training.registry import export_run, load_run
from zshot.cli import main as zshot


@pytest.fixture(scope="module")
def run_and_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-iteration toy run through `zshot train`, exported by `zshot export`."""
    root = tmp_path_factory.mktemp("varibad")
    cfg = varibad_config(iterations=2, run_dir=str(root / "run"))
    path = root / "varibad_tiny.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True)))
    assert zshot(["train", str(path), "--no-progress"]) == 0
    art = root / "artifact"
    assert zshot(["export", str(root / "run"), "--out", str(art)]) == 0
    return root / "run", art


@pytest.mark.slow
def test_the_export_is_a_recurrent_artifact_matching_torch(
    run_and_artifact: tuple[Path, Path],
) -> None:
    run, art = run_and_artifact
    m = json.loads((art / "manifest.json").read_text())
    assert m["kind"] == "recurrent" and m["hidden_dim"] == 8
    assert (m["obs_dim"], m["act_dim"]) == (2, 2)
    assert m["training"]["algorithm"] == "varibad" and m["training"]["latent_dim"] == 2
    errs = m["training"]["parity_max_abs_err"]
    assert set(errs) == {"next_hidden", "action"} and max(errs.values()) <= 1e-5
    assert sorted(p.name for p in art.iterdir()) == ["manifest.json", "step.onnx"]
    with pytest.raises(FileExistsError):
        export_run(run, art)


@pytest.mark.slow
def test_the_runtime_serves_the_torch_policy_with_its_belief_kept_per_task(
    run_and_artifact: tuple[Path, Path],
) -> None:
    run, art = run_and_artifact
    loaded = load_run(run)
    agent = varibad_agent(loaded.nets, loaded.cfg)
    (first, second), obs = assert_runtime_follows_agent(art, agent, episodes=(4, 3, 2))
    np.testing.assert_allclose(np.stack(first), np.stack(second), atol=1e-5)  # RESET_TASK
    fresh = varibad_agent(load_run(run).nets, loaded.cfg)
    fresh.reset_task()
    fresh.reset_episode()
    alone = fresh.act(obs[4], np.zeros(1, np.float32), np.zeros(2, np.float32))
    assert np.abs(alone - first[4]).max() > 1e-5  # RESET_EPISODE kept the belief


@pytest.mark.slow
def test_onnx_evaluation_gives_the_torch_evaluations_returns(
    run_and_artifact: tuple[Path, Path], tmp_path: Path
) -> None:
    run, art = run_and_artifact
    loaded = load_run(run)
    source = make_task_source(loaded.cfg)
    cfg = loaded.cfg.eval.model_copy(update={"explore_episodes": 2, "max_tasks": 2})
    want = few_shot_eval(source, varibad_agent(loaded.nets, loaded.cfg), cfg, seed=7)
    got = few_shot_eval(source, OnnxRecurrentAgent(art), cfg, seed=7)
    for w, g in zip(want.tasks, got.tasks, strict=True):
        assert w.label == g.label
        assert g.mean_return == pytest.approx(w.mean_return, abs=1e-3)
        assert g.explore_mean_return == pytest.approx(w.explore_mean_return, abs=1e-3)
    out = tmp_path / "eval.json"
    assert zshot(["eval", str(art), "-k", "2", "--max-tasks", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["protocol"]["explore_episodes"] == 2 and len(report["tasks"]) == 2
    # and `zshot eval RUN` drives the torch agent through the registry to the same numbers
    out_run = tmp_path / "eval-run.json"
    assert zshot(["eval", str(run), "-k", "2", "--max-tasks", "2", "--json", str(out_run)]) == 0
    by_run = json.loads(out_run.read_text())
    assert by_run["mean_return"] == pytest.approx(report["mean_return"], abs=1e-3)


@pytest.mark.slow
def test_trials_on_the_simulated_cheetah_run_through_the_runtime(tmp_path: Path) -> None:
    """An (untrained) VariBAD on cheetah-vel, exported and served: `zshot trials --robot
    sim-locomotion` runs its adaptation and evaluation episodes to their end."""
    from hardware_bridge.cli import start_runtime, trials_main
    from runtime.client import RuntimeClient
    from training.algos.varibad.export import export_varibad
    from training.algos.varibad.networks import make_nets

    cfg = varibad_config(env="terrain", terrain_config="configs/terrain/cheetah_vel.yaml")
    torch.manual_seed(0)
    nets = make_nets(17, 6, cfg)
    art = tmp_path / "art"
    export_varibad(
        nets,
        cfg,
        art,
        name="varibad-cheetah-test",
        algorithm="varibad",
        run_dir=tmp_path,
        counters={"iteration": 0, "updates": 0, "env_steps": 0},
    )
    proc, endpoint = start_runtime(art)
    try:
        out = tmp_path / "out"
        rc = trials_main(
            ["--robot", "sim-locomotion", "--runtime", endpoint, "--plugs", "test/2",
             "--adapt-episodes", "1", "--eval-episodes", "1", "--out", str(out),
             "--quiet", "--set", "watchdog.deadline_fraction=1.0"]
        )  # fmt: skip
        assert rc == 0
        row = json.loads((out / "trials.json").read_text())["plugs"][0]
        assert row["completed"] and [e["steps"] for e in row["episodes"]] == [200, 200]
        client = RuntimeClient(endpoint, timeout_s=5.0)
        try:
            client.hello(kind="recurrent")
            assert client.get_state().kind == "recurrent"
        finally:
            client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
