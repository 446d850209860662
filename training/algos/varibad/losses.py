"""VariBAD's VAE: the ELBO over whole trials (Zintgraf et al. 2020, eq. 10) and its step.

A trial is one task's `episodes_per_trial` episodes in a row, N steps in all; step t holds
the encoder's input (s_t, a_{t-1}, r_{t-1}, d_{t-1}) and the transition (s_t, a_t, r_t,
s_{t+1}). The encoder gives beliefs q_t = N(mean_t, var_t), t = 0..N-1, from one pass.
For each belief t, with m_t ~ q_t (reparameterised):

    reward_t = sum_j (r_hat(s_j, a_j, s_{j+1}, m_t) - c r_j)^2        over all j < N
    state_t  = sum_j |s_hat(s_j, a_j, m_t) - norm(s_{j+1})|^2         (decode_state only)
    kl_t     = KL(q_t || q_{t-1}),  q_{-1} = N(0, I)

(c = `vae_reward_scale`, the scale the encoder reads r_{t-1} at), so every belief
reconstructs the trial's past and future (the squared errors are the
negative log-likelihoods of unit-variance Gaussians up to constants, as in the paper's
code), and the trial's loss is the mean over its beliefs of

    reward_coef * reward_t + state_coef * state_t + kl_weight * kl_t,

averaged over the batch's trials (the paper sums over t: a factor 1 / N per trial). With
`subsample_beliefs` / `subsample_decodes` a random subset of the t (or of the j, rescaled by
N / count) stands in for all of them, an unbiased estimate of the same loss (the paper's
vae_subsample_elbos / vae_subsample_decodes). Every term is pure (`elbo_terms`); the VAE
step trains the encoder and decoders only (training/common/learner.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from training.algos.varibad.networks import VariBADNets
from training.common.learner import Learner, learner_step
from training.config import VariBADConfig


class TrialBatch(NamedTuple):
    """B trials, padded to the longest (T steps); `lengths` says how many steps are real."""

    obs: Tensor  # (B, T, obs) s_t, raw
    prev_action: Tensor  # (B, T, act) a_{t-1} (0 at the trial's first step)
    prev_reward: Tensor  # (B, T, 1) r_{t-1} (0 at the trial's first step)
    prev_done: Tensor  # (B, T, 1) 1 at the first step of an episode after another
    action: Tensor  # (B, T, act) a_t, as sent to the env
    reward: Tensor  # (B, T, 1) r_t
    next_obs: Tensor  # (B, T, obs) s_{t+1}, raw (the episode's true last observation)
    lengths: Tensor  # (B,) int64, >= 1


class ELBOTerms(NamedTuple):
    """The ELBO's terms per trial (B,) (each the mean over the trial's beliefs) and the loss."""

    reward: Tensor
    state: Tensor
    kl: Tensor
    loss: Tensor


def gaussian_kl(mean_q: Tensor, logvar_q: Tensor, mean_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) of diagonal Gaussians, summed over the last
    axis: 0.5 sum(logvar_p - logvar_q + (var_q + (mean_q - mean_p)^2) / var_p - 1)."""
    var_q, var_p = logvar_q.exp(), logvar_p.exp()
    return 0.5 * (logvar_p - logvar_q + (var_q + (mean_q - mean_p) ** 2) / var_p - 1.0).sum(-1)


def kl_terms(mean: Tensor, logvar: Tensor) -> Tensor:
    """(B, T, L) beliefs -> (B, T): KL of each to the one before, the first to N(0, I)."""
    prev_mean = torch.cat([torch.zeros_like(mean[:, :1]), mean[:, :-1]], dim=1)
    prev_logvar = torch.cat([torch.zeros_like(logvar[:, :1]), logvar[:, :-1]], dim=1)
    return gaussian_kl(mean, logvar, prev_mean, prev_logvar)


def _indices(
    lengths: Tensor, T: int, count: int | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Which steps (B, k) and their weights (B, k): all T (weight 1 on real steps, 0 on
    padding), or `count` drawn uniformly from each trial's real steps (weight length/count,
    so a weighted sum estimates the sum over all of them)."""
    B = lengths.shape[0]
    if count is None:
        idx = torch.arange(T).expand(B, T)
        return idx, (idx < lengths[:, None]).float()
    u = torch.rand(B, count, generator=generator)
    idx = torch.clamp((u * lengths[:, None]).long(), max=T - 1)
    return idx, lengths[:, None].float().expand(B, count) / count


def _take(x: Tensor, idx: Tensor) -> Tensor:
    """x (B, T, D) at per-trial steps idx (B, k) -> (B, k, D)."""
    return torch.gather(x, 1, idx[..., None].expand(*idx.shape, x.shape[-1]))


def elbo_terms(
    batch: TrialBatch,
    nets: VariBADNets,
    cfg: VariBADConfig,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> ELBOTerms:
    """Every ELBO term of a batch of trials (module docstring); pure. `noise` (B, k, L): the
    reparameterisation's eps for the k beliefs used (None: drawn from `generator`)."""
    B, T, _ = batch.obs.shape
    _, mean, logvar = nets.encoder(batch.obs, batch.prev_action, batch.prev_reward, batch.prev_done)
    lengths = batch.lengths
    real = (torch.arange(T)[None] < lengths[:, None]).float()
    kl = (kl_terms(mean, logvar) * real).sum(1) / lengths

    t_idx, t_w = _indices(lengths, T, cfg.subsample_beliefs, generator)
    j_idx, j_w = _indices(lengths, T, cfg.subsample_decodes, generator)
    mu_t, logvar_t = _take(mean, t_idx), _take(logvar, t_idx)  # (B, k, L)
    eps = torch.randn(mu_t.shape, generator=generator) if noise is None else noise
    m = mu_t + (0.5 * logvar_t).exp() * eps
    kt, kj = t_idx.shape[1], j_idx.shape[1]
    m = m[:, :, None].expand(B, kt, kj, m.shape[-1])

    def per_decode(x: Tensor) -> Tensor:  # (B, T, D) -> (B, kt, kj, D) at the decoded steps
        return _take(x, j_idx)[:, None].expand(B, kt, kj, x.shape[-1])

    obs, act, nxt = per_decode(batch.obs), per_decode(batch.action), per_decode(batch.next_obs)
    r_hat = nets.reward_decoder(m, obs, act, nxt)
    target = per_decode(batch.reward) * cfg.vae_reward_scale  # in the encoder's reward units
    r_err = ((r_hat - target) ** 2).squeeze(-1)  # (B, kt, kj)

    def over_beliefs(err: Tensor) -> Tensor:  # (B, kt, kj) -> (B,): mean over beliefs of sums
        return ((err * j_w[:, None]).sum(-1) * t_w).sum(-1) / lengths

    reward = over_beliefs(r_err)
    if nets.state_decoder is not None:
        dec = nets.state_decoder
        s_err = ((dec(m, obs, act) - dec.target(nxt)) ** 2).sum(-1)
        state = over_beliefs(s_err)
    else:
        state = torch.zeros(B)
    total = cfg.reward_coef * reward + cfg.state_coef * state + cfg.kl_weight * kl
    return ELBOTerms(reward=reward, state=state, kl=kl, loss=total.mean())


def vae_update(
    batch: TrialBatch,
    nets: VariBADNets,
    optimizer: torch.optim.Optimizer,
    cfg: VariBADConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One VAE step: the ELBO's loss trains the encoder and the decoders only."""
    terms = elbo_terms(batch, nets, cfg, generator=generator)
    learner_step([Learner("vae", terms.loss, nets.vae_parameters(), optimizer)])
    return {
        "vae/loss": float(terms.loss.detach()),
        "vae/reward": float(terms.reward.detach().mean()),
        "vae/state": float(terms.state.detach().mean()),
        "vae/kl": float(terms.kl.detach().mean()),
    }
