"""Export a trained run to the robot artifact: encoder.onnx + policy.onnx + manifest.json.

Both graphs take raw units: observation normalisation is inside them (the networks carry
it as buffers), and the policy graph squashes (tanh) and scales to the env's action bounds.
Exported with torch's default dynamo exporter as single-file models (no external data),
then checked against torch with onnxruntime on random inputs before the artifact is written.

    encoder.onnx  transition[B, 2*obs+act+1] = (s, a, r, s')  ->  mu[B, L], var[B, L]
    policy.onnx   obs[B, obs], z[B, L], noise[B, act]         ->  action[B, act]
    fused.onnx    (optional role) both and the posterior update in one call
                  (training/common/fused_graph.py)

Each graph is then annotated (`annotate`): graph name, doc strings on the model and on every
input and output, and the manifest's essentials as `metadata_props` (runtime.artifact's
`onnx_metadata`). The artifact is written into a temporary directory beside `out` and
renamed into place; an existing `out` is refused unless `force` (then replaced whole).
torch.onnx's progress lines and warnings are held back unless `verbose` (and shown if the
export fails).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from runtime.artifact import (
    ArtifactSpec,
    Normalisation,
)
from training.algos.pearl.networks import PearlNets
from training.common.fused_graph import check_fused, fused_bytes
from training.common.networks import ContextEncoder
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
from training.config import TrainConfig


class EncoderGraph(nn.Module):
    """transition -> (mu, var): the per-transition Gaussian factor."""

    def __init__(self, encoder: ContextEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, transition: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) raw -> mu (B, L), var (B, L)."""
        return self.encoder(transition)


def check_parity(
    encoder_onnx: bytes,
    policy_onnx: bytes,
    encoder: EncoderGraph,
    policy: PolicyGraph,
    obs_dim: int,
    act_dim: int,
    latent_dim: int,
    seed: int = 0,
    batch: int = 64,
) -> dict[str, float]:
    """Max |onnxruntime - torch| on random inputs for every output; raises beyond 1e-5."""
    g = torch.Generator().manual_seed(seed)
    mean = encoder.encoder.normaliser.mean
    std = encoder.encoder.normaliser.std
    # Observations around the training distribution (and some far outside it).
    obs = mean + std * 3 * torch.randn(batch, obs_dim, generator=g)
    nxt = mean + std * 3 * torch.randn(batch, obs_dim, generator=g)
    act = torch.rand(batch, act_dim, generator=g) * 2 - 1
    rew = torch.randn(batch, 1, generator=g)
    transition = torch.cat([obs, act, rew, nxt], dim=1)
    z = torch.randn(batch, latent_dim, generator=g)
    noise = torch.randn(batch, act_dim, generator=g)
    noise[: batch // 2] = 0.0  # half deterministic, half sampling mode
    with torch.no_grad():
        mu_t, var_t = encoder(transition)
        act_t = policy(obs, z, noise)
    mu_o, var_o = ort_session(encoder_onnx).run(["mu", "var"], {"transition": transition.numpy()})
    (act_o,) = ort_session(policy_onnx).run(
        ["action"], {"obs": obs.numpy(), "z": z.numpy(), "noise": noise.numpy()}
    )
    errs = {
        "mu": float(np.abs(mu_o - mu_t.numpy()).max()),
        "var": float(np.abs(var_o - var_t.numpy()).max()),
        "action": float(np.abs(act_o - act_t.numpy()).max()),
    }
    bad = {k: v for k, v in errs.items() if not v <= PARITY_ATOL}
    if bad:
        raise RuntimeError(f"ONNX/torch parity beyond {PARITY_ATOL}: {bad}")
    return errs


def export_posterior(
    nets: PearlNets,
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
    """Export PEARL-shaped networks (encoder + policy) as a `posterior` artifact directory;
    returns (Artifact, parity errors). The manifest's `training` names the `algorithm`, the
    `run_dir` the networks come from and its `counters` (iteration, updates, env_steps).

    Refuses an existing `out_dir` (FileExistsError) unless `force`; the artifact is built in
    a temporary directory beside it and renamed into place, so `out_dir` is never half
    written. The seconds each graph took are in `Artifact.manifest.training["export_s"]`.
    `training.registry.export_run` exports a run dir through this.
    """
    import onnx  # lazy: onnx is needed only when exporting

    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    obs_dim, act_dim = nets.obs_dim, nets.act_dim
    nets.eval()

    io = env_io(cfg, obs_dim, act_dim)
    low = np.asarray(io["action_low"], np.float32)
    high = np.asarray(io["action_high"], np.float32)

    L = cfg.encoder.latent_dim
    norm = nets.encoder.normaliser
    spec = ArtifactSpec(
        name=name,
        obs_dim=obs_dim,
        act_dim=act_dim,
        latent_dim=L,
        obs_normalisation=Normalisation(mean=norm.mean.tolist(), std=norm.std.tolist()),
        prior_mean=[0.0] * L,
        prior_var=[1.0] * L,
        normalisation_in_graph=True,
        **io,
    )
    enc_graph, pol_graph = EncoderGraph(nets.encoder), PolicyGraph(nets.policy, low, high)
    seconds: dict[str, float] = {}
    with held_output(not verbose):
        t0 = time.perf_counter()
        ex_t = torch.zeros(2, 2 * obs_dim + act_dim + 1)
        enc_bytes = annotate(
            export_onnx(enc_graph, (ex_t,), ["transition"], ["mu", "var"]), spec, "encoder"
        )
        seconds["encoder"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pol_bytes = export_onnx(
            pol_graph,
            (torch.zeros(2, obs_dim), torch.zeros(2, L), torch.zeros(2, act_dim)),
            ["obs", "z", "noise"],
            ["action"],
        )
        pol_bytes = annotate(pol_bytes, spec, "policy")
        seconds["policy"] = time.perf_counter() - t0
    errors = check_parity(enc_bytes, pol_bytes, enc_graph, pol_graph, obs_dim, act_dim, L)
    # The optional one-call STEP graph (training/common/fused_graph.py), checked bit for bit
    # against encoder + posterior update + policy in onnxruntime.
    t0 = time.perf_counter()
    fused = fused_bytes(enc_bytes, pol_bytes, spec)
    check_fused(fused, enc_bytes, pol_bytes, spec)
    seconds["fused"] = time.perf_counter() - t0
    opset = onnx.load_model_from_string(enc_bytes).opset_import
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
                "use_latent": cfg.use_latent,
                "prior_in_posterior": cfg.encoder.prior_in_posterior,
                "obs_clip": norm.clip,
                "parity_max_abs_err": errors,
                "export_s": {k: round(v, 2) for k, v in seconds.items()},
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
    graphs = {"encoder": enc_bytes, "policy": pol_bytes, "fused": fused}
    return write_placed(out, graphs, spec, force), errors


def export_bytes(
    nets: Any, obs_dim: int, act_dim: int
) -> tuple[bytes, bytes, EncoderGraph, PolicyGraph]:
    """Export networks directly (tests): encoder and policy ONNX bytes and their torch graphs."""
    L = nets.latent_dim
    ones = np.ones(act_dim, np.float32)
    enc_graph, pol_graph = EncoderGraph(nets.encoder), PolicyGraph(nets.policy, -ones, ones)
    enc = export_onnx(
        enc_graph, (torch.zeros(2, 2 * obs_dim + act_dim + 1),), ["transition"], ["mu", "var"]
    )
    pol = export_onnx(
        pol_graph,
        (torch.zeros(2, obs_dim), torch.zeros(2, L), torch.zeros(2, act_dim)),
        ["obs", "z", "noise"],
        ["action"],
    )
    return enc, pol, enc_graph, pol_graph
