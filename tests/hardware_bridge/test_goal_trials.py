"""`zshot trials --goal-descriptors`: a goal-conditioned artifact (HER on the goal-reaching
insertion arm) run end to end through the runtime by `zshot trials --robot sim`, each plug's
goal (its inserted pose, from the spec and the artifact's ε) sent through the protocol as
the task descriptor with RESET_TASK; the robot side computes the same goal as the sim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_bridge.cli import start_runtime
from tests.training.conftest import ROOT
from zshot.cli import main
from zshot.plug_descriptor import PlugDescriptorError, plug_inserted_goal, plug_inserted_goal_of

PLUGS = ("US-AC-plug", "Metal-peg-rd", "EU-AC-plug")


@settings(max_examples=10, deadline=None)
@given(plug=st.sampled_from(PLUGS), eps=st.floats(0.05, 30.0))
def test_the_bridge_computes_the_inserted_goal_as_the_sim_does(plug: str, eps: float) -> None:
    from sim.insertion_goal import InsertionGoalEnv

    env = InsertionGoalEnv(plug=plug, epsilon=eps)
    try:
        want = env.inserted_goal()
    finally:
        env.close()
    np.testing.assert_allclose(plug_inserted_goal_of(plug, eps), want, rtol=0, atol=1e-5)


def test_a_spec_success_depth_wins_and_bad_specs_are_named() -> None:
    pins = [{"shape": "cylinder", "diameter": 4.0, "length": 12.0}]
    assert plug_inserted_goal({"pins": pins}, 1.0)[2] == pytest.approx(12.0 - 9.6 - 1.0)
    assert plug_inserted_goal({"pins": pins, "success_depth": 5.0}, 1.0)[2] == 6.0
    assert plug_inserted_goal({"pins": pins, "success_depth": 5.0}, 9.0)[2] == 0.0  # clamped
    with pytest.raises(PlugDescriptorError, match="length"):
        plug_inserted_goal({"name": "p", "pins": [{"shape": "box"}]}, 1.0)
    with pytest.raises(PlugDescriptorError, match="success_depth"):
        plug_inserted_goal({"pins": pins, "success_depth": "deep"}, 1.0)
    with pytest.raises(PlugDescriptorError, match="epsilon"):
        plug_inserted_goal({"pins": pins}, 0.0)


@pytest.fixture(scope="module")
def goal_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HER on env insertion_goal (configs/train/her_insertion_goal.yaml) for a few steps,
    exported: a goal artifact (descriptor = the goal, training.goal.epsilon)."""
    from training.algos.her.trainer import HERTrainer
    from training.config import TrainConfig
    from training.registry import export_run
    from zshot.config import load_config

    root = tmp_path_factory.mktemp("goal")
    over = {"num_train_tasks": 1, "iterations": 1, "initial_steps": 40, "steps_prior": 20,
            "updates_per_iteration": 3, "batch_size": 16, "max_episode_steps": 20,
            "eval_every": 0, "eval": {"eval_episodes": 1}, "goal": {"epsilon": 1.5}}  # fmt: skip
    sets = [f"{k}={json.dumps(v)}" for k, v in over.items()]
    cfg = load_config(TrainConfig, ROOT / "configs" / "train" / "her_insertion_goal.yaml", sets)
    HERTrainer(cfg, root / "run").run(progress=False)
    export_run(root / "run", root / "artifact")
    return root / "artifact"


@pytest.fixture(scope="module")
def goal_server(goal_artifact: Path) -> Iterator[str]:
    proc, endpoint = start_runtime(goal_artifact)
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


TRIALS = ["trials", "--robot", "sim", "--profile", "known", "--plugs", "US-AC-plug,Metal-peg-rd",
          "--adapt-episodes", "0", "--eval-episodes", "1", "--quiet",
          "--set", "safety.max_lin_delta=1.0", "--set", "safety.max_ang_delta=10.0"]  # fmt: skip


@pytest.mark.slow
def test_trials_send_each_plugs_goal_to_a_goal_artifact(
    goal_artifact: Path, goal_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime as ort

    from hardware_bridge.recorder import load_recordings

    manifest = json.loads((goal_artifact / "manifest.json").read_text())
    assert manifest["training"]["goal"]["epsilon"] == 1.5
    rec = tmp_path / "rec"
    rc = main([*TRIALS, "--runtime", goal_server, "--goal-descriptors", "--out", str(tmp_path),
               "--record", str(rec)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    data = json.loads((tmp_path / "trials.json").read_text())
    assert [p["plug"] for p in data["plugs"]] == ["US-AC-plug", "Metal-peg-rd"]
    ds = load_recordings(rec)
    assert len(ds.episodes) == 2
    # The runtime acted on each plug's inserted goal at the artifact's ε: the first sent
    # action of each episode is the policy's for its first observation and that goal.
    sess = ort.InferenceSession(
        str(goal_artifact / "policy.onnx"), providers=["CPUExecutionProvider"]
    )
    first = [int(np.flatnonzero(ds.episode_ids == e["id"])[0]) for e in ds.episodes]
    goals = []
    for i, ep in zip(first, ds.episodes, strict=True):
        goal = np.asarray(plug_inserted_goal_of(ep["plug"], 1.5), np.float32)
        feed = {"obs": ds.observations[i][None], "descriptor": goal[None],
                "noise": np.zeros((1, 4), np.float32)}  # fmt: skip
        (want,) = sess.run(["action"], feed)
        np.testing.assert_allclose(ds.actions[i], want[0], rtol=0, atol=1e-5)
        goals.append(goal)
    assert not np.allclose(goals[0], goals[1])  # two plugs, two goals (pin lengths differ)
    # A goal given by hand wins for its plug.
    rc = main([*TRIALS, "--runtime", goal_server, "--goal-descriptors", "--out", str(tmp_path),
               "--task-descriptor", "Metal-peg-rd=1,2,30,0"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err


@pytest.mark.slow
def test_goal_descriptors_refuse_a_non_goal_artifact_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from hardware_bridge.cli import DEMO_ARTIFACT

    art = tmp_path / "pearl"
    shutil.copytree(DEMO_ARTIFACT, art)  # never serve the shipped dir itself
    proc, endpoint = start_runtime(art)
    try:
        rc = main([*TRIALS, "--runtime", endpoint, "--goal-descriptors", "--out", str(tmp_path)])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    err = capsys.readouterr().err
    assert rc == 2 and "not goal-conditioned" in err and "posterior" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "trials.json").exists()
