"""MT-SAC end to end on the point tasks: a smoke run of a few hundred updates from the
committed config (with PCGrad), its resume, the `conditioned` export (onnxruntime against
torch) and the runtime serving the torch policy's actions for each one-hot descriptor."""

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
from training.algos.mtsac.networks import MTSACNets
from training.algos.mtsac.trainer import MTSACTrainer
from training.common.checkpoint import CHECKPOINT
from training.config import TrainConfig
from training.registry import agent_of, export_run, load_run
from zshot.config import load_config

CONFIG = ROOT / "configs" / "train" / "mtsac_point.yaml"


def smoke_config(**over: object) -> TrainConfig:
    """The committed config, cut to 6 iterations x 50 updates (300 updates)."""
    base = {"iterations": 6, "updates_per_iteration": 50, "eval_every": 0}
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("mtsac") / "run"
    trainer = MTSACTrainer(smoke_config(pcgrad=True), run_dir)
    report = trainer.run(progress=False)
    assert report is not None and trainer.updates == 300
    assert len(report.tasks) == 10  # one row per train task
    return run_dir


@pytest.mark.slow
def test_a_smoke_run_learns_and_logs(smoke_run: Path) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 6 and history[-1]["counters/updates"] == 300
    assert history[-1]["pcgrad/conflicts"] > 0  # the tasks' gradients did conflict
    assert all(np.isfinite(h["loss/qf"]) and np.isfinite(h["loss/policy"]) for h in history)
    # the untrained policy wanders (return about -20 over 20 steps); 300 updates move it
    # towards the goals
    assert history[-1]["train/return"] > history[0]["train/return"]
    assert (smoke_run / "eval.json").is_file() and any((smoke_run / "tb").iterdir())
    run = load_run(smoke_run)
    assert run.algorithm.name == "mtsac" and isinstance(run.nets, MTSACNets)
    with pytest.raises(ValueError, match="no few-shot agent"):
        agent_of(run)


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(pcgrad=True, iterations=2, updates_per_iteration=5, checkpoint_every=1)
    whole = MTSACTrainer(cfg, tmp_path / "whole")
    whole.run(progress=False)
    first = MTSACTrainer(cfg.model_copy(update={"iterations": 1}), tmp_path / "half")
    first.run(progress=False)
    second = MTSACTrainer(cfg, tmp_path / "half")
    second.load_checkpoint()
    second.run(progress=False)
    for (k, a), b in zip(
        whole.nets.state_dict().items(), second.nets.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


@pytest.fixture(scope="module")
def artifact(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mtsac-art") / "artifact"
    art, errors = export_run(smoke_run, out)
    assert max(errors.values()) <= 1e-5
    assert art.manifest.kind == "conditioned" and art.manifest.descriptor_dim == 10
    return out


def torch_actions(run_dir: Path, obs: np.ndarray, task: int, noise: np.ndarray) -> np.ndarray:
    """The trained torch policy's env-unit action for `obs` told task `task`."""
    nets = load_run(run_dir).nets
    assert isinstance(nets, MTSACNets)
    nets.eval()
    with torch.no_grad():
        d = nets.one_hot(torch.tensor([task]))
        a, _ = nets.policy.sample(torch.as_tensor(obs)[None], d, torch.as_tensor(noise)[None])
    return a[0].numpy()  # the point env's bounds are [-1, 1]: env units = tanh's


@pytest.mark.slow
def test_the_export_matches_torch_in_onnxruntime(smoke_run: Path, artifact: Path) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(artifact / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["obs", "descriptor", "noise"]
    rng = np.random.default_rng(0)
    for task in range(10):
        obs = rng.normal(0, 0.6, 2).astype(np.float32)
        noise = (rng.normal(size=2) * (task % 2)).astype(np.float32)
        d = np.eye(10, dtype=np.float32)[task]
        (got,) = sess.run(
            ["action"], {"obs": obs[None], "descriptor": d[None], "noise": noise[None]}
        )
        np.testing.assert_allclose(got[0], torch_actions(smoke_run, obs, task, noise), atol=1e-5)


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
def test_the_runtime_serves_the_torch_actions_for_each_descriptor(
    smoke_run: Path, served: RuntimeServer
) -> None:
    client = RuntimeClient(served.endpoint, timeout_s=5.0)
    try:
        info = client.hello()
        assert (info.kind, info.descriptor_dim) == ("conditioned", 10)
        obs = np.array([0.3, 0.4], np.float32)
        actions = []
        for task in (0, 3, 9):
            client.reset_task(descriptor=np.eye(10, dtype=np.float32)[task])
            got = client.step(obs)
            want = torch_actions(smoke_run, obs, task, np.zeros(2, np.float32))
            np.testing.assert_allclose(got, want, atol=1e-5)
            actions.append(got)
        assert np.abs(actions[0] - actions[2]).max() > 1e-4  # the id changes the action
    finally:
        client.close()


def test_the_checkpoint_path_is_the_shared_one() -> None:
    assert CHECKPOINT == "checkpoint.pt"  # load_run and export_run read the same file


@pytest.mark.slow
def test_zshot_eval_runs_the_conditioned_artifact_as_torch_does(
    smoke_run: Path, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zshot eval ARTIFACT`: each train task told its one-hot id through onnxruntime; the
    same episodes (seed) with the torch policy give the same returns."""
    from training.common.tasks import make_task_source
    from training.evaluate import conditioned_eval
    from zshot.cli import main as zshot

    out = tmp_path / "eval.json"
    assert zshot(["eval", str(artifact), "--episodes", "2", "--seed", "5", "--json", str(out)]) == 0
    assert "mode told" in capsys.readouterr().out
    rows = json.loads(out.read_text())["tasks"]
    assert len(rows) == 10
    run = load_run(smoke_run)
    nets = run.nets
    assert isinstance(nets, MTSACNets)

    def policy(obs: np.ndarray, d: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            a, _ = nets.policy.sample(
                torch.as_tensor(obs)[None], torch.as_tensor(d)[None], torch.zeros(1, 2)
            )
        return a[0].numpy()

    ref = conditioned_eval(make_task_source(run.cfg), policy, 2, seed=5)
    for row, want in zip(rows, ref.tasks, strict=True):
        assert row["label"] == want.label and row["successes"] == want.successes
        assert row["mean_return"] == pytest.approx(want.mean_return, abs=1e-3)
