"""MT-PPO's PPO terms over episodes (training/common/ppo.py does the maths and the
minibatch epochs; a sequence is one episode of one train task here).

`episode_batch` pads episodes into (S, T) tensors with each step's one-hot descriptor;
`with_targets` adds the behaviour policy's log-probabilities and GAE advantages and value
targets per episode (bootstrap V(s_T) after an episode cut by the time limit, 0 after a
true terminal); `mtppo_evaluate` is the forward pass `ppo_update` calls; `mtppo_losses`
the terms on a batch (what the tests check the networks' gradients of).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.algos.mtppo.networks import MTPPONets
from training.common.ppo import (
    PPOLosses,
    batch_losses,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
)
from training.config import PPOConfig


@dataclass
class TaskEpisode:
    """One episode of train task `task`: its observations, sampled pre-tanh actions u and
    rewards, whether it ended on a true terminal, and its last observation s_T."""

    task: int
    obs: np.ndarray  # (T, obs)
    u: np.ndarray  # (T, act)
    rewards: np.ndarray  # (T,)
    terminated: bool
    final_obs: np.ndarray  # (obs,)


def episode_batch(episodes: list[TaskEpisode], descriptor_dim: int) -> dict[str, Tensor]:
    """Episodes padded to the longest: obs, u, descriptor (S, T, .), rewards, mask (S, T),
    plus final_obs (S, obs), final_descriptor (S, D), terminated (S,)."""
    T = max(len(e.rewards) for e in episodes)
    eye = np.eye(descriptor_dim, dtype=np.float32)

    def padded(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return np.concatenate([x, np.zeros((T - len(x), *x.shape[1:]), np.float32)])

    lengths = torch.tensor([len(e.rewards) for e in episodes])
    t = torch.from_numpy
    return {
        "obs": t(np.stack([padded(e.obs) for e in episodes])),
        "u": t(np.stack([padded(e.u) for e in episodes])),
        "rewards": t(np.stack([padded(e.rewards) for e in episodes])),
        "descriptor": t(np.stack([np.repeat(eye[e.task][None], T, 0) for e in episodes])),
        "mask": (torch.arange(T)[None] < lengths[:, None]).float(),
        "final_obs": t(np.stack([np.asarray(e.final_obs, np.float32) for e in episodes])),
        "final_descriptor": t(np.stack([eye[e.task] for e in episodes])),
        "terminated": torch.tensor([float(e.terminated) for e in episodes]),
    }


def with_targets(nets: MTPPONets, batch: dict[str, Tensor], cfg: PPOConfig) -> dict[str, Tensor]:
    """`batch` plus `logp` (the behaviour policy's), `advantages` and `returns`; the
    per-episode extras (final_obs, final_descriptor, terminated) are used and dropped."""
    data = dict(batch)
    final_obs, final_d = data.pop("final_obs"), data.pop("final_descriptor")
    terminated = data.pop("terminated")
    with torch.no_grad():
        mean, log_std = nets.policy(data["obs"], data["descriptor"])
        values = nets.value(data["obs"], data["descriptor"])
        bootstrap = nets.value(final_obs, final_d) * (1.0 - terminated)
    adv, ret = gae(data["rewards"], values, data["mask"], bootstrap, cfg.gamma, cfg.gae_lambda)
    data.update(logp=gaussian_log_prob(data["u"], mean, log_std), advantages=adv, returns=ret)
    return data


def mtppo_evaluate(nets: MTPPONets, mb: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """The current policy's logp and entropy of the minibatch's u, and the values (S, T)."""
    mean, log_std = nets.policy(mb["obs"], mb["descriptor"])
    values = nets.value(mb["obs"], mb["descriptor"])
    return gaussian_log_prob(mb["u"], mean, log_std), gaussian_entropy(log_std), values


def mtppo_losses(nets: MTPPONets, batch: dict[str, Tensor], cfg: PPOConfig) -> PPOLosses:
    """PPO's terms on a whole prepared batch (`with_targets`)."""
    return batch_losses(batch, mtppo_evaluate(nets, batch), cfg.clip)
