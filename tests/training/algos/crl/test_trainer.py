"""Contrastive RL end to end on the point told its goal: a smoke run from the committed
config (the critic learns to classify futures), its resume and the `conditioned` export with
the goal as descriptor (onnxruntime against torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import ROOT
from training.algos.crl.networks import CRLNets
from training.algos.crl.trainer import CRLTrainer
from training.config import TrainConfig
from training.registry import export_run, load_run
from zshot.config import load_config

CONFIG = ROOT / "configs" / "train" / "crl_point.yaml"


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 6 iterations x 50 updates (300 updates)."""
    base = {"iterations": 6, "eval_every": 0, "eval": {"eval_episodes": 5}}
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("crl") / "run"
    trainer = CRLTrainer(smoke_config(), run_dir)
    assert trainer.run(progress=False) is not None and trainer.updates == 300
    return run_dir


@pytest.mark.slow
def test_a_smoke_run_learns_to_classify_futures(smoke_run: Path) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 6 and history[-1]["counters/updates"] == 300
    assert all(np.isfinite(h["loss/critic"]) and np.isfinite(h["loss/policy"]) for h in history)
    # InfoNCE over 128 candidates: log 128 = 4.85 at chance (accuracy 1/128)
    assert history[-1]["crl/infonce"] < min(history[0]["crl/infonce"], np.log(128)) - 0.5
    assert history[-1]["crl/accuracy"] > 4 / 128
    assert history[-1]["crl/logits_pos"] > history[-1]["crl/logits_neg"]
    run = load_run(smoke_run)
    assert run.algorithm.name == "crl" and isinstance(run.nets, CRLNets)


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(iterations=2, updates_per_iteration=5, checkpoint_every=1)
    whole = CRLTrainer(cfg, tmp_path / "whole")
    whole.run(progress=False)
    first = CRLTrainer(cfg.model_copy(update={"iterations": 1}), tmp_path / "half")
    first.run(progress=False)
    second = CRLTrainer(cfg, tmp_path / "half")
    second.load_checkpoint()
    second.run(progress=False)
    for (k, a), b in zip(
        whole.nets.state_dict().items(), second.nets.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


@pytest.mark.slow
def test_the_export_is_a_goal_conditioned_artifact_matching_torch(
    smoke_run: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    art, errors = export_run(smoke_run, tmp_path / "artifact")
    assert max(errors.values()) <= 1e-5
    assert art.manifest.kind == "conditioned" and art.manifest.descriptor_dim == 2
    assert art.manifest.training["algorithm"] == "crl"
    nets = load_run(smoke_run).nets
    assert isinstance(nets, CRLNets)
    nets.eval()
    sess = ort.InferenceSession(str(art.policy_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    obs, goal = rng.normal(0, 0.6, (2, 4, 2)).astype(np.float32)
    noise = rng.normal(size=(4, 2)).astype(np.float32)
    (got,) = sess.run(["action"], {"obs": obs, "descriptor": goal, "noise": noise})
    with torch.no_grad():
        want, _ = nets.policy.sample(
            torch.from_numpy(obs), torch.from_numpy(goal), torch.from_numpy(noise)
        )
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
