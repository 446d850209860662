"""PCGrad (training/common/pcgrad.py): the projection's invariants on generated gradients,
the transform through the learner step, and the paper's two-loss illustration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bench.pcgrad_illustration import (
    VALLEY_THETA2,
    final_figures,
    losses,
    optimise,
    task_gradients,
)
from training.common.learner import Learner, learner_step, task_grads
from training.common.pcgrad import PCGrad, project_conflicting

finite = st.floats(-10.0, 10.0, allow_nan=False, width=64)


def vectors(n: int) -> st.SearchStrategy[list[list[float]]]:
    """n gradient vectors of one size between 1 and 6."""
    return st.integers(1, 6).flatmap(
        lambda p: st.lists(st.lists(finite, min_size=p, max_size=p), min_size=n, max_size=n)
    )


@settings(max_examples=200, deadline=None)
@given(vectors(2), st.integers(0, 2**31 - 1))
def test_two_conflicting_gradients_become_orthogonal_to_the_others_original(g, seed) -> None:
    g = torch.tensor(g, dtype=torch.float64)
    assume(float(g[0] @ g[1]) < -1e-6 and all(float(v @ v) > 1e-6 for v in g))
    out = project_conflicting(g, torch.Generator().manual_seed(seed))
    scale = float(g.norm(dim=1).prod())
    assert abs(float(out[0] @ g[1])) <= 1e-9 * max(scale, 1.0)
    assert abs(float(out[1] @ g[0])) <= 1e-9 * max(scale, 1.0)
    # only the conflicting component went: what is left along g_i is |g_i|^2 - ... >= 0
    assert float(out[0] @ g[0]) >= -1e-9 and float(out[1] @ g[1]) >= -1e-9


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 5).flatmap(vectors), st.integers(0, 2**31 - 1))
def test_a_gradient_that_conflicts_with_none_is_left_unchanged(g, seed) -> None:
    g = torch.tensor(g, dtype=torch.float64)
    out = project_conflicting(g, torch.Generator().manual_seed(seed))
    dots = g @ g.T
    for i in range(len(g)):
        if all(float(dots[i, j]) >= 0 for j in range(len(g)) if j != i):
            torch.testing.assert_close(out[i], g[i], rtol=0, atol=0)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 5).flatmap(vectors))
def test_without_any_conflict_pcgrad_is_the_plain_sum(g) -> None:
    g = torch.tensor(g, dtype=torch.float64).abs()  # all entries >= 0: no pair conflicts
    torch.testing.assert_close(project_conflicting(g).sum(0), g.sum(0))


def test_the_projection_follows_the_paper_on_a_known_pair() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    out = project_conflicting(g)
    # g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + 0.5 (-1, 1);  g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64))


def test_pcgrad_through_learner_step_equals_the_hand_projection() -> None:
    """A tiny model with three tasks' losses: the step's gradient is the sum of the
    projected task gradients computed by hand, in the order the generator gives."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    unused = torch.nn.Parameter(torch.ones(2))  # no loss reaches it: None, not zeros
    x = torch.randn(3, 4, 3)
    target = torch.randn(3, 4, 2)
    per_task = ((model(x) - target) ** 2).mean((1, 2))  # (3,) per-task terms
    params = [*model.parameters(), unused]
    per = task_grads(per_task, params)
    flat = torch.stack([torch.cat([g.reshape(-1) for g in gs[:2]]) for gs in per])
    assert (flat @ flat.T < 0).any(), "the example must have a conflict"
    # by hand: the paper's loop with the orders the seeded generator draws
    gen = torch.Generator().manual_seed(7)
    want = torch.zeros(flat.shape[1], dtype=torch.float64)
    f = flat.double()
    for i in range(3):
        gi = f[i].clone()
        for j in torch.randperm(3, generator=gen).tolist():
            if j != i and gi @ f[j] < 0:
                gi -= (gi @ f[j]) / (f[j] @ f[j]) * f[j]
        want += gi
    opt = torch.optim.SGD(params, lr=1.0)
    seen: list[torch.Tensor | None] = []
    opt.register_step_pre_hook(
        lambda o, a, k: seen.extend(p.grad.clone() if p.grad is not None else None for p in params)
    )
    before = [p.detach().clone() for p in params]
    pc = PCGrad(seed=7)
    learner_step([Learner("model", per_task, params, opt)], pc)
    got = torch.cat([g.reshape(-1) for g in seen[:2] if g is not None]).double()
    torch.testing.assert_close(got, want.float().double(), rtol=1e-5, atol=1e-6)
    assert seen[2] is None and torch.equal(unused.detach(), before[2])
    assert pc.conflicts == int(torch.triu(flat @ flat.T < 0, diagonal=1).sum())
    # and it differs from the plain summed gradient (the surgery did something)
    assert not torch.allclose(got, flat.double().sum(0), atol=1e-4)


def test_pcgrad_leaves_scalar_losses_and_unnamed_learners_alone() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    assert PCGrad()("critic", (p * p).sum(), [p]) is None
    assert PCGrad(learners={"policy"})("critic", torch.stack([p[0], -p[1]]), [p]) is None


def test_the_illustration_gradients_are_those_of_the_losses() -> None:
    rng = np.random.default_rng(0)
    for theta in rng.uniform(-6, 6, (20, 2)):
        t = torch.tensor(theta, requires_grad=True)
        l12 = losses(t)
        auto = [torch.autograd.grad(l12[k], t, retain_graph=True)[0].numpy() for k in range(2)]
        np.testing.assert_allclose(task_gradients(theta), np.stack(auto), rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_pcgrad_reaches_the_joint_valley_where_adam_stalls() -> None:
    """The paper's Figure 1 problem from (-3, 2), 6000 Adam steps, lr 0.003: plain Adam
    stalls on one loss's valley (θ1 off -2, θ2 barely moved); with PCGrad it reaches the
    joint valley θ1 = -2 and climbs along it towards the joint minimum."""
    adam = optimise((-3.0, 2.0), pcgrad=False)
    pc = optimise((-3.0, 2.0), pcgrad=True)
    (adam_loss, adam_dist), (pc_loss, pc_dist) = final_figures(adam), final_figures(pc)
    assert abs(pc[-1, 0] + 2.0) < 0.05, pc[-1]  # on the joint valley's line
    assert abs(adam[-1, 0] + 2.0) > 0.2, adam[-1]  # off it
    assert pc[-1, 1] > adam[-1, 1] + 0.5  # further along towards θ2 >= VALLEY_THETA2
    assert pc_dist < adam_dist - 0.5 and pc_dist < VALLEY_THETA2
    assert pc_loss < adam_loss - 50.0 and math.isfinite(pc_loss)
