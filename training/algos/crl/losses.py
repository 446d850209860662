"""Contrastive RL's loss terms and learner step (Eysenbach et al. 2022, the InfoNCE form).

On a batch of B (s_i, a_i) with g_i an achieved goal of (s_i, a_i)'s own future
(training/common/goals.py `sample_future`), logits L_ij = phi(s_i, a_i) . psi(g_j):

    critic <- InfoNCE = mean_i [ logsumexp_j L_ij - L_ii ]   (cross-entropy, label i)
              + logsumexp_penalty * mean_i (logsumexp_j L_ij)^2
    policy <- mean_i [ alpha * log pi(a'_i | s_i, g_i) - L(s_i, a'_i, g_i) ],
              a'_i ~ pi(. | s_i, g_i)   (the critic not trained by it)

`crl_losses(batch, nets, cfg)` is pure and returns every term as a `CRLLosses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from training.algos.crl.networks import CRLNets
from training.common.goals import FutureBatch
from training.common.learner import Learner, learner_step
from training.config import TrainConfig


def infonce_loss(logits: Tensor) -> Tensor:
    """mean_i [logsumexp_j L_ij - L_ii] of a square (B, B) logit matrix: each row's
    positive is on the diagonal."""
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"InfoNCE needs square logits, got {tuple(logits.shape)}")
    return (torch.logsumexp(logits, dim=1) - torch.diagonal(logits)).mean()


class CRLLosses(NamedTuple):
    """Every loss term of one contrastive RL step plus diagnostics."""

    critic_loss: Tensor
    policy_loss: Tensor
    infonce: Tensor
    accuracy: Tensor
    """Share of rows whose largest logit is their own future (the classifier's accuracy)."""
    logits_pos: Tensor
    logits_neg: Tensor
    log_pi: Tensor


def crl_losses(batch: FutureBatch, nets: CRLNets, cfg: TrainConfig) -> CRLLosses:
    """Every contrastive RL term for one batch; pure (no optimizer, no in-place update)."""
    crl = cfg.crl
    g = batch.future_goals
    logits = nets.critic.logits(batch.obs, batch.actions, g)
    nce = infonce_loss(logits)
    lse = torch.logsumexp(logits, dim=1)
    critic_loss = nce + crl.logsumexp_penalty * (lse**2).mean()
    actions, log_pi = nets.policy.sample(batch.obs, g)
    f = nets.critic(batch.obs, actions, g)
    policy_loss = (crl.alpha * log_pi - f).mean()
    B = logits.shape[0]
    eye = torch.eye(B, dtype=torch.bool)
    with torch.no_grad():
        accuracy = (logits.argmax(1) == torch.arange(B)).float().mean()
        pos = logits[eye].mean()
        neg = logits[~eye].mean() if B > 1 else torch.zeros(())
    return CRLLosses(
        critic_loss, policy_loss, nce.detach(), accuracy, pos, neg, log_pi.detach().mean()
    )


@dataclass
class CRLOptimizers:
    """Adam for the critic's encoders and for the policy."""

    critic: torch.optim.Optimizer
    policy: torch.optim.Optimizer

    @classmethod
    def create(cls, nets: CRLNets, cfg: TrainConfig) -> CRLOptimizers:
        """Adam for each learner with the configured learning rates."""
        return cls(
            critic=torch.optim.Adam(nets.critic.parameters(), lr=cfg.crl.critic_lr),
            policy=torch.optim.Adam(nets.policy.parameters(), lr=cfg.crl.policy_lr),
        )

    def state_dict(self) -> dict[str, Any]:
        """All optimizer states (for checkpoints)."""
        return {"critic": self.critic.state_dict(), "policy": self.policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`."""
        self.critic.load_state_dict(state["critic"])
        self.policy.load_state_dict(state["policy"])


def crl_learners(nets: CRLNets, optimizers: CRLOptimizers, losses: CRLLosses) -> list[Learner]:
    """critic (phi, psi) <- critic_loss, policy <- policy_loss."""
    return [
        Learner("critic", losses.critic_loss, list(nets.critic.parameters()), optimizers.critic),
        Learner("policy", losses.policy_loss, list(nets.policy.parameters()), optimizers.policy),
    ]


def crl_update(
    batch: FutureBatch, nets: CRLNets, optimizers: CRLOptimizers, cfg: TrainConfig
) -> dict[str, float]:
    """One gradient step of both learners; the terms as floats."""
    losses = crl_losses(batch, nets, cfg)
    learner_step(crl_learners(nets, optimizers, losses))
    return {
        "loss/critic": float(losses.critic_loss.detach()),
        "loss/policy": float(losses.policy_loss.detach()),
        "crl/infonce": float(losses.infonce),
        "crl/accuracy": float(losses.accuracy),
        "crl/logits_pos": float(losses.logits_pos),
        "crl/logits_neg": float(losses.logits_neg),
        "crl/log_pi": float(losses.log_pi),
    }
