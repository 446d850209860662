"""HER's networks: the shared goal policy and twin goal Q (training/common/goals.py), their
targets and log alpha; `make_nets` builds them for a goal config."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from training.common.goal_trainer import goal_layout
from training.common.goals import GoalPolicy, GoalQFunction
from training.config import TrainConfig


class HERNets(nn.Module):
    """pi(a | s, g), Q1, Q2 (s, a, g), their targets, log alpha. `obs_dim` is the
    observation part (O), `goal_dim` the goal's (G): the policy's descriptor."""

    def __init__(
        self, obs_dim: int, goal_dim: int, act_dim: int, hidden: list[int], init_alpha: float
    ) -> None:
        super().__init__()
        self.obs_dim, self.goal_dim, self.act_dim = obs_dim, goal_dim, act_dim
        self.policy = GoalPolicy(obs_dim, goal_dim, act_dim, hidden)
        self.qf1 = GoalQFunction(obs_dim, act_dim, goal_dim, hidden)
        self.qf2 = GoalQFunction(obs_dim, act_dim, goal_dim, hidden)
        self.target_qf1 = GoalQFunction(obs_dim, act_dim, goal_dim, hidden)
        self.target_qf2 = GoalQFunction(obs_dim, act_dim, goal_dim, hidden)
        self.target_qf1.load_state_dict(self.qf1.state_dict())
        self.target_qf2.load_state_dict(self.qf2.state_dict())
        for p in [*self.target_qf1.parameters(), *self.target_qf2.parameters()]:
            p.requires_grad_(False)  # targets move only by Polyak averaging
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)))

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the twin Q."""
        return [*self.qf1.parameters(), *self.qf2.parameters()]

    def normalised_modules(self) -> list[nn.Module]:
        """Every module with the frozen observation and goal normalisers."""
        return [self.policy, self.qf1, self.qf2, self.target_qf1, self.target_qf2]


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> HERNets:
    """The networks for `cfg` whose env's flat observation has `obs_dim` entries
    ([observation, achieved, desired]). `obs_index` is unused."""
    lay = goal_layout(cfg, obs_dim)
    return HERNets(lay.obs_dim, lay.goal_dim, act_dim, cfg.sac.hidden, cfg.sac.alpha)
