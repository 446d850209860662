"""MT-PPO's networks: a Gaussian policy pi(u | s, d) (an MLP to the pre-tanh mean, a
state-independent log-std; a = tanh(u)) and a value function V(s, d), d the one-hot id of
a train task; each has its own observation normaliser (the same frozen statistics)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from training.common.networks import ObsNormaliser, mlp
from training.config import TrainConfig


class DescriptorGaussianPolicy(nn.Module):
    """(obs, d) -> (pre-tanh mean, log_std): the form training/common/onnx_export.py's
    `PolicyGraph` exports (as a `TanhGaussianPolicy`'s)."""

    def __init__(
        self, obs_dim: int, descriptor_dim: int, act_dim: int, hidden: list[int], log_std: float
    ) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.normaliser = ObsNormaliser(obs_dim)
        self.net = mlp([obs_dim + descriptor_dim, *hidden, act_dim])
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std)))

    def forward(self, obs: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """obs (..., obs) raw, d (..., D) -> mean (..., A), log_std (..., A)."""
        mean = self.net(torch.cat([self.normaliser(obs), d], dim=-1))
        return mean, self.log_std.expand_as(mean)


class DescriptorValue(nn.Module):
    """V(s, d) -> (...,)."""

    def __init__(self, obs_dim: int, descriptor_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.net = mlp([obs_dim + descriptor_dim, *hidden, 1])

    def forward(self, obs: Tensor, d: Tensor) -> Tensor:
        """obs (..., obs) raw, d (..., D) -> V (...)."""
        return self.net(torch.cat([self.normaliser(obs), d], dim=-1))[..., 0]


class MTPPONets(nn.Module):
    """The policy (exported) and the value function (training only)."""

    def __init__(
        self, obs_dim: int, act_dim: int, descriptor_dim: int, hidden: list[int], log_std: float
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.descriptor_dim = obs_dim, act_dim, descriptor_dim
        self.policy = DescriptorGaussianPolicy(obs_dim, descriptor_dim, act_dim, hidden, log_std)
        self.value = DescriptorValue(obs_dim, descriptor_dim, hidden)

    def one_hot(self, tasks: Tensor) -> Tensor:
        """Task indices (...) -> their descriptors (..., descriptor_dim)."""
        return nn.functional.one_hot(tasks.long(), self.descriptor_dim).float()

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give both networks the same frozen observation normalisation."""
        for net in (self.policy, self.value):
            net.normaliser.set_stats(mean, std)


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> MTPPONets:
    """The networks for `cfg` (`ppo.hidden`, `ppo.init_log_std`; the descriptor is the
    one-hot id of `cfg.num_train_tasks` tasks). `obs_index` is unused."""
    if cfg.num_train_tasks is None:
        raise ValueError("algo mtppo needs num_train_tasks (the size of the one-hot task id)")
    return MTPPONets(obs_dim, act_dim, cfg.num_train_tasks, cfg.ppo.hidden, cfg.ppo.init_log_std)
