"""Offline PEARL's networks: PEARL's (training/algos/pearl/networks.py) plus, for the IQL
critic (`offline.critic: iql`), the state value V(s, z)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from training.algos.pearl.networks import PearlNets, net_options
from training.common.networks import ObsNormaliser, TaskDecoder, ValueFunction
from training.config import TrainConfig


class OfflinePearlNets(PearlNets):
    """PEARL's networks and, with `value_function`, V(s, z) of offline IQL."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        latent_dim: int,
        encoder_hidden: list[int],
        hidden: list[int],
        init_alpha: float = 1.0,
        decoder: TaskDecoder | None = None,
        value_function: bool = False,
    ) -> None:
        super().__init__(obs_dim, act_dim, latent_dim, encoder_hidden, hidden, init_alpha, decoder)
        # Built after PEARL's networks: the same draws of torch's generator as before #18.
        self.vf = ValueFunction(obs_dim, latent_dim, hidden, decoder) if value_function else None
        """V(s, z) of offline IQL (None otherwise, and then absent from checkpoints)."""

    def critic_parameters(self) -> list[nn.Parameter]:
        """The twin Q and V (IQL's expectile loss is part of its critic loss)."""
        vf = list(self.vf.parameters()) if self.vf is not None else []
        return [*super().critic_parameters(), *vf]

    def normalisers(self) -> list[ObsNormaliser]:
        """PEARL's normalisers and V's."""
        vf = [self.vf.normaliser] if self.vf is not None else []
        return [*super().normalisers(), *vf]


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> OfflinePearlNets:
    """The networks for `cfg` (seed torch before calling for reproducible weights)."""
    iql = cfg.offline.critic == "iql"
    return OfflinePearlNets(obs_dim, act_dim, **net_options(cfg, obs_index), value_function=iql)
