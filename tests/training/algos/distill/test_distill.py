"""Distillation from the privileged servo (training/algos/distill/trainer.py): which network each loss
trains, the pose <-> z map, the posterior NLL, a smoke run exported and served end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.algos.distill.trainer import (
    DistillTrainer,
    bc_loss,
    nll_loss,
    pose_to_z,
    z_to_pose,
)
from training.algos.pearl.networks import PearlNets
from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[4]
OBS, ACT, L = 18, 4, 3
D = 2 * OBS + ACT + 1


def _nets() -> PearlNets:
    torch.manual_seed(0)
    return PearlNets(OBS, ACT, L, [32], [32, 32])


def _grads(module: torch.nn.Module) -> list[float]:
    return [float(p.grad.abs().sum()) if p.grad is not None else 0.0 for p in module.parameters()]


@given(x=st.floats(-0.01, 0.01), y=st.floats(-0.01, 0.01), yaw=st.floats(-0.3, 0.3))
@settings(max_examples=50, deadline=None)
def test_pose_z_round_trip(x: float, y: float, yaw: float) -> None:
    pose = np.array([x, y, yaw])
    np.testing.assert_allclose(z_to_pose(pose_to_z(pose)), pose, atol=1e-6, rtol=1e-5)


def test_hard_profile_error_is_about_unit_spread_in_z() -> None:
    z = pose_to_z(np.array([0.002, -0.002, np.radians(3.0)]))
    assert np.all(np.abs(z) > 1.5) and np.all(np.abs(z) < 1.8)


def test_bc_loss_trains_the_policy_only() -> None:
    nets = _nets()
    obs, z, target = torch.randn(16, OBS), torch.randn(16, L), torch.rand(16, ACT) * 2 - 1
    bc_loss(nets, obs, z, target, 0.1).backward()
    assert sum(_grads(nets.policy)) > 0
    for other in (nets.encoder, nets.qf1, nets.qf2):
        assert sum(_grads(other)) == 0


def test_nll_loss_trains_the_encoder_only() -> None:
    nets = _nets()
    ctx, mask, z = torch.randn(4, 10, D), torch.ones(4, 10), torch.randn(4, L)
    nll_loss(nets, ctx, mask, z).backward()
    assert sum(_grads(nets.encoder)) > 0
    for other in (nets.policy, nets.qf1, nets.qf2):
        assert sum(_grads(other)) == 0


def test_nll_of_an_empty_context_is_the_prior_and_masked_rows_do_not_count() -> None:
    nets = _nets()
    ctx, z = torch.randn(3, 6, D), torch.randn(3, L)
    prior = float(0.5 * z.pow(2).sum(-1).mean())  # -log N(z; 0, I) without the constant
    with torch.no_grad():
        got = float(nll_loss(nets, ctx, torch.zeros(3, 6), z))
    assert got == pytest.approx(prior, rel=1e-5)
    half = torch.ones(3, 6)
    half[:, 3:] = 0
    changed = ctx.clone()
    changed[:, 3:] = 100.0  # rows masked out: their content is irrelevant
    with torch.no_grad():
        assert float(nll_loss(nets, ctx, half, z)) == pytest.approx(
            float(nll_loss(nets, changed, half, z)), rel=1e-6
        )


def test_nll_training_reads_the_pose_out_of_a_marked_row() -> None:
    """The mechanism the method relies on: rows flagged by the reward give their s' pose."""
    torch.manual_seed(1)
    nets = _nets()
    opt = torch.optim.Adam(nets.encoder.parameters(), lr=3e-3)

    def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx = torch.randn(32, 8, D)
        z = torch.randn(32, L)
        ctx[:, :, OBS + ACT] = -1.0  # ordinary rows
        ctx[:, -1, OBS + ACT] = 10.0  # the success row: s' (x, y, yaw) is the pose
        ctx[:, -1, OBS + ACT + 1 + 0] = z[:, 0]
        ctx[:, -1, OBS + ACT + 1 + 1] = z[:, 1]
        ctx[:, -1, OBS + ACT + 1 + 5] = z[:, 2]
        return ctx, torch.ones(32, 8), z

    first = float(nll_loss(nets, *batch()).detach())
    for _ in range(600):
        loss = nll_loss(nets, *batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    ctx, mask, z = batch()
    with torch.no_grad():
        assert float(nll_loss(nets, ctx, mask, z)) < first - 2.0
    from training.algos.pearl.losses import product_of_gaussians

    with torch.no_grad():
        mu, _ = product_of_gaussians(*nets.encoder(ctx), prior=True, mask=mask)
    assert float((mu - z).abs().mean()) < 0.3  # prior mean alone: ~0.8


def _smoke_config(**over: object) -> TrainConfig:
    base: dict[str, object] = {
        "env": "insertion",
        "profile": "known",
        "sim_overrides": {"tasks": {"n_train_per_plug": 1, "n_test_per_plug": 1}},
        "train_plugs": ["Hex-peg", "Oct-peg"],
        "sac": {"hidden": [32, 32]},
        "encoder": {"latent_dim": 3, "hidden": [32]},
        "distill": {
            "rounds": 2,
            "episodes_per_round": 4,
            "explore_episodes_per_round": 2,
            "policy_updates": 150,
            "encoder_updates": 50,
            "batch_size": 32,
            "encoder_episodes": 4,
        },
        "eval": {"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 1},
    }
    base.update(over)
    return TrainConfig.model_validate(base)


@pytest.mark.slow
def test_smoke_run_exports_and_is_served_through_onnxruntime(tmp_path: Path) -> None:
    from training.algos.pearl.agent import TorchAgent
    from training.algos.pearl.networks import make_nets
    from training.common.agents import OnnxAgent
    from training.common.checkpoint import load_checkpoint
    from training.registry import export_run

    run = tmp_path / "run"
    trainer = DistillTrainer(_smoke_config(), run)
    report = trainer.run()
    assert report is not None and report.tasks
    hist = json.loads((run / "history.json").read_text())
    assert [h["iteration"] for h in hist] == [0, 1]
    assert hist[0]["teacher_success"] == 1.0  # the privileged servo inserts when told
    assert hist[1]["updates"] == 300
    assert (run / "curves.png").stat().st_size > 0
    artifact, errors = export_run(run, tmp_path / "art")
    assert max(errors.values()) <= 1e-5
    assert artifact.manifest.latent_dim == 3
    state = load_checkpoint(run / "checkpoint.pt")
    nets = make_nets(18, 4, TrainConfig.model_validate(state["config"]))
    nets.load_state_dict(state["nets"])
    torch_agent, onnx_agent = TorchAgent(nets, True, True), OnnxAgent(tmp_path / "art")
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((5, D)).astype(np.float32)
    assert torch_agent.encoder is not None and onnx_agent.encoder is not None
    assert state["algorithm"] == "distill"
    pairs = zip(torch_agent.encoder.factors(rows), onnx_agent.encoder.factors(rows), strict=True)
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    obs, z = rng.standard_normal(OBS).astype(np.float32), np.zeros(L, np.float32)
    noise = np.zeros(ACT, np.float32)
    np.testing.assert_allclose(
        torch_agent.act(obs, z, noise), onnx_agent.act(obs, z, noise), atol=1e-5
    )


def test_distill_needs_a_three_dimensional_latent(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="latent_dim must be 3"):
        DistillTrainer(_smoke_config(encoder={"latent_dim": 5}), tmp_path)


def test_distill_needs_the_insertion_env(tmp_path: Path) -> None:
    cfg = TrainConfig.model_validate({"env": "point", "distill": {}})
    with pytest.raises(ValueError, match="only env 'insertion'"):
        DistillTrainer(cfg, tmp_path)


def test_train_cli_refuses_resume_of_a_distill_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.cli import train_main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    rc = train_main(
        [
            str(ROOT / "configs/train/distill_insertion.yaml"),
            "--run-dir",
            str(tmp_path / "run"),
            "--resume",
        ]
    )
    assert rc == 2
    assert "does not resume" in capsys.readouterr().err


def test_teacher_config_reaches_the_servo() -> None:
    """`distill.teacher` sets the servo's TeleopParams (the committed config: the arm's
    20 mm/s); unset fields keep sim.teleop's defaults; an unknown or non-positive field is
    refused by the config."""
    from pydantic import ValidationError

    from sim.insertion import InsertionEnv
    from sim.tasks import InsertionTask
    from sim.teleop import TeleopParams
    from training.algos.distill.trainer import teacher_for
    from zshot.config import load_config

    cfg = load_config(TrainConfig, ROOT / "configs/train/distill_insertion.yaml", [])
    assert cfg.distill is not None
    params = cfg.distill.teacher.params()
    assert params["approach_speed"] == 20.0
    env = InsertionEnv()
    try:
        task = InsertionTask(plug="UK-AC-plug")
        fast = teacher_for(env, task, np.zeros(3), params)
        default = teacher_for(env, task, np.zeros(3))
    finally:
        env.close()
    assert fast.params.approach_speed == 20.0 and fast.params.xy_gain == TeleopParams().xy_gain
    assert default.params == TeleopParams()
    obs = np.zeros(18, np.float32)  # over the socket, no contact: descend
    assert fast.act(obs)[2] < default.act(obs)[2] < 0
    with pytest.raises(ValidationError, match="descent_speed"):
        TrainConfig.model_validate(
            {"env": "insertion", "distill": {"teacher": {"descent_speed": 1}}}
        )
    with pytest.raises(ValidationError, match="approach_speed"):
        TrainConfig.model_validate(
            {"env": "insertion", "distill": {"teacher": {"approach_speed": 0}}}
        )
