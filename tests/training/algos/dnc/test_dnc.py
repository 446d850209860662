"""Divide-and-Conquer (Ghosh et al. 2018): the contexts' rule, the exact Gaussian KL,
per-task terms, which networks each loss trains (the pairwise KL reaches every local
policy, the distillation the central one alone; through the update, with and without
PCGrad), terminal masking, distillation pulling the central policy to the local ones; end
to end a smoke run on the point tasks from the committed config (periodic distillation,
an independent distillation stream), its resume, the central policy's conditioned export
(onnxruntime against torch), the runtime serving it and `zshot eval` on it."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.conftest import (
    ROOT,
    assert_learners_stepped,
    assert_resume_is_bit_for_bit,
    assert_runtime_serves_one_hot_policy,
    assert_terminals_back_up_the_reward,
    multitask_batch,
    reached,
    record_step_grads,
    tiny_config,
)
from training.algos.dnc.losses import (
    DnCOptimizers,
    distill_loss,
    distill_step,
    dnc_learners,
    dnc_losses,
    dnc_update,
)
from training.algos.dnc.networks import DnCNets, context_of, make_nets
from training.algos.dnc.trainer import DnCTrainer
from training.common.local_policies import gaussian_kl
from training.common.multitask import MTBatch
from training.common.pcgrad import PCGrad
from training.config import TrainConfig
from training.registry import export_run, load_run
from zshot.config import load_config

OBS, ACT, TASKS = 4, 2, 5
CONFIG = ROOT / "configs" / "train" / "dnc_point.yaml"


def _cfg(**dnc: object) -> TrainConfig:
    return tiny_config(
        algo="dnc",
        num_train_tasks=TASKS,
        sac={"hidden": [16]},
        dnc={"local_hidden": [8], **dnc},
    )


def _nets(cfg: TrainConfig) -> DnCNets:
    torch.manual_seed(0)
    return make_nets(OBS, ACT, cfg)


def _batch(T: int = 3, B: int = 6, seed: int = 0) -> MTBatch:
    return multitask_batch(OBS, ACT, T, B, seed)  # type: ignore[no-any-return]


def test_the_config_needs_the_task_count_and_at_most_that_many_contexts() -> None:
    with pytest.raises(ValueError, match="algo dnc needs num_train_tasks"):
        tiny_config(algo="dnc", num_train_tasks=None)
    with pytest.raises(ValueError, match=r"dnc.contexts is 6: at most num_train_tasks \(5\)"):
        _cfg(contexts=6)


@given(st.integers(1, 40), st.data())
def test_contexts_are_contiguous_nearly_equal_blocks(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, n))
    ctx = context_of(n, k)
    assert ctx[0] == 0 and ctx[-1] == k - 1
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(ctx))  # contiguous
    sizes = np.bincount(ctx, minlength=k)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == n


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_gaussian_kl_matches_torch_and_is_zero_only_on_itself(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    m1, m2 = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    s1, s2 = torch.randn(7, 3, generator=g) * 0.5, torch.randn(7, 3, generator=g) * 0.5
    ours = gaussian_kl(m1, s1, m2, s2)
    normal = torch.distributions.Normal
    want = torch.distributions.kl_divergence(normal(m1, s1.exp()), normal(m2, s2.exp()))
    torch.testing.assert_close(ours, want.sum(-1, keepdim=True))
    assert torch.all(ours >= 0)
    torch.testing.assert_close(gaussian_kl(m1, s1, m1, s1), torch.zeros(7, 1))


def test_contexts_of_several_tasks_tell_their_local_policies_the_task() -> None:
    per_task, blocks = _nets(_cfg()), _nets(_cfg(contexts=2))
    assert per_task.num_policies == TASKS and per_task.local_z_dim == 0
    assert blocks.num_policies == 2 and blocks.local_z_dim == TASKS
    assert blocks.context(torch.arange(TASKS)).tolist() == [0, 0, 0, 1, 1]  # floor(2i / 5)


def test_per_task_terms_sum_to_the_scalar_losses() -> None:
    cfg = _cfg()
    nets = _nets(cfg)
    torch.manual_seed(1)
    scalar = dnc_losses(_batch(), nets, cfg)
    torch.manual_seed(1)
    per = dnc_losses(_batch(), nets, cfg, per_task=True)
    for name in ("qf_loss", "policy_loss"):
        s, p = getattr(scalar, name), getattr(per, name)
        assert s.shape == () and p.shape == (3,), name
        torch.testing.assert_close(p.sum(), s, msg=name)
    d_scalar, d_per = distill_loss(_batch(), nets), distill_loss(_batch(), nets, per_task=True)
    assert d_per.shape == (3,)
    torch.testing.assert_close(d_per.sum(), d_scalar)


@pytest.mark.parametrize("c_kl", [0.1, 0.0])
def test_the_losses_reach_what_the_paper_says(c_kl: float) -> None:
    """Q's loss: Q only; the local policies' loss: the batch's contexts' policies through
    the RL terms, and with the pairwise KL every other local policy too (the batch's
    tasks 4, 0, 2 are contexts 4, 0, 2; the KL pulls 1 and 3 towards them), never the
    central policy; distillation: the central policy alone."""
    cfg = _cfg(c_kl=c_kl)
    nets = _nets(cfg)
    losses = dnc_losses(_batch(), nets, cfg)
    groups = {
        "q": nets.critic_parameters(),
        "central": list(nets.shared.parameters()),
        **{f"pi{i}": list(nets.task_policy(i).parameters()) for i in range(TASKS)},
    }
    assert reached(losses.qf_loss, groups) == {"q"}
    want_policy = {"q", "pi0", "pi2", "pi4"} | ({"pi1", "pi3"} if c_kl else set())
    assert reached(losses.policy_loss, groups) == want_policy
    assert reached(distill_loss(_batch(), nets), groups) == {"central"}


def test_the_pairwise_kl_is_the_mean_over_the_other_local_policies() -> None:
    """By hand for one state of the batch: the mean over j != c of KL(pi_c || pi_j)."""
    cfg = _cfg()
    nets = _nets(cfg)
    batch = _batch(T=1, B=1)  # task 4: context 4
    losses = dnc_losses(batch, nets, cfg)
    obs, z = batch.obs[0], torch.zeros(1, 0)
    mean_c, log_std_c = nets.task_policy(4)(obs, z)
    with torch.no_grad():
        by_hand = sum(
            float(gaussian_kl(mean_c, log_std_c, *nets.task_policy(j)(obs, z))) for j in range(4)
        )
    assert math.isclose(float(losses.pairwise_kl), by_hand / 4, rel_tol=1e-5)
    one = _cfg(contexts=1)
    assert float(dnc_losses(batch, _nets(one), one).pairwise_kl) == 0.0


@pytest.mark.parametrize("pcgrad", [False, True])
def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone(pcgrad: bool) -> None:
    cfg = _cfg()
    nets = _nets(cfg)
    ref = copy.deepcopy(nets)
    opts = DnCOptimizers.create(nets, cfg)
    seen = record_step_grads({"critic": opts.critic, "policy": opts.policy})
    central = [p.detach().clone() for p in nets.shared.parameters()]
    torch.manual_seed(1)
    dnc_update(_batch(), nets, opts, cfg, PCGrad(seed=3) if pcgrad else None)
    for before, after in zip(central, nets.shared.parameters(), strict=True):
        assert torch.equal(before, after)  # the RL step never moves the central policy
    torch.manual_seed(1)
    losses = dnc_losses(_batch(), ref, cfg, per_task=pcgrad)
    learners = dnc_learners(ref, DnCOptimizers.create(ref, cfg), losses)
    assert_learners_stepped(seen, learners, 3 if pcgrad else None)


def test_terminal_transitions_back_up_the_reward_alone() -> None:
    cfg = _cfg()
    nets = _nets(cfg)
    assert_terminals_back_up_the_reward(
        nets,
        _batch(),
        cfg.sac.reward_scale,
        lambda b: (dnc_losses(b, nets, cfg).qf_loss, torch.zeros(())),
    )


def test_distillation_pulls_the_central_policy_to_the_local_policies() -> None:
    """Distillation steps on a fixed batch shrink KL(local || central) several-fold and
    leave every local policy and the critic untouched."""
    cfg = _cfg(distill_lr=1e-2)
    nets = _nets(cfg)
    opts = DnCOptimizers.create(nets, cfg)
    batch = _batch(B=32)
    others = [
        p.detach().clone() for p in [*nets.task_policy_parameters(), *nets.critic_parameters()]
    ]
    before = float(distill_loss(batch, nets).detach())
    for _ in range(200):
        distill_step(batch, nets, opts)
    assert float(distill_loss(batch, nets).detach()) < before / 5
    after = [*nets.task_policy_parameters(), *nets.critic_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(others, after, strict=True))


# ------------------------------------------------------------------ end to end


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 4 iterations x 30 updates, distilled every 2."""
    base = {
        "iterations": 4,
        "updates_per_iteration": 30,
        "eval_every": 0,
        "dnc.distill_every": 2,
        "dnc.distill_steps": 20,
    }
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("dnc") / "run"
    trainer = DnCTrainer(smoke_config(), run_dir)
    report = trainer.run(progress=False)
    assert report is not None and trainer.updates == 120 and len(report.tasks) == 10
    assert trainer.distillations == 2 and trainer.distilled_at == 120  # iterations 2 and 4
    return run_dir


@pytest.mark.slow
def test_a_smoke_run_logs_and_exports_the_central_policy(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 4 and history[-1]["counters/updates"] == 120
    assert [("loss/distill" in h) for h in history] == [False, True, False, True]
    assert all(np.isfinite(h["dnc/pairwise_kl"]) and h["dnc/pairwise_kl"] > 0 for h in history)
    assert all(h["loss/distill"] < h["loss/distill_first"] for h in history if "loss/distill" in h)
    assert (smoke_run / "eval-local-policies.json").is_file() and any((smoke_run / "tb").iterdir())
    run = load_run(smoke_run)
    assert run.algorithm.name == "dnc" and isinstance(run.nets, DnCNets)
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
def test_when_distillation_happens_never_changes_the_local_policies(tmp_path: Path) -> None:
    """The same run distilled every iteration and every 3: identical local policies and
    critic (distillation has its own generator and touches neither), different central."""
    cfg = smoke_config(iterations=3, updates_per_iteration=5)
    runs = []
    for every in (1, 3):
        t = DnCTrainer(
            cfg.model_copy(update={"dnc": cfg.dnc.model_copy(update={"distill_every": every})}),
            tmp_path / str(every),
        )
        t.run(progress=False)
        runs.append(t)
    a, b = (r.nets.state_dict() for r in runs)
    trained = {f"shared.{k}" for k, _ in runs[0].nets.shared.named_parameters()}
    for k in a:  # the central policy's weights differ; everything else (its normaliser too) not
        assert torch.equal(a[k], b[k]) != (k in trained), k
    assert (runs[0].distillations, runs[1].distillations) == (3, 1)


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(iterations=2, updates_per_iteration=5, checkpoint_every=1, pcgrad=True)
    cfg = cfg.model_copy(update={"dnc": cfg.dnc.model_copy(update={"distill_every": 1})})
    whole, second = assert_resume_is_bit_for_bit(DnCTrainer, cfg, tmp_path)
    assert second.distillations == whole.distillations == 2
