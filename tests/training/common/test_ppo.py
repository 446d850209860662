"""training/common/ppo.py: GAE against a direct sum of discounted TD errors (hypothesis),
the clipped surrogate's value and where its gradient stops, masking of padded steps, and
that a PPO update steps each parameter with the gradient of the one loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from training.common.ppo import (
    PPOLosses,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    normalised_advantages,
    ppo_loss,
    ppo_losses,
    ppo_update,
)
from training.config import PPOConfig


def gae_by_hand(r, v, lengths, boot, gamma, lam):  # type: ignore[no-untyped-def]
    """A_t = sum_k (gamma lam)^k delta_{t+k} per sequence, directly (float64)."""
    S, T = r.shape
    adv = np.zeros((S, T))
    for s in range(S):
        n = lengths[s]
        v_next = [*v[s, 1:n], boot[s]]
        deltas = [r[s, t] + gamma * v_next[t] - v[s, t] for t in range(n)]
        for t in range(n):
            adv[s, t] = sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t))
    return adv


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_gae_is_the_discounted_sum_of_td_errors(
    lengths: list[int], gamma: float, lam: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    S, T = len(lengths), max(lengths) + 1  # at least one padded step everywhere
    r, v = rng.normal(size=(S, T)), rng.normal(size=(S, T))
    boot = rng.normal(size=S)
    mask = (np.arange(T)[None] < np.asarray(lengths)[:, None]).astype(np.float64)
    adv, ret = gae(
        torch.tensor(r), torch.tensor(v), torch.tensor(mask), torch.tensor(boot), gamma, lam
    )
    want = gae_by_hand(r, v, lengths, boot, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), want, atol=1e-9)
    np.testing.assert_allclose(ret.numpy(), (want + v) * mask, atol=1e-9)
    # padding: whatever rewards and values it holds, nothing changes
    r2, v2 = r + 100 * (1 - mask), v - 50 * (1 - mask)
    adv2, _ = gae(
        torch.tensor(r2), torch.tensor(v2), torch.tensor(mask), torch.tensor(boot), gamma, lam
    )
    np.testing.assert_allclose(adv2.numpy(), adv.numpy(), atol=1e-9)


def test_gae_lambda_one_gives_monte_carlo_returns() -> None:
    r = torch.tensor([[1.0, 2.0, 3.0, 0.0]])
    v = torch.tensor([[0.5, -1.0, 2.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    _, ret = gae(r, v, mask, torch.zeros(1), gamma=0.5, lam=1.0)
    # R_2 = 3, R_1 = 2 + 0.5 * 3, R_0 = 1 + 0.5 * R_1
    torch.testing.assert_close(ret, torch.tensor([[1 + 0.5 * 3.5, 3.5, 3.0, 0.0]]))
    _, td = gae(r, v, mask, torch.tensor([4.0]), gamma=0.5, lam=0.0)  # one-step targets
    torch.testing.assert_close(td, torch.tensor([[1 - 0.5, 2 + 1.0, 3 + 2.0, 0.0]]))


def _terms(logp: torch.Tensor, adv: torch.Tensor, clip: float = 0.2) -> PPOLosses:
    ones = torch.ones_like(adv)
    return ppo_losses(logp, torch.zeros_like(adv), adv, ones, ones, ones, ones, clip)


def test_the_surrogate_is_clipped_on_the_side_the_advantage_pushes() -> None:
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    # ratios 1.5 (A > 0: beyond 1 + eps, clipped), 0.5 (A > 0: below, not clipped),
    # 0.5 (A < 0: below 1 - eps, clipped), 1.5 (A < 0: not clipped)
    logp = torch.log(torch.tensor([[1.5, 0.5, 0.5, 1.5]])).requires_grad_()
    terms = _terms(logp, adv)
    want = -(1.2 * 1 + 0.5 * 1 + 0.8 * -1 + 1.5 * -1) / 4
    assert float(terms.policy.detach()) == pytest.approx(want)
    assert float(terms.clip_fraction) == 1.0
    (grad,) = torch.autograd.grad(terms.policy, logp)
    # d(-rho A / 4)/d logp = -rho A / 4 where unclipped, 0 where clipped
    torch.testing.assert_close(grad, torch.tensor([[0.0, -0.5 / 4, 0.0, 1.5 / 4]]))


def test_masked_steps_count_for_nothing() -> None:
    adv = torch.tensor([[1.0, 2.0, 30.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    logp = torch.tensor([[0.1, -0.1, 5.0]])
    values, returns = torch.tensor([[1.0, 2.0, 100.0]]), torch.tensor([[2.0, 2.0, -100.0]])
    terms = ppo_losses(logp, torch.zeros(1, 3), adv, values, returns, logp, mask, 0.2)
    rho = torch.exp(torch.tensor([0.1, -0.1]))
    assert float(terms.policy) == pytest.approx(-float((rho * torch.tensor([1.0, 2.0])).mean()))
    assert float(terms.value) == pytest.approx(0.5 * 1.0 / 2)
    assert float(terms.entropy) == pytest.approx(0.0)
    norm = normalised_advantages(adv, mask)
    assert float(norm[0, 2]) == 0.0 and float(norm[0, :2].mean()) == pytest.approx(0.0)


def test_gaussian_helpers_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mean, log_std, u = (torch.randn(5, 3, generator=g) for _ in range(3))
    dist = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(gaussian_log_prob(u, mean, log_std), dist.log_prob(u).sum(-1))
    torch.testing.assert_close(gaussian_entropy(log_std), dist.entropy().sum(-1))


class ActorCritic(nn.Module):
    """A feed-forward Gaussian policy and a separate value net over (S, T, 3) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.pi = nn.Linear(3, 2)
        self.log_std = nn.Parameter(torch.zeros(2))
        self.v = nn.Linear(3, 1)

    def evaluate(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        mean = self.pi(mb["obs"])
        logp = gaussian_log_prob(mb["u"], mean, self.log_std.expand_as(mean))
        return logp, gaussian_entropy(self.log_std.expand_as(mean)), self.v(mb["obs"])[..., 0]


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    S, T = 6, 5
    lengths = torch.tensor([5, 3, 1, 4, 5, 2])
    return {
        "obs": torch.randn(S, T, 3, generator=g),
        "u": torch.randn(S, T, 2, generator=g),
        "logp": torch.randn(S, T, generator=g) - 2,
        "advantages": torch.randn(S, T, generator=g),
        "returns": torch.randn(S, T, generator=g),
        "mask": (torch.arange(T)[None] < lengths[:, None]).float(),
    }


def test_an_update_steps_with_the_gradient_of_the_one_loss() -> None:
    """One epoch, one minibatch, no clipping of the norm: the Adam step's gradients are
    those of policy + value_coef * value - entropy_coef * entropy on the whole batch."""
    cfg = PPOConfig(epochs=1, minibatches=1, max_grad_norm=None, entropy_coef=0.01)
    torch.manual_seed(0)
    net = ActorCritic()
    batch = _batch()
    data = {**batch, "advantages": normalised_advantages(batch["advantages"], batch["mask"])}
    logp, ent, values = net.evaluate(data)
    terms = ppo_losses(
        logp, data["logp"], data["advantages"], values, data["returns"], ent, data["mask"], cfg.clip
    )
    want = torch.autograd.grad(ppo_loss(terms, cfg), list(net.parameters()))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    seen: list[torch.Tensor] = []
    opt.register_step_pre_hook(
        lambda o, a, k: seen.extend(p.grad.clone() for p in net.parameters())  # type: ignore[union-attr]
    )
    logs = ppo_update(batch, net.evaluate, opt, list(net.parameters()), cfg, torch.Generator())
    for got, w in zip(seen, want, strict=True):
        torch.testing.assert_close(got, w)
    assert logs["loss/policy"] == pytest.approx(float(terms.policy), abs=1e-6)
    # the value loss reaches only the value net, the surrogate only the policy
    assert all(
        g is None
        for g in torch.autograd.grad(terms.value, [net.pi.weight, net.log_std], allow_unused=True)
    )
    assert torch.autograd.grad(terms.policy, [net.v.weight], allow_unused=True) == (None,)


def test_padding_does_not_change_an_update() -> None:
    cfg = PPOConfig(epochs=3, minibatches=2)
    out = []
    for junk in (0.0, 1e3):
        batch = _batch()
        pad = 1 - batch["mask"]
        for k in ("logp", "advantages", "returns"):
            batch[k] = batch[k] + junk * pad
        batch["obs"] = batch["obs"] + junk * pad[..., None]
        torch.manual_seed(0)
        net = ActorCritic()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        ppo_update(batch, net.evaluate, opt, list(net.parameters()), cfg, torch.Generator())
        out.append([p.detach().clone() for p in net.parameters()])
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(a, b)


def test_the_batch_must_hold_what_the_update_reads() -> None:
    batch = _batch()
    del batch["returns"]
    net = ActorCritic()
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(KeyError, match="returns"):
        ppo_update(batch, net.evaluate, opt, [], PPOConfig(), torch.Generator())
