"""Export a DnC run's central policy pi_G as a `conditioned` artifact (policy.onnx: obs,
descriptor = the train task's one-hot id, noise -> action; training/common/
local_policies.py `export_central_policy`), checked against torch with onnxruntime on
every one-hot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.algos.dnc.networks import DnCNets
from training.common.local_policies import export_central_policy
from training.config import TrainConfig


def export_central(
    nets: DnCNets,
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
    """pi_G as a conditioned artifact directory; returns (Artifact, parity errors)."""
    return export_central_policy(
        nets,
        cfg,
        out_dir,
        name=name,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        training={
            "policy": "central (distilled) pi_G",
            "contexts": nets.num_policies,
            "pcgrad": cfg.pcgrad,
        },
        force=force,
        verbose=verbose,
    )
