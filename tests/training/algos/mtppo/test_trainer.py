"""MT-PPO end to end on the point tasks: a smoke run from the committed config, its resume
bit for bit, the `conditioned` export (onnxruntime against torch), the runtime serving the
torch policy's action for each one-hot descriptor, and `zshot eval` of the artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.client import RuntimeClient
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer
from tests.training.conftest import ROOT, assert_resume_is_bit_for_bit
from training.algos.mtppo.networks import MTPPONets
from training.algos.mtppo.trainer import MTPPOTrainer
from training.config import TrainConfig
from training.registry import agent_of, export_run, load_run
from zshot.config import load_config

CONFIG = ROOT / "configs" / "train" / "mtppo_point.yaml"


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 3 iterations of 4 tasks x 40 steps."""
    base = {
        "iterations": 3,
        "eval_every": 0,
        "checkpoint_every": 1,
        "tasks_per_iteration": 4,
        "steps_prior": 40,
        "initial_steps": 20,
        "ppo.hidden": [16],
        "eval.eval_episodes": 1,
    }
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("mtppo") / "run"
    trainer = MTPPOTrainer(smoke_config(), run_dir)
    report = trainer.run(progress=False)
    assert report is not None and trainer.updates == 3
    assert len(report.tasks) == 10  # one row per train task, each told its id
    return run_dir


@pytest.mark.slow
def test_a_smoke_run_trains_logs_and_reads_back(smoke_run: Path) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 3 and history[-1]["counters/updates"] == 3
    assert all(np.isfinite(h["loss/policy"]) and np.isfinite(h["loss/value"]) for h in history)
    assert all(h["train/return"] < 0 for h in history)  # -distance per step
    assert (smoke_run / "eval.json").is_file() and any((smoke_run / "tb").iterdir())
    run = load_run(smoke_run)
    assert run.algorithm.name == "mtppo" and isinstance(run.nets, MTPPONets)
    with pytest.raises(ValueError, match="no few-shot agent"):
        agent_of(run)


def test_the_family_must_have_the_one_hot_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_train_tasks is 30 but the env family has 20"):
        MTPPOTrainer(smoke_config(num_train_tasks=30), tmp_path)


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(iterations=2, tasks_per_iteration=2)
    assert_resume_is_bit_for_bit(MTPPOTrainer, cfg, tmp_path)


@pytest.fixture(scope="module")
def artifact(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mtppo-art") / "artifact"
    art, errors = export_run(smoke_run, out)
    assert max(errors.values()) <= 1e-5
    m = art.manifest
    assert (m.kind, m.descriptor_dim, m.training["algorithm"]) == ("conditioned", 10, "mtppo")
    assert m.descriptor_names is not None and m.descriptor_names[3].startswith("task 3: ")
    return out


def torch_action(run_dir: Path, obs: np.ndarray, task: int, noise: np.ndarray) -> np.ndarray:
    nets = load_run(run_dir).nets
    assert isinstance(nets, MTPPONets)
    with torch.no_grad():
        mean, log_std = nets.policy(torch.as_tensor(obs)[None], nets.one_hot(torch.tensor([task])))
        return torch.tanh(mean + log_std.exp() * torch.as_tensor(noise))[0].numpy()


@pytest.mark.slow
def test_the_export_and_the_runtime_give_the_torch_actions(smoke_run: Path, artifact: Path) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(artifact / "policy.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for task in range(10):
        obs = rng.normal(0, 0.6, 2).astype(np.float32)
        noise = (rng.normal(size=2) * (task % 2)).astype(np.float32)
        feed = {"obs": obs[None], "descriptor": np.eye(10, dtype=np.float32)[task][None]}
        (got,) = sess.run(["action"], {**feed, "noise": noise[None]})
        np.testing.assert_allclose(got[0], torch_action(smoke_run, obs, task, noise), atol=1e-5)
    server = RuntimeServer(
        LoadedModel.load(artifact, ServeConfig()), ServeConfig(seed=0, poll_interval_s=0.01)
    )
    server.bind("tcp://127.0.0.1:*")
    server.start()
    client = RuntimeClient(server.endpoint, timeout_s=5.0)
    try:
        assert client.hello().kind == "conditioned"
        obs = np.array([0.3, 0.4], np.float32)
        got = []
        for task in (0, 3, 9):
            client.reset_task(descriptor=np.eye(10, dtype=np.float32)[task])
            got.append(client.step(obs))
            want = torch_action(smoke_run, obs, task, np.zeros(2, np.float32))
            np.testing.assert_allclose(got[-1], want, atol=1e-5)
        assert np.abs(got[0] - got[2]).max() > 1e-5  # the id changes the action
    finally:
        client.close()
        server.stop()


@pytest.mark.slow
def test_zshot_eval_runs_the_artifact_told_each_task(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zshot.cli import main as zshot

    out = tmp_path / "eval.json"
    assert zshot(["eval", str(artifact), "--episodes", "1", "--seed", "5", "--json", str(out)]) == 0
    assert "mode told" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["tasks"]) == 10
