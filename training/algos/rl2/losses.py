"""RL²'s PPO terms over trials (training/common/ppo.py does the maths and the minibatch
epochs; this module turns trials into its padded sequences).

A `Trial` is one task's `episodes_per_trial` episodes in a row, step t holding the policy's
input (s_t, a_{t-1}, r_{t-1}, d_{t-1}) (zeros at the trial's first step, d = 1 at the first
step of each later episode, a and r then the previous episode's last), the pre-tanh action
u_t it sampled and the reward r_t. `trial_batch` pads trials into (S, T) tensors;
`with_targets` adds the behaviour policy's log-probabilities, and GAE advantages and value
targets with one return across the trial's episodes (no cut at an episode boundary: what
RL² optimises) and none after its end (bootstrap 0: a trial is the meta-episode);
`chunked` cuts it into truncated-BPTT chunks whose start state is the rollout's hidden state
there; `rl2_evaluate` is the forward pass `ppo_update` calls; `ppo_step` is the three in a
row, one update (RL2Trainer's, and rdistill's RL phase's); `rl2_losses` the terms on a
batch (what the tests check the networks' gradients of).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from training.algos.rl2.networks import RL2Nets
from training.common.ppo import (
    PPOLosses,
    batch_losses,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    ppo_update,
)
from training.config import PPOConfig

INPUTS = ("obs", "last_action", "reward", "done")


@dataclass
class Trial:
    """One trial's steps, in order (T = its total steps over its episodes)."""

    obs: np.ndarray  # (T, obs) float32
    last_action: np.ndarray  # (T, act)
    reward: np.ndarray  # (T, 1): r_{t-1}, the policy's input
    done: np.ndarray  # (T, 1): d_{t-1}
    u: np.ndarray  # (T, act): the sampled pre-tanh action
    rewards: np.ndarray  # (T,): r_t, what the step earned
    episode_returns: list[float]
    episode_successes: list[bool]
    episode_violations: list[bool] = field(default_factory=list)
    """Per episode: ended by the force limit (`info["safety_violation"]`)."""

    @property
    def steps(self) -> int:
        """Steps over the trial's episodes."""
        return len(self.rewards)


def trial_batch(trials: list[Trial]) -> dict[str, Tensor]:
    """Trials padded to the longest: (S, T, .) inputs, u, rewards (S, T), mask (S, T)."""
    T = max(t.steps for t in trials)
    out: dict[str, Tensor] = {}
    for key in (*INPUTS, "u", "rewards"):
        rows = []
        for tr in trials:
            x = np.asarray(getattr(tr, key), np.float32)
            pad = np.zeros((T - len(x), *x.shape[1:]), np.float32)
            rows.append(np.concatenate([x, pad]))
        out[key] = torch.from_numpy(np.stack(rows))
    lengths = torch.tensor([t.steps for t in trials])
    out["mask"] = (torch.arange(T)[None] < lengths[:, None]).float()
    return out


def _inputs(batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
    return tuple(batch[k] for k in INPUTS)


def with_targets(nets: RL2Nets, batch: dict[str, Tensor], cfg: PPOConfig) -> dict[str, Tensor]:
    """`batch` from zero state plus `logp` (the behaviour policy's), `advantages`,
    `returns` (GAE over whole trials, bootstrap 0 after each), `h0_pi`, `h0_v` (zeros) and
    the hidden states after each step, `hs_pi`, `hs_v` (for `chunked`)."""
    S = batch["mask"].shape[0]
    h0_pi, h0_v = torch.zeros(S, nets.policy.hidden_dim), torch.zeros(S, nets.value.hidden_dim)
    with torch.no_grad():
        hs_pi, mean, log_std = nets.policy.sequence(h0_pi, *_inputs(batch))
        hs_v, values = nets.value.sequence(h0_v, *_inputs(batch))
        logp = gaussian_log_prob(batch["u"], mean, log_std)
    adv, ret = gae(
        batch["rewards"], values, batch["mask"], torch.zeros(S), cfg.gamma, cfg.gae_lambda
    )
    return {
        **batch,
        "logp": logp,
        "advantages": adv,
        "returns": ret,
        "h0_pi": h0_pi,
        "h0_v": h0_v,
        "hs_pi": hs_pi,
        "hs_v": hs_v,
    }


def chunked(batch: dict[str, Tensor], length: int) -> dict[str, Tensor]:
    """Truncated BPTT: every (S, T, .) sequence cut into chunks of `length` steps (the last
    padded), each starting from the hidden state the trial's forward pass had after the
    step before it (zeros for a trial's first chunk), gradients not flowing across chunk
    boundaries; chunks of padding only are dropped."""
    S, T = batch["mask"].shape
    n = -(-T // length)
    pad = n * length - T
    out: dict[str, Tensor] = {}
    for key, x in batch.items():
        if key in ("h0_pi", "h0_v", "hs_pi", "hs_v"):
            continue
        x = torch.cat([x, x.new_zeros(S, pad, *x.shape[2:])], dim=1) if pad else x
        out[key] = x.reshape(S * n, length, *x.shape[2:])
    for h0, hs in (("h0_pi", "hs_pi"), ("h0_v", "hs_v")):
        starts = [batch[h0]] + [batch[hs][:, c * length - 1] for c in range(1, n)]
        out[h0] = torch.stack(starts, dim=1).reshape(S * n, -1)
    keep = out["mask"].sum(1) > 0
    return {k: v[keep] for k, v in out.items()}


def rl2_evaluate(nets: RL2Nets, mb: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """The current policy's logp and entropy of the minibatch's u, and the values, (S, T)
    each, from each sequence's start state (`ppo_update`'s `evaluate`)."""
    _, mean, log_std = nets.policy.sequence(mb["h0_pi"], *_inputs(mb))
    _, values = nets.value.sequence(mb["h0_v"], *_inputs(mb))
    return gaussian_log_prob(mb["u"], mean, log_std), gaussian_entropy(log_std), values


def ppo_step(
    nets: RL2Nets,
    batch: dict[str, Tensor],
    cfg: PPOConfig,
    bptt: int | None,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> tuple[dict[str, float], int]:
    """One PPO update of `nets` on a `trial_batch`: `with_targets`, then `chunked` into
    `bptt`-step chunks (None: whole trials), then `ppo_update` over all of the nets'
    parameters. Returns its logs and the number of sequences it ran over."""
    batch = with_targets(nets, batch, cfg)
    if bptt is not None:
        batch = chunked(batch, bptt)
    else:
        del batch["hs_pi"], batch["hs_v"]
    logs = ppo_update(
        batch,
        functools.partial(rl2_evaluate, nets),
        optimizer,
        list(nets.parameters()),
        cfg,
        generator,
    )
    return logs, int(batch["mask"].shape[0])


def rl2_losses(nets: RL2Nets, batch: dict[str, Tensor], cfg: PPOConfig) -> PPOLosses:
    """PPO's terms on a whole prepared batch (`with_targets`, optionally `chunked`)."""
    return batch_losses(batch, rl2_evaluate(nets, batch), cfg.clip)
