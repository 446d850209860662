"""Export an MT-SAC run as a `conditioned` artifact: policy.onnx + manifest.json.

    policy.onnx   obs[B, obs], descriptor[B, D], noise[B, act]  ->  action[B, act]

The descriptor is the one-hot id of a train task (D = num_train_tasks, named by the train
tasks' labels in the manifest's `descriptor_names`); the client sends it with RESET_TASK
(runtime/client.py `reset_task(descriptor=...)`, docs/PROTOCOL.md "Artifact kinds").
Normalisation is inside the graph and the action is squashed and scaled to the env's
bounds, as in PEARL's policy graph (training/common/onnx_export.py `PolicyGraph`); the graph
is checked against torch with onnxruntime before the artifact is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runtime.artifact import ArtifactSpec, Normalisation
from training.algos.mtsac.networks import MTSACNets
from training.common.onnx_export import (
    PARITY_ATOL,
    PolicyGraph,
    annotate,
    env_io,
    export_onnx,
    held_output,
    ort_session,
    write_placed,
)
from training.common.tasks import make_task_source
from training.config import TrainConfig

INPUTS = ["obs", "descriptor", "noise"]


def conditioned_policy_bytes(graph: PolicyGraph, obs_dim: int, descriptor_dim: int) -> bytes:
    """The policy graph as ONNX with inputs obs, descriptor, noise (not yet annotated)."""
    act_dim = int(graph.low.shape[0])
    args = (torch.zeros(2, obs_dim), torch.zeros(2, descriptor_dim), torch.zeros(2, act_dim))
    return export_onnx(graph, args, INPUTS, ["action"])


def check_conditioned_parity(
    policy_onnx: bytes, graph: PolicyGraph, obs_dim: int, descriptor_dim: int, seed: int = 0
) -> dict[str, float]:
    """Max |onnxruntime - torch| of the action on random observations (around the
    normalisation and far outside it), every one-hot descriptor and noise (half zero:
    deterministic); raises beyond PARITY_ATOL."""
    g = torch.Generator().manual_seed(seed)
    norm = graph.policy.normaliser
    n = 16 * descriptor_dim
    obs = norm.mean + norm.std * 3 * torch.randn(n, obs_dim, generator=g)
    descriptor = torch.eye(descriptor_dim).repeat(16, 1)
    noise = torch.randn(n, int(graph.low.shape[0]), generator=g)
    noise[: n // 2] = 0.0
    with torch.no_grad():
        want = graph(obs, descriptor, noise).numpy()
    feed = {"obs": obs.numpy(), "descriptor": descriptor.numpy(), "noise": noise.numpy()}
    (got,) = ort_session(policy_onnx).run(["action"], feed)
    errs = {"action": float(np.abs(got - want).max())}
    if not errs["action"] <= PARITY_ATOL:
        raise RuntimeError(f"ONNX/torch parity beyond {PARITY_ATOL}: {errs}")
    return errs


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
    parity errors). Refuses an existing `out_dir` unless `force`; built in a temporary
    directory beside it and renamed into place (never half written)."""
    import onnx  # lazy: onnx is needed only when exporting

    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    obs_dim, act_dim, D = nets.obs_dim, nets.act_dim, nets.descriptor_dim
    nets.eval()
    io = env_io(cfg, obs_dim, act_dim)
    source = make_task_source(cfg)
    labels = [source.task_label(t) for t in source.train_tasks]
    norm = nets.policy.normaliser
    spec = ArtifactSpec(
        name=name,
        kind="conditioned",
        obs_dim=obs_dim,
        act_dim=act_dim,
        descriptor_dim=D,
        descriptor_names=[f"task {i}: {label}" for i, label in enumerate(labels)],
        obs_normalisation=Normalisation(mean=norm.mean.tolist(), std=norm.std.tolist()),
        normalisation_in_graph=True,
        **io,
    )
    graph = PolicyGraph(
        nets.policy, np.asarray(io["action_low"], np.float32), np.asarray(io["action_high"])
    )
    with held_output(not verbose):
        policy = annotate(conditioned_policy_bytes(graph, obs_dim, D), spec, "policy")
    errors = check_conditioned_parity(policy, graph, obs_dim, D)
    opset = onnx.load_model_from_string(policy).opset_import
    spec = spec.model_copy(
        update={
            "training": {
                "algorithm": algorithm,
                "run_dir": str(Path(run_dir).resolve()),
                "iteration": int(counters["iteration"]),
                "updates": int(counters["updates"]),
                "env_steps": int(counters["env_steps"]),
                "seed": cfg.seed,
                "config": cfg.model_dump(mode="json"),
                "pcgrad": cfg.pcgrad,
                "obs_clip": norm.clip,
                "parity_max_abs_err": errors,
            },
            "versions": {
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnx_opset": str(
                    next((o.version for o in opset if o.domain in ("", "ai.onnx")), "")
                ),
            },
        }
    )
    return write_placed(out, {"policy": policy}, spec, force), errors
