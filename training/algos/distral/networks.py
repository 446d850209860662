"""Distral's networks: one tanh-Gaussian policy pi_i(a | s) per train task (widths
`distral.task_hidden`), the shared policy pi_0(a | s, one-hot id) (widths `sac.hidden`,
the exported one), twin soft Q (s, a, one-hot id) and their targets
(training/common/networks.py's policy and Q)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from training.common.networks import ObsNormaliser, QFunction, TanhGaussianPolicy
from training.config import TrainConfig


class DistralNets(nn.Module):
    """pi_1..pi_T, pi_0, Q1, Q2 and their targets over `num_tasks` train tasks."""

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, hidden: list[int], task_hidden: list[int]
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.num_tasks = obs_dim, act_dim, num_tasks
        self.task_policies = nn.ModuleList(
            TanhGaussianPolicy(obs_dim, 0, act_dim, task_hidden) for _ in range(num_tasks)
        )
        self.shared = TanhGaussianPolicy(obs_dim, num_tasks, act_dim, hidden)
        self.qf1 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.qf2 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.target_qf1 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.target_qf2 = QFunction(obs_dim, act_dim, num_tasks, hidden)
        self.target_qf1.load_state_dict(self.qf1.state_dict())
        self.target_qf2.load_state_dict(self.qf2.state_dict())
        for p in [*self.target_qf1.parameters(), *self.target_qf2.parameters()]:
            p.requires_grad_(False)  # targets move only by Polyak averaging

    def one_hot(self, tasks: Tensor) -> Tensor:
        """Task indices (N,) -> their one-hot ids (N, num_tasks)."""
        return nn.functional.one_hot(tasks.long(), self.num_tasks).float()

    def task_policy(self, task: int) -> TanhGaussianPolicy:
        """pi_task."""
        policy = self.task_policies[task]
        assert isinstance(policy, TanhGaussianPolicy)  # what __init__ puts there
        return policy

    def task_policy_parameters(self) -> list[nn.Parameter]:
        """What the policy loss trains: every pi_i."""
        return list(self.task_policies.parameters())

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the twin Q."""
        return [*self.qf1.parameters(), *self.qf2.parameters()]

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give every network the same frozen observation normalisation."""
        nets = (self.shared, self.qf1, self.qf2, self.target_qf1, self.target_qf2)
        norms: list[ObsNormaliser] = [n.normaliser for n in (*self.task_policies, *nets)]
        for norm in norms:
            norm.set_stats(mean, std)


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> DistralNets:
    """The networks for `cfg` over `cfg.num_train_tasks` tasks (required for distral by the
    config's validator). `obs_index` is unused."""
    if cfg.num_train_tasks is None:
        raise ValueError("algo distral needs num_train_tasks (one policy per train task)")
    return DistralNets(
        obs_dim, act_dim, cfg.num_train_tasks, cfg.sac.hidden, cfg.distral.task_hidden
    )


def empty_z(n: int) -> Tensor:
    """The task policies' (absent) task input: (n, 0)."""
    return torch.zeros(n, 0)
