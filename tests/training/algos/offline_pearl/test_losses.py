"""Offline PEARL (AWAC + PEARL encoder): loss smoke tests, gradient paths, trainer."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.conftest import (
    assert_grads_of,
    assert_terminals_back_up_the_reward,
    record_step_grads,
)
from training.algos.offline_pearl.losses import (
    TaskInference,
    offline_pearl_losses,
    offline_update,
    tanh_gaussian_log_prob,
)
from training.algos.offline_pearl.networks import make_nets
from training.algos.offline_pearl.trainer import OfflineTrainer
from training.algos.pearl.losses import PearlOptimizers, critic_parameters
from training.common.batches import MetaBatch
from training.config import TrainConfig

OBS, ACT, L = 3, 2, 2


def cfg_for(**over: object) -> TrainConfig:
    base: dict[str, object] = {
        "env": "point",
        "sac": {"hidden": [16, 16]},
        "encoder": {"hidden": [16], "latent_dim": L},
    }
    base.update(over)
    return TrainConfig.model_validate(base)


def batch(T: int = 3, B: int = 8, C: int = 5, seed: int = 0) -> MetaBatch:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    act = torch.tanh(r(T, B, ACT))
    dones = (torch.rand(T, B, 1, generator=g) < 0.1).float()
    return MetaBatch(r(T, B, OBS), act, r(T, B, 1), r(T, B, OBS), dones, r(T, C, 2 * OBS + ACT + 1))


def test_losses_are_finite_scalars_and_weights_are_clipped() -> None:
    torch.manual_seed(0)
    cfg = cfg_for(offline={"max_weight": 3.0, "awac_lambda": 1e-3})
    nets = make_nets(OBS, ACT, cfg)
    out = offline_pearl_losses(batch(), nets, cfg)
    for name in ("qf_loss", "policy_loss", "kl_div", "advantage", "weight"):
        v = getattr(out, name)
        assert v.shape == () and torch.isfinite(v), name
    # tiny lambda -> exp(A / lambda) would overflow; the clip holds it at max_weight
    assert 0.0 < float(out.weight) <= 3.0 + 1e-6
    assert out.z_mean.shape == (3, L) and (out.z_var > 0).all()


def _grads(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_gradient_paths() -> None:
    """Actor loss trains only the policy; critic loss trains Q and the encoder, not the policy."""
    torch.manual_seed(0)
    cfg = cfg_for()
    nets = make_nets(OBS, ACT, cfg)
    out = offline_pearl_losses(batch(), nets, cfg)
    out.policy_loss.backward(retain_graph=True)
    assert _grads(nets.policy)
    assert not _grads(nets.qf1) and not _grads(nets.qf2) and not _grads(nets.encoder)
    nets.zero_grad(set_to_none=True)
    out.qf_loss.backward()
    assert _grads(nets.qf1) and _grads(nets.qf2) and _grads(nets.encoder)
    assert not _grads(nets.policy)
    assert not _grads(nets.target_qf1)


def test_without_latent_the_encoder_is_untouched() -> None:
    torch.manual_seed(0)
    cfg = cfg_for(use_latent=False)
    nets = make_nets(OBS, ACT, cfg)
    before = [p.clone() for p in nets.encoder.parameters()]
    offline_update(batch(), nets, PearlOptimizers.create(nets, cfg), cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, nets.encoder.parameters(), strict=True))
    out = offline_pearl_losses(batch(), nets, cfg)
    assert float(out.kl_div) == 0.0 and torch.all(out.z_mean == 0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_log_prob_of_given_actions_matches_the_samplers(seed: int) -> None:
    """log pi(a|s,z) of an action equals the log-prob `sample` reports for it (away from +-1)."""
    torch.manual_seed(seed)
    nets = make_nets(OBS, ACT, cfg_for())
    obs, z = torch.randn(16, OBS), torch.randn(16, L)
    noise = torch.randn(16, ACT).clamp(-2, 2)
    a, logp = nets.policy.sample(obs, z, noise)
    ok = (a.abs() < 0.999).all(-1)  # atanh is ill-conditioned at the box edge
    mine = tanh_gaussian_log_prob(nets.policy, obs, z, a)
    torch.testing.assert_close(mine[ok], logp[ok], atol=2e-3, rtol=1e-3)


def test_update_fits_a_fixed_batch() -> None:
    """Repeated updates on one batch reduce the critic loss and raise the data's likelihood."""
    torch.manual_seed(0)
    cfg = cfg_for(sac={"hidden": [32, 32], "gamma": 0.0, "qf_lr": 3e-3, "policy_lr": 3e-3})
    nets = make_nets(OBS, ACT, cfg)
    opt = PearlOptimizers.create(nets, cfg)
    b = batch(seed=1)
    first = offline_pearl_losses(b, nets, cfg)
    for _ in range(200):
        logs = offline_update(b, nets, opt, cfg)
    last = offline_pearl_losses(b, nets, cfg)
    assert float(last.qf_loss.detach()) < 0.5 * float(first.qf_loss.detach())
    assert float(last.policy_loss.detach()) < float(first.policy_loss.detach())
    assert set(logs) >= {"loss/qf", "loss/policy", "loss/kl_div", "awac/weight"}


@pytest.fixture(scope="module")
def point_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.collect import collect_dataset
    from training.config import CollectConfig

    out = tmp_path_factory.mktemp("offline") / "data"
    cfg = CollectConfig.model_validate(
        {
            "env": "point",
            "num_tasks": 4,
            "episodes_per_task": 4,
            "mix": {"scripted": 1, "random": 1, "policy": 0},
        }
    )
    collect_dataset(cfg, out, progress=False)
    return out


def offline_cfg(data: Path, **over: object) -> TrainConfig:
    base: dict[str, object] = {
        "env": "point",
        "meta_batch": 3,
        "batch_size": 16,
        "context_size": 8,
        "sac": {"hidden": [16, 16]},
        "encoder": {"hidden": [16], "latent_dim": L},
        "offline": {"dataset": str(data), "updates": 30, "log_every": 10},
        "eval": {"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 2},
        "checkpoint_every": 1,
    }
    base.update(over)
    return TrainConfig.model_validate(base)


def test_trainer_writes_a_run_that_export_and_eval_read(point_data: Path, tmp_path: Path) -> None:
    from training.cli import eval_main

    run = tmp_path / "run"
    report = OfflineTrainer(offline_cfg(point_data), run).run(progress=False)
    assert report is not None and sum(p.episodes for p in report.tasks) == 2
    hist = json.loads((run / "history.json").read_text())
    assert [h["updates"] for h in hist] == [10, 20, 30]
    # `zshot eval` reads the offline checkpoint like an online one
    assert (
        eval_main(
            [str(run), "--episodes", "1", "--explore", "0", "--json", str(tmp_path / "e.json")]
        )
        == 0
    )
    # resume continues the count
    t = OfflineTrainer(
        offline_cfg(
            point_data, offline={"dataset": str(point_data), "updates": 40, "log_every": 10}
        ),
        run,
    )
    t.load_checkpoint()
    assert t.updates == 30
    t.run(progress=False)
    assert t.updates == 40


def test_trainer_errors_name_the_problem(point_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="offline.dataset"):
        OfflineTrainer(cfg_for(), tmp_path / "r")
    from training.common.datasets import DatasetError

    with pytest.raises(DatasetError, match="no such recording"):
        OfflineTrainer(offline_cfg(tmp_path / "nothing"), tmp_path / "r")


def test_train_cli_dispatches_offline(point_data: Path, tmp_path: Path) -> None:
    from training.cli import train_main

    cfg_file = tmp_path / "off.yaml"
    import yaml

    cfg_file.write_text(
        yaml.safe_dump(
            offline_cfg(
                point_data, eval={"eval_episodes": 1, "explore_episodes": 0, "max_tasks": 1}
            ).model_dump(mode="json")
        )
    )
    assert train_main([str(cfg_file), "--run-dir", str(tmp_path / "r"), "--no-progress"]) == 0
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert state["algorithm"] == "offline_pearl" and state["updates"] == 30
    assert np.isfinite(json.loads((tmp_path / "r" / "eval.json").read_text())["success_rate"])


def test_task_inference_trains_the_encoder_to_name_the_task(
    point_data: Path, tmp_path: Path
) -> None:
    """offline.task_targets: the head's error on the hidden goal falls, the loss reaches the
    encoder (not Q or the policy), and the head travels in the checkpoint for a resume."""
    from training.algos.offline_pearl.losses import TaskInference, sample_offline_batch

    cfg = offline_cfg(
        point_data,
        offline={
            "dataset": str(point_data),
            "updates": 200,
            "log_every": 50,
            "task_targets": ["goal_x", "goal_y"],
        },
        sac={"hidden": [16, 16], "qf_lr": 3e-3},
        eval={"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 1},
    )
    trainer = OfflineTrainer(cfg, tmp_path / "ti")
    assert trainer.task is not None and trainer.task.targets.shape == (4, 2)
    # standardised over the dataset's tasks
    torch.testing.assert_close(trainer.task.targets.mean(0), torch.zeros(2), atol=1e-5, rtol=0)

    # gradient paths of the task loss alone: encoder and head, nothing else
    tasks = np.arange(3)
    b = sample_offline_batch(trainer.dataset, cfg, np.random.default_rng(0), tasks)
    out = offline_pearl_losses(
        b, trainer.nets, cfg, trainer.task.head, trainer.task.targets_for(tasks)
    )
    out.task_loss.backward()
    assert _grads(trainer.nets.encoder) and _grads(trainer.task.head)
    assert not _grads(trainer.nets.qf1) and not _grads(trainer.nets.policy)
    trainer.nets.zero_grad(set_to_none=True)

    trainer.run(progress=False)
    hist = json.loads((tmp_path / "ti" / "history.json").read_text())
    assert hist[-1]["loss/task"] < 0.5 * hist[0]["loss/task"]
    again = OfflineTrainer(cfg, tmp_path / "ti")
    again.load_checkpoint()
    assert isinstance(again.task, TaskInference)
    for p, q in zip(again.task.head.parameters(), trainer.task.head.parameters(), strict=True):
        assert torch.equal(p, q)


def test_task_inference_errors_name_the_problem(point_data: Path, tmp_path: Path) -> None:
    bad = {"dataset": str(point_data), "updates": 1, "task_targets": ["dx"]}
    with pytest.raises(ValueError, match=r"no finite number under 'dx'.*goal_x"):
        OfflineTrainer(offline_cfg(point_data, offline=bad), tmp_path / "a")
    off = {"dataset": str(point_data), "updates": 1, "task_targets": ["goal_x"]}
    with pytest.raises(ValueError, match="needs the latent"):
        OfflineTrainer(offline_cfg(point_data, offline=off, use_latent=False), tmp_path / "b")
    # a run trained without targets cannot be resumed with them
    plain = OfflineTrainer(offline_cfg(point_data), tmp_path / "c")
    plain.save_checkpoint()
    with pytest.raises(ValueError, match="without offline.task_targets"):
        OfflineTrainer(offline_cfg(point_data, offline=off), tmp_path / "c").load_checkpoint()


@pytest.mark.slow  # an insertion dataset and the ONNX exporter: ~15 s
def test_belief_features_follow_the_head_and_reach_the_exported_policy(tmp_path: Path) -> None:
    """offline.task_features: after every update the networks' decoder is the task head,
    a resumed run restores it, and the exported policy computes the same actions."""
    from training.algos.pearl.agent import TorchAgent
    from training.collect import collect_dataset
    from training.common.agents import OnnxAgent
    from training.config import CollectConfig
    from training.registry import export_run

    sim = {"tasks": {"n_train_per_plug": 1, "n_test_per_plug": 1}}
    data = tmp_path / "ins"
    collect_dataset(
        CollectConfig.model_validate(
            {
                "num_tasks": 3,
                "episodes_per_task": 1,
                "max_episode_steps": 10,
                "sim_overrides": sim,
                "mix": {"teleop": 1, "scripted": 0, "random": 0, "policy": 0},
            }
        ),
        data,
        progress=False,
    )
    deg = 180.0 / np.pi
    cfg = TrainConfig.model_validate(
        {
            "meta_batch": 3,
            "batch_size": 8,
            "context_size": 4,
            "max_episode_steps": 10,
            "sim_overrides": sim,
            "sac": {"hidden": [16, 16]},
            "encoder": {"hidden": [16], "latent_dim": 3},
            "offline": {
                "dataset": str(data),
                "updates": 5,
                "log_every": 5,
                "task_targets": ["dx", "dy", "dyaw"],
                "task_features": {
                    "dyaw": {"obs": "yaw_deg", "scale": deg},
                    "dx": {"obs": "x_mm", "scale": 1000.0},
                },
            },
            "eval": {"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 1},
            "checkpoint_every": 1,
        }
    )
    trainer = OfflineTrainer(cfg, tmp_path / "run")
    trainer.run(progress=False)
    dec, task = trainer.nets.decoder, trainer.task
    assert dec is not None and task is not None
    # feature order is the config's (dyaw, dx), rows of the head picked by key
    torch.testing.assert_close(dec.weight, task.head.weight.detach()[[2, 0]])
    torch.testing.assert_close(dec.t_std, torch.as_tensor(task.std[[2, 0]], dtype=torch.float32))
    again = OfflineTrainer(cfg, tmp_path / "run")
    again.load_checkpoint()
    assert again.nets.decoder is not None
    torch.testing.assert_close(again.nets.decoder.weight, dec.weight)

    export_run(tmp_path / "run", tmp_path / "art")
    onnx_agent = OnnxAgent(tmp_path / "art")
    torch_agent = TorchAgent(trainer.nets, True, True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs = rng.normal(size=18).astype(np.float32) * 5
        z, noise = rng.normal(size=3).astype(np.float32), np.zeros(4, np.float32)
        np.testing.assert_allclose(
            onnx_agent.act(obs, z, noise), torch_agent.act(obs, z, noise), atol=1e-5
        )


# --- offline.critic: iql (Implicit Q-Learning) ---


def _expectile(x: np.ndarray, tau: float) -> float:
    """The tau-expectile by bisection on its first-order condition
    tau * sum((x - c)+) = (1 - tau) * sum((c - x)+)."""
    lo, hi = float(x.min()), float(x.max())
    for _ in range(200):
        c = 0.5 * (lo + hi)
        g = tau * np.clip(x - c, 0, None).sum() - (1 - tau) * np.clip(c - x, 0, None).sum()
        lo, hi = (c, hi) if g > 0 else (lo, c)
    return 0.5 * (lo + hi)


@settings(max_examples=30, deadline=None)
@given(
    xs=st.lists(st.floats(-50, 50, allow_nan=False), min_size=2, max_size=40),
    tau=st.floats(0.05, 0.95),
)
def test_expectile_loss_is_minimised_by_the_expectile(xs: list[float], tau: float) -> None:
    """A constant fitted by the loss is the tau-expectile of the data (the mean at 0.5), and
    moving it either way raises the loss."""
    from training.algos.offline_pearl.losses import expectile_loss

    x = np.asarray(xs, np.float64)
    c = _expectile(x, tau)
    xt = torch.as_tensor(x)
    at = float(expectile_loss(xt - c, tau))
    for step in (1e-3, -1e-3, 0.5, -0.5):
        assert float(expectile_loss(xt - (c + step), tau)) >= at - 1e-9
    if abs(tau - 0.5) < 1e-12:
        assert abs(c - x.mean()) < 1e-6


def test_expectile_grows_with_tau() -> None:
    x = np.random.default_rng(0).normal(size=200)
    cs = [_expectile(x, t) for t in (0.5, 0.7, 0.9)]
    assert abs(cs[0] - x.mean()) < 1e-9 and cs[0] < cs[1] < cs[2] < x.max()


def test_iql_has_a_value_network_and_awac_does_not() -> None:
    torch.manual_seed(0)
    iql, awac = cfg_for(offline={"critic": "iql"}), cfg_for()
    assert make_nets(OBS, ACT, iql).vf is not None
    nets = make_nets(OBS, ACT, awac)
    assert nets.vf is None and not any(k.startswith("vf.") for k in nets.state_dict())
    with pytest.raises(ValueError, match="value function"):
        offline_pearl_losses(batch(), nets, iql)  # awac networks under an iql config
    with pytest.raises(ValueError, match="expectile"):
        cfg_for(offline={"critic": "iql", "expectile": 0.5})


def test_iql_gradient_paths() -> None:
    """iql: the critic loss trains Q, V and the encoder; V's loss never reaches Q or the
    encoder (z and the Q targets are detached there); the actor loss only the policy."""
    torch.manual_seed(0)
    cfg = cfg_for(offline={"critic": "iql"})
    nets = make_nets(OBS, ACT, cfg)
    assert nets.vf is not None
    out = offline_pearl_losses(batch(), nets, cfg)
    assert float(out.v_loss) > 0
    out.policy_loss.backward(retain_graph=True)
    assert _grads(nets.policy) and not _grads(nets.vf) and not _grads(nets.qf1)
    nets.zero_grad(set_to_none=True)
    out.qf_loss.backward(retain_graph=True)
    assert _grads(nets.qf1) and _grads(nets.qf2) and _grads(nets.encoder) and _grads(nets.vf)
    assert not _grads(nets.policy) and not _grads(nets.target_qf1)
    # V's part alone: recompute and backpropagate only the expectile term
    nets.zero_grad(set_to_none=True)
    from training.algos.offline_pearl.losses import expectile_loss

    b = batch()
    z = torch.zeros(3 * 8, L)
    obs, act = b.obs.reshape(24, -1), b.actions.reshape(24, -1)
    q = torch.min(nets.target_qf1(obs, act, z), nets.target_qf2(obs, act, z)).detach()
    expectile_loss(q - nets.vf(obs, z), 0.7).backward()
    assert _grads(nets.vf) and not _grads(nets.qf1) and not _grads(nets.encoder)


def test_iql_update_fits_v_to_the_expectile_of_the_data() -> None:
    """With gamma 0 and a single state, V converges to the tau-expectile of the rewards the
    dataset actions earn (Q = r), above their mean for tau 0.9."""
    torch.manual_seed(0)
    cfg = cfg_for(
        offline={"critic": "iql", "expectile": 0.9},
        sac={
            "hidden": [32, 32],
            "gamma": 0.0,
            "reward_scale": 1.0,
            "qf_lr": 3e-3,
            "policy_lr": 1e-3,
            "tau": 0.05,
        },
        use_latent=False,
    )
    nets = make_nets(OBS, ACT, cfg)
    assert nets.vf is not None
    opt = PearlOptimizers.create(nets, cfg)
    g = torch.Generator().manual_seed(3)
    T, B = 1, 64
    obs = torch.zeros(T, B, OBS)  # one state
    act = torch.rand(T, B, ACT, generator=g) * 2 - 1
    rew = act[..., :1]  # reward = first action component: uniform on [-1, 1]
    b = MetaBatch(obs, act, rew, obs, torch.ones(T, B, 1), torch.zeros(T, 4, 2 * OBS + ACT + 1))
    for _ in range(800):
        logs = offline_update(b, nets, opt, cfg)
    v = float(nets.vf(obs[0, :1], torch.zeros(1, L)).detach())
    want = _expectile(rew.flatten().numpy().astype(np.float64), 0.9)
    assert abs(v - want) < 0.1, (v, want)
    assert v > float(rew.mean()) + 0.2
    assert "loss/v" in logs and logs["loss/v"] >= 0


def test_iql_trainer_runs_and_resumes(point_data: Path, tmp_path: Path) -> None:
    """An iql run checkpoints V (and its optimizer state with the critic's), resumes, and
    its checkpoint loads for fine-tuning and export like an awac one."""
    from training.registry import load_finetune_run as load_run

    run = tmp_path / "iql"
    cfg = offline_cfg(
        point_data,
        offline={"dataset": str(point_data), "updates": 20, "log_every": 10, "critic": "iql"},
    )
    OfflineTrainer(cfg, run).run(progress=False)
    nets, loaded = load_run(run)
    assert loaded.offline.critic == "iql" and nets.vf is not None
    t = OfflineTrainer(
        cfg.model_copy(update={"offline": cfg.offline.model_copy(update={"updates": 30})}), run
    )
    t.load_checkpoint()
    assert t.updates == 20
    before = [p.clone() for p in t.nets.vf.parameters()]  # type: ignore[union-attr]
    t.run(progress=False)
    assert t.updates == 30
    after = list(t.nets.vf.parameters())  # type: ignore[union-attr]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize(
    ("critic", "use_latent", "task_inference"),
    [("awac", True, False), ("iql", True, False), ("awac", True, True), ("iql", False, False)],
)
def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone(
    critic: str, use_latent: bool, task_inference: bool
) -> None:
    """Through `update`: the critic (Q, and V with iql) steps with the critic loss's gradient,
    the encoder with critic + kl_lambda * KL (+ weighted task loss), the task head with the
    weighted task loss, the policy with the actor loss; log alpha is never stepped offline."""
    offline: dict[str, object] = {"critic": critic, "task_loss_weight": 2.0}
    cfg = cfg_for(use_latent=use_latent, offline=offline)
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    ref = copy.deepcopy(nets)
    opts = PearlOptimizers.create(nets, cfg)
    named = {"encoder": opts.encoder, "critic": opts.critic, "policy": opts.policy}
    task, tasks, head, targets = None, None, None, None
    if task_inference:
        data = SimpleNamespace(
            tasks=[SimpleNamespace(label=f"t{i}", task={"g": 0.3 * i}) for i in range(4)]
        )
        task, tasks = TaskInference(data, ["g"], L, 1e-3), np.array([2, 0, 3])
        head, targets = copy.deepcopy(task.head), task.targets_for(tasks)
        named["task"] = task.optimizer
    seen = record_step_grads({**named, "alpha": opts.alpha})
    torch.manual_seed(1)
    offline_update(batch(), nets, opts, cfg, task, tasks)
    torch.manual_seed(1)  # the same z and action samples on the untouched copy
    losses = offline_pearl_losses(batch(), ref, cfg, head, targets)
    task_term = cfg.offline.task_loss_weight * losses.task_loss
    want = {
        "critic": (losses.qf_loss, critic_parameters(ref)),
        "policy": (losses.policy_loss, list(ref.policy.parameters())),
    }
    if use_latent:
        encoder_loss = losses.qf_loss + cfg.encoder.kl_lambda * losses.kl_div + task_term
        want["encoder"] = (encoder_loss, list(ref.encoder.parameters()))
    if head is not None:
        want["task"] = (task_term, list(head.parameters()))
    assert sorted(seen) == sorted(want)
    for name, (loss, params) in want.items():
        assert_grads_of(seen[name], loss, params, name)


@pytest.mark.parametrize("critic", ["awac", "iql"])
@pytest.mark.parametrize("use_latent", [True, False])
def test_terminal_transitions_back_up_the_reward_alone(critic: str, use_latent: bool) -> None:
    """dones = 1: the Bellman target (awac: through pi and the target Qs; iql: through V(s'))
    is reward_scale * r exactly, whatever s' and the bootstrap networks are; with dones = 0
    the same batch bootstraps (so the check has teeth)."""
    cfg = cfg_for(
        use_latent=use_latent,
        offline={"critic": critic},
        sac={"hidden": [16, 16], "reward_scale": 3.0, "gamma": 0.99},
    )
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)

    def critic_loss(b: MetaBatch) -> tuple[torch.Tensor, torch.Tensor]:
        losses = offline_pearl_losses(b, nets, cfg)
        return losses.qf_loss, losses.v_loss  # iql's qf_loss also holds V's expectile loss

    assert_terminals_back_up_the_reward(nets, batch(), cfg.sac.reward_scale, critic_loss)
