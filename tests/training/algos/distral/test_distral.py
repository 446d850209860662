"""Distral (Teh et al. 2017): per-task terms, which networks each loss trains (through the
update, with and without PCGrad), the KL's weight, terminal masking, distillation pulling
the shared policy towards the task policies; end to end a smoke run on the point tasks
from the committed config, its resume, the shared policy's conditioned export
(onnxruntime against torch), the runtime serving it and `zshot eval` on it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import (
    ROOT,
    assert_learners_stepped,
    assert_runtime_serves_one_hot_policy,
    assert_terminals_back_up_the_reward,
    multitask_batch,
    reached,
    record_step_grads,
    tiny_config,
)
from training.algos.distral.losses import (
    DistralOptimizers,
    distral_learners,
    distral_losses,
    distral_update,
)
from training.algos.distral.networks import DistralNets, make_nets
from training.algos.distral.trainer import DistralTrainer
from training.common.multitask import MTBatch
from training.common.pcgrad import PCGrad
from training.config import TrainConfig
from training.registry import export_run, load_run
from zshot.config import load_config

OBS, ACT, TASKS = 4, 2, 5
CONFIG = ROOT / "configs" / "train" / "distral_point.yaml"


def _cfg(**distral: object) -> TrainConfig:
    return tiny_config(
        algo="distral",
        num_train_tasks=TASKS,
        sac={"hidden": [16]},
        distral={"task_hidden": [8], **distral},
    )


def _nets(cfg: TrainConfig) -> DistralNets:
    torch.manual_seed(0)
    return make_nets(OBS, ACT, cfg)


def _batch(T: int = 3, B: int = 6, seed: int = 0) -> MTBatch:
    return multitask_batch(OBS, ACT, T, B, seed)  # type: ignore[no-any-return]


def test_the_config_needs_the_task_count() -> None:
    with pytest.raises(ValueError, match="algo distral needs num_train_tasks"):
        tiny_config(algo="distral", num_train_tasks=None)


def test_per_task_terms_sum_to_the_scalar_losses() -> None:
    cfg = _cfg()
    nets = _nets(cfg)
    torch.manual_seed(1)
    scalar = distral_losses(_batch(), nets, cfg)
    torch.manual_seed(1)
    per = distral_losses(_batch(), nets, cfg, per_task=True)
    for name in ("qf_loss", "policy_loss", "distill_loss"):
        s, p = getattr(scalar, name), getattr(per, name)
        assert s.shape == () and p.shape == (3,), name
        torch.testing.assert_close(p.sum(), s, msg=name)


@pytest.mark.parametrize("c_kl", [0.5, 0.0])
def test_the_losses_reach_what_the_paper_says(c_kl: float) -> None:
    """Q's loss: Q only; the task policies' loss: the batch's pi_i (not the others), Q and
    pi_0 only through the graph (pi_0 through the KL: none without it); distillation: pi_0
    alone."""
    cfg = _cfg(c_kl=c_kl)
    nets = _nets(cfg)
    losses = distral_losses(_batch(), nets, cfg)
    groups = {
        "q": nets.critic_parameters(),
        "shared": list(nets.shared.parameters()),
        **{f"pi{i}": list(nets.task_policy(i).parameters()) for i in range(TASKS)},
    }
    assert reached(losses.qf_loss, groups) == {"q"}
    want_policy = {"q", "pi0", "pi2", "pi4"} | ({"shared"} if c_kl else set())
    assert reached(losses.policy_loss, groups) == want_policy
    assert reached(losses.distill_loss, groups) == {"shared"}


@pytest.mark.parametrize("pcgrad", [False, True])
def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone(pcgrad: bool) -> None:
    cfg = _cfg()
    nets = _nets(cfg)
    ref = copy.deepcopy(nets)
    opts = DistralOptimizers.create(nets, cfg)
    seen = record_step_grads(
        {"critic": opts.critic, "policy": opts.policy, "distill": opts.distill}
    )
    torch.manual_seed(1)
    distral_update(_batch(), nets, opts, cfg, PCGrad(seed=3) if pcgrad else None)
    torch.manual_seed(1)
    losses = distral_losses(_batch(), ref, cfg, per_task=pcgrad)
    learners = distral_learners(ref, DistralOptimizers.create(ref, cfg), losses)
    assert_learners_stepped(seen, learners, 3 if pcgrad else None)


def test_terminal_transitions_back_up_the_reward_alone() -> None:
    cfg = _cfg()
    nets = _nets(cfg)
    assert_terminals_back_up_the_reward(
        nets,
        _batch(),
        cfg.sac.reward_scale,
        lambda b: (distral_losses(b, nets, cfg).qf_loss, torch.zeros(())),
    )


def test_distillation_pulls_the_shared_policy_to_the_task_policies() -> None:
    """Steps of the distill learner alone on a fixed batch raise pi_0's likelihood of the
    task policies' actions: the one-sample KL estimate falls."""
    cfg = _cfg()
    nets = _nets(cfg)
    opt = torch.optim.Adam(nets.shared.parameters(), lr=1e-2)
    batch = _batch(B=32)
    torch.manual_seed(5)
    before = float(distral_losses(batch, nets, cfg).distill_loss.detach())
    for _ in range(150):
        loss = distral_losses(batch, nets, cfg).distill_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(5)
    after = distral_losses(batch, nets, cfg)
    assert float(after.distill_loss.detach()) < before - 0.5


# ------------------------------------------------------------------ end to end


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 4 iterations x 30 updates."""
    base = {"iterations": 4, "updates_per_iteration": 30, "eval_every": 0}
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("distral") / "run"
    trainer = DistralTrainer(smoke_config(), run_dir)
    report = trainer.run(progress=False)
    assert report is not None and trainer.updates == 120 and len(report.tasks) == 10
    return run_dir


@pytest.mark.slow
def test_a_smoke_run_logs_and_exports_the_shared_policy(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 4 and history[-1]["counters/updates"] == 120
    assert all(np.isfinite(h["loss/distill"]) and np.isfinite(h["distral/kl"]) for h in history)
    assert (smoke_run / "eval-task-policies.json").is_file() and any((smoke_run / "tb").iterdir())
    run = load_run(smoke_run)
    assert run.algorithm.name == "distral" and isinstance(run.nets, DistralNets)
    nets = run.nets
    nets.eval()
    art, errors = export_run(smoke_run, tmp_path / "art")
    assert max(errors.values()) <= 1e-5
    assert (art.manifest.kind, art.manifest.descriptor_dim) == ("conditioned", 10)
    obs = np.array([0.3, 0.4], np.float32)
    assert_runtime_serves_one_hot_policy(tmp_path / "art", nets.shared, 10, (0, 7), obs)
    from zshot.cli import main as zshot

    out = tmp_path / "eval.json"
    rc = zshot(["eval", str(tmp_path / "art"), "--episodes", "1", "--json", str(out)])
    assert rc == 0 and len(json.loads(out.read_text())["tasks"]) == 10
    capsys.readouterr()


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(iterations=2, updates_per_iteration=5, checkpoint_every=1, pcgrad=True)
    whole = DistralTrainer(cfg, tmp_path / "whole")
    whole.run(progress=False)
    first = DistralTrainer(cfg.model_copy(update={"iterations": 1}), tmp_path / "half")
    first.run(progress=False)
    second = DistralTrainer(cfg, tmp_path / "half")
    second.load_checkpoint()
    second.run(progress=False)
    for (k, a), b in zip(
        whole.nets.state_dict().items(), second.nets.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
