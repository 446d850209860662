"""Export an RL² run as a `recurrent` artifact (docs/PROTOCOL.md "recurrent"): step.onnx
(hidden, obs, last_action, reward, done, noise -> next_hidden, action) + manifest.json,
through training/common/onnx_export.py `export_recurrent` (parity with torch checked over
sequences that carry the hidden state)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.algos.rl2.agent import step_graph
from training.algos.rl2.networks import RL2Nets
from training.common.onnx_export import export_recurrent
from training.config import TrainConfig


def export_rl2(
    nets: RL2Nets,
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
    """The run's policy as a recurrent artifact in `out_dir`; (Artifact, parity errors)."""
    nets.eval()
    norm = nets.policy.normaliser
    extra: dict[str, Any] = {
        "obs_clip": norm.clip,
        "episodes_per_trial": cfg.rl2.episodes_per_trial,
        "bptt": cfg.rl2.bptt,
    }
    mem = nets.policy.memory
    if mem is not None:  # what the recurrent state's last entries are (its first: the GRU's)
        H = nets.policy.gru_dim
        extra["success_memory"] = {
            "state_columns": [H, H + mem.STATE_DIM],
            "state": mem.state_names(),
            "success_reward_above": mem.threshold,
            "command_step": list(mem.command_step) if mem.command else None,
            "doc": "training/algos/rl2/networks.py SuccessMemory",
        }
    return export_recurrent(
        step_graph(nets),  # actions in [-1, 1]: the trainers' env bounds (open_run checks)
        cfg,
        out_dir,
        obs_mean=norm.mean,
        obs_std=norm.std,
        hidden_dim=nets.hidden_dim,
        name=name,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        extra=extra,
        force=force,
        verbose=verbose,
    )
