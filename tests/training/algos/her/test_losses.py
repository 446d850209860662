"""HER's losses: which networks each loss trains, the goal as every network's task input,
terminal masking and the clipping of the Bellman target to the sparse reward's range."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.training.conftest import (
    assert_grads_of,
    assert_terminals_back_up_the_reward,
    record_step_grads,
    tiny_config,
)
from training.algos.her.losses import HEROptimizers, her_losses, her_update
from training.algos.her.networks import make_nets
from training.common.goals import GoalBatch

OBS, GOAL, ACT, B = 2, 2, 2, 12  # point_reach: flat obs = 2 + 2 * 2


def _cfg(**sac: object) -> object:
    return tiny_config(algo="her", env="point_reach", sac={"hidden": [16], **sac})


def _batch(seed: int = 0) -> GoalBatch:
    g = torch.Generator().manual_seed(seed)
    return GoalBatch(
        obs=torch.randn(B, OBS, generator=g),
        goals=torch.randn(B, GOAL, generator=g),
        actions=torch.tanh(torch.randn(B, ACT, generator=g)),
        rewards=(torch.rand(B, 1, generator=g) < 0.4).float(),
        next_obs=torch.randn(B, OBS, generator=g),
        dones=(torch.rand(B, 1, generator=g) < 0.3).float(),
        relabelled=torch.rand(B, generator=g) < 0.8,
    )


def _nets(cfg: object) -> object:
    torch.manual_seed(0)
    return make_nets(OBS + 2 * GOAL, ACT, cfg)


def test_the_networks_split_the_flat_observation() -> None:
    nets = _nets(_cfg())
    assert (nets.obs_dim, nets.goal_dim, nets.act_dim) == (OBS, GOAL, ACT)


@pytest.mark.parametrize("auto_entropy", [True, False])
def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone(auto_entropy: bool) -> None:
    cfg = _cfg(auto_entropy=auto_entropy)
    nets = _nets(cfg)
    ref = copy.deepcopy(nets)
    opts = HEROptimizers.create(nets, cfg)
    seen = record_step_grads({"critic": opts.critic, "policy": opts.policy, "alpha": opts.alpha})
    torch.manual_seed(1)
    her_update(_batch(), nets, opts, cfg)
    torch.manual_seed(1)
    losses = her_losses(_batch(), ref, cfg)
    want = {
        "critic": (losses.qf_loss, ref.critic_parameters()),
        "policy": (losses.policy_loss, list(ref.policy.parameters())),
    }
    if auto_entropy:
        want["alpha"] = (losses.alpha_loss, [ref.log_alpha])
    assert sorted(seen) == sorted(want)
    for name, (loss, params) in want.items():
        assert_grads_of(seen[name], loss, params, name)


def test_the_losses_train_only_their_networks() -> None:
    cfg = _cfg(auto_entropy=True)
    nets = _nets(cfg)
    losses = her_losses(_batch(), nets, cfg)
    groups = {
        "policy": list(nets.policy.parameters()),
        "q": nets.critic_parameters(),
        "alpha": [nets.log_alpha],
    }

    def reached(loss: torch.Tensor) -> set[str]:
        out = set()
        for name, params in groups.items():
            gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            if any(g is not None and g.abs().sum() > 0 for g in gs):
                out.add(name)
        return out

    assert reached(losses.qf_loss) == {"q"}
    assert reached(losses.policy_loss) == {"policy", "q"}  # q only through the graph
    assert reached(losses.alpha_loss) == {"alpha"}
    assert not any(p.requires_grad for p in nets.target_qf1.parameters())


def test_every_network_is_told_the_batchs_goals() -> None:
    cfg = _cfg()
    nets = _nets(cfg)
    batch = _batch()
    seen: dict[str, list[torch.Tensor]] = {"q": [], "pi": []}
    hq = nets.qf1.register_forward_hook(lambda m, args, out: seen["q"].append(args[2]))
    hp = nets.policy.register_forward_hook(lambda m, args, out: seen["pi"].append(args[1]))
    her_losses(batch, nets, cfg)
    hq.remove()
    hp.remove()
    assert seen["q"] and seen["pi"]
    for g in [*seen["q"], *seen["pi"]]:
        assert torch.equal(g, batch.goals)


def test_terminal_transitions_back_up_the_reward_alone() -> None:
    cfg = _cfg(reward_scale=1.0, gamma=0.9)
    nets = _nets(cfg)
    assert_terminals_back_up_the_reward(
        nets, _batch(), 1.0, lambda b: (her_losses(b, nets, cfg).qf_loss, torch.zeros(()))
    )


def test_the_target_is_clipped_to_the_sparse_rewards_range() -> None:
    """HER's target clipping: with target Qs far out of range, the Bellman target is
    clip(., 0, r_scale / (1 - gamma)) (checked by hand against the loss's own Q)."""
    cfg = _cfg(reward_scale=1.0, gamma=0.9)
    nets = _nets(cfg)
    batch = _batch()._replace(dones=torch.zeros(B, 1))
    for bias, want in ((1e4, 10.0), (-1e4, 0.0)):
        with torch.no_grad():
            for m in (nets.target_qf1, nets.target_qf2):
                m.net[-1].bias.fill_(bias)
        losses = her_losses(batch, nets, cfg)
        q1 = nets.qf1(batch.obs, batch.actions, batch.goals)
        q2 = nets.qf2(batch.obs, batch.actions, batch.goals)
        by_hand = ((q1 - want) ** 2).mean() + ((q2 - want) ** 2).mean()
        torch.testing.assert_close(losses.qf_loss, by_hand)
