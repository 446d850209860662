"""ONNX export helpers every algorithm's exporter uses (training/algos/*/export.py): torch's
dynamo exporter to one self-contained model (`export_onnx`), the annotation of a graph with
the manifest's essentials (`annotate`), the units of named observation and action entries
(`units_of`), an onnxruntime session for parity checks (`ort_session`, `PARITY_ATOL`), the
output of the exporter held back (`held_output`) and the atomic placing of a finished
artifact directory (`place_dir`). Moved here from training/algos/pearl/export.py when a
second algorithm (mtsac) needed them; algorithms never import each other.

The `recurrent` kind (docs/PROTOCOL.md "recurrent"; RL², VariBAD) is exported whole here:
`RecurrentStepGraph` wraps an algorithm's recurrent core (any module with `step(hidden,
obs, last_action, reward, done) -> (next_hidden, mean, log_std)`) into the step graph
(hidden, obs, last_action, reward, done, noise) -> (next_hidden, action);
`check_recurrent_parity` runs onnxruntime and torch side by side over whole sequences, each
feeding its own next_hidden back; `export_recurrent` writes step.onnx + manifest.json
(kind recurrent, hidden_dim). `provenance` is the manifest's `training` / `versions`
record every exporter writes. `export_conditioned_policy` exports a policy told its task by
a one-hot id as a `conditioned` artifact (policy.onnx: obs, descriptor, noise; MT-PPO).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from runtime.artifact import (
    Artifact,
    ArtifactSpec,
    Normalisation,
    load_artifact,
    write_graphs,
)
from training.common.networks import TanhGaussianPolicy
from training.common.onnx_meta import annotate, ort_session
from training.common.tasks import env_control_hz, make_task_source
from training.config import TrainConfig

PARITY_ATOL = 1e-5
"""The largest |onnxruntime - torch| an export accepts on any output."""


class PolicyGraph(nn.Module):
    """(obs, z, noise) -> action = low + (tanh(mean + std * noise) + 1) / 2 * (high - low).

    z is the policy's task input: PEARL's latent (input `z` of a posterior artifact) or a
    task descriptor (input `descriptor` of a conditioned one): the ONNX input names are
    given at export."""

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


def export_onnx(
    module: nn.Module, args: tuple[Tensor, ...], inputs: list[str], outputs: list[str]
) -> bytes:
    """torch.onnx.export (dynamo) with a dynamic batch dim; returns one self-contained model."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = tuple({0: batch} for _ in inputs)  # by position: input names may differ from args
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


def check_action_parity(
    graph_onnx: bytes, graph: nn.Module, inputs: dict[str, Tensor]
) -> dict[str, float]:
    """Max |onnxruntime - torch| of a one-output graph's `action` on `inputs` (named as the
    ONNX inputs, in the torch graph's argument order); raises beyond PARITY_ATOL."""
    with torch.no_grad():
        want = graph(*inputs.values()).numpy()
    feed = {k: v.numpy() for k, v in inputs.items()}
    (got,) = ort_session(graph_onnx).run(["action"], feed)
    errs = {"action": float(np.abs(got - want).max())}
    if not errs["action"] <= PARITY_ATOL:
        raise RuntimeError(f"ONNX/torch parity beyond {PARITY_ATOL}: {errs}")
    return errs


def place_dir(tmp: Path, out: Path, force: bool) -> None:
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


def env_io(cfg: TrainConfig, obs_dim: int, act_dim: int) -> dict[str, Any]:
    """The `ArtifactSpec` fields the config's env states: observation and action names and
    units, action bounds, control rate and the env's description (`env`)."""
    source = make_task_source(cfg)
    env = source.make_env()
    try:
        low = np.asarray(env.action_space.low, np.float32)
        high = np.asarray(env.action_space.high, np.float32)
        obs_names = list(getattr(env, "obs_names", [f"obs{i}" for i in range(obs_dim)]))
        action_names = list(getattr(env, "action_names", [f"act{i}" for i in range(act_dim)]))
        return {
            "obs_names": obs_names,
            "action_names": action_names,
            "obs_units": units_of(env, obs_names, "obs_units"),
            "action_units": units_of(
                env, action_names, "action_units", low.tolist(), high.tolist()
            ),
            "action_low": low.tolist(),
            "action_high": high.tolist(),
            "control_hz": env_control_hz(env),
            "env": source.env_info,
        }
    finally:
        env.close()


def write_placed(out: Path, graphs: dict[str, bytes], spec: ArtifactSpec, force: bool) -> Artifact:
    """Write the artifact (`graphs` by role, `spec`) in a temporary directory beside `out`,
    then rename it into place (`place_dir`): `out` is never half written. Returns it loaded."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        write_graphs(tmp, graphs, spec)  # type: ignore[arg-type]
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; an artifact is copied and read by others
        place_dir(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_artifact(out)


def tool_versions(model: bytes) -> dict[str, str]:
    """The manifest's `versions` of an exported graph: torch, onnx and the graph's default
    opset (what every exporter records)."""
    import onnx  # lazy: onnx is needed only when exporting

    opset = onnx.load_model_from_string(model).opset_import
    default = next((o.version for o in opset if o.domain in ("", "ai.onnx")), "")
    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnx_opset": str(default)}


def provenance(
    cfg: TrainConfig,
    *,
    algorithm: str,
    run_dir: str | Path,
    counters: Mapping[str, int],
    errors: Mapping[str, float],
    graph: bytes,
) -> dict[str, Any]:
    """The manifest's `training` and `versions` fields (an `ArtifactSpec` update): the run,
    its counters, seed and config, the parity errors, and the torch / onnx versions and the
    opset of `graph`."""
    return {
        "training": {
            "algorithm": algorithm,
            "run_dir": str(Path(run_dir).resolve()),
            "iteration": int(counters["iteration"]),
            "updates": int(counters["updates"]),
            "env_steps": int(counters["env_steps"]),
            "seed": cfg.seed,
            "config": cfg.model_dump(mode="json"),
            "parity_max_abs_err": dict(errors),
        },
        "versions": tool_versions(graph),
    }


def place_graph(
    out: Path,
    role: str,
    graph: bytes,
    spec: ArtifactSpec,
    record: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
    force: bool,
) -> Artifact:
    """Write a one-graph artifact: `graph` as ROLE.onnx, `spec` updated with `record`
    (`provenance`) and `extra` training fields, placed atomically (`write_placed`)."""
    training = {**record["training"], **(extra or {})}
    update = {"training": training, "versions": record["versions"]}
    return write_placed(out, {role: graph}, spec.model_copy(update=update), force)


# -- kind recurrent --------------------------------------------------------------------
STEP_INPUTS = ["hidden", "obs", "last_action", "reward", "done", "noise"]
STEP_OUTPUTS = ["next_hidden", "action"]


class RecurrentStepGraph(nn.Module):
    """(hidden, obs, last_action, reward, done, noise) -> (next_hidden, action): one step of
    a recurrent policy as the runtime serves it (docs/PROTOCOL.md "recurrent").

    `core.step(hidden, obs, last_action, reward, done)` -> (next_hidden, mean, log_std) is
    the algorithm's recurrent network (raw obs in: its normaliser inside; last_action as
    executed, in env units); the action is low + (tanh(mean + std * noise) + 1) / 2 *
    (high - low), noise 0 the deterministic one (as `PolicyGraph`)."""

    low: Tensor
    high: Tensor
    core: Any
    """The recurrent network (an nn.Module with `step`)."""

    def __init__(self, core: nn.Module, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.core = core
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(
        self,
        hidden: Tensor,
        obs: Tensor,
        last_action: Tensor,
        reward: Tensor,
        done: Tensor,
        noise: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """All (B, width) -> next_hidden (B, H), action (B, act) in env units."""
        next_hidden, mean, log_std = self.core.step(hidden, obs, last_action, reward, done)
        squashed = torch.tanh(mean + log_std.exp() * noise)
        return next_hidden, self.low + (squashed + 1.0) * 0.5 * (self.high - self.low)


def recurrent_step_bytes(step: nn.Module, obs_dim: int, act_dim: int, hidden_dim: int) -> bytes:
    """The step graph as ONNX with inputs `STEP_INPUTS`, outputs `STEP_OUTPUTS` (not yet
    annotated); batch dim dynamic."""
    args = (
        torch.zeros(2, hidden_dim),
        torch.zeros(2, obs_dim),
        torch.zeros(2, act_dim),
        torch.zeros(2, 1),
        torch.zeros(2, 1),
        torch.zeros(2, act_dim),
    )
    return export_onnx(step, args, STEP_INPUTS, STEP_OUTPUTS)


def check_recurrent_parity(
    step_onnx: bytes,
    step: nn.Module,
    obs_mean: Tensor,
    obs_std: Tensor,
    act_dim: int,
    hidden_dim: int,
    *,
    steps: int = 12,
    batch: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """Max |onnxruntime - torch| of next_hidden and action over `steps` steps of `batch`
    sequences from the zero state, torch and onnxruntime each feeding back its own
    next_hidden (differences would compound); observations around the normalisation and
    far outside it, random last actions, rewards and done flags, noise zero on half the
    rows. Raises beyond PARITY_ATOL."""
    g = torch.Generator().manual_seed(seed)
    session = ort_session(step_onnx)
    h_torch = torch.zeros(batch, hidden_dim)
    h_ort = np.zeros((batch, hidden_dim), np.float32)
    errs = {"next_hidden": 0.0, "action": 0.0}
    for _ in range(steps):
        obs = obs_mean + obs_std * 3 * torch.randn(batch, obs_mean.numel(), generator=g)
        last_action = 2 * torch.rand(batch, act_dim, generator=g) - 1
        reward = torch.randn(batch, 1, generator=g)
        done = (torch.rand(batch, 1, generator=g) < 0.2).float()
        noise = torch.randn(batch, act_dim, generator=g)
        noise[: batch // 2] = 0.0
        with torch.no_grad():
            h_torch, want = step(h_torch, obs, last_action, reward, done, noise)
        feed = {
            "hidden": h_ort,
            "obs": obs.numpy(),
            "last_action": last_action.numpy(),
            "reward": reward.numpy(),
            "done": done.numpy(),
            "noise": noise.numpy(),
        }
        h_ort, got = session.run(STEP_OUTPUTS, feed)
        errs["next_hidden"] = max(errs["next_hidden"], float(np.abs(h_ort - h_torch.numpy()).max()))
        errs["action"] = max(errs["action"], float(np.abs(got - want.numpy()).max()))
    if not max(errs.values()) <= PARITY_ATOL:
        raise RuntimeError(f"ONNX/torch parity beyond {PARITY_ATOL}: {errs}")
    return errs


def export_recurrent(
    step: RecurrentStepGraph,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    obs_mean: Tensor,
    obs_std: Tensor,
    hidden_dim: int,
    name: str,
    algorithm: str,
    run_dir: str | Path,
    counters: Mapping[str, int],
    extra: Mapping[str, Any] | None = None,
    force: bool = False,
    verbose: bool = False,
) -> tuple[Artifact, dict[str, float]]:
    """Export a recurrent policy's step as a `recurrent` artifact (step.onnx +
    manifest.json, hidden_dim H, initial state zeros); returns (Artifact, parity errors).
    `obs_mean` / `obs_std`: the normalisation inside the graph (for the manifest and the
    parity inputs); `extra`: more `training` fields. Refuses an existing `out_dir` unless
    `force`; never half written (`write_placed`)."""
    out = Path(out_dir)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    step.eval()
    obs_dim, act_dim = int(obs_mean.numel()), int(step.low.shape[0])
    io = env_io(cfg, obs_dim, act_dim)
    spec = ArtifactSpec(
        name=name,
        kind="recurrent",
        obs_dim=obs_dim,
        act_dim=act_dim,
        hidden_dim=hidden_dim,
        obs_normalisation=Normalisation(mean=obs_mean.tolist(), std=obs_std.tolist()),
        normalisation_in_graph=True,
        **io,
    )
    with held_output(not verbose):
        graph = annotate(recurrent_step_bytes(step, obs_dim, act_dim, hidden_dim), spec, "step")
    errors = check_recurrent_parity(graph, step, obs_mean, obs_std, act_dim, hidden_dim)
    record = provenance(
        cfg, algorithm=algorithm, run_dir=run_dir, counters=counters, errors=errors, graph=graph
    )
    return place_graph(out, "step", graph, spec, record, extra, force), errors
