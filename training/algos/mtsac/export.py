"""Export an MT-SAC run as a `conditioned` artifact: policy.onnx + manifest.json
(training/common/conditioned_export.py).

    policy.onnx   obs[B, obs], descriptor[B, D], noise[B, act]  ->  action[B, act]

The descriptor is what `mtsac.task_input` tells the policy: the one-hot id of a train task
(onehot, embedding: D = num_train_tasks, named by the train tasks' labels in the manifest's
`descriptor_names`; with an embedding the graph maps the one-hot to the embedding's mean),
or the task descriptor (descriptor: its entries' names, e.g. zshot/plug_descriptor.py's).
The client sends it with RESET_TASK (runtime/client.py `reset_task(descriptor=...)`,
docs/PROTOCOL.md "Artifact kinds"). The graph is checked against torch with onnxruntime on
every one-hot (or every train task's descriptor and random ones around them) before the
artifact is written; the manifest's `training.task_input` and `training.heads` say which.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.algos.mtsac.networks import MTSACNets
from training.common.conditioned_export import export_conditioned_policy, one_hot_names
from training.common.tasks import make_task_source
from training.config import TrainConfig
from zshot.plug_descriptor import PLUG_DESCRIPTOR_VERSION, PlugDescriptorError


def export_conditioned(
    nets: MTSACNets,
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
    """Export MT-SAC networks as a `conditioned` artifact directory; returns (Artifact,
    parity errors). Refuses an existing `out_dir` unless `force`."""
    nets.eval()
    extra: dict[str, Any] = {}
    if nets.task_input == "descriptor":
        source = make_task_source(cfg)
        names = list(source.descriptor_names)
        table = nets.descriptors
        if cfg.env == "insertion":
            check_descriptor_table(table, source, Path(run_dir))
            extra["plug_descriptor_version"] = PLUG_DESCRIPTOR_VERSION
        g = torch.Generator().manual_seed(cfg.seed)
        spread = table.std(0, keepdim=True) + 0.1
        parity = torch.cat(
            [table, table.mean(0) + spread * torch.randn(8, table.shape[1], generator=g)]
        )
    else:
        names = one_hot_names(cfg)
        parity = torch.eye(nets.num_tasks)
    return export_conditioned_policy(
        nets.policy,
        cfg,
        out_dir,
        obs_dim=nets.obs_dim,
        act_dim=nets.act_dim,
        descriptor_names=names,
        parity_descriptors=parity,
        task_input=nets.embedding,  # None: the descriptor is the policy's input
        name=name,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        training={
            "pcgrad": cfg.pcgrad,
            "task_input": nets.task_input,
            "heads": nets.heads,
            **extra,
        },
        force=force,
        verbose=verbose,
    )


def check_descriptor_table(table: torch.Tensor, source: Any, run_dir: Path) -> None:
    """The run's stored plug descriptors are what this code computes for its train plugs
    (zshot/plug_descriptor.py version PLUG_DESCRIPTOR_VERSION); a run trained on another
    version is refused in one line (its policy would be told other numbers on the robot)."""
    now = torch.as_tensor(np.stack([source.describe(t) for t in source.train_tasks]))
    if now.shape != table.shape or not torch.allclose(now, table, atol=1e-5):
        raise PlugDescriptorError(
            f"{run_dir}: its plug descriptors are not this code's (version "
            f"{PLUG_DESCRIPTOR_VERSION}, zshot/plug_descriptor.py): the run was trained on "
            "another descriptor version; retrain it"
        )
