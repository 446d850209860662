"""Distral's networks: one tanh-Gaussian policy pi_i(a | s) per train task (widths
`distral.task_hidden`), the shared policy pi_0(a | s, one-hot id) (widths `sac.hidden`,
the exported one), twin soft Q (s, a, one-hot id) and their targets
(training/common/local_policies.py's `LocalPolicyNets`, one local policy per task told
nothing; its exporter, `export_central_policy`, exports pi_0)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.common.local_policies import LocalPolicyNets
from training.config import TrainConfig


class DistralNets(LocalPolicyNets):
    """pi_1..pi_T, pi_0, Q1, Q2 and their targets over `num_tasks` train tasks."""

    def __init__(
        self, obs_dim: int, act_dim: int, num_tasks: int, hidden: list[int], task_hidden: list[int]
    ) -> None:
        super().__init__(obs_dim, act_dim, num_tasks, hidden, task_hidden, num_policies=num_tasks)

    def manifest_training(self, cfg: TrainConfig) -> dict[str, Any]:
        """The exported manifest's Distral keys."""
        return {"policy": "shared (distilled) pi_0", "pcgrad": cfg.pcgrad}


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
