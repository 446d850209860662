"""MAML's losses: discounted returns, the linear feature baseline, the inner policy-gradient
step and ProMP's outer surrogate, with the meta-gradient through the inner steps.

Everything is a function of parameter dicts (networks.py `Params`), so the inner step is
`torch.func.grad` of the inner loss and the meta-gradient is `torch.func.grad` of the outer
loss of the adapted parameters: second order by nesting the two transforms, first order
(`first_order=True`) by holding the inner gradient constant (detached), which drops the
Hessian term: d theta'/d theta = I instead of I - alpha * H.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.func import grad, grad_and_value

from training.algos.maml.networks import GaussianMLPPolicy, Params, log_prob

Estimator = Literal["reinforce", "lvc"]


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """R_t = sum_{k >= t} gamma^(k - t) r_k of one episode's rewards (T,)."""
    out = np.zeros(len(rewards), np.float64)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        out[t] = acc
    return out


def baseline_features(obs: np.ndarray) -> np.ndarray:
    """The linear feature baseline's features of one episode's observations (T, obs):
    [o, o^2, t/100, (t/100)^2, (t/100)^3, 1] with o clipped to [-10, 10] (rllab's
    LinearFeatureBaseline, Duan et al. 2016)."""
    o = np.clip(np.asarray(obs, np.float64), -10.0, 10.0)
    t = (np.arange(len(o), dtype=np.float64) / 100.0)[:, None]
    return np.concatenate([o, o * o, t, t**2, t**3, np.ones_like(t)], axis=1)


def fit_baseline(
    features: Sequence[np.ndarray], returns: Sequence[np.ndarray], reg: float
) -> np.ndarray:
    """Ridge least squares of the returns on the features (all episodes of one task batch);
    the coefficient grows x10 until the solution is finite, as rllab's does."""
    x = np.concatenate(features)
    y = np.concatenate(returns)
    a, b = x.T @ x, x.T @ y
    eye = np.eye(x.shape[1])
    coef = np.zeros(x.shape[1])
    for _ in range(5):
        try:
            coef = np.linalg.solve(a + reg * eye, b)
        except np.linalg.LinAlgError:
            coef = np.full(x.shape[1], np.nan)
        if np.all(np.isfinite(coef)):
            return coef
        reg *= 10.0
    return np.zeros(x.shape[1])


@dataclass
class TaskBatch:
    """One task's episodes flattened: raw obs (N, obs), the actions taken (N, act), their
    advantages (N,) and log-probabilities under the policy that sampled them (N,)."""

    obs: Tensor
    actions: Tensor
    advantages: Tensor
    old_log_prob: Tensor
    mean_return: float
    """Mean undiscounted episode return of the batch."""


def make_batch(
    policy: GaussianMLPPolicy,
    params: Params,
    episodes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    gamma: float,
    reg: float,
    normalize: bool,
) -> TaskBatch:
    """A TaskBatch from episodes (obs (T, obs) of the states acted in, actions (T, act),
    rewards (T,)) sampled with `params`: advantages = discounted returns minus the linear
    baseline fitted on these same episodes (the paper's choice), optionally standardised."""
    feats = [baseline_features(o) for o, _, _ in episodes]
    rets = [discounted_returns(r, gamma) for _, _, r in episodes]
    coef = fit_baseline(feats, rets, reg)
    adv = np.concatenate([r - f @ coef for f, r in zip(feats, rets, strict=True)])
    if normalize and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    obs = torch.as_tensor(np.concatenate([o for o, _, _ in episodes]), dtype=torch.float32)
    act = torch.as_tensor(np.concatenate([a for _, a, _ in episodes]), dtype=torch.float32)
    with torch.no_grad():
        old = log_prob(policy, params, obs, act)
    return TaskBatch(
        obs=obs,
        actions=act,
        advantages=torch.as_tensor(adv, dtype=torch.float32),
        old_log_prob=old,
        mean_return=float(np.mean([float(np.sum(r)) for _, _, r in episodes])),
    )


def inner_loss(
    policy: GaussianMLPPolicy, params: Params, batch: TaskBatch, estimator: Estimator = "reinforce"
) -> Tensor:
    """The inner objective (to minimise). reinforce: -mean(log pi(a|s) A) (Finn et al.);
    lvc: -mean(pi(a|s) / stop_grad(pi(a|s)) A) (ProMP's low-variance curvature surrogate:
    its value and gradient at `params` equal REINFORCE's, its Hessian differs)."""
    lp = log_prob(policy, params, batch.obs, batch.actions)
    if estimator == "lvc":
        return -(torch.exp(lp - lp.detach()) * batch.advantages).mean()
    return -(lp * batch.advantages).mean()


def inner_step(
    policy: GaussianMLPPolicy,
    params: Params,
    batch: TaskBatch,
    lr: float,
    *,
    estimator: Estimator = "reinforce",
    first_order: bool = False,
) -> Params:
    """theta' = theta - lr * grad L_in(theta) on `batch` (torch.func.grad: differentiable
    in theta under an enclosing transform unless `first_order`, which detaches the
    gradient)."""
    g = grad(lambda p: inner_loss(policy, p, batch, estimator))(params)
    if first_order:
        g = {k: v.detach() for k, v in g.items()}
    return {k: params[k] - lr * g[k] for k in params}


def adapt(
    policy: GaussianMLPPolicy,
    params: Params,
    batches: Sequence[TaskBatch],
    lr: float,
    *,
    estimator: Estimator = "reinforce",
    first_order: bool = False,
) -> Params:
    """The inner steps in turn, step i on `batches[i]` (sampled with the i-step policy)."""
    for b in batches:
        params = inner_step(policy, params, b, lr, estimator=estimator, first_order=first_order)
    return params


def outer_loss(
    policy: GaussianMLPPolicy, params: Params, batch: TaskBatch, clip_eps: float
) -> Tensor:
    """ProMP's clipped surrogate (to minimise) of the adapted policy `params` on the
    post-update batch: -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)), r = pi / pi_old."""
    ratio = torch.exp(log_prob(policy, params, batch.obs, batch.actions) - batch.old_log_prob)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.minimum(ratio * batch.advantages, clipped * batch.advantages).mean()


@dataclass
class MetaTask:
    """One task of a meta-batch: the inner steps' batches and the post-update batch."""

    pre: list[TaskBatch]
    post: TaskBatch


def meta_loss(
    policy: GaussianMLPPolicy,
    params: Params,
    tasks: Sequence[MetaTask],
    *,
    inner_lr: float,
    clip_eps: float,
    estimator: Estimator = "reinforce",
    first_order: bool = False,
) -> Tensor:
    """Mean over tasks of the outer loss of theta'(theta), the inner steps recomputed from
    the fixed pre-update batches."""
    losses = [
        outer_loss(
            policy,
            adapt(policy, params, t.pre, inner_lr, estimator=estimator, first_order=first_order),
            t.post,
            clip_eps,
        )
        for t in tasks
    ]
    return torch.stack(losses).mean()


def meta_gradient(
    policy: GaussianMLPPolicy, params: Params, tasks: Sequence[MetaTask], **options: Any
) -> tuple[Params, Tensor]:
    """(d meta_loss / d theta per parameter, meta_loss) by torch.func.grad_and_value;
    `options` are meta_loss's keywords (inner_lr, clip_eps, estimator, first_order)."""
    g, value = grad_and_value(lambda p: meta_loss(policy, p, tasks, **options))(params)
    return g, value
