"""A PEARL run's torch networks as a `FewShotAgent` (training/common/agents.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.algos.pearl.networks import PearlNets
from training.common.agents import AgentBase
from training.common.networks import ContextEncoder
from training.config import TrainConfig


class TorchEncoder:
    """The torch context encoder as a `PosteriorEncoder` (float64 factors for the sums)."""

    def __init__(self, encoder: ContextEncoder, prior_in_posterior: bool) -> None:
        self.encoder = encoder
        self.prior_in_posterior = prior_in_posterior

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-transition factors from the torch encoder."""
        with torch.no_grad():
            mu, var = self.encoder(torch.as_tensor(transitions, dtype=torch.float32))
        return mu.numpy().astype(np.float64), var.numpy().astype(np.float64)


class TorchAgent(AgentBase):
    """A training run's networks behind the `FewShotAgent` interface; without the latent
    (`use_latent` false: SAC without context) it has no encoder and z stays 0."""

    def __init__(self, nets: PearlNets, use_latent: bool, prior_in_posterior: bool) -> None:
        self.nets = nets
        self.latent_dim = int(nets.latent_dim)
        self.encoder = TorchEncoder(nets.encoder, prior_in_posterior) if use_latent else None

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """tanh(mean + std * noise) from the torch policy."""
        with torch.no_grad():
            a, _ = self.nets.policy.sample(
                torch.as_tensor(obs, dtype=torch.float32)[None],
                torch.as_tensor(z, dtype=torch.float32)[None],
                torch.as_tensor(noise, dtype=torch.float32)[None],
            )
        return a[0].numpy()


def pearl_agent(nets: nn.Module, cfg: TrainConfig) -> TorchAgent:
    """The agent of PEARL-shaped networks (PEARL's and offline PEARL's) for `cfg`."""
    if not isinstance(nets, PearlNets):
        raise ValueError(f"{type(nets).__name__} are not PEARL-shaped networks (no encoder)")
    return TorchAgent(nets, cfg.use_latent, cfg.encoder.prior_in_posterior)
