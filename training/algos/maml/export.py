"""Export a MAML policy as a `weights` artifact: policy.onnx + manifest.json.

    policy.onnx   obs[B, obs], noise[B, act]  ->  action[B, act] = mean(norm(obs)) + std * noise

The meta-policy (`zshot export` of a run) or an adapted policy (`zshot adapt`: the
parameters after the inner steps on a robot's episodes) alike; the runtime serves it with
no state (docs/PROTOCOL.md "weights"), adapted weights arrive by RELOAD. Normalisation is
inside the graph; the action is the Gaussian's sample (noise 0: its mean), unsquashed as
the policy was trained (the env, and on a robot the bridge's safety layer, clip it to the
action bounds). The graph is checked against torch with onnxruntime before it is written.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from runtime.artifact import ArtifactSpec, Normalisation
from training.algos.maml.networks import GaussianMLPPolicy, MAMLNets, Params
from training.common.onnx_export import (
    annotate,
    check_action_parity,
    env_io,
    export_onnx,
    held_output,
    place_graph,
    provenance,
)
from training.config import TrainConfig

INPUTS = ["obs", "noise"]


class WeightsGraph(nn.Module):
    """(obs, noise) -> mean + exp(log_std) * noise of a Gaussian MLP policy."""

    def __init__(self, policy: GaussianMLPPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: Tensor, noise: Tensor) -> Tensor:
        """obs (B, obs) raw, noise (B, act) -> action (B, act)."""
        mean, log_std = self.policy(obs)
        return mean + log_std.exp() * noise


def with_params(policy: GaussianMLPPolicy, params: Params) -> GaussianMLPPolicy:
    """A copy of `policy` (its normaliser included) holding `params`."""
    out = copy.deepcopy(policy)
    out.load_params(params)
    return out


def check_weights_parity(
    policy_onnx: bytes, graph: WeightsGraph, seed: int = 0
) -> dict[str, float]:
    """Max |onnxruntime - torch| of the action on random observations (around the
    normalisation and far outside it) and noise (half zero); raises beyond PARITY_ATOL."""
    g = torch.Generator().manual_seed(seed)
    norm = graph.policy.normaliser
    n = 64
    obs = norm.mean + norm.std * 3 * torch.randn(n, graph.policy.obs_dim, generator=g)
    noise = torch.randn(n, graph.policy.act_dim, generator=g)
    noise[: n // 2] = 0.0
    return check_action_parity(policy_onnx, graph, {"obs": obs, "noise": noise})


def export_weights(
    nets: MAMLNets,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    name: str,
    algorithm: str,
    run_dir: str | Path,
    counters: Mapping[str, int],
    force: bool = False,
    verbose: bool = False,
    params: Params | None = None,
    adaptation: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, float]]:
    """Export the policy as a `weights` artifact directory; returns (Artifact, parity
    errors). `params`: export these (adapted) parameters instead of the run's theta, and
    `adaptation` (what they were adapted on) goes into the manifest's `training`. Refuses an
    existing `out_dir` unless `force`; built beside it and renamed into place."""
    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    policy = nets.policy if params is None else with_params(nets.policy, params)
    policy.eval()
    obs_dim, act_dim = nets.obs_dim, nets.act_dim
    io = env_io(cfg, obs_dim, act_dim)
    norm = policy.normaliser
    spec = ArtifactSpec(
        name=name,
        kind="weights",
        obs_dim=obs_dim,
        act_dim=act_dim,
        obs_normalisation=Normalisation(mean=norm.mean.tolist(), std=norm.std.tolist()),
        normalisation_in_graph=True,
        **io,
    )
    graph = WeightsGraph(policy)
    args = (torch.zeros(2, obs_dim), torch.zeros(2, act_dim))
    with held_output(not verbose):
        onnx_bytes = annotate(export_onnx(graph, args, INPUTS, ["action"]), spec, "policy")
    errors = check_weights_parity(onnx_bytes, graph)
    record = provenance(
        cfg,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        errors=errors,
        graph=onnx_bytes,
    )
    extra: dict[str, Any] = {"obs_clip": norm.clip}
    if adaptation is not None:
        extra["adaptation"] = dict(adaptation)
    return place_graph(out, "policy", onnx_bytes, spec, record, extra, force), errors
