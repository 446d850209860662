"""PEARL: probabilistic embeddings for actor-critic RL (Rakelly et al. 2019, arXiv 1903.08254).

One algorithm, one module. Read top to bottom:

1. `product_of_gaussians`: the posterior q(z | c) from per-transition factors (paper eq. 2
   and appendix A) in natural parameters.
2. `pearl_losses(batch, nets, cfg, per_task=False)`: a pure function returning every loss
   term as a `PearlLosses` NamedTuple: the critic loss (eq. 5 with SAC's twin Q and target
   networks), the actor loss (eq. 6 with z detached), KL(q(z|c) || N(0, I)) (eq. 4) and
   alpha's loss; scalars, or with `per_task` (T,) terms that sum to them.
3. `pearl_update(batch, nets, optimizers, cfg, grad_transform=None)`: owns the optimizer
   steps, one `Learner` each (training/common/learner.py). Each optimizer sees only the gradient of its
   own loss (`grad_transform`: the gradient-surgery hook, over per-task losses):

       encoder  <- critic loss + kl_lambda * KL   (encoder only gets grads from Q and KL)
       Q1, Q2   <- critic loss
       policy   <- actor loss                      (z detached: no grads into the encoder)
       log_alpha<- alpha loss (when auto_entropy)

Shapes: the batch is (task, batch, feat) = (T, B, .); the context is (T, C, D) with
D = 2*obs + act + 1 = (s, a, r, s'); z is (T, L), repeated to (T*B, L) for the RL terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from training.algos.pearl.networks import PearlNets
from training.common.batches import MetaBatch
from training.common.learner import (
    GradTransform,
    Learner,
    learner_step,
    soft_update,
    task_reducer,
)
from training.config import TrainConfig


class PearlLosses(NamedTuple):
    """Every loss term of one PEARL step plus diagnostics. The four losses are scalars, or
    with `per_task` (T,) terms summing to them (training/common/learner.py `task_reducer`); the
    diagnostics are always over the whole batch."""

    qf_loss: Tensor
    """Twin-Q Bellman error; its gradient also trains the encoder through z."""
    policy_loss: Tensor
    kl_div: Tensor
    """Sum over tasks of KL(q(z|c_T) || N(0, I)), as in oyster (not yet weighted by lambda)."""
    alpha_loss: Tensor
    alpha: Tensor
    z_mean: Tensor  # (T, L) posterior means, detached
    z_var: Tensor  # (T, L) posterior variances, detached
    q_mean: Tensor  # mean Q1 on the batch, detached
    log_pi: Tensor  # mean log pi(a|s,z) of fresh actions, detached


def product_of_gaussians(
    mu: Tensor, var: Tensor, prior: bool = True, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Posterior N(mu_post, var_post) proportional to prod_n N(mu_n, var_n) (PEARL eq. 2).

    mu, var: (..., N, L) factors over N transitions; mask (..., N) of 0/1 drops factors.
    In natural parameters the product is a sum, so it is order-independent and O(1) per
    added transition (the runtime uses exactly this):

        precision = sum_n 1/var_n (+ 1 for the N(0, I) prior)
        mu_post   = var_post * sum_n mu_n / var_n (+ 0 for the prior mean)

    With `prior=False` and no factor the result is the prior N(0, I) (PEARL's agent starts
    from the prior before it has context).
    Returns mu_post, var_post: (..., L).
    """
    precision_n = 1.0 / var  # (..., N, L)
    if mask is not None:
        precision_n = precision_n * mask.unsqueeze(-1)
    precision = precision_n.sum(-2)  # (..., L)
    eta = (mu * precision_n).sum(-2)  # (..., L), precision-weighted means
    if prior:
        precision = precision + 1.0
    else:
        # No factors and no prior in the product: fall back to the prior itself.
        empty = precision == 0
        precision = torch.where(empty, torch.ones_like(precision), precision)
    var_post = 1.0 / precision
    return eta * var_post, var_post


def kl_to_standard_normal(mu: Tensor, var: Tensor) -> Tensor:
    """KL(N(mu, diag var) || N(0, I)) summed over the last dim: (..., L) -> (...)."""
    return 0.5 * (var + mu.pow(2) - 1.0 - torch.log(var)).sum(-1)


def infer_posterior(nets: PearlNets, context: Tensor, prior: bool) -> tuple[Tensor, Tensor]:
    """Context (T, C, D) -> posterior mean and variance (T, L)."""
    mu_n, var_n = nets.encoder(context)  # (T, C, L) each
    return product_of_gaussians(mu_n, var_n, prior=prior)


def batch_latent(
    nets: PearlNets, context: Tensor, cfg: TrainConfig, zero: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The meta-batch's latent, shared by online and offline PEARL: q(z | c) of each task's
    context (T, C, D), a reparameterised z ~ q (T, L; grads -> encoder through whatever uses
    it) and KL(q || N(0, I)) (eq. 4) in `zero`'s shape: (T,) per task, else summed over tasks.
    Without the latent (SAC / AWAC without context): z fixed at 0 and KL `zero`.
    Returns z_mean, z_var, z, kl_div."""
    T, L = context.shape[0], nets.latent_dim
    if not cfg.use_latent:
        return torch.zeros(T, L), torch.ones(T, L), torch.zeros(T, L), zero
    z_mean, z_var = infer_posterior(nets, context, cfg.encoder.prior_in_posterior)
    z = z_mean + torch.sqrt(z_var) * torch.randn_like(z_mean)
    kl_tasks = kl_to_standard_normal(z_mean, z_var)  # (T,)
    return z_mean, z_var, z, kl_tasks if zero.dim() else kl_tasks.sum()


def pearl_losses(
    batch: MetaBatch, nets: PearlNets, cfg: TrainConfig, per_task: bool = False
) -> PearlLosses:
    """Every PEARL loss term for one meta-batch; pure (no optimizer, no in-place update).

    `per_task`: each loss as (T,) terms, task t's share of the scalar (its mean / T; KL:
    its own KL), so that they sum to the scalar loss (the seam for gradient surgery)."""
    sac = cfg.sac
    T, B, _ = batch.obs.shape
    L = nets.latent_dim
    reduce = task_reducer(T, per_task)
    zero = torch.zeros(T) if per_task else torch.zeros(())

    # --- q(z | c): product of per-transition Gaussians, then a reparameterised sample ---
    z_mean, z_var, z, kl_div = batch_latent(nets, batch.context, cfg, zero)

    # (T, L) -> (T*B, L): every transition of a task sees that task's z.
    z_flat = z.unsqueeze(1).expand(T, B, L).reshape(T * B, L)
    obs = batch.obs.reshape(T * B, -1)
    actions = batch.actions.reshape(T * B, -1)
    rewards = batch.rewards.reshape(T * B, 1)
    next_obs = batch.next_obs.reshape(T * B, -1)
    dones = batch.dones.reshape(T * B, 1)

    if sac.auto_entropy:
        alpha = nets.log_alpha.exp()
    else:
        alpha = torch.tensor(sac.alpha)

    # --- critic (eq. 5, SAC twin-Q form): encoder only gets grads from Q (z not detached) ---
    q1 = nets.qf1(obs, actions, z_flat)  # (T*B, 1)
    q2 = nets.qf2(obs, actions, z_flat)
    with torch.no_grad():
        z_target = z_flat.detach()
        next_actions, next_log_pi = nets.policy.sample(next_obs, z_target)
        target_q = torch.min(
            nets.target_qf1(next_obs, next_actions, z_target),
            nets.target_qf2(next_obs, next_actions, z_target),
        )
        target_v = target_q - alpha.detach() * next_log_pi  # soft value of s'
        q_target = sac.reward_scale * rewards + (1.0 - dones) * sac.gamma * target_v  # (T*B, 1)
    qf_loss = reduce((q1 - q_target) ** 2) + reduce((q2 - q_target) ** 2)

    # --- actor (eq. 6): z detached, so the actor loss leaves the encoder untouched ---
    z_actor = z_flat.detach()
    new_actions, log_pi = nets.policy.sample(obs, z_actor)
    q_new = torch.min(nets.qf1(obs, new_actions, z_actor), nets.qf2(obs, new_actions, z_actor))
    policy_loss = reduce(alpha.detach() * log_pi - q_new)

    # --- temperature (SAC v2, optional) ---
    if sac.auto_entropy:
        target_entropy = (
            sac.target_entropy if sac.target_entropy is not None else -float(nets.act_dim)
        )
        alpha_loss = -reduce(nets.log_alpha * (log_pi.detach() + target_entropy))
    else:
        alpha_loss = zero

    return PearlLosses(
        qf_loss=qf_loss,
        policy_loss=policy_loss,
        kl_div=kl_div,
        alpha_loss=alpha_loss,
        alpha=alpha.detach(),
        z_mean=z_mean.detach(),
        z_var=z_var.detach(),
        q_mean=q1.detach().mean(),
        log_pi=log_pi.detach().mean(),
    )


def critic_parameters(nets: PearlNets) -> list[torch.nn.Parameter]:
    """What the critic loss trains: the twin Q (and V of offline IQL, whose loss is part of
    the critic loss there: `PearlNets.critic_parameters` of each algorithm's networks)."""
    return nets.critic_parameters()


@dataclass
class PearlOptimizers:
    """One optimizer per learner, as in oyster (context, Q, policy) plus alpha."""

    encoder: torch.optim.Optimizer
    critic: torch.optim.Optimizer
    policy: torch.optim.Optimizer
    alpha: torch.optim.Optimizer

    @classmethod
    def create(cls, nets: PearlNets, cfg: TrainConfig) -> PearlOptimizers:
        """Adam for each learner with the configured learning rates."""
        sac = cfg.sac
        return cls(
            encoder=torch.optim.Adam(nets.encoder.parameters(), lr=sac.qf_lr),
            critic=torch.optim.Adam(critic_parameters(nets), lr=sac.qf_lr),
            policy=torch.optim.Adam(nets.policy.parameters(), lr=sac.policy_lr),
            alpha=torch.optim.Adam([nets.log_alpha], lr=sac.alpha_lr),
        )

    def state_dict(self) -> dict[str, Any]:
        """All optimizer states (for checkpoints)."""
        return {k: getattr(self, k).state_dict() for k in ("encoder", "critic", "policy", "alpha")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`."""
        for k in ("encoder", "critic", "policy", "alpha"):
            getattr(self, k).load_state_dict(state[k])


def pearl_learners(
    nets: PearlNets,
    optimizers: PearlOptimizers,
    cfg: TrainConfig,
    *,
    critic_loss: Tensor,
    policy_loss: Tensor,
    alpha_loss: Tensor | None,
) -> list[Learner]:
    """PEARL's learners (shared by online PEARL and training/algos/offline_pearl/losses.py's variant):

        critic  <- critic_loss   (twin Q, and V with offline iql)
        encoder <- critic_loss   (with a latent: z is not detached in the critic)
        policy  <- policy_loss
        alpha   <- alpha_loss    (None: fixed temperature, log alpha not trained)

    `critic_loss` is the critic's Bellman error + encoder.kl_lambda * KL (+ any encoder term)."""
    learners = [Learner("critic", critic_loss, critic_parameters(nets), optimizers.critic)]
    if cfg.use_latent:
        encoder = list(nets.encoder.parameters())
        learners.append(Learner("encoder", critic_loss, encoder, optimizers.encoder))
    policy = list(nets.policy.parameters())
    learners.append(Learner("policy", policy_loss, policy, optimizers.policy))
    if alpha_loss is not None:
        learners.append(Learner("alpha", alpha_loss, [nets.log_alpha], optimizers.alpha))
    return learners


def step_learners(
    nets: PearlNets,
    learners: list[Learner],
    cfg: TrainConfig,
    grad_transform: GradTransform | None = None,
) -> None:
    """One learner step (training/common/learner.py: each loss into its own learners only, all
    gradients before any step), then the target Qs move towards the Qs (Polyak)."""
    learner_step(learners, grad_transform)
    soft_update(nets.target_qf1, nets.qf1, cfg.sac.tau)
    soft_update(nets.target_qf2, nets.qf2, cfg.sac.tau)


def pearl_update(
    batch: MetaBatch,
    nets: PearlNets,
    optimizers: PearlOptimizers,
    cfg: TrainConfig,
    grad_transform: GradTransform | None = None,
) -> dict[str, float]:
    """One PEARL gradient step; returns the loss terms as floats for logging.

    `grad_transform` (training/common/learner.py): the losses are built per task and the hook may
    replace each learner's gradient (gradient surgery); None: the plain step."""
    losses = pearl_losses(batch, nets, cfg, per_task=grad_transform is not None)
    learners = pearl_learners(
        nets,
        optimizers,
        cfg,
        critic_loss=losses.qf_loss + cfg.encoder.kl_lambda * losses.kl_div,
        policy_loss=losses.policy_loss,
        alpha_loss=losses.alpha_loss if cfg.sac.auto_entropy else None,
    )
    step_learners(nets, learners, cfg, grad_transform)
    return {
        "loss/qf": float(losses.qf_loss.detach().sum()),
        "loss/policy": float(losses.policy_loss.detach().sum()),
        "loss/kl_div": float(losses.kl_div.detach().sum()),
        "loss/alpha": float(losses.alpha_loss.detach().sum()),
        "sac/alpha": float(losses.alpha),
        "sac/q_mean": float(losses.q_mean),
        "sac/log_pi": float(losses.log_pi),
        "z/var_mean": float(losses.z_var.mean()),
    }
