"""Export a trained run to the robot artifact: encoder.onnx + policy.onnx + manifest.json.

Both graphs take raw units: observation normalisation is inside them (the networks carry
it as buffers), and the policy graph squashes (tanh) and scales to the env's action bounds.
Exported with torch's default dynamo exporter as single-file models (no external data),
then checked against torch with onnxruntime on random inputs before the artifact is written.

    encoder.onnx  transition[B, 2*obs+act+1] = (s, a, r, s')  ->  mu[B, L], var[B, L]
    policy.onnx   obs[B, obs], z[B, L], noise[B, act]         ->  action[B, act]

Each graph is then annotated (`annotate`): graph name, doc strings on the model and on every
input and output, and the manifest's essentials as `metadata_props` (runtime.artifact's
`onnx_metadata`). The artifact is written into a temporary directory beside `out` and
renamed into place; an existing `out` is refused unless `force` (then replaced whole).
torch.onnx's progress lines and warnings are held back unless `verbose` (and shown if the
export fails).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from runtime.artifact import (
    GRAPH_NAMES,
    ArtifactSpec,
    Normalisation,
    io_docs,
    load_artifact,
    onnx_metadata,
    write_artifact,
)
from training.algos.pearl.networks import PearlNets
from training.common.networks import ContextEncoder, TanhGaussianPolicy
from training.common.tasks import env_control_hz, make_task_source
from training.config import TrainConfig

PARITY_ATOL = 1e-5


class EncoderGraph(nn.Module):
    """transition -> (mu, var): the per-transition Gaussian factor."""

    def __init__(self, encoder: ContextEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, transition: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) raw -> mu (B, L), var (B, L)."""
        return self.encoder(transition)


class PolicyGraph(nn.Module):
    """(obs, z, noise) -> action = low + (tanh(mean + std * noise) + 1) / 2 * (high - low)."""

    low: Tensor
    high: Tensor

    def __init__(self, policy: TanhGaussianPolicy, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, obs: Tensor, z: Tensor, noise: Tensor) -> Tensor:
        """obs (B, obs) raw, z (B, L), noise (B, act) -> action (B, act) in env units."""
        mean, log_std = self.policy(obs, z)
        squashed = torch.tanh(mean + log_std.exp() * noise)  # noise 0: deterministic
        return self.low + (squashed + 1.0) * 0.5 * (self.high - self.low)


@contextlib.contextmanager
def held_output(hold: bool = True) -> Iterator[None]:
    """Send fd 1 and fd 2 (Python's prints, warnings, logging and C libraries alike) to a
    temporary file while the block runs; on an exception write what it caught to stderr."""
    if not hold:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as buf:
        saved = os.dup(1), os.dup(2)
        os.dup2(buf.fileno(), 1)
        os.dup2(buf.fileno(), 2)
        # Python-level streams too, where something (pytest) replaced sys.stdout/stderr.
        text = open(buf.fileno(), "w", closefd=False)
        ok = False
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
            ok = True
        finally:
            text.close()  # flushes; the fd stays open (closefd=False)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if not ok:
                buf.seek(0)
                sys.stderr.write(buf.read().decode("utf-8", "replace"))


_SUFFIX_UNITS = (("_mm_s", "mm/s"), ("_deg_s", "deg/s"), ("_mm", "mm"), ("_deg", "deg"))
# The insertion env's wrench entries are divided by force_ref / torque_ref (sim/insertion.py).
_NAMED_UNITS = {"fx": "F/force_ref", "fy": "F/force_ref", "fz": "F/force_ref"} | {
    "tx": "T/torque_ref",
    "ty": "T/torque_ref",
    "tz": "T/torque_ref",
}


def units_of(env: Any, names: list[str], attr: str, low: Any = None, high: Any = None) -> list[str]:
    """Units of named entries: the env's own `attr` list when it has one (terrain, point);
    else from the name (insertion: x_mm "mm", wz_deg_s "deg/s", fx "F/force_ref"); "1" for
    entries bounded to [-1, 1] (normalised commands); "" when unknown."""
    for owner in (env, getattr(env, "unwrapped", None)):
        declared = getattr(owner, attr, None)
        if declared is not None and len(declared) == len(names):
            return [str(u) for u in declared]
    out = []
    for i, name in enumerate(names):
        unit = _NAMED_UNITS.get(name) or next(
            (u for suf, u in _SUFFIX_UNITS if name.endswith(suf)), ""
        )
        if not unit and low is not None and high is not None and (low[i], high[i]) == (-1, 1):
            unit = "1"
        out.append(unit)
    return out


def annotate(model: bytes, spec: Any, kind: str) -> bytes:
    """The model with graph name, doc strings and the manifest's essentials as metadata."""
    import onnx  # lazy: onnx is needed only when exporting

    proto = onnx.load_model_from_string(model)
    proto.graph.name = GRAPH_NAMES[kind]
    what = "context encoder" if kind == "encoder" else "policy"
    proto.doc_string = (
        f"zshot {what} of artifact {spec.name}: obs {spec.obs_dim}, act {spec.act_dim}, "
        f"latent {spec.latent_dim}, {spec.control_hz:g} Hz; manifest.json beside this file "
        "states the rest (docs/INTERFACES.md)"
    )
    proto.graph.doc_string = proto.doc_string
    docs = io_docs(spec, kind)  # type: ignore[arg-type]
    for value in (*proto.graph.input, *proto.graph.output):
        value.doc_string = docs[value.name]
    del proto.metadata_props[:]
    for key, val in onnx_metadata(spec, kind).items():  # type: ignore[arg-type]
        proto.metadata_props.add(key=key, value=val)
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


def _export(
    module: nn.Module, args: tuple[Tensor, ...], inputs: list[str], outputs: list[str]
) -> bytes:
    """torch.onnx.export (dynamo) with a dynamic batch dim; returns one self-contained model."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = {name: {0: batch} for name in inputs}
    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        program = torch.onnx.export(
            module,
            args,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=shapes,
            dynamo=True,
            external_data=False,
        )
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(path), external_data=False)
        data = path.read_bytes()
        leftovers = [p.name for p in Path(tmp).iterdir() if p.name != "model.onnx"]
        if leftovers:  # weights were written next to the model: not a single file
            raise RuntimeError(f"export wrote external data files {leftovers}")
    return data


def _ort_session(model: bytes) -> Any:
    import onnxruntime as ort  # lazy: only for the parity check

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


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
    mu_o, var_o = _ort_session(encoder_onnx).run(["mu", "var"], {"transition": transition.numpy()})
    (act_o,) = _ort_session(policy_onnx).run(
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


def _place(tmp: Path, out: Path, force: bool) -> None:
    """Rename the finished artifact dir `tmp` to `out` (an existing `out` only with force)."""
    old = None
    if out.exists():
        if not force:
            raise FileExistsError(f"{out} exists; pass --force to replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


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

    source = make_task_source(cfg)
    env = source.make_env()
    low = np.asarray(env.action_space.low, np.float32)
    high = np.asarray(env.action_space.high, np.float32)
    control_hz = env_control_hz(env)
    obs_names = list(getattr(env, "obs_names", [f"obs{i}" for i in range(obs_dim)]))
    action_names = list(getattr(env, "action_names", [f"act{i}" for i in range(act_dim)]))
    obs_units = units_of(env, obs_names, "obs_units")
    action_units = units_of(env, action_names, "action_units", low.tolist(), high.tolist())
    env.close()

    L = cfg.encoder.latent_dim
    norm = nets.encoder.normaliser
    spec = ArtifactSpec(
        name=name,
        obs_dim=obs_dim,
        act_dim=act_dim,
        latent_dim=L,
        obs_names=obs_names,
        action_names=action_names,
        obs_units=obs_units,
        action_units=action_units,
        action_low=low.tolist(),
        action_high=high.tolist(),
        control_hz=control_hz,
        obs_normalisation=Normalisation(mean=norm.mean.tolist(), std=norm.std.tolist()),
        prior_mean=[0.0] * L,
        prior_var=[1.0] * L,
        normalisation_in_graph=True,
        env=source.env_info,
    )
    enc_graph, pol_graph = EncoderGraph(nets.encoder), PolicyGraph(nets.policy, low, high)
    seconds: dict[str, float] = {}
    with held_output(not verbose):
        t0 = time.perf_counter()
        ex_t = torch.zeros(2, 2 * obs_dim + act_dim + 1)
        enc_bytes = annotate(
            _export(enc_graph, (ex_t,), ["transition"], ["mu", "var"]), spec, "encoder"
        )
        seconds["encoder"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pol_bytes = _export(
            pol_graph,
            (torch.zeros(2, obs_dim), torch.zeros(2, L), torch.zeros(2, act_dim)),
            ["obs", "z", "noise"],
            ["action"],
        )
        pol_bytes = annotate(pol_bytes, spec, "policy")
        seconds["policy"] = time.perf_counter() - t0
    errors = check_parity(enc_bytes, pol_bytes, enc_graph, pol_graph, obs_dim, act_dim, L)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        write_artifact(tmp, enc_bytes, pol_bytes, spec)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; an artifact is copied and read by others
        _place(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_artifact(out), errors


def export_bytes(
    nets: Any, obs_dim: int, act_dim: int
) -> tuple[bytes, bytes, EncoderGraph, PolicyGraph]:
    """Export networks directly (tests): encoder and policy ONNX bytes and their torch graphs."""
    L = nets.latent_dim
    ones = np.ones(act_dim, np.float32)
    enc_graph, pol_graph = EncoderGraph(nets.encoder), PolicyGraph(nets.policy, -ones, ones)
    enc = _export(
        enc_graph, (torch.zeros(2, 2 * obs_dim + act_dim + 1),), ["transition"], ["mu", "var"]
    )
    pol = _export(
        pol_graph,
        (torch.zeros(2, obs_dim), torch.zeros(2, L), torch.zeros(2, act_dim)),
        ["obs", "z", "noise"],
        ["action"],
    )
    return enc, pol, enc_graph, pol_graph
