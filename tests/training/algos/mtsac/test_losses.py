"""MT-SAC's losses: shapes, per-task terms, which networks each loss trains, terminal
masking of the Bellman target, and PCGrad applied through its update."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.training.conftest import (
    assert_grads_of,
    assert_terminals_back_up_the_reward,
    multitask_batch,
    record_step_grads,
    tiny_config,
)
from training.algos.mtsac.losses import MTBatch, MTSACOptimizers, mtsac_losses, mtsac_update
from training.algos.mtsac.networks import make_nets
from training.common.pcgrad import PCGrad

OBS, ACT, TASKS = 4, 2, 5


def _cfg(**sac: object) -> object:
    return tiny_config(algo="mtsac", num_train_tasks=TASKS, sac={"hidden": [16], **sac})


def _batch(T: int = 3, B: int = 6, seed: int = 0) -> MTBatch:
    return multitask_batch(OBS, ACT, T, B, seed)  # type: ignore[no-any-return]


def test_the_config_needs_the_one_hot_size() -> None:
    with pytest.raises(ValueError, match="algo mtsac needs num_train_tasks"):
        tiny_config(algo="mtsac", num_train_tasks=None)


@pytest.mark.parametrize("auto_entropy", [True, False])
def test_per_task_terms_sum_to_the_scalar_losses(auto_entropy: bool) -> None:
    cfg = _cfg(auto_entropy=auto_entropy)
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    torch.manual_seed(1)
    scalar = mtsac_losses(_batch(), nets, cfg)
    torch.manual_seed(1)
    per = mtsac_losses(_batch(), nets, cfg, per_task=True)
    for name in ("qf_loss", "policy_loss", "alpha_loss"):
        s, p = getattr(scalar, name), getattr(per, name)
        assert s.shape == () and p.shape == (3,), name
        torch.testing.assert_close(p.sum(), s, msg=name)
        assert torch.isfinite(p).all()


def test_the_descriptor_is_each_rows_one_hot_task_id() -> None:
    """Q of a row depends on its task's id only through the one-hot: permuting the batch's
    task ids changes Q, and Q1 sees exactly one_hot(task) beside (s, a)."""
    cfg = _cfg()
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    batch = _batch()
    seen: list[torch.Tensor] = []
    h = nets.qf1.register_forward_hook(lambda m, args, out: seen.append(args[2]))
    mtsac_losses(batch, nets, cfg)
    h.remove()
    d = seen[0].reshape(3, 6, TASKS)
    for t, task in enumerate(batch.tasks.tolist()):
        want = torch.zeros(TASKS)
        want[task] = 1.0
        assert torch.equal(d[t], want.expand(6, TASKS))


@pytest.mark.parametrize("auto_entropy", [True, False])
@pytest.mark.parametrize("pcgrad", [False, True])
def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone(
    auto_entropy: bool, pcgrad: bool
) -> None:
    """Through `mtsac_update`: the critic steps with d qf_loss / d Q only, the policy with
    d policy_loss / d policy only (its Q terms never reach Q), alpha with its own loss;
    with PCGrad each steps with the projected sum of its per-task gradients instead."""
    cfg = _cfg(auto_entropy=auto_entropy)
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    ref = copy.deepcopy(nets)
    opts = MTSACOptimizers.create(nets, cfg)
    seen = record_step_grads({"critic": opts.critic, "policy": opts.policy, "alpha": opts.alpha})
    torch.manual_seed(1)
    mtsac_update(_batch(), nets, opts, cfg, PCGrad(seed=3) if pcgrad else None)
    torch.manual_seed(1)
    losses = mtsac_losses(_batch(), ref, cfg, per_task=pcgrad)
    want = {
        "critic": (losses.qf_loss, ref.critic_parameters()),
        "policy": (losses.policy_loss, list(ref.policy.parameters())),
    }
    if auto_entropy:
        want["alpha"] = (losses.alpha_loss, [ref.log_alpha])
    assert sorted(seen) == sorted(want)
    for name, (loss, params) in want.items():
        if pcgrad:
            expected = PCGrad(seed=3)
            # the same generator draws, learner by learner in the step's order
            for earlier in [n for n in ("critic", "policy", "alpha") if n in want]:
                g = expected(earlier, *want[earlier])
                if earlier == name:
                    break
            assert g is not None
            for got, w in zip(seen[name], g, strict=True):
                torch.testing.assert_close(got, w, msg=name)
        else:
            assert_grads_of(seen[name], loss, params, name)


def test_the_losses_train_only_their_networks() -> None:
    cfg = _cfg(auto_entropy=True)
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    losses = mtsac_losses(_batch(), nets, cfg)
    groups = {
        "policy": list(nets.policy.parameters()),
        "q": nets.critic_parameters(),
        "targets": [*nets.target_qf1.parameters(), *nets.target_qf2.parameters()],
        "alpha": [nets.log_alpha],
    }

    def reached(loss: torch.Tensor) -> set[str]:
        out = set()
        for name, params in groups.items():
            trainable = [p for p in params if p.requires_grad]
            if not trainable:
                continue
            gs = torch.autograd.grad(loss, trainable, retain_graph=True, allow_unused=True)
            if any(g is not None and g.abs().sum() > 0 for g in gs):
                out.add(name)
        return out

    assert reached(losses.qf_loss) == {"q"}  # the target is computed without grad
    assert reached(losses.policy_loss) == {"policy", "q"}  # q only through the graph
    assert reached(losses.alpha_loss) == {"alpha"}


def test_terminal_transitions_back_up_the_reward_alone() -> None:
    cfg = _cfg(reward_scale=3.0, gamma=0.99)
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    assert_terminals_back_up_the_reward(
        nets,
        _batch(),
        cfg.sac.reward_scale,
        lambda b: (mtsac_losses(b, nets, cfg).qf_loss, torch.zeros(())),
    )
