"""Export a Distral run's shared policy pi_0 as a `conditioned` artifact (policy.onnx: obs,
descriptor = the train task's one-hot id, noise -> action; training/common/
conditioned_export.py), checked against torch with onnxruntime on every one-hot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from training.algos.distral.networks import DistralNets
from training.common.conditioned_export import export_conditioned_policy, one_hot_names
from training.config import TrainConfig


def export_shared(
    nets: DistralNets,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    name: str,
    algorithm: str,
    run_dir: str | Path,
    counters: Mapping[str, int],
    force: bool = False,
    verbose: bool = False,
) -> tuple[Any, dict[str, float]]:
    """pi_0 as a conditioned artifact directory; returns (Artifact, parity errors)."""
    return export_conditioned_policy(
        nets.shared,
        cfg,
        out_dir,
        obs_dim=nets.obs_dim,
        act_dim=nets.act_dim,
        descriptor_names=one_hot_names(cfg),
        parity_descriptors=torch.eye(nets.num_tasks),
        name=name,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        training={
            "task_input": "onehot",
            "policy": "shared (distilled) pi_0",
            "pcgrad": cfg.pcgrad,
        },
        force=force,
        verbose=verbose,
    )
