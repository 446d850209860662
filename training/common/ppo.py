"""Proximal policy optimisation (Schulman, Wolski, Dhariwal, Radford, Klimov (2017),
"Proximal Policy Optimization Algorithms", arXiv 1707.06347) with generalised advantage
estimation (Schulman, Moritz, Levine, Jordan, Abbeel (2016), "High-Dimensional Continuous
Control Using Generalized Advantage Estimation", ICLR, arXiv 1506.02438): the on-policy
learner every on-policy algorithm shares (training/algos/rl2, training/algos/mtppo;
VariBAD's policy), feed-forward and recurrent alike. Hyperparameters: `PPOConfig`
(training/config.py, the `ppo:` section).

Data layout: a batch of S *sequences* padded to one length T. A sequence is whatever the
algorithm's forward pass runs over in one go: an episode for a feed-forward policy, a trial
(or a truncated-BPTT chunk of one, with its start hidden state) for a recurrent one. Every
per-step tensor is (S, T, ...); `mask` (S, T) is 1 on real steps, 0 on the padding after a
sequence's end. The three functions:

- `gae(rewards, values, mask, bootstrap, gamma, lam)` -> (advantages, returns), (S, T):
  A_t = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t, where the
  value after a sequence's last real step is `bootstrap` (S,) (0 for a true end, V(s_T) for
  a cut one); returns = advantages + values (the value target).
- `ppo_losses(logp, old_logp, advantages, values, returns, entropy, mask, clip)` ->
  `PPOLosses`: the clipped surrogate -E[min(rho A, clip(rho, 1 - eps, 1 + eps) A)] with
  rho = exp(logp - old_logp), the value loss E[0.5 (V - R)^2], the mean entropy, and two
  diagnostics (approximate KL, clip fraction); all means over real steps only.
- `ppo_update(batch, evaluate, optimizer, params, cfg, generator)` -> logs: `cfg.epochs`
  passes, each over `cfg.minibatches` random groups of sequences (torch `generator`), one
  Adam step per group on `ppo_loss` (policy + value_coef * value - entropy_coef *
  entropy) with the global gradient norm clipped. `batch` holds at least `mask`, `logp`
  (the behaviour policy's), `advantages` and `returns`, plus whatever the algorithm's
  forward pass reads; `evaluate(minibatch)` (the batch's tensors at the group's
  sequences) returns the current (logp, entropy, values), each (S_mb, T).

`gaussian_log_prob` / `gaussian_entropy`: a diagonal Gaussian over the pre-squash action u
(the policies emit a = tanh(u); tanh's Jacobian does not depend on the parameters, so it
cancels in rho, and the entropy bonus is the Gaussian's, the usual choice).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from training.config import PPOConfig

Evaluate = Callable[[dict[str, Tensor]], tuple[Tensor, Tensor, Tensor]]
"""minibatch -> (logp, entropy, values), each (S_mb, T): the algorithm's forward pass."""


class PPOLosses(NamedTuple):
    """PPO's loss terms (scalars, means over real steps) and diagnostics."""

    policy: Tensor
    """The clipped surrogate, negated (minimised)."""
    value: Tensor
    """0.5 (V - R)^2."""
    entropy: Tensor
    """The policy's mean entropy (a bonus: subtracted in `ppo_loss`)."""
    approx_kl: Tensor
    """E[old_logp - logp] (no gradient): how far the minibatch moved the policy."""
    clip_fraction: Tensor
    """Fraction of steps whose ratio is outside the clip range (no gradient)."""


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of `x` over the entries where `mask` is 1 (0 if there are none)."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, bootstrap: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and value targets, (S, T) each, over padded
    sequences (`mask` 1 on real steps, a prefix of each row); `bootstrap` (S,) is the value
    after each sequence's last real step. No gradient flows through them."""
    rewards, values, mask = rewards.detach(), values.detach(), mask.detach().float()
    S, T = rewards.shape
    boot = bootstrap.detach().to(rewards.dtype)
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros(S, dtype=rewards.dtype)
    for t in range(T - 1, -1, -1):
        if t + 1 < T:
            real_next = mask[:, t + 1] > 0
            v_next = torch.where(real_next, values[:, t + 1], boot)
            a_next = torch.where(real_next, next_adv, torch.zeros_like(next_adv))
        else:
            v_next, a_next = boot, torch.zeros_like(next_adv)
        delta = rewards[:, t] + gamma * v_next - values[:, t]
        adv[:, t] = (delta + gamma * lam * a_next) * mask[:, t]
        next_adv = adv[:, t]
    return adv, (adv + values) * mask


def ppo_losses(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    values: Tensor,
    returns: Tensor,
    entropy: Tensor,
    mask: Tensor,
    clip: float,
) -> PPOLosses:
    """PPO's terms over (S, T) steps (see the module's docstring); `old_logp`,
    `advantages` and `returns` are data (detached here)."""
    mask = mask.float()
    adv, old = advantages.detach(), old_logp.detach()
    log_ratio = logp - old
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)
    with torch.no_grad():
        kl = masked_mean(-log_ratio, mask)
        clipped = masked_mean(((ratio - 1.0).abs() > clip).float(), mask)
    return PPOLosses(
        policy=-masked_mean(surrogate, mask),
        value=masked_mean(0.5 * (values - returns.detach()).pow(2), mask),
        entropy=masked_mean(entropy, mask),
        approx_kl=kl,
        clip_fraction=clipped,
    )


def batch_losses(
    batch: Mapping[str, Tensor], outputs: tuple[Tensor, Tensor, Tensor], clip: float
) -> PPOLosses:
    """`ppo_losses` of a batch (its `logp`, `advantages`, `returns`, `mask`) given the
    current policy's `outputs` = (logp, entropy, values) on it (an `Evaluate`'s)."""
    logp, entropy, values = outputs
    return ppo_losses(
        logp,
        batch["logp"],
        batch["advantages"],
        values,
        batch["returns"],
        entropy,
        batch["mask"],
        clip,
    )


def ppo_loss(terms: PPOLosses, cfg: PPOConfig) -> Tensor:
    """The one loss a PPO step minimises: policy + value_coef * value - entropy_coef * entropy."""
    return terms.policy + cfg.value_coef * terms.value - cfg.entropy_coef * terms.entropy


def normalised_advantages(advantages: Tensor, mask: Tensor) -> Tensor:
    """Advantages standardised over the real steps (padding stays 0)."""
    mask = mask.float()
    mean = masked_mean(advantages, mask)
    var = masked_mean((advantages - mean).pow(2), mask)
    return (advantages - mean) / (var.sqrt() + 1e-8) * mask


def ppo_update(
    batch: Mapping[str, Tensor],
    evaluate: Evaluate,
    optimizer: torch.optim.Optimizer,
    params: Sequence[nn.Parameter],
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`cfg.epochs` passes of minibatch steps over the batch's sequences (module
    docstring); returns the mean of each term and diagnostic over the steps taken
    ("loss/policy", "loss/value", "loss/entropy", "ppo/approx_kl", "ppo/clip_fraction")."""
    for key in ("mask", "logp", "advantages", "returns"):
        if key not in batch:
            raise KeyError(f"ppo_update: the batch has no {key!r}")
    data = dict(batch)
    if cfg.normalise_advantages:
        data["advantages"] = normalised_advantages(data["advantages"], data["mask"])
    S = int(data["mask"].shape[0])
    groups = min(cfg.minibatches, S)
    sums = dict.fromkeys(PPOLosses._fields, 0.0)
    steps = 0
    for _ in range(cfg.epochs):
        for idx in torch.randperm(S, generator=generator).chunk(groups):
            mb = {k: v[idx] for k, v in data.items()}
            terms = batch_losses(mb, evaluate(mb), cfg.clip)
            optimizer.zero_grad(set_to_none=True)
            ppo_loss(terms, cfg).backward()
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(list(params), cfg.max_grad_norm)
            optimizer.step()
            for name, value in zip(PPOLosses._fields, terms, strict=True):
                sums[name] += float(value.detach())
            steps += 1
    names = {
        "policy": "loss/policy",
        "value": "loss/value",
        "entropy": "loss/entropy",
        "approx_kl": "ppo/approx_kl",
        "clip_fraction": "ppo/clip_fraction",
    }
    return {names[k]: v / steps for k, v in sums.items()}


def gaussian_log_prob(u: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(u; mean, exp(log_std)^2 I), summed over the last dim: (..., A) -> (...)."""
    z = (u - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of N(., exp(log_std)^2 I), summed over the last dim: (..., A) -> (...)."""
    return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
