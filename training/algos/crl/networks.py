"""Contrastive RL's networks: the shared goal policy (training/common/goals.py) and the
critic's encoders phi(s, a) and psi(g); `make_nets` builds them for a goal config."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from training.common.goal_trainer import goal_layout
from training.common.goals import GoalPolicy
from training.common.networks import ObsNormaliser, mlp
from training.config import TrainConfig


class ContrastiveCritic(nn.Module):
    """phi(s, a) -> R^d and psi(g) -> R^d on normalised inputs; f = phi . psi."""

    def __init__(
        self, obs_dim: int, act_dim: int, goal_dim: int, hidden: list[int], repr_dim: int
    ) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(obs_dim)
        self.goal_normaliser = ObsNormaliser(goal_dim)
        self.phi_net = mlp([obs_dim + act_dim, *hidden, repr_dim])
        self.psi_net = mlp([goal_dim, *hidden, repr_dim])

    def phi(self, obs: Tensor, action: Tensor) -> Tensor:
        """(N, O) raw, (N, A) -> (N, d)."""
        return self.phi_net(torch.cat([self.normaliser(obs), action], dim=-1))

    def psi(self, goal: Tensor) -> Tensor:
        """(M, G) raw -> (M, d)."""
        return self.psi_net(self.goal_normaliser(goal))

    def logits(self, obs: Tensor, action: Tensor, goal: Tensor) -> Tensor:
        """f(s_i, a_i, g_j) for every pair: (N, M)."""
        return self.phi(obs, action) @ self.psi(goal).T

    def forward(self, obs: Tensor, action: Tensor, goal: Tensor) -> Tensor:
        """f(s_i, a_i, g_i) row by row: (N, 1)."""
        return (self.phi(obs, action) * self.psi(goal)).sum(-1, keepdim=True)


class CRLNets(nn.Module):
    """pi(a | s, g) and the contrastive critic. `obs_dim` is the observation part (O),
    `goal_dim` the goal's (G): the policy's descriptor."""

    def __init__(
        self, obs_dim: int, goal_dim: int, act_dim: int, hidden: list[int], repr_dim: int
    ) -> None:
        super().__init__()
        self.obs_dim, self.goal_dim, self.act_dim = obs_dim, goal_dim, act_dim
        self.policy = GoalPolicy(obs_dim, goal_dim, act_dim, hidden)
        self.critic = ContrastiveCritic(obs_dim, act_dim, goal_dim, hidden, repr_dim)

    def normalised_modules(self) -> list[nn.Module]:
        """Every module with the frozen observation and goal normalisers."""
        return [self.policy, self.critic]


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> CRLNets:
    """The networks for `cfg` whose env's flat observation has `obs_dim` entries
    ([observation, achieved, desired]). `obs_index` is unused."""
    lay = goal_layout(cfg, obs_dim)
    return CRLNets(lay.obs_dim, lay.goal_dim, act_dim, cfg.sac.hidden, cfg.crl.repr_dim)
