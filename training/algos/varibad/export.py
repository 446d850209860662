"""Export a VariBAD run as a `recurrent` artifact: step.onnx + manifest.json.

    step.onnx   hidden[B, H], obs[B, obs], last_action[B, act], reward[B, 1], done[B, 1],
                noise[B, act]  ->  next_hidden[B, H], action[B, act]

hidden is the encoder's GRU state (H = `varibad.gru_hidden`, zeros at a task's start); one
call runs the encoder's step on (s_t, a_{t-1}, r_{t-1}, d_{t-1}), reads the belief (mean,
variance) from the new state and runs the policy on (s_t, belief): the runtime's contract
(docs/PROTOCOL.md "recurrent"). The decoders are training-only and not exported. Written by
training/common/onnx_export.py's `export_recurrent`, parity-checked against torch over
whole sequences with onnxruntime before the artifact is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.algos.varibad.networks import VariBADNets
from training.algos.varibad.trainer import step_graph
from training.common.onnx_export import export_recurrent
from training.config import TrainConfig


def export_varibad(
    nets: VariBADNets,
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
    """Export VariBAD networks as a `recurrent` artifact directory; returns (Artifact,
    parity errors). Refuses an existing `out_dir` unless `force`; never half written."""
    norm = nets.policy.normaliser
    vb = cfg.varibad
    return export_recurrent(
        step_graph(nets),
        cfg,
        out_dir,
        obs_mean=norm.mean,
        obs_std=norm.std,
        hidden_dim=nets.hidden_dim,
        name=name,
        algorithm=algorithm,
        run_dir=run_dir,
        counters=counters,
        extra={
            "latent_dim": vb.latent_dim,
            "episodes_per_trial": vb.episodes_per_trial,
            "decode_state": vb.decode_state,
            "obs_clip": norm.clip,
        },
        force=force,
        verbose=verbose,
    )
