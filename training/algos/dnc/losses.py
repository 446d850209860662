"""Divide-and-Conquer's loss terms and learner steps (Ghosh et al. 2018, in soft
actor-critic form: see training/algos/dnc/__init__.py).

`dnc_losses(batch, nets, cfg, per_task=False)` and `distill_loss(...)` are pure; with
`per_task` each term is (T,), one per task of the batch, summing to the scalar (the seam
PCGrad projects). Row-block t of the batch is train task i = `batch.tasks[t]` in context
c = context(i); a ~ pi_c(.|s) reparameterised, alpha = `dnc.c_ent`, K local policies:

    critic   <- twin-Q Bellman error, target r_scale * r + (1 - done) * gamma * V(s'),
                V(s') = min Q'(s', a', i) - alpha log pi_c(a'|s')
    policy   <- alpha log pi_c(a|s) - min Q(s, a, i)
                + c_KL * mean_{j != c} KL(pi_c(.|s) || pi_j(.|s))     (every local policy:
                pi_c through both terms, each other pi_j through the KL; Q is not trained)
    distill  <- KL(pi_c(.|s) || pi_G(.|s, i)) with pi_c held fixed    (pi_G alone)

The KLs are exact (training/common/local_policies.py `gaussian_kl`). The policy and critic
losses step together every update (`dnc_update`); the distillation has its own step
(`distill_step`), which the trainer runs every `dnc.distill_every` iterations.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from training.algos.dnc.networks import DnCNets
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
    gaussian_kl,
    local_policy_dist,
    reparameterised,
    twin_soft_q_loss,
)
from training.common.multitask import MTBatch
from training.config import TrainConfig


class DnCLosses(NamedTuple):
    """The RL loss terms of one DnC step plus diagnostics."""

    qf_loss: Tensor
    policy_loss: Tensor
    pairwise_kl: Tensor
    """Mean over the batch of mean_{j != c} KL(pi_c || pi_j) (0 with one context)."""
    q_mean: Tensor


def pairwise_kl(
    nets: DnCNets, obs: Tensor, batch: MTBatch, own: Tensor, mean_c: Tensor, log_std_c: Tensor
) -> Tensor:
    """(T*B, 1): at each state of row-block t (context own[t]), the mean over the other
    local policies j of KL(pi_c(.|s) || pi_j(.|s)), given pi_c's (mean_c, log_std_c) at
    those states (local_policy_dist); zeros with a single local policy. One pass of each
    local policy over the whole batch."""
    T, B, _ = obs.shape
    K = nets.num_policies
    if K == 1:
        return torch.zeros(T * B, 1)
    flat = obs.reshape(T * B, -1)
    z = nets.local_z(batch.tasks.repeat_interleave(B))
    own_rows = own.repeat_interleave(B)[:, None]
    total = torch.zeros(T * B, 1)
    for j in range(K):
        mean_j, log_std_j = nets.task_policy(j)(flat, z)
        kl = gaussian_kl(mean_c, log_std_c, mean_j, log_std_j)
        total = total + torch.where(own_rows == j, torch.zeros_like(kl), kl)  # not pi_c itself
    return total / (K - 1)


def dnc_losses(
    batch: MTBatch, nets: DnCNets, cfg: TrainConfig, per_task: bool = False
) -> DnCLosses:
    """The critic and local-policy losses for one batch; pure (no optimizer, no update)."""
    dc = cfg.dnc
    T = batch.obs.shape[0]
    reduce = task_reducer(T, per_task)
    own = nets.context(batch.tasks)
    flat = flatten(batch, nets)
    obs, d = flat.obs, flat.d
    with torch.no_grad():
        _, log_pi_next, a_next = reparameterised(
            *local_policy_dist(nets, batch.next_obs, batch.tasks, own)
        )
    qf_loss, q1 = twin_soft_q_loss(nets, flat, a_next, -dc.c_ent * log_pi_next, cfg.sac, reduce)

    mean_c, log_std_c = local_policy_dist(nets, batch.obs, batch.tasks, own)
    _, log_pi, a = reparameterised(mean_c, log_std_c)
    q_new = torch.min(nets.qf1(obs, a, d), nets.qf2(obs, a, d))
    kl = pairwise_kl(nets, batch.obs, batch, own, mean_c, log_std_c)
    policy_loss = reduce(dc.c_ent * log_pi - q_new + dc.c_kl * kl)
    return DnCLosses(
        qf_loss=qf_loss,
        policy_loss=policy_loss,
        pairwise_kl=kl.detach().mean(),
        q_mean=q1.detach().mean(),
    )


def distill_loss(batch: MTBatch, nets: DnCNets, per_task: bool = False) -> Tensor:
    """KL(pi_c(.|s) || pi_G(.|s, i)) on the batch's states, pi_c held fixed: trains pi_G."""
    T, B, _ = batch.obs.shape
    obs = batch.obs.reshape(T * B, -1)
    d = nets.one_hot(batch.tasks.long().repeat_interleave(B))
    with torch.no_grad():
        mean_c, log_std_c = local_policy_dist(
            nets, batch.obs, batch.tasks, nets.context(batch.tasks)
        )
    mean_g, log_std_g = nets.shared(obs, d)
    return task_reducer(T, per_task)(gaussian_kl(mean_c, log_std_c, mean_g, log_std_g))


class DnCOptimizers(LocalPolicyOptimizers):
    """Adam for the twin Q, the local policies and the central policy (dnc.distill_lr)."""

    @staticmethod
    def distill_lr(cfg: TrainConfig) -> float:
        """dnc.distill_lr."""
        return cfg.dnc.distill_lr


def dnc_learners(nets: DnCNets, optimizers: DnCOptimizers, losses: DnCLosses) -> list[Learner]:
    """critic <- qf_loss, policy <- policy_loss (every local policy)."""
    return [
        Learner("critic", losses.qf_loss, nets.critic_parameters(), optimizers.critic),
        Learner("policy", losses.policy_loss, nets.task_policy_parameters(), optimizers.policy),
    ]


def dnc_update(
    batch: MTBatch,
    nets: DnCNets,
    optimizers: DnCOptimizers,
    cfg: TrainConfig,
    grad_transform: GradTransform | None = None,
) -> dict[str, float]:
    """One RL step of the critic and the local policies (per-task losses when
    `grad_transform` is given, e.g. PCGrad), then the target Qs move (Polyak)."""
    losses = dnc_losses(batch, nets, cfg, per_task=grad_transform is not None)
    learner_step(dnc_learners(nets, optimizers, losses), grad_transform)
    soft_update(nets.target_qf1, nets.qf1, cfg.sac.tau)
    soft_update(nets.target_qf2, nets.qf2, cfg.sac.tau)
    return {
        "loss/qf": float(losses.qf_loss.detach().sum()),
        "loss/policy": float(losses.policy_loss.detach().sum()),
        "dnc/pairwise_kl": float(losses.pairwise_kl),
        "sac/q_mean": float(losses.q_mean),
    }


def distill_step(batch: MTBatch, nets: DnCNets, optimizers: DnCOptimizers) -> float:
    """One supervised step of pi_G towards the local policies (no gradient surgery: PCGrad
    acts on the RL step only); the loss before the step."""
    loss = distill_loss(batch, nets)
    learner_step([Learner("distill", loss, list(nets.shared.parameters()), optimizers.distill)])
    return float(loss.detach())
