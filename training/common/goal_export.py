"""Export a goal-conditioned policy (HER, contrastive RL) as a `conditioned` artifact whose
descriptor is the goal:

    policy.onnx   obs[B, O], descriptor[B, G], noise[B, act]  ->  action[B, act]

`obs` is the goal env's `observation` part (not the flat vector training stores), the
descriptor is the desired goal in the env's goal units (`descriptor_names`: the goal's
entries, e.g. x_mm .. yaw_deg on insertion); a client sends it with RESET_TASK
(docs/PROTOCOL.md "Artifact kinds", conditioned) at every new goal. The manifest's
`training.goal` states epsilon and the reward definition (zshot/goal.py). Normalisation of
both inputs is inside the graph; the graph is checked against torch with onnxruntime
before the artifact is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.artifact import ArtifactSpec, Normalisation
from training.common.conditioned_export import conditioned_policy_bytes
from training.common.goals import GoalLayout, GoalPolicy
from training.common.onnx_export import (
    PolicyGraph,
    annotate,
    check_action_parity,
    env_io,
    held_output,
    place_graph,
    provenance,
)
from training.common.tasks import make_task_source
from training.config import TrainConfig
from zshot.goal import GOAL_REWARD_DEFINITION


def check_goal_parity(
    policy_onnx: bytes, graph: PolicyGraph, goal_dim: int, seed: int = 0, n: int = 64
) -> dict[str, float]:
    """Max |onnxruntime - torch| of the action on random observations and goals (around
    their normalisation and far outside it) and noise (half zero: deterministic); raises
    beyond PARITY_ATOL."""
    g = torch.Generator().manual_seed(seed)
    policy = graph.policy
    assert isinstance(policy, GoalPolicy)
    norm, gnorm = policy.normaliser, policy.goal_normaliser
    obs = norm.mean + norm.std * 3 * torch.randn(n, norm.mean.numel(), generator=g)
    goal = gnorm.mean + gnorm.std * 3 * torch.randn(n, goal_dim, generator=g)
    noise = torch.randn(n, int(graph.low.shape[0]), generator=g)
    noise[: n // 2] = 0.0
    return check_action_parity(policy_onnx, graph, {"obs": obs, "descriptor": goal, "noise": noise})


def export_goal_conditioned(
    nets: nn.Module,
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
    """Export the goal policy `nets.policy` (a `GoalPolicy`) as a `conditioned` artifact
    directory; returns (Artifact, parity errors). Refuses an existing `out_dir` unless
    `force`; built beside it and renamed into place (never half written)."""
    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    policy = nets.policy
    assert isinstance(policy, GoalPolicy)
    lay = GoalLayout(int(policy.normaliser.mean.numel()), int(policy.goal_normaliser.mean.numel()))
    obs_dim, goal_dim, act_dim = lay.obs_dim, lay.goal_dim, int(policy.act_dim)
    nets.eval()
    io = env_io(cfg, lay.flat_dim, act_dim)
    goal_names = [n.removeprefix("desired_") for n in io["obs_names"][obs_dim + goal_dim :]]
    io["obs_names"], io["obs_units"] = io["obs_names"][:obs_dim], io["obs_units"][:obs_dim]
    norm = policy.normaliser
    epsilon = _epsilon(cfg)
    spec = ArtifactSpec(
        name=name,
        kind="conditioned",
        obs_dim=obs_dim,
        act_dim=act_dim,
        descriptor_dim=goal_dim,
        descriptor_names=[f"goal {n}" for n in goal_names],
        obs_normalisation=Normalisation(mean=norm.mean.tolist(), std=norm.std.tolist()),
        normalisation_in_graph=True,
        **io,
    )
    graph = PolicyGraph(
        policy, np.asarray(io["action_low"], np.float32), np.asarray(io["action_high"])
    )
    with held_output(not verbose):
        onnx_bytes = annotate(
            conditioned_policy_bytes(graph, obs_dim, goal_dim, act_dim), spec, "policy"
        )
    errors = check_goal_parity(onnx_bytes, graph, goal_dim)
    record = provenance(
        cfg,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        errors=errors,
        graph=onnx_bytes,
    )
    goal = {
        "names": goal_names,
        "epsilon": epsilon,
        "reward": GOAL_REWARD_DEFINITION,
        "goal_normalisation": {
            "mean": policy.goal_normaliser.mean.tolist(),
            "std": policy.goal_normaliser.std.tolist(),
        },
    }
    extra = {"goal": goal, "obs_clip": norm.clip}
    return place_graph(out, "policy", onnx_bytes, spec, record, extra, force), errors


def _epsilon(cfg: TrainConfig) -> float:
    """The run's goal epsilon: the config's, else its env's own."""
    env = make_task_source(cfg).make_env()
    try:
        return float(env.epsilon)
    finally:
        env.close()
