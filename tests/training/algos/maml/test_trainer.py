"""MAML end to end on the point tasks: a smoke run of the committed config cut to a few
seconds, its resume, the `weights` export (onnxruntime against torch, meta-policy and
adapted weights alike) and the runtime serving the torch policy's actions, RELOAD included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.artifact import load_artifact
from runtime.client import RuntimeClient
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer
from tests.training.conftest import ROOT
from training.algos.maml.export import export_weights
from training.algos.maml.networks import MAMLNets, Params, forward_with
from training.algos.maml.trainer import MAMLTrainer
from training.config import TrainConfig
from training.registry import agent_of, load_run
from zshot.config import load_config

CONFIG = ROOT / "configs" / "train" / "maml_point.yaml"


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 2 iterations of 2 tasks x 2 episodes, 2 outer steps."""
    base: dict[str, object] = {
        "iterations": 2, "meta_batch": 2, "initial_steps": 20, "eval_every": 0,
        "maml.episodes_per_task": 2, "maml.outer_steps": 2, "maml.eval_tasks": 2,
        "maml.eval_steps": 2,
    }  # fmt: skip
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("maml") / "run"
    trainer = MAMLTrainer(smoke_config(), run_dir)
    before = {k: v.clone() for k, v in trainer.nets.state_dict().items()}
    assert trainer.run(progress=False) is None
    assert trainer.updates == 4
    after = trainer.nets.state_dict()
    # the meta-update moved every policy parameter; the normaliser was set once, from data
    for k in ("policy.mean_net.0.weight", "policy.mean_net.4.bias", "policy.log_std"):
        assert not torch.equal(before[k], after[k]), k
    assert float(after["policy.normaliser.std"].min()) < 1.0  # not the identity any more
    return run_dir


def test_a_smoke_run_trains_logs_and_measures_the_adaptation_curve(smoke_run: Path) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 2 and history[-1]["counters/updates"] == 4
    for h in history:
        assert all(
            np.isfinite(h[k]) for k in ("loss/outer_first", "train/return_pre", "train/return_post")
        )
        assert h["loss/outer_first"] == pytest.approx(0.0, abs=1e-6)  # ratio 1, advantages mean 0
    curve = json.loads((smoke_run / "adaptation.json").read_text())
    assert curve["steps"] == [0, 1, 2] and len(curve["tasks"]) == 2
    assert all(np.isfinite(curve["mean_return"]))
    run = load_run(smoke_run)
    assert run.algorithm.name == "maml" and isinstance(run.nets, MAMLNets)
    with pytest.raises(ValueError, match="serve the weights artifact"):
        agent_of(run)


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(checkpoint_every=1)
    whole = MAMLTrainer(cfg, tmp_path / "whole")
    whole.run(progress=False)
    MAMLTrainer(cfg.model_copy(update={"iterations": 1}), tmp_path / "half").run(progress=False)
    second = MAMLTrainer(cfg, tmp_path / "half")
    second.load_checkpoint()
    second.run(progress=False)
    for (k, a), b in zip(
        whole.nets.state_dict().items(), second.nets.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    assert whole.env_steps == second.env_steps


def torch_action(
    nets: MAMLNets, params: Params | None, obs: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    p = nets.policy.detached_params() if params is None else params
    with torch.no_grad():
        mean, log_std = forward_with(nets.policy, p, torch.as_tensor(obs)[None])
        return (mean[0] + log_std.exp() * torch.as_tensor(noise)).numpy()


def adapted(nets: MAMLNets) -> Params:
    """Some other parameters (as an inner step gives): theta moved along a fixed direction."""
    g = torch.Generator().manual_seed(3)
    return {
        k: v + 0.3 * torch.randn(v.shape, generator=g)
        for k, v in nets.policy.detached_params().items()
    }


@pytest.fixture(scope="module")
def artifacts(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/meta (`zshot export` of the run) and root/adapted (other weights)."""
    from zshot.cli import main as zshot

    root = tmp_path_factory.mktemp("maml-art")
    assert zshot(["export", str(smoke_run), "--out", str(root / "meta")]) == 0  # the CLI's path
    art = load_artifact(root / "meta")
    assert art.manifest.kind == "weights"
    assert art.manifest.training["parity_max_abs_err"]["action"] <= 1e-5
    run = load_run(smoke_run)
    assert isinstance(run.nets, MAMLNets)
    counters = {k: int(run.state[k]) for k in ("iteration", "updates", "env_steps")}
    art2, errors2 = export_weights(
        run.nets, run.cfg, root / "adapted", name="adapted", algorithm="maml", run_dir=smoke_run,
        counters=counters, params=adapted(run.nets), adaptation={"steps": 1},
    )  # fmt: skip
    assert max(errors2.values()) <= 1e-5
    assert art2.manifest.training["adaptation"] == {"steps": 1}
    return root


@pytest.mark.slow
def test_the_export_matches_torch_in_onnxruntime(smoke_run: Path, artifacts: Path) -> None:
    import onnxruntime as ort

    nets = load_run(smoke_run).nets
    assert isinstance(nets, MAMLNets)
    rng = np.random.default_rng(0)
    for name, params in (("meta", None), ("adapted", adapted(nets))):
        sess = ort.InferenceSession(
            str(artifacts / name / "policy.onnx"), providers=["CPUExecutionProvider"]
        )
        assert [i.name for i in sess.get_inputs()] == ["obs", "noise"]
        for i in range(8):
            obs = rng.normal(0, 0.6, 2).astype(np.float32)
            noise = (rng.normal(size=2) * (i % 2)).astype(np.float32)
            (got,) = sess.run(["action"], {"obs": obs[None], "noise": noise[None]})
            np.testing.assert_allclose(got[0], torch_action(nets, params, obs, noise), atol=1e-5)
    # the export did not change the run's own policy (adapted weights go into a copy)
    again = load_run(smoke_run).nets
    for a, b in zip(nets.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.fixture
def served(artifacts: Path) -> Iterator[RuntimeServer]:
    cfg = ServeConfig(seed=0, poll_interval_s=0.01, reload_root=str(artifacts))
    server = RuntimeServer(LoadedModel.load(artifacts / "meta", cfg), cfg)
    server.bind("tcp://127.0.0.1:*")
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_the_runtime_serves_the_meta_policy_then_the_reloaded_adapted_one(
    smoke_run: Path, artifacts: Path, served: RuntimeServer
) -> None:
    nets = load_run(smoke_run).nets
    assert isinstance(nets, MAMLNets)
    obs = np.array([0.3, 0.4], np.float32)
    zero = np.zeros(2, np.float32)
    client = RuntimeClient(served.endpoint, timeout_s=5.0)
    other = RuntimeClient(served.endpoint, timeout_s=5.0)
    try:
        assert client.hello().kind == "weights" and other.hello().kind == "weights"
        np.testing.assert_allclose(client.step(obs), torch_action(nets, None, obs, zero), atol=1e-5)
        info = client.reload(str(artifacts / "adapted"))
        assert info.kind == "weights" and info.artifact_name == "adapted"
        want = torch_action(nets, adapted(nets), obs, zero)
        np.testing.assert_allclose(client.step(obs), want, atol=1e-5)
        assert np.abs(want - torch_action(nets, None, obs, zero)).max() > 1e-3
        # RELOAD is per session: the other one still gets the meta-policy
        np.testing.assert_allclose(other.step(obs), torch_action(nets, None, obs, zero), atol=1e-5)
    finally:
        client.close()
        other.close()


@pytest.mark.slow
def test_zshot_eval_of_a_weights_artifact_says_what_to_run_instead(
    artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zshot.cli import main as zshot

    assert zshot(["eval", str(artifacts / "meta")]) == 2
    err = capsys.readouterr().err
    assert "weights artifact (MAML)" in err and "zshot adapt" in err
    assert len(err.strip().splitlines()) == 1
