"""MT-SAC's loss terms and learner step (Yu et al. 2019's multi-task SAC: SAC, Haarnoja et al.
2018, twin-Q form, with the task input appended to every network's input).

`mtsac_losses(batch, nets, cfg, per_task=False)` is pure and returns every term as an
`MTSACLosses`: scalars, or with `per_task` (T,) terms, one per task of the batch, that sum
to them (training/common/learner.py `task_reducer`: the seam PCGrad projects). Learners:

    critic     <- twin-Q Bellman error, target r_scale * r + (1 - done) * gamma * V(s')
    policy     <- alpha * log pi(a|s,.) - min Q(s, a, d)   (Q not trained by it)
    embedding  <- the policy's loss - embedding_entropy * H[p(z|t)]
                  (task_input embedding only: the embedding is trained through z)
    alpha      <- -log alpha * (log pi + target entropy)   (when auto_entropy)

d is what the critic sees (`MTSACNets.told`: the one-hot id or the descriptor); the policy
sees d, or with task_input embedding z ~ p(z|t) drawn per row (reparameterised, a fresh
draw for the next state's action). Hausman et al. 2018's third term, the inference
network's log q(z | trajectory) in the reward, is left out (see training/algos/mtsac).

Shapes: the batch is (T, B, .), one task per row t, whose index in the train tasks is
`batch.tasks[t]`; everything is flattened to (T*B, .) with each row's task input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from training.algos.mtsac.networks import MTSACNets
from training.common.learner import (
    GradTransform,
    Learner,
    learner_step,
    soft_update,
    task_reducer,
)
from training.common.multitask import MTBatch
from training.config import TrainConfig


class MTSACLosses(NamedTuple):
    """Every loss term of one MT-SAC step plus diagnostics (over the whole batch)."""

    qf_loss: Tensor
    policy_loss: Tensor
    alpha_loss: Tensor
    alpha: Tensor
    q_mean: Tensor
    log_pi: Tensor


def mtsac_losses(
    batch: MTBatch, nets: MTSACNets, cfg: TrainConfig, per_task: bool = False
) -> MTSACLosses:
    """Every MT-SAC loss term for one batch; pure (no optimizer, no in-place update)."""
    sac = cfg.sac
    T, B, _ = batch.obs.shape
    reduce = task_reducer(T, per_task)
    rows = batch.tasks.long().repeat_interleave(B)  # (T*B,) each row's train task
    d = nets.told(rows)
    obs = batch.obs.reshape(T * B, -1)
    actions = batch.actions.reshape(T * B, -1)
    rewards = batch.rewards.reshape(T * B, 1)
    next_obs = batch.next_obs.reshape(T * B, -1)
    dones = batch.dones.reshape(T * B, 1)
    alpha = nets.log_alpha.exp() if sac.auto_entropy else torch.tensor(sac.alpha)

    q1 = nets.qf1(obs, actions, d)
    q2 = nets.qf2(obs, actions, d)
    with torch.no_grad():
        next_actions, next_log_pi = nets.policy.sample(next_obs, nets.policy_input(rows))
        target_q = torch.min(
            nets.target_qf1(next_obs, next_actions, d), nets.target_qf2(next_obs, next_actions, d)
        )
        target_v = target_q - alpha.detach() * next_log_pi
        q_target = sac.reward_scale * rewards + (1.0 - dones) * sac.gamma * target_v
    qf_loss = reduce((q1 - q_target) ** 2) + reduce((q2 - q_target) ** 2)

    new_actions, log_pi = nets.policy.sample(obs, nets.policy_input(rows))
    q_new = torch.min(nets.qf1(obs, new_actions, d), nets.qf2(obs, new_actions, d))
    policy_loss = reduce(alpha.detach() * log_pi - q_new)
    if nets.embedding is not None:
        policy_loss = policy_loss - cfg.mtsac.embedding_entropy * reduce(
            nets.embedding.entropy(rows)
        )

    if sac.auto_entropy:
        target = sac.target_entropy if sac.target_entropy is not None else -float(nets.act_dim)
        alpha_loss = -reduce(nets.log_alpha * (log_pi.detach() + target))
    else:
        alpha_loss = torch.zeros(T) if per_task else torch.zeros(())
    return MTSACLosses(
        qf_loss=qf_loss,
        policy_loss=policy_loss,
        alpha_loss=alpha_loss,
        alpha=alpha.detach(),
        q_mean=q1.detach().mean(),
        log_pi=log_pi.detach().mean(),
    )


@dataclass
class MTSACOptimizers:
    """Adam for the twin Q, the policy, log alpha and (task_input embedding) the embedding."""

    critic: torch.optim.Optimizer
    policy: torch.optim.Optimizer
    alpha: torch.optim.Optimizer
    embedding: torch.optim.Optimizer | None = None

    @classmethod
    def create(cls, nets: MTSACNets, cfg: TrainConfig) -> MTSACOptimizers:
        """Adam for each learner with the configured learning rates (the embedding's is the
        policy's)."""
        sac = cfg.sac
        emb = nets.embedding
        return cls(
            critic=torch.optim.Adam(nets.critic_parameters(), lr=sac.qf_lr),
            policy=torch.optim.Adam(nets.policy.parameters(), lr=sac.policy_lr),
            alpha=torch.optim.Adam([nets.log_alpha], lr=sac.alpha_lr),
            embedding=None if emb is None else torch.optim.Adam(emb.parameters(), sac.policy_lr),
        )

    def _named(self) -> dict[str, torch.optim.Optimizer]:
        named = {"critic": self.critic, "policy": self.policy, "alpha": self.alpha}
        if self.embedding is not None:
            named["embedding"] = self.embedding
        return named

    def state_dict(self) -> dict[str, Any]:
        """All optimizer states (for checkpoints)."""
        return {k: opt.state_dict() for k, opt in self._named().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`."""
        for k, opt in self._named().items():
            opt.load_state_dict(state[k])


def mtsac_learners(
    nets: MTSACNets, optimizers: MTSACOptimizers, cfg: TrainConfig, losses: MTSACLosses
) -> list[Learner]:
    """critic <- qf_loss, policy <- policy_loss, embedding <- policy_loss (task_input
    embedding only), alpha <- alpha_loss (auto_entropy only)."""
    learners = [
        Learner("critic", losses.qf_loss, nets.critic_parameters(), optimizers.critic),
        Learner("policy", losses.policy_loss, list(nets.policy.parameters()), optimizers.policy),
    ]
    if nets.embedding is not None:
        assert optimizers.embedding is not None  # create() makes one with an embedding
        emb = list(nets.embedding.parameters())
        learners.append(Learner("embedding", losses.policy_loss, emb, optimizers.embedding))
    if cfg.sac.auto_entropy:
        learners.append(Learner("alpha", losses.alpha_loss, [nets.log_alpha], optimizers.alpha))
    return learners


def mtsac_update(
    batch: MTBatch,
    nets: MTSACNets,
    optimizers: MTSACOptimizers,
    cfg: TrainConfig,
    grad_transform: GradTransform | None = None,
) -> dict[str, float]:
    """One MT-SAC gradient step (losses per task when `grad_transform` is given, e.g.
    training/common/pcgrad.py's `PCGrad`), then the target Qs move (Polyak); returns the
    loss terms as floats for logging."""
    losses = mtsac_losses(batch, nets, cfg, per_task=grad_transform is not None)
    learner_step(mtsac_learners(nets, optimizers, cfg, losses), grad_transform)
    soft_update(nets.target_qf1, nets.qf1, cfg.sac.tau)
    soft_update(nets.target_qf2, nets.qf2, cfg.sac.tau)
    return {
        "loss/qf": float(losses.qf_loss.detach().sum()),
        "loss/policy": float(losses.policy_loss.detach().sum()),
        "loss/alpha": float(losses.alpha_loss.detach().sum()),
        "sac/alpha": float(losses.alpha),
        "sac/q_mean": float(losses.q_mean),
        "sac/log_pi": float(losses.log_pi),
    }
