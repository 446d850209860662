"""MAML's maths: the inner step is the hand-computed policy-gradient step of a linear
Gaussian policy, the second-order meta-gradient matches finite differences, the first-order
option drops exactly the Hessian term, the baseline and returns, ProMP's clip, and which
parameters the meta-gradient trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad

from training.algos.maml import losses as L
from training.algos.maml.networks import GaussianMLPPolicy, Params, log_prob

OBS, ACT = 3, 2


def policy64(hidden: list[int], seed: int = 0, std: float = 0.7) -> GaussianMLPPolicy:
    torch.manual_seed(seed)
    return GaussianMLPPolicy(OBS, ACT, hidden, std).double()


def batch64(n: int, seed: int) -> L.TaskBatch:
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    return L.TaskBatch(
        obs=torch.randn(n, OBS, generator=g, dtype=f64),
        actions=torch.randn(n, ACT, generator=g, dtype=f64),
        advantages=torch.randn(n, generator=g, dtype=f64),
        old_log_prob=torch.zeros(n, dtype=f64),
        mean_return=0.0,
    )


def theta(pol: GaussianMLPPolicy) -> Params:
    return pol.detached_params()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), lr=st.floats(1e-3, 1.0))
def test_the_inner_step_is_the_hand_computed_policy_gradient_step(
    seed: int, n: int, lr: float
) -> None:
    # hidden [] : mean = W s + b, a linear Gaussian policy with log-std l
    pol = policy64([], seed)
    p, b = theta(pol), batch64(n, seed + 1)
    W, bias, ls = (p[k].numpy() for k in ("mean_net.0.weight", "mean_net.0.bias", "log_std"))
    s, a, A = b.obs.numpy(), b.actions.numpy(), b.advantages.numpy()
    var = np.exp(2 * ls)
    d = a - (s @ W.T + bias)  # (n, act)
    # L = -1/n sum_i A_i log N(a_i; W s_i + b, var); its gradient by hand:
    gW = -((A[:, None] * d / var).T @ s) / n
    gb = -(A[:, None] * d / var).sum(0) / n
    gl = -(A[:, None] * (d * d / var - 1.0)).sum(0) / n
    for est in ("reinforce", "lvc"):  # LVC: the same step (its gradient at theta is REINFORCE's)
        new = L.inner_step(pol, p, b, lr, estimator=est)
        np.testing.assert_allclose(
            new["mean_net.0.weight"].numpy(), W - lr * gW, rtol=1e-9, atol=1e-12
        )
        np.testing.assert_allclose(
            new["mean_net.0.bias"].numpy(), bias - lr * gb, rtol=1e-9, atol=1e-12
        )
        np.testing.assert_allclose(new["log_std"].numpy(), ls - lr * gl, rtol=1e-9, atol=1e-12)


def test_log_prob_is_the_diagonal_gaussian_density() -> None:
    pol = policy64([4])
    p, b = theta(pol), batch64(5, 3)
    mean, log_std = pol(b.obs)
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(b.actions).sum(-1)
    torch.testing.assert_close(log_prob(pol, p, b.obs, b.actions), ref)


def meta_task(pol: GaussianMLPPolicy, p: Params, lr: float, steps: int, seed: int) -> L.MetaTask:
    pre = [batch64(7, seed + i) for i in range(steps)]
    post = batch64(6, seed + 100)
    with torch.no_grad():  # sampled by the adapted policy, off it by a little (ratio != 1)
        post.old_log_prob = log_prob(pol, L.adapt(pol, p, pre, lr), post.obs, post.actions) + 0.05
    return L.MetaTask(pre, post)


@pytest.mark.parametrize("steps", [1, 2])
def test_the_second_order_meta_gradient_matches_finite_differences(steps: int) -> None:
    """With REINFORCE's inner loss the meta-gradient is the derivative of the meta-loss
    (LVC's is by design another estimator: its surrogate has REINFORCE's values)."""
    estimator = "reinforce"
    pol = policy64([3], seed=steps)
    p, lr, eps = theta(pol), 0.3, 0.5
    tasks = [meta_task(pol, p, lr, steps, s) for s in (10, 20)]
    kw = {"inner_lr": lr, "clip_eps": eps, "estimator": estimator}
    g, value = L.meta_gradient(pol, p, tasks, **kw)
    assert float(value) == pytest.approx(float(L.meta_loss(pol, p, tasks, **kw)))
    h = 1e-6
    for name, t in p.items():
        for i in range(t.numel()):
            q = {k: v.clone() for k, v in p.items()}
            q[name].view(-1)[i] += h
            up = float(L.meta_loss(pol, q, tasks, **kw))
            q[name].view(-1)[i] -= 2 * h
            down = float(L.meta_loss(pol, q, tasks, **kw))
            fd = (up - down) / (2 * h)
            assert float(g[name].view(-1)[i]) == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, i)


def _flat(p: Params) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in p.values()])


def _unflat(x: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = x[i : i + v.numel()].view_as(v)
        i += v.numel()
    return out


def test_first_order_drops_exactly_the_hessian_term() -> None:
    pol = policy64([4], seed=5)
    p, lr, eps = theta(pol), 0.2, 0.5
    task = meta_task(pol, p, lr, 1, 30)
    second, _ = L.meta_gradient(pol, p, [task], inner_lr=lr, clip_eps=eps)
    first, _ = L.meta_gradient(pol, p, [task], inner_lr=lr, clip_eps=eps, first_order=True)
    # first order: the outer loss's gradient at theta', taken as if theta' were theta
    adapted = {k: v.detach() for k, v in L.inner_step(pol, p, task.pre[0], lr).items()}
    g_out = grad(lambda q: L.outer_loss(pol, q, task.post, eps))(adapted)
    torch.testing.assert_close(_flat(first), _flat(g_out))
    # second order = (I - lr H_in) g_out with H_in the inner loss's Hessian at theta
    hess = torch.autograd.functional.hessian(
        lambda x: L.inner_loss(pol, _unflat(x, p), task.pre[0]), _flat(p)
    )
    want = _flat(g_out) - lr * hess @ _flat(g_out)
    torch.testing.assert_close(_flat(second), want)
    assert (_flat(second) - _flat(first)).abs().max() > 1e-4  # the term is there to drop


def test_lvc_changes_only_the_second_order_term() -> None:
    pol = policy64([4], seed=6)
    p, lr = theta(pol), 0.2
    task = meta_task(pol, p, lr, 1, 40)
    kw = {"inner_lr": lr, "clip_eps": 0.5}
    r, _ = L.meta_gradient(pol, p, [task], estimator="reinforce", **kw)
    v, _ = L.meta_gradient(pol, p, [task], estimator="lvc", **kw)
    rf, _ = L.meta_gradient(pol, p, [task], estimator="reinforce", first_order=True, **kw)
    vf, _ = L.meta_gradient(pol, p, [task], estimator="lvc", first_order=True, **kw)
    torch.testing.assert_close(_flat(rf), _flat(vf))
    assert (_flat(r) - _flat(v)).abs().max() > 1e-5


def test_the_meta_gradient_trains_every_policy_parameter_and_nothing_else() -> None:
    pol = policy64([4], seed=7)
    pol.normaliser.set_stats(torch.ones(OBS), 2 * torch.ones(OBS))
    p = pol.params()  # the module's own parameters
    task = meta_task(pol, theta(pol), 0.2, 1, 50)
    g, _ = L.meta_gradient(pol, p, [task], inner_lr=0.2, clip_eps=0.5)
    assert set(g) == {n for n, _ in pol.named_parameters()} == {
        "mean_net.0.weight", "mean_net.0.bias", "mean_net.2.weight", "mean_net.2.bias", "log_std"
    }  # fmt: skip
    assert all(float(v.detach().abs().max()) > 0 for v in g.values())
    # torch.func's gradient is plain autograd's of the same loss through the inner step
    auto = torch.autograd.grad(
        L.meta_loss(pol, p, [task], inner_lr=0.2, clip_eps=0.5), list(p.values())
    )
    for (name, want), got in zip(g.items(), auto, strict=True):
        torch.testing.assert_close(want, got, msg=name)
    assert {n for n, _ in pol.named_buffers()} == {"normaliser.mean", "normaliser.std"}


def test_the_clip_stops_the_gradient_beyond_it() -> None:
    pol = policy64([4], seed=8)
    p = theta(pol)
    b = batch64(8, 60)
    b.advantages = torch.ones(8, dtype=torch.float64)
    with torch.no_grad():  # ratio = e^0.5 > 1 + 0.3 everywhere, advantage > 0: clipped
        b.old_log_prob = log_prob(pol, p, b.obs, b.actions) - 0.5
    g = grad(lambda q: L.outer_loss(pol, q, b, 0.3))(p)
    assert all(float(v.abs().max()) == 0.0 for v in g.values())
    b.advantages = -b.advantages  # min picks the unclipped term: a gradient
    g = grad(lambda q: L.outer_loss(pol, q, b, 0.3))(p)
    assert max(float(v.abs().max()) for v in g.values()) > 0


@settings(max_examples=30, deadline=None)
@given(
    rewards=st.lists(st.floats(-10, 10), min_size=1, max_size=20),
    gamma=st.floats(0.0, 1.0),
)
def test_discounted_returns(rewards: list[float], gamma: float) -> None:
    r = np.array(rewards)
    want = [sum(gamma**k * r[t + k] for k in range(len(r) - t)) for t in range(len(r))]
    np.testing.assert_allclose(L.discounted_returns(r, gamma), want, rtol=1e-9, atol=1e-9)


def test_the_linear_baseline_fits_returns_that_are_linear_in_its_features() -> None:
    rng = np.random.default_rng(0)
    obs = [rng.normal(size=(t, OBS)) for t in (5, 9, 7)]
    feats = [L.baseline_features(o) for o in obs]
    coef = rng.normal(size=feats[0].shape[1])
    rets = [f @ coef for f in feats]
    fit = L.fit_baseline(feats, rets, 1e-9)
    for f, r in zip(feats, rets, strict=True):
        np.testing.assert_allclose(f @ fit, r, atol=1e-5)
    assert feats[0].shape[1] == 2 * OBS + 4  # o, o^2, t, t^2, t^3, 1


def test_make_batch_advantages_are_returns_minus_the_baseline_standardised() -> None:
    pol = GaussianMLPPolicy(OBS, ACT, [4], 0.5)
    rng = np.random.default_rng(1)
    eps = [(rng.normal(size=(6, OBS)).astype(np.float32), rng.normal(size=(6, ACT)).astype(np.float32),
            rng.normal(size=6)) for _ in range(3)]  # fmt: skip
    b = L.make_batch(pol, pol.detached_params(), eps, gamma=0.9, reg=1e-5, normalize=True)
    assert b.obs.shape == (18, OBS) and b.advantages.shape == (18,)
    assert float(b.advantages.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(b.advantages.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    assert b.mean_return == pytest.approx(np.mean([e[2].sum() for e in eps]))
    torch.testing.assert_close(
        b.old_log_prob, log_prob(pol, pol.detached_params(), b.obs, b.actions)
    )
