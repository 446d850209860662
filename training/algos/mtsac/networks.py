"""MT-SAC's networks (training/common/networks.py's policy and Q, with the task descriptor,
here the one-hot task id, in the place of PEARL's z): policy, twin Q, their targets,
log alpha; `make_nets` builds them for a config."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from training.common.networks import ObsNormaliser, QFunction, TanhGaussianPolicy
from training.config import TrainConfig


class MTSACNets(nn.Module):
    """pi(a | s, d), Q1, Q2 (s, a, d) and their targets, log alpha; d is the descriptor
    (`descriptor_dim` entries: the one-hot id of one of that many train tasks)."""

    def __init__(
        self, obs_dim: int, act_dim: int, descriptor_dim: int, hidden: list[int], init_alpha: float
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.descriptor_dim = obs_dim, act_dim, descriptor_dim
        self.policy = TanhGaussianPolicy(obs_dim, descriptor_dim, act_dim, hidden)
        self.qf1 = QFunction(obs_dim, act_dim, descriptor_dim, hidden)
        self.qf2 = QFunction(obs_dim, act_dim, descriptor_dim, hidden)
        self.target_qf1 = QFunction(obs_dim, act_dim, descriptor_dim, hidden)
        self.target_qf2 = QFunction(obs_dim, act_dim, descriptor_dim, hidden)
        self.target_qf1.load_state_dict(self.qf1.state_dict())
        self.target_qf2.load_state_dict(self.qf2.state_dict())
        for p in [*self.target_qf1.parameters(), *self.target_qf2.parameters()]:
            p.requires_grad_(False)  # targets move only by Polyak averaging
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)))

    def one_hot(self, tasks: Tensor) -> Tensor:
        """Task indices (N,) -> their descriptors (N, descriptor_dim)."""
        return nn.functional.one_hot(tasks.long(), self.descriptor_dim).float()

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the twin Q."""
        return [*self.qf1.parameters(), *self.qf2.parameters()]

    def normalisers(self) -> list[ObsNormaliser]:
        """Every network's observation normaliser."""
        nets = (self.policy, self.qf1, self.qf2, self.target_qf1, self.target_qf2)
        return [net.normaliser for net in nets]

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give every network the same frozen observation normalisation."""
        for norm in self.normalisers():
            norm.set_stats(mean, std)


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> MTSACNets:
    """The networks for `cfg`: the descriptor is the one-hot id of `cfg.num_train_tasks`
    tasks (the config's validator requires it for mtsac). `obs_index` is unused."""
    if cfg.num_train_tasks is None:
        raise ValueError("algo mtsac needs num_train_tasks (the size of the one-hot task id)")
    return MTSACNets(obs_dim, act_dim, cfg.num_train_tasks, cfg.sac.hidden, cfg.sac.alpha)
