"""Divide-and-Conquer's networks: one tanh-Gaussian local policy per context (widths
`dnc.local_hidden`; told the one-hot id when a context holds several tasks), the central
policy pi_G(a | s, one-hot id) (widths `sac.hidden`, the exported one), twin soft Q
(s, a, one-hot id) and their targets (training/common/local_policies.py's
`LocalPolicyNets`; its exporter, `export_central_policy`, exports pi_G), and the map from
train task to context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from training.common.local_policies import LocalPolicyNets
from training.config import TrainConfig


def context_of(num_tasks: int, num_contexts: int) -> list[int]:
    """The context of each train task: contiguous blocks, task i in floor(i K / T)."""
    if not 1 <= num_contexts <= num_tasks:
        raise ValueError(f"dnc: {num_contexts} contexts for {num_tasks} tasks (1..{num_tasks})")
    return [i * num_contexts // num_tasks for i in range(num_tasks)]


class DnCNets(LocalPolicyNets):
    """pi_1..pi_K (one per context), pi_G (`shared`), Q1, Q2 and their targets."""

    contexts: Tensor
    """(num_tasks,) int64: each train task's context (a buffer: saved with the weights)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_tasks: int,
        hidden: list[int],
        local_hidden: list[int],
        num_contexts: int,
    ) -> None:
        super().__init__(
            obs_dim,
            act_dim,
            num_tasks,
            hidden,
            local_hidden,
            num_policies=num_contexts,
            local_z_dim=0 if num_contexts == num_tasks else num_tasks,
        )
        self.register_buffer(
            "contexts", torch.tensor(context_of(num_tasks, num_contexts), dtype=torch.long)
        )

    def manifest_training(self, cfg: TrainConfig) -> dict[str, Any]:
        """The exported manifest's DnC keys."""
        return {
            "policy": "central (distilled) pi_G",
            "contexts": self.num_policies,
            "pcgrad": cfg.pcgrad,
        }

    def context(self, tasks: Tensor) -> Tensor:
        """The context (local policy index) of each train task index."""
        return self.contexts[tasks.long()]


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> DnCNets:
    """The networks for `cfg` over `cfg.num_train_tasks` tasks in `dnc.contexts` contexts
    (None: one per task). `obs_index` is unused."""
    n = cfg.num_train_tasks
    if n is None:
        raise ValueError("algo dnc needs num_train_tasks (the size of its one-hot task id)")
    k = cfg.dnc.contexts or n
    return DnCNets(obs_dim, act_dim, n, cfg.sac.hidden, cfg.dnc.local_hidden, k)
