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

from dataclasses import dataclass
from typing import Any, NamedTuple

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
from training.common.local_policies import local_policy_dist, reparameterised, shared_log_prob
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
    sac, dc = cfg.sac, cfg.distral
    c = dc.c_kl + dc.c_ent
    T, B, _ = batch.obs.shape
    reduce = task_reducer(T, per_task)
    d = nets.one_hot(batch.tasks.long().repeat_interleave(B))
    obs = batch.obs.reshape(T * B, -1)
    actions = batch.actions.reshape(T * B, -1)
    rewards = batch.rewards.reshape(T * B, 1)
    next_obs = batch.next_obs.reshape(T * B, -1)
    dones = batch.dones.reshape(T * B, 1)

    q1 = nets.qf1(obs, actions, d)
    q2 = nets.qf2(obs, actions, d)
    with torch.no_grad():
        u_next, log_pi_next, a_next = task_policy_sample(nets, batch.next_obs, batch.tasks)
        log_p0_next = shared_log_prob(nets, next_obs, d, u_next)
        target_q = torch.min(
            nets.target_qf1(next_obs, a_next, d), nets.target_qf2(next_obs, a_next, d)
        )
        target_v = target_q - c * log_pi_next + dc.c_kl * log_p0_next
        q_target = sac.reward_scale * rewards + (1.0 - dones) * sac.gamma * target_v
    qf_loss = reduce((q1 - q_target) ** 2) + reduce((q2 - q_target) ** 2)

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


@dataclass
class DistralOptimizers:
    """Adam for the twin Q, the task policies and the shared policy."""

    critic: torch.optim.Optimizer
    policy: torch.optim.Optimizer
    distill: torch.optim.Optimizer

    @classmethod
    def create(cls, nets: DistralNets, cfg: TrainConfig) -> DistralOptimizers:
        """Adam per learner: sac.qf_lr, sac.policy_lr, distral.distill_lr."""
        return cls(
            critic=torch.optim.Adam(nets.critic_parameters(), lr=cfg.sac.qf_lr),
            policy=torch.optim.Adam(nets.task_policy_parameters(), lr=cfg.sac.policy_lr),
            distill=torch.optim.Adam(nets.shared.parameters(), lr=cfg.distral.distill_lr),
        )

    def state_dict(self) -> dict[str, Any]:
        """All optimizer states (for checkpoints)."""
        return {k: getattr(self, k).state_dict() for k in ("critic", "policy", "distill")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`."""
        for k in ("critic", "policy", "distill"):
            getattr(self, k).load_state_dict(state[k])


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
