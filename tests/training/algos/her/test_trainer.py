"""HER end to end on the point told its goal: a smoke run from the committed config, its
resume, the `conditioned` export with the goal as descriptor (onnxruntime against torch),
the runtime serving it (RESET_TASK carries the goal) and `zshot eval` on the artifact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.client import RuntimeClient
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer
from tests.training.conftest import ROOT
from training.algos.her.networks import HERNets
from training.algos.her.trainer import HERTrainer
from training.common.tasks import make_task_source
from training.config import TrainConfig
from training.evaluate import goal_eval
from training.registry import agent_of, export_run, load_run
from zshot.config import load_config

CONFIG = ROOT / "configs" / "train" / "her_point.yaml"


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 8 iterations x 50 updates (400 updates)."""
    base = {"iterations": 8, "eval_every": 0, "eval": {"eval_episodes": 10}}
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("her") / "run"
    trainer = HERTrainer(smoke_config(), run_dir)
    report = trainer.run(progress=False)
    assert report is not None and trainer.updates == 400
    return run_dir


@pytest.mark.slow
def test_a_smoke_run_relabels_learns_and_logs(smoke_run: Path) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 8 and history[-1]["counters/updates"] == 400
    assert all(h["her/relabelled"] == pytest.approx(0.8, abs=0.01) for h in history)
    assert all(np.isfinite(h["loss/qf"]) and np.isfinite(h["loss/policy"]) for h in history)
    # an untrained policy stays near the origin and almost never ends on its goal; the Q
    # of the relabelled goals grows from 0 as the policy learns to reach them
    assert history[-1]["sac/q_mean"] > history[0]["sac/q_mean"]
    assert (smoke_run / "eval.json").is_file() and any((smoke_run / "tb").iterdir())
    run = load_run(smoke_run)
    assert run.algorithm.name == "her" and isinstance(run.nets, HERNets)
    with pytest.raises(ValueError, match="no few-shot agent"):
        agent_of(run)


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(iterations=2, updates_per_iteration=5, checkpoint_every=1)
    whole = HERTrainer(cfg, tmp_path / "whole")
    whole.run(progress=False)
    first = HERTrainer(cfg.model_copy(update={"iterations": 1}), tmp_path / "half")
    first.run(progress=False)
    second = HERTrainer(cfg, tmp_path / "half")
    second.load_checkpoint()
    second.run(progress=False)
    for (k, a), b in zip(
        whole.nets.state_dict().items(), second.nets.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


def test_plain_sac_is_her_without_relabelling(tmp_path: Path) -> None:
    cfg = smoke_config(
        iterations=1, updates_per_iteration=3, initial_steps=40, her={"relabel_k": 0}
    )
    trainer = HERTrainer(cfg, tmp_path / "sac")
    trainer.train_iteration()
    assert trainer.history == [] and trainer.updates == 3
    assert trainer.update()["her/relabelled"] == 0.0


def test_her_refuses_a_non_goal_env() -> None:
    with pytest.raises(ValueError, match="train on the goal envs"):
        smoke_config(env="point")


@pytest.fixture(scope="module")
def artifact(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("her-art") / "artifact"
    art, errors = export_run(smoke_run, out)
    assert max(errors.values()) <= 1e-5
    m = art.manifest
    assert m.kind == "conditioned" and (m.obs_dim, m.descriptor_dim, m.act_dim) == (2, 2, 2)
    assert m.descriptor_names == ["goal x", "goal y"] and m.obs_names == ["x", "y"]
    assert m.training["goal"]["epsilon"] == 0.15
    return out


def torch_action(run_dir: Path, obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
    nets = load_run(run_dir).nets
    assert isinstance(nets, HERNets)
    nets.eval()
    with torch.no_grad():
        a, _ = nets.policy.sample(
            torch.as_tensor(obs)[None], torch.as_tensor(goal)[None], torch.zeros(1, 2)
        )
    return a[0].numpy()


@pytest.mark.slow
def test_the_export_matches_torch_in_onnxruntime(smoke_run: Path, artifact: Path) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(artifact / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["obs", "descriptor", "noise"]
    rng = np.random.default_rng(0)
    for _ in range(8):
        obs, goal = rng.normal(0, 0.6, (2, 2)).astype(np.float32)
        feed = {"obs": obs[None], "descriptor": goal[None], "noise": np.zeros((1, 2), np.float32)}
        (got,) = sess.run(["action"], feed)
        np.testing.assert_allclose(got[0], torch_action(smoke_run, obs, goal), atol=1e-5)


@pytest.fixture
def served(artifact: Path) -> Iterator[RuntimeServer]:
    server = RuntimeServer(
        LoadedModel.load(artifact, ServeConfig()), ServeConfig(seed=0, poll_interval_s=0.01)
    )
    server.bind("tcp://127.0.0.1:*")
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_the_runtime_serves_the_goal_policy(smoke_run: Path, served: RuntimeServer) -> None:
    client = RuntimeClient(served.endpoint, timeout_s=5.0)
    try:
        info = client.hello()
        assert (info.kind, info.descriptor_dim) == ("conditioned", 2)
        obs = np.zeros(2, np.float32)
        actions = []
        for goal in ([0.8, 0.0], [-0.8, 0.0], [0.0, 0.8]):
            g = np.asarray(goal, np.float32)
            client.reset_task(descriptor=g)
            got = client.step(obs)
            np.testing.assert_allclose(got, torch_action(smoke_run, obs, g), atol=1e-5)
            actions.append(got)
        assert np.abs(actions[0] - actions[1]).max() > 1e-3  # the goal changes the action
    finally:
        client.close()


@pytest.mark.slow
def test_zshot_eval_runs_the_goal_artifact_as_torch_does(
    smoke_run: Path, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zshot.cli import main as zshot

    out = tmp_path / "eval.json"
    assert zshot(["eval", str(artifact), "--episodes", "6", "--seed", "5", "--json", str(out)]) == 0
    assert "each episode told its goal" in capsys.readouterr().out
    rows = json.loads(out.read_text())["tasks"]
    run = load_run(smoke_run)
    ref = goal_eval(
        make_task_source(run.cfg), lambda o, g: torch_action(smoke_run, o, g), 6, seed=5
    )
    assert len(rows) == len(ref.tasks) == 1
    assert rows[0]["successes"] == ref.tasks[0].successes
    assert rows[0]["mean_return"] == pytest.approx(ref.tasks[0].mean_return, abs=1e-3)


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (["env=point"], "train on the goal envs"),
        (["her.relabel_k=-1"], "relabel_k"),
        (["her.strategy=final"], "strategy"),
        (["goal.epsilon=0"], "epsilon"),
    ],
)
def test_zshot_train_refuses_a_bad_goal_config_in_one_line(
    sets: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zshot.cli import main as zshot

    args = ["train", str(CONFIG), "--run-dir", str(tmp_path / "r")]
    for s in sets:
        args += ["--set", s]
    assert zshot(args) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "Traceback" not in err and not (tmp_path / "r").exists()
