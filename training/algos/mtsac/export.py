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

import torch

from training.algos.mtsac.networks import MTSACNets
from training.common.conditioned_export import export_conditioned_policy, one_hot_names
from training.common.tasks import make_task_source
from training.config import TrainConfig


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
    if nets.task_input == "descriptor":
        names = list(make_task_source(cfg).descriptor_names)
        table = nets.descriptors
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
        },
        force=force,
        verbose=verbose,
    )
