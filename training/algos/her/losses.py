"""HER's loss terms and learner step: SAC (twin Q) on a batch whose goals are partly
hindsight ones (training/common/goals.py `sample_her`); the goal g is every network's task
input. `her_losses(batch, nets, cfg)` is pure and returns every term as a `HERLosses`.
Learners:

    critic  <- twin-Q Bellman error, target clip(r_scale * r + (1 - done) * gamma * V(s', g),
               0, r_scale / (1 - gamma))   (the sparse reward's range: HER's target clipping)
    policy  <- alpha * log pi(a|s,g) - min Q(s, a, g)   (Q not trained by it)
    alpha   <- -log alpha * (log pi + target entropy)   (when auto_entropy)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from training.algos.her.networks import HERNets
from training.common.goals import GoalBatch
from training.common.learner import Learner, learner_step, soft_update
from training.config import TrainConfig


class HERLosses(NamedTuple):
    """Every loss term of one HER step plus diagnostics."""

    qf_loss: Tensor
    policy_loss: Tensor
    alpha_loss: Tensor
    alpha: Tensor
    q_mean: Tensor
    log_pi: Tensor


def her_losses(batch: GoalBatch, nets: HERNets, cfg: TrainConfig) -> HERLosses:
    """Every HER loss term for one batch; pure (no optimizer, no in-place update)."""
    sac = cfg.sac
    g = batch.goals
    alpha = nets.log_alpha.exp() if sac.auto_entropy else torch.tensor(sac.alpha)
    q1 = nets.qf1(batch.obs, batch.actions, g)
    q2 = nets.qf2(batch.obs, batch.actions, g)
    with torch.no_grad():
        next_actions, next_log_pi = nets.policy.sample(batch.next_obs, g)
        target_q = torch.min(
            nets.target_qf1(batch.next_obs, next_actions, g),
            nets.target_qf2(batch.next_obs, next_actions, g),
        )
        target_v = target_q - alpha.detach() * next_log_pi
        q_target = sac.reward_scale * batch.rewards + (1.0 - batch.dones) * sac.gamma * target_v
        q_target = q_target.clamp(0.0, sac.reward_scale / (1.0 - sac.gamma))
    qf_loss = ((q1 - q_target) ** 2).mean() + ((q2 - q_target) ** 2).mean()

    new_actions, log_pi = nets.policy.sample(batch.obs, g)
    q_new = torch.min(nets.qf1(batch.obs, new_actions, g), nets.qf2(batch.obs, new_actions, g))
    policy_loss = (alpha.detach() * log_pi - q_new).mean()
    if sac.auto_entropy:
        target = sac.target_entropy if sac.target_entropy is not None else -float(nets.act_dim)
        alpha_loss = -(nets.log_alpha * (log_pi.detach() + target)).mean()
    else:
        alpha_loss = torch.zeros(())
    return HERLosses(
        qf_loss, policy_loss, alpha_loss, alpha.detach(), q1.detach().mean(), log_pi.detach().mean()
    )


@dataclass
class HEROptimizers:
    """Adam for the twin Q, the policy and log alpha."""

    critic: torch.optim.Optimizer
    policy: torch.optim.Optimizer
    alpha: torch.optim.Optimizer

    @classmethod
    def create(cls, nets: HERNets, cfg: TrainConfig) -> HEROptimizers:
        """Adam for each learner with the configured learning rates."""
        sac = cfg.sac
        return cls(
            critic=torch.optim.Adam(nets.critic_parameters(), lr=sac.qf_lr),
            policy=torch.optim.Adam(nets.policy.parameters(), lr=sac.policy_lr),
            alpha=torch.optim.Adam([nets.log_alpha], lr=sac.alpha_lr),
        )

    def state_dict(self) -> dict[str, Any]:
        """All optimizer states (for checkpoints)."""
        return {k: getattr(self, k).state_dict() for k in ("critic", "policy", "alpha")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`."""
        for k in ("critic", "policy", "alpha"):
            getattr(self, k).load_state_dict(state[k])


def her_learners(
    nets: HERNets, optimizers: HEROptimizers, cfg: TrainConfig, losses: HERLosses
) -> list[Learner]:
    """critic <- qf_loss, policy <- policy_loss, alpha <- alpha_loss (auto_entropy only)."""
    learners = [
        Learner("critic", losses.qf_loss, nets.critic_parameters(), optimizers.critic),
        Learner("policy", losses.policy_loss, list(nets.policy.parameters()), optimizers.policy),
    ]
    if cfg.sac.auto_entropy:
        learners.append(Learner("alpha", losses.alpha_loss, [nets.log_alpha], optimizers.alpha))
    return learners


def her_update(
    batch: GoalBatch, nets: HERNets, optimizers: HEROptimizers, cfg: TrainConfig
) -> dict[str, float]:
    """One gradient step, then the target Qs move (Polyak); the terms as floats."""
    losses = her_losses(batch, nets, cfg)
    learner_step(her_learners(nets, optimizers, cfg, losses))
    soft_update(nets.target_qf1, nets.qf1, cfg.sac.tau)
    soft_update(nets.target_qf2, nets.qf2, cfg.sac.tau)
    return {
        "loss/qf": float(losses.qf_loss.detach()),
        "loss/policy": float(losses.policy_loss.detach()),
        "loss/alpha": float(losses.alpha_loss.detach()),
        "sac/alpha": float(losses.alpha),
        "sac/q_mean": float(losses.q_mean),
        "sac/log_pi": float(losses.log_pi),
        "her/relabelled": float(batch.relabelled.float().mean()),
        "her/reward_mean": float(batch.rewards.mean()),
    }
