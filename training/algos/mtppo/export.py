"""Export an MT-PPO run as a `conditioned` artifact (policy.onnx: obs, descriptor, noise
-> action; the descriptor is the one-hot id of a train task, sent with RESET_TASK), through
training/common/conditioned_export.py `export_conditioned_policy` (parity with torch checked
on every one-hot descriptor), as MT-SAC and Distral do."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from training.algos.mtppo.networks import MTPPONets
from training.common.conditioned_export import export_conditioned_policy, one_hot_names
from training.config import TrainConfig


def export_mtppo(
    nets: MTPPONets,
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
    """The run's policy as a conditioned artifact in `out_dir`; (Artifact, parity errors)."""
    policy = nets.policy
    return export_conditioned_policy(
        policy,
        cfg,
        out_dir,
        obs_dim=int(policy.normaliser.mean.numel()),
        act_dim=int(policy.act_dim),
        descriptor_names=one_hot_names(cfg),
        parity_descriptors=torch.eye(nets.descriptor_dim),
        name=name,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        force=force,
        verbose=verbose,
    )
