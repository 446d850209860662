"""PEARL's maths and losses: product of Gaussians, KL, loss shapes, gradient isolation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.conftest import (
    assert_grads_of,
    assert_terminals_back_up_the_reward,
    record_step_grads,
    tiny_config,
)
from training.algos.pearl.losses import (
    PearlOptimizers,
    critic_parameters,
    kl_to_standard_normal,
    pearl_losses,
    pearl_update,
    product_of_gaussians,
)
from training.algos.pearl.networks import make_nets
from training.common.batches import MetaBatch

OBS, ACT = 4, 2

factor_sets = st.integers(1, 6).flatmap(
    lambda n: st.tuples(
        st.lists(st.lists(st.floats(-5, 5), min_size=3, max_size=3), min_size=n, max_size=n),
        st.lists(st.lists(st.floats(0.05, 20), min_size=3, max_size=3), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(factor_sets, st.randoms(use_true_random=False), st.booleans())
def test_product_is_order_independent(factors, rnd, prior) -> None:
    mu = torch.tensor(factors[0], dtype=torch.float64)
    var = torch.tensor(factors[1], dtype=torch.float64)
    perm = list(range(len(mu)))
    rnd.shuffle(perm)
    m1, v1 = product_of_gaussians(mu, var, prior=prior)
    m2, v2 = product_of_gaussians(mu[perm], var[perm], prior=prior)
    torch.testing.assert_close(m1, m2)
    torch.testing.assert_close(v1, v2)


@settings(max_examples=60, deadline=None)
@given(factor_sets, st.booleans())
def test_product_equals_closed_form_and_sequential_pairs(factors, prior) -> None:
    mu = torch.tensor(factors[0], dtype=torch.float64)
    var = torch.tensor(factors[1], dtype=torch.float64)
    m, v = product_of_gaussians(mu, var, prior=prior)
    # Closed form of a product of Gaussians, one factor at a time (two-Gaussian formula),
    # starting from the prior N(0, 1) or from the first factor.
    if prior:
        acc_m, acc_v, start = (
            torch.zeros(3, dtype=torch.float64),
            torch.ones(3, dtype=torch.float64),
            0,
        )
    else:
        acc_m, acc_v, start = mu[0], var[0], 1
    for i in range(start, len(mu)):
        new_v = acc_v * var[i] / (acc_v + var[i])
        acc_m = (acc_m * var[i] + mu[i] * acc_v) / (acc_v + var[i])
        acc_v = new_v
    torch.testing.assert_close(m, acc_m)
    torch.testing.assert_close(v, acc_v)
    # the posterior is at least as certain as its most certain factor
    assert (v <= var.min(0).values + 1e-12).all()


@settings(max_examples=30, deadline=None)
@given(factor_sets)
def test_product_density_matches_numerically(factors) -> None:
    # log prod_n N(x; mu_n, var_n) - log N(x; mu_post, var_post) is constant in x.
    mu = torch.tensor(factors[0], dtype=torch.float64)[:, :1]
    var = torch.tensor(factors[1], dtype=torch.float64)[:, :1]
    m, v = product_of_gaussians(mu, var, prior=False)
    xs = torch.linspace(-3, 3, 7, dtype=torch.float64)
    log_prod = (-0.5 * (xs[:, None] - mu[:, 0]) ** 2 / var[:, 0]).sum(1)
    log_post = -0.5 * (xs - m[0]) ** 2 / v[0]
    diff = log_prod - log_post
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-6 * (1 + diff.abs().max()))


def test_prior_handling() -> None:
    empty_mu, empty_var = torch.zeros(0, 3), torch.ones(0, 3)
    for prior in (True, False):
        m, v = product_of_gaussians(empty_mu, empty_var, prior=prior)
        assert torch.equal(m, torch.zeros(3)) and torch.equal(v, torch.ones(3))
    # one factor N(2, 1) times the prior N(0, 1) = N(1, 0.5); without the prior it is itself
    m, v = product_of_gaussians(torch.full((1, 2), 2.0), torch.ones(1, 2), prior=True)
    torch.testing.assert_close(m, torch.ones(2))
    torch.testing.assert_close(v, torch.full((2,), 0.5))
    m, v = product_of_gaussians(torch.full((1, 2), 2.0), torch.ones(1, 2), prior=False)
    torch.testing.assert_close(m, torch.full((2,), 2.0))
    torch.testing.assert_close(v, torch.ones(2))


def test_mask_drops_factors() -> None:
    mu, var = torch.randn(5, 3), torch.rand(5, 3) + 0.1
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    m1, v1 = product_of_gaussians(mu, var, mask=mask)
    m2, v2 = product_of_gaussians(mu[[0, 2, 4]], var[[0, 2, 4]])
    torch.testing.assert_close(m1, m2)
    torch.testing.assert_close(v1, v2)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-4, 4), min_size=3, max_size=3),
    st.lists(st.floats(0.01, 10), min_size=3, max_size=3),
)
def test_kl_is_nonnegative_and_zero_only_at_prior(mu, var) -> None:
    kl = kl_to_standard_normal(
        torch.tensor(mu, dtype=torch.float64), torch.tensor(var, dtype=torch.float64)
    )
    assert kl >= -1e-12
    assert kl_to_standard_normal(torch.zeros(3), torch.ones(3)) == 0


def _batch(T: int = 3, B: int = 5, C: int = 4) -> MetaBatch:
    g = torch.Generator().manual_seed(0)
    return MetaBatch(
        obs=torch.randn(T, B, OBS, generator=g),
        actions=torch.rand(T, B, ACT, generator=g) * 2 - 1,
        rewards=torch.randn(T, B, 1, generator=g),
        next_obs=torch.randn(T, B, OBS, generator=g),
        dones=(torch.rand(T, B, 1, generator=g) < 0.2).float(),
        context=torch.randn(T, C, 2 * OBS + ACT + 1, generator=g),
    )


@pytest.mark.parametrize("auto_entropy", [False, True])
def test_losses_are_finite_and_shaped(auto_entropy: bool) -> None:
    cfg = tiny_config(sac={"hidden": [16], "auto_entropy": auto_entropy, "alpha": 0.5})
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    losses = pearl_losses(_batch(), nets, cfg)
    for name in ("qf_loss", "policy_loss", "kl_div", "alpha_loss"):
        value = getattr(losses, name)
        assert value.shape == (), name
        assert torch.isfinite(value), name
    assert losses.z_mean.shape == (3, cfg.encoder.latent_dim)
    assert (losses.z_var > 0).all() and (losses.z_var <= 1).all()  # prior in the product
    assert losses.kl_div > 0
    assert (losses.alpha_loss != 0) == auto_entropy


def _grads_after(loss_name: str, cfg=None) -> dict[str, bool]:
    cfg = cfg or tiny_config(sac={"hidden": [16], "auto_entropy": True})
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    losses = pearl_losses(_batch(), nets, cfg)
    getattr(losses, loss_name).backward()
    out = {}
    for part in ("encoder", "policy", "qf1", "qf2"):
        grads = [p.grad for p in getattr(nets, part).parameters()]
        out[part] = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    out["log_alpha"] = nets.log_alpha.grad is not None and bool(nets.log_alpha.grad != 0)
    return out


def test_actor_loss_leaves_encoder_gradients_at_zero() -> None:
    g = _grads_after("policy_loss")
    assert g["policy"], "the actor loss must train the policy"
    assert not g["encoder"], "z is detached for the actor: no encoder gradient"


def test_critic_loss_trains_encoder_and_q_not_policy() -> None:
    g = _grads_after("qf_loss")
    assert g["encoder"] and g["qf1"] and g["qf2"]
    assert not g["policy"], "the Bellman target is computed without grad"


def test_kl_trains_only_the_encoder() -> None:
    g = _grads_after("kl_div")
    assert g["encoder"] and not g["policy"] and not g["qf1"]


def test_alpha_loss_trains_only_alpha() -> None:
    g = _grads_after("alpha_loss")
    assert g["log_alpha"] and not any(g[k] for k in ("encoder", "policy", "qf1", "qf2"))


def test_update_steps_each_learner_and_polyak_targets() -> None:
    cfg = tiny_config(sac={"hidden": [16], "auto_entropy": True, "tau": 0.5})
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    before = {k: v.clone() for k, v in nets.state_dict().items()}
    opts = PearlOptimizers.create(nets, cfg)
    logs = pearl_update(_batch(), nets, opts, cfg)
    assert all(np.isfinite(v) for v in logs.values())
    after = nets.state_dict()
    for prefix in (
        "encoder.net",
        "policy.trunk",
        "qf1.net",
        "qf2.net",
        "target_qf1.net",
        "log_alpha",
    ):
        keys = [k for k in before if k.startswith(prefix)]
        assert any(not torch.equal(before[k], after[k]) for k in keys), prefix
    # target = 0.5 * old target + 0.5 * new online weights
    k = "qf1.net.0.weight"
    torch.testing.assert_close(
        after["target_qf1.net.0.weight"], 0.5 * before["target_" + k] + 0.5 * after[k]
    )


def test_without_latent_the_encoder_is_untouched() -> None:
    cfg = tiny_config(use_latent=False, sac={"hidden": [16]})
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    before = {k: v.clone() for k, v in nets.encoder.state_dict().items()}
    losses = pearl_losses(_batch(), nets, cfg)
    assert losses.kl_div == 0 and torch.equal(losses.z_mean, torch.zeros_like(losses.z_mean))
    pearl_update(_batch(), nets, PearlOptimizers.create(nets, cfg), cfg)
    for k, v in nets.encoder.state_dict().items():
        assert torch.equal(v, before[k])


def test_policy_log_prob_matches_torch_distributions() -> None:
    # tanh-Gaussian log-density with the change of variables, against torch.distributions
    cfg = tiny_config(sac={"hidden": [16]})
    torch.manual_seed(1)
    nets = make_nets(OBS, ACT, cfg)
    obs, z = torch.randn(7, OBS), torch.randn(7, cfg.encoder.latent_dim)
    eps = torch.randn(7, ACT)
    a, logp = nets.policy.sample(obs, z, eps)
    mean, log_std = nets.policy(obs, z)
    base = torch.distributions.Normal(mean, log_std.exp())
    dist = torch.distributions.TransformedDistribution(
        base, [torch.distributions.transforms.TanhTransform()]
    )
    torch.testing.assert_close(logp[:, 0], dist.log_prob(a).sum(-1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("auto_entropy", "use_latent"), [(True, True), (False, True), (True, False)]
)
def test_each_learner_steps_with_the_gradient_of_its_own_loss_alone(
    auto_entropy: bool, use_latent: bool
) -> None:
    """Through `update`: every optimizer steps with exactly the gradient of its own loss
    (the actor's Q terms never reach Q, the critic's never reach the policy, ...), and the
    learners without a loss (encoder without latent, fixed temperature) are not stepped."""
    cfg = tiny_config(use_latent=use_latent, sac={"hidden": [16], "auto_entropy": auto_entropy})
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    ref = copy.deepcopy(nets)
    opts = PearlOptimizers.create(nets, cfg)
    seen = record_step_grads(
        {"encoder": opts.encoder, "critic": opts.critic, "policy": opts.policy, "alpha": opts.alpha}
    )
    torch.manual_seed(1)
    pearl_update(_batch(), nets, opts, cfg)
    torch.manual_seed(1)  # the same z and action samples on the untouched copy
    losses = pearl_losses(_batch(), ref, cfg)
    want = {
        "critic": (losses.qf_loss, critic_parameters(ref)),
        "policy": (losses.policy_loss, list(ref.policy.parameters())),
    }
    if use_latent:
        encoder_loss = losses.qf_loss + cfg.encoder.kl_lambda * losses.kl_div
        want["encoder"] = (encoder_loss, list(ref.encoder.parameters()))
    if auto_entropy:
        want["alpha"] = (losses.alpha_loss, [ref.log_alpha])
    assert sorted(seen) == sorted(want)
    for name, (loss, params) in want.items():
        assert_grads_of(seen[name], loss, params, name)


@pytest.mark.parametrize("use_latent", [True, False])
def test_terminal_transitions_back_up_the_reward_alone(use_latent: bool) -> None:
    """dones = 1: the Bellman target is reward_scale * r exactly, whatever s' and the target
    networks are; with dones = 0 the same batch bootstraps (so the check has teeth)."""
    cfg = tiny_config(
        use_latent=use_latent, sac={"hidden": [16], "reward_scale": 3.0, "gamma": 0.99}
    )
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    assert_terminals_back_up_the_reward(
        nets,
        _batch(),
        cfg.sac.reward_scale,
        lambda b: (pearl_losses(b, nets, cfg).qf_loss, torch.zeros(())),
    )
