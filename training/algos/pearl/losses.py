"""PEARL: probabilistic embeddings for actor-critic RL (Rakelly et al. 2019, arXiv 1903.08254).

One algorithm, one module. Read top to bottom:

1. `product_of_gaussians`: the posterior q(z | c) from per-transition factors (paper eq. 2
   and appendix A) in natural parameters.
2. `pearl_losses(batch, nets, cfg)`: a pure function returning every loss term as a
   `PearlLosses` NamedTuple: the critic loss (eq. 5 with SAC's twin Q and target networks),
   the actor loss (eq. 6 with z detached), KL(q(z|c) || N(0, I)) (eq. 4) and alpha's loss.
3. `pearl_update(batch, nets, optimizers, cfg)`: owns the optimizer steps. Each optimizer sees
   only the gradient of its own loss:

       encoder  <- critic loss + kl_lambda * KL   (encoder only gets grads from Q and KL)
       Q1, Q2   <- critic loss
       policy   <- actor loss                      (z detached: no grads into the encoder)
       log_alpha<- alpha loss (when auto_entropy)

Shapes: the batch is (task, batch, feat) = (T, B, .); the context is (T, C, D) with
D = 2*obs + act + 1 = (s, a, r, s'); z is (T, L), repeated to (T*B, L) for the RL terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from training.algos.pearl.networks import PearlNets
from training.common.batches import MetaBatch
from training.config import TrainConfig


class PearlLosses(NamedTuple):
    """Every loss term of one PEARL step (scalars) plus diagnostics."""

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


def pearl_losses(batch: MetaBatch, nets: PearlNets, cfg: TrainConfig) -> PearlLosses:
    """Every PEARL loss term for one meta-batch; pure (no optimizer, no in-place update)."""
    sac = cfg.sac
    T, B, _ = batch.obs.shape
    L = nets.latent_dim

    # --- q(z | c): product of per-transition Gaussians, then a reparameterised sample ---
    if cfg.use_latent:
        z_mean, z_var = infer_posterior(nets, batch.context, cfg.encoder.prior_in_posterior)
        z = z_mean + torch.sqrt(z_var) * torch.randn_like(z_mean)  # (T, L), grads -> encoder
        kl_div = kl_to_standard_normal(z_mean, z_var).sum()  # eq. 4, summed over tasks
    else:
        # SAC without context: the same networks with z fixed at 0.
        z_mean = torch.zeros(T, L)
        z_var = torch.ones(T, L)
        z = torch.zeros(T, L)
        kl_div = torch.zeros(())

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
    qf_loss = ((q1 - q_target) ** 2).mean() + ((q2 - q_target) ** 2).mean()

    # --- actor (eq. 6): z detached, so the actor loss leaves the encoder untouched ---
    z_actor = z_flat.detach()
    new_actions, log_pi = nets.policy.sample(obs, z_actor)
    q_new = torch.min(nets.qf1(obs, new_actions, z_actor), nets.qf2(obs, new_actions, z_actor))
    policy_loss = (alpha.detach() * log_pi - q_new).mean()

    # --- temperature (SAC v2, optional) ---
    if sac.auto_entropy:
        target_entropy = (
            sac.target_entropy if sac.target_entropy is not None else -float(nets.act_dim)
        )
        alpha_loss = -(nets.log_alpha * (log_pi.detach() + target_entropy)).mean()
    else:
        alpha_loss = torch.zeros(())

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


def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) target + tau source."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)


def step_learners(
    nets: PearlNets,
    optimizers: PearlOptimizers,
    cfg: TrainConfig,
    *,
    qf_loss: Tensor,
    kl_div: Tensor,
    policy_loss: Tensor,
    alpha_loss: Tensor | None,
    encoder_aux: Tensor | None = None,
    aux_params: Sequence[torch.nn.Parameter] = (),
) -> None:
    """Backpropagate each loss into its own learners, step them, and move the target Qs
    (shared by online PEARL and training/algos/offline_pearl/losses.py's advantage-weighted variant).

    The critic loss `qf_loss + encoder.kl_lambda * kl_div` reaches the Q networks and, with
    a latent, the encoder; `policy_loss` only the policy; `alpha_loss` (None: fixed temperature) only
    log alpha. `encoder_aux` (offline task inference) is added to the encoder's loss and also
    fills the gradients of `aux_params` (its head), which the caller steps.
    """
    critic_params = critic_parameters(nets)
    encoder_params = list(nets.encoder.parameters())
    policy_params = list(nets.policy.parameters())
    opts = [optimizers.encoder, optimizers.critic, optimizers.policy]
    for opt in opts + ([optimizers.alpha] if alpha_loss is not None else []):
        opt.zero_grad(set_to_none=True)

    # All backward passes run before any step: each optimizer step changes weights in place,
    # and the other losses' graphs still hold those weights. `inputs=` keeps each loss's
    # gradient on its own learners (the actor's Q terms would otherwise push grads into Q).
    critic_inputs = critic_params + (encoder_params if cfg.use_latent else [])
    critic_loss = qf_loss + cfg.encoder.kl_lambda * kl_div
    if encoder_aux is not None:
        critic_loss = critic_loss + encoder_aux
        critic_inputs = critic_inputs + list(aux_params)
    critic_loss.backward(inputs=critic_inputs, retain_graph=True)
    policy_loss.backward(inputs=policy_params, retain_graph=alpha_loss is not None)
    if alpha_loss is not None:
        alpha_loss.backward(inputs=[nets.log_alpha])

    optimizers.critic.step()
    if cfg.use_latent:
        optimizers.encoder.step()
    optimizers.policy.step()
    if alpha_loss is not None:
        optimizers.alpha.step()
    soft_update(nets.target_qf1, nets.qf1, cfg.sac.tau)
    soft_update(nets.target_qf2, nets.qf2, cfg.sac.tau)


def pearl_update(
    batch: MetaBatch, nets: PearlNets, optimizers: PearlOptimizers, cfg: TrainConfig
) -> dict[str, float]:
    """One PEARL gradient step; returns the loss terms as floats for logging."""
    losses = pearl_losses(batch, nets, cfg)
    step_learners(
        nets,
        optimizers,
        cfg,
        qf_loss=losses.qf_loss,
        kl_div=losses.kl_div,
        policy_loss=losses.policy_loss,
        alpha_loss=losses.alpha_loss if cfg.sac.auto_entropy else None,
    )
    return {
        "loss/qf": float(losses.qf_loss.detach()),
        "loss/policy": float(losses.policy_loss.detach()),
        "loss/kl_div": float(losses.kl_div.detach()),
        "loss/alpha": float(losses.alpha_loss.detach()),
        "sac/alpha": float(losses.alpha),
        "sac/q_mean": float(losses.q_mean),
        "sac/log_pi": float(losses.log_pi),
        "z/var_mean": float(losses.z_var.mean()),
    }
