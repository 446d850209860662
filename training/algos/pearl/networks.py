"""PEARL's networks, composed from training/common/networks.py: context encoder, policy,
twin Q and their targets, log alpha; `make_nets` builds them for a config."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from training.common.networks import (
    ContextEncoder,
    ObsNormaliser,
    QFunction,
    TanhGaussianPolicy,
    TaskDecoder,
)
from training.config import TrainConfig


class PearlNets(nn.Module):
    """Everything PEARL learns: encoder, policy, twin Q, their targets, log alpha."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        latent_dim: int,
        encoder_hidden: list[int],
        hidden: list[int],
        init_alpha: float = 1.0,
        decoder: TaskDecoder | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.latent_dim = obs_dim, act_dim, latent_dim
        self.encoder = ContextEncoder(obs_dim, act_dim, latent_dim, encoder_hidden)
        self.decoder = decoder
        """Belief features shared by the policy and every Q (None: off)."""
        self.policy = TanhGaussianPolicy(obs_dim, latent_dim, act_dim, hidden, decoder)
        self.qf1 = QFunction(obs_dim, act_dim, latent_dim, hidden, decoder)
        self.qf2 = QFunction(obs_dim, act_dim, latent_dim, hidden, decoder)
        self.target_qf1 = QFunction(obs_dim, act_dim, latent_dim, hidden, decoder)
        self.target_qf2 = QFunction(obs_dim, act_dim, latent_dim, hidden, decoder)
        self.target_qf1.load_state_dict(self.qf1.state_dict())
        self.target_qf2.load_state_dict(self.qf2.state_dict())
        for p in [*self.target_qf1.parameters(), *self.target_qf2.parameters()]:
            p.requires_grad_(False)  # targets move only by Polyak averaging
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)))

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the twin Q (subclasses add their own critics)."""
        return [*self.qf1.parameters(), *self.qf2.parameters()]

    def normalisers(self) -> list[ObsNormaliser]:
        """Every network's observation normaliser."""
        nets = (self.encoder, self.policy, self.qf1, self.qf2, self.target_qf1, self.target_qf2)
        return [net.normaliser for net in nets]

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give every network the same frozen observation normalisation."""
        for norm in self.normalisers():
            norm.set_stats(mean, std)


def task_decoder(cfg: TrainConfig, obs_index: Mapping[str, int] | None) -> TaskDecoder | None:
    """The belief features of `cfg.offline.task_features` (None when there are none).

    `obs_index` maps observation names to columns; it comes from the task side
    (`training.common.tasks.observation_index`), so the networks know no env."""
    feats = cfg.offline.task_features
    if not feats:
        return None
    if obs_index is None:
        raise ValueError("offline.task_features needs the env's observation index (obs_index)")
    return TaskDecoder(
        cfg.encoder.latent_dim,
        [obs_index[f.obs] for f in feats.values()],
        [f.scale for f in feats.values()],
        [f.fine for f in feats.values()],
    )


def net_options(cfg: TrainConfig, obs_index: Mapping[str, int] | None) -> dict[str, Any]:
    """`PearlNets`' arguments after the dims, from `cfg` (shared with its subclasses)."""
    return {
        "latent_dim": cfg.encoder.latent_dim,
        "encoder_hidden": cfg.encoder.hidden,
        "hidden": cfg.sac.hidden,
        "init_alpha": cfg.sac.alpha,
        "decoder": task_decoder(cfg, obs_index),
    }


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> PearlNets:
    """The networks for `cfg` (seed torch before calling for reproducible weights)."""
    return PearlNets(obs_dim, act_dim, **net_options(cfg, obs_index))
