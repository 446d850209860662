"""Contrastive RL's losses: InfoNCE on a toy batch computed by hand, the critic as
phi(s, a) . psi(g), and which networks each loss trains."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.training.conftest import assert_grads_of, record_step_grads, tiny_config
from training.algos.crl.losses import CRLOptimizers, crl_losses, crl_update, infonce_loss
from training.algos.crl.networks import ContrastiveCritic, make_nets
from training.common.goals import FutureBatch

OBS, GOAL, ACT, B = 2, 2, 2, 10


def _cfg(**crl: object) -> object:
    return tiny_config(
        algo="crl", env="point_reach", sac={"hidden": [16]}, crl={"repr_dim": 4, **crl}
    )


def _batch(seed: int = 0) -> FutureBatch:
    g = torch.Generator().manual_seed(seed)
    return FutureBatch(
        obs=torch.randn(B, OBS, generator=g),
        actions=torch.tanh(torch.randn(B, ACT, generator=g)),
        future_goals=torch.randn(B, GOAL, generator=g),
        offsets=torch.ones(B, dtype=torch.int64),
    )


def test_infonce_of_a_toy_logit_matrix_by_hand() -> None:
    # identity logits: each row's positive 1 against one negative 0
    assert float(infonce_loss(torch.eye(2))) == pytest.approx(math.log(1 + math.exp(-1)))
    # swapped: the positive is the smaller logit
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert float(infonce_loss(swapped)) == pytest.approx(math.log(1 + math.e))
    # 3 x 3, rows by hand: lse(row) - diagonal
    m = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 3.0, -1.0]])
    rows = [
        math.log(math.exp(2) + 2) - 2,
        math.log(3 * math.e) - 1,
        math.log(1 + math.exp(3) + math.exp(-1)) + 1,
    ]
    assert float(infonce_loss(m)) == pytest.approx(sum(rows) / 3)
    with pytest.raises(ValueError, match="square logits"):
        infonce_loss(torch.zeros(2, 3))


def _hand_critic() -> ContrastiveCritic:
    """phi(s, a) = (s, a), psi(g) = g: single linear layers set to the identity."""
    critic = ContrastiveCritic(1, 1, 2, [], 2)
    with torch.no_grad():
        for net in (critic.phi_net, critic.psi_net):
            net[0].weight.copy_(torch.eye(2))
            net[0].bias.zero_()
    return critic


@pytest.mark.parametrize("penalty", [0.0, 0.5])
def test_the_critic_loss_on_a_toy_batch_by_hand(penalty: float) -> None:
    """Two (s, a) = (1, 0), (0, 1) whose futures are g = (1, 0), (0, 1): logits = I."""
    cfg = _cfg(logsumexp_penalty=penalty)
    nets = make_nets(1 + 2 * 2, 1, cfg)
    nets.critic = _hand_critic()
    batch = FutureBatch(
        obs=torch.tensor([[1.0], [0.0]]),
        actions=torch.tensor([[0.0], [1.0]]),
        future_goals=torch.eye(2),
        offsets=torch.ones(2, dtype=torch.int64),
    )
    losses = crl_losses(batch, nets, cfg)
    lse = math.log(math.e + 1)
    assert float(losses.infonce) == pytest.approx(lse - 1)
    assert float(losses.critic_loss.detach()) == pytest.approx(lse - 1 + penalty * lse**2)
    assert float(losses.accuracy) == 1.0
    assert float(losses.logits_pos) == 1.0 and float(losses.logits_neg) == 0.0
    swapped = batch._replace(future_goals=torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert float(crl_losses(swapped, nets, cfg).accuracy) == 0.0


def test_the_critic_is_phi_dot_psi_row_by_row_and_pairwise() -> None:
    nets = make_nets(OBS + 2 * GOAL, ACT, _cfg())
    b = _batch()
    phi, psi = nets.critic.phi(b.obs, b.actions), nets.critic.psi(b.future_goals)
    torch.testing.assert_close(nets.critic.logits(b.obs, b.actions, b.future_goals), phi @ psi.T)
    torch.testing.assert_close(
        nets.critic(b.obs, b.actions, b.future_goals)[:, 0], (phi * psi).sum(-1)
    )


def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone() -> None:
    cfg = _cfg(logsumexp_penalty=0.1)
    torch.manual_seed(0)
    nets = make_nets(OBS + 2 * GOAL, ACT, cfg)
    ref = copy.deepcopy(nets)
    opts = CRLOptimizers.create(nets, cfg)
    seen = record_step_grads({"critic": opts.critic, "policy": opts.policy})
    torch.manual_seed(1)
    crl_update(_batch(), nets, opts, cfg)
    torch.manual_seed(1)
    losses = crl_losses(_batch(), ref, cfg)
    assert_grads_of(seen["critic"], losses.critic_loss, list(ref.critic.parameters()), "critic")
    assert_grads_of(seen["policy"], losses.policy_loss, list(ref.policy.parameters()), "policy")


def test_the_losses_train_only_their_networks() -> None:
    cfg = _cfg()
    torch.manual_seed(0)
    nets = make_nets(OBS + 2 * GOAL, ACT, cfg)
    losses = crl_losses(_batch(), nets, cfg)
    groups = {
        "policy": list(nets.policy.parameters()),
        "phi": list(nets.critic.phi_net.parameters()),
        "psi": list(nets.critic.psi_net.parameters()),
    }

    def reached(loss: torch.Tensor) -> set[str]:
        out = set()
        for name, params in groups.items():
            gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            if any(g is not None and g.abs().sum() > 0 for g in gs):
                out.add(name)
        return out

    assert reached(losses.critic_loss) == {"phi", "psi"}  # the data's actions, no policy
    # the actor's gradient flows through phi(s, pi(s, g)) . psi(g); the learner step keeps
    # it out of the critic (previous test)
    assert reached(losses.policy_loss) == {"policy", "phi", "psi"}
