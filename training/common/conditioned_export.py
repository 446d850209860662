"""A `conditioned` artifact from any policy told its task: policy.onnx + manifest.json.

    policy.onnx   obs[B, obs], descriptor[B, D], noise[B, act]  ->  action[B, act]

`ConditionedGraph` wraps a tanh-Gaussian policy and the map from what the client sends (the
descriptor: a one-hot task id, a plug descriptor, ...) to the policy's task input (the
identity, or MT-SAC's learned embedding mean); normalisation is inside the graph and the
action is squashed and scaled to the env's bounds (training/common/onnx_export.py
`PolicyGraph`). `export_conditioned_policy` exports it, checks it against torch with
onnxruntime on the descriptors it is given, and writes the artifact atomically. MT-SAC
(training/algos/mtsac/export.py) and Distral (training/algos/distral) export through it;
the client sends the descriptor with RESET_TASK (docs/PROTOCOL.md "Artifact kinds").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from runtime.artifact import Artifact, ArtifactSpec, Normalisation
from training.common.networks import TanhGaussianPolicy
from training.common.onnx_export import (
    PolicyGraph,
    annotate,
    check_action_parity,
    env_io,
    export_onnx,
    held_output,
    place_graph,
    provenance,
)
from training.common.tasks import make_task_source
from training.config import TrainConfig

INPUTS = ["obs", "descriptor", "noise"]


def one_hot_names(cfg: TrainConfig) -> list[str]:
    """`descriptor_names` of a one-hot task id: "task i: <label>" per train task of `cfg`."""
    source = make_task_source(cfg)
    return [f"task {i}: {source.task_label(t)}" for i, t in enumerate(source.train_tasks)]


class ConditionedGraph(nn.Module):
    """(obs, descriptor, noise) -> action: `task_input(descriptor)` into the policy graph."""

    def __init__(
        self,
        policy: TanhGaussianPolicy,
        low: np.ndarray,
        high: np.ndarray,
        task_input: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.policy_graph = PolicyGraph(policy, low, high)
        self.task_input = task_input

    def forward(self, obs: Tensor, descriptor: Tensor, noise: Tensor) -> Tensor:
        """obs (B, obs) raw, descriptor (B, D), noise (B, act) -> action (B, act), env units."""
        z = descriptor if self.task_input is None else self.task_input(descriptor)
        return self.policy_graph(obs, z, noise)


def conditioned_policy_bytes(
    graph: nn.Module, obs_dim: int, descriptor_dim: int, act_dim: int
) -> bytes:
    """The graph as ONNX with inputs obs, descriptor, noise (not yet annotated)."""
    args = (torch.zeros(2, obs_dim), torch.zeros(2, descriptor_dim), torch.zeros(2, act_dim))
    return export_onnx(graph, args, INPUTS, ["action"])


def check_conditioned_parity(
    policy_onnx: bytes,
    graph: ConditionedGraph,
    obs_dim: int,
    descriptors: Tensor,
    seed: int = 0,
) -> dict[str, float]:
    """Max |onnxruntime - torch| of the action on random observations (around the
    normalisation and far outside it), each of `descriptors` (K, D) 16 times, and noise
    (half zero: deterministic); raises beyond PARITY_ATOL."""
    g = torch.Generator().manual_seed(seed)
    norm = graph.policy_graph.policy.normaliser
    descriptor = descriptors.float().repeat(16, 1)
    n = descriptor.shape[0]
    obs = norm.mean + norm.std * 3 * torch.randn(n, obs_dim, generator=g)
    noise = torch.randn(n, int(graph.policy_graph.low.shape[0]), generator=g)
    noise[: n // 2] = 0.0
    feed = {"obs": obs, "descriptor": descriptor, "noise": noise}
    return check_action_parity(policy_onnx, graph, feed)


def export_conditioned_policy(
    policy: Any,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    obs_dim: int,
    act_dim: int,
    descriptor_names: list[str],
    parity_descriptors: Tensor,
    task_input: nn.Module | None = None,
    name: str,
    algorithm: str,
    run_dir: str | Path,
    counters: Mapping[str, int],
    training: Mapping[str, Any] | None = None,
    force: bool = False,
    verbose: bool = False,
) -> tuple[Artifact, dict[str, float]]:
    """Export `policy` (a `TanhGaussianPolicy` or a module of its form: (obs, task input) ->
    (pre-tanh mean, log_std), with its `normaliser`; told its task through `task_input`,
    default the identity) as a
    `conditioned` artifact directory with `len(descriptor_names)` descriptor entries;
    returns (Artifact, parity errors). `training`: what the manifest's `training` states
    beyond the shared keys. Refuses an existing `out_dir` unless `force`; built in a
    temporary directory beside it and renamed into place (never half written)."""
    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    D = len(descriptor_names)
    policy.eval()
    io = env_io(cfg, obs_dim, act_dim)
    norm = policy.normaliser
    spec = ArtifactSpec(
        name=name,
        kind="conditioned",
        obs_dim=obs_dim,
        act_dim=act_dim,
        descriptor_dim=D,
        descriptor_names=descriptor_names,
        obs_normalisation=Normalisation(mean=norm.mean.tolist(), std=norm.std.tolist()),
        normalisation_in_graph=True,
        **io,
    )
    low = np.asarray(io["action_low"], np.float32)
    graph = ConditionedGraph(policy, low, np.asarray(io["action_high"], np.float32), task_input)
    with held_output(not verbose):
        onnx_bytes = annotate(conditioned_policy_bytes(graph, obs_dim, D, act_dim), spec, "policy")
    errors = check_conditioned_parity(onnx_bytes, graph, obs_dim, parity_descriptors)
    record = provenance(
        cfg,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        errors=errors,
        graph=onnx_bytes,
    )
    extra = {"obs_clip": norm.clip, **(training or {})}
    return place_graph(out, "policy", onnx_bytes, spec, record, extra, force), errors
