"""Distral's loss terms and learner step (Teh et al. 2017, in soft actor-critic form: see
training/algos/distral/__init__.py).

`distral_losses(batch, nets, cfg, per_task=False)` is pure; with `per_task` each term is
(T,), one per task of the batch, summing to the scalar (the seam PCGrad projects). With
c = c_KL + c_Ent and a ~ pi_i(.|s) reparameterised (u its pre-tanh value):

    critic   <- twin-Q Bellman error, target r_scale * r + (1 - done) * gamma * V(s'),
                V(s') = min Q'(s', a', i) - c log pi_i(a'|s') + c_KL log pi_0(a'|s', i)
    policy   <- c log pi_i(a|s) - c_KL log pi_0(a|s, i) - min Q(s, a, i)   (every pi_i;
                neither Q nor pi_0 is trained by it)
    distill  <- -log pi_0(a|s, i) with a ~ pi_i(.|s) held fixed   (pi_0 alone)

(-c log pi_i + c_KL log pi_0 = -c_KL log(pi_i / pi_0) - c_Ent log pi_i: the paper's
regularised reward.) Row t of the batch is train task `batch.tasks[t]`: its states go
through that task's own policy pi_i, and the one-hot id i to Q and pi_0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from training.algos.distral.networks import DistralNets
from training.common.learner import (
    GradTransform,
    Learner,
    learner_step,
    soft_update,
    task_reducer,
)
from training.common.local_policies import (
    LocalPolicyOptimizers,
    flatten,
    local_policy_dist,
    reparameterised,
    shared_log_prob,
    twin_soft_q_loss,
)
from training.common.multitask import MTBatch
from training.config import TrainConfig


class DistralLosses(NamedTuple):
    """Every loss term of one Distral step plus diagnostics."""

    qf_loss: Tensor
    policy_loss: Tensor
    distill_loss: Tensor
    kl: Tensor
    """Mean log pi_i(a|s) - log pi_0(a|s, i) over the batch (a one-sample KL estimate)."""
    q_mean: Tensor


def task_policy_sample(
    nets: DistralNets, obs: Tensor, tasks: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Each row-block's own pi_i at obs (T, B, obs): (pre-tanh u, log pi_i(tanh u)), both
    flattened to (T*B, .), and the action tanh(u) (T*B, A); reparameterised."""
    return reparameterised(*local_policy_dist(nets, obs, tasks, tasks))


def distral_losses(
    batch: MTBatch, nets: DistralNets, cfg: TrainConfig, per_task: bool = False
) -> DistralLosses:
    """Every Distral loss term for one batch; pure (no optimizer, no in-place update)."""
    dc = cfg.distral
    c = dc.c_kl + dc.c_ent
    T = batch.obs.shape[0]
    reduce = task_reducer(T, per_task)
    flat = flatten(batch, nets)
    obs, d = flat.obs, flat.d
    with torch.no_grad():
        u_next, log_pi_next, a_next = task_policy_sample(nets, batch.next_obs, batch.tasks)
        log_p0_next = shared_log_prob(nets, flat.next_obs, d, u_next)
        bonus = dc.c_kl * log_p0_next - c * log_pi_next
    qf_loss, q1 = twin_soft_q_loss(nets, flat, a_next, bonus, cfg.sac, reduce)

    u, log_pi, a = task_policy_sample(nets, batch.obs, batch.tasks)
    log_p0 = shared_log_prob(nets, obs, d, u)
    q_new = torch.min(nets.qf1(obs, a, d), nets.qf2(obs, a, d))
    policy_loss = reduce(c * log_pi - dc.c_kl * log_p0 - q_new)
    distill_loss = reduce(-shared_log_prob(nets, obs, d, u.detach()))
    return DistralLosses(
        qf_loss=qf_loss,
        policy_loss=policy_loss,
        distill_loss=distill_loss,
        kl=(log_pi - log_p0).detach().mean(),
        q_mean=q1.detach().mean(),
    )


class DistralOptimizers(LocalPolicyOptimizers):
    """Adam for the twin Q, the task policies and the shared policy (distral.distill_lr)."""

    @staticmethod
    def distill_lr(cfg: TrainConfig) -> float:
        """distral.distill_lr."""
        return cfg.distral.distill_lr


def distral_learners(
    nets: DistralNets, optimizers: DistralOptimizers, losses: DistralLosses
) -> list[Learner]:
    """critic <- qf_loss, policy <- policy_loss (every pi_i), distill <- distill_loss (pi_0)."""
    return [
        Learner("critic", losses.qf_loss, nets.critic_parameters(), optimizers.critic),
        Learner("policy", losses.policy_loss, nets.task_policy_parameters(), optimizers.policy),
        Learner("distill", losses.distill_loss, list(nets.shared.parameters()), optimizers.distill),
    ]


def distral_update(
    batch: MTBatch,
    nets: DistralNets,
    optimizers: DistralOptimizers,
    cfg: TrainConfig,
    grad_transform: GradTransform | None = None,
) -> dict[str, float]:
    """One Distral gradient step (per-task losses when `grad_transform` is given, e.g.
    PCGrad), then the target Qs move (Polyak); the loss terms as floats for logging."""
    losses = distral_losses(batch, nets, cfg, per_task=grad_transform is not None)
    learner_step(distral_learners(nets, optimizers, losses), grad_transform)
    soft_update(nets.target_qf1, nets.qf1, cfg.sac.tau)
    soft_update(nets.target_qf2, nets.qf2, cfg.sac.tau)
    return {
        "loss/qf": float(losses.qf_loss.detach().sum()),
        "loss/policy": float(losses.policy_loss.detach().sum()),
        "loss/distill": float(losses.distill_loss.detach().sum()),
        "distral/kl": float(losses.kl),
        "sac/q_mean": float(losses.q_mean),
    }
