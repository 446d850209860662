"""The exported artifact: its ONNX graphs + `manifest.json`.

This is the only hand-off from training to the robot. The runtime owns its schema: training
writes it through `write_artifact` / `write_graphs`, the server reads it through
`load_artifact`, which verifies every file's sha256, the dims against the names and bounds,
and (with `check_graphs=True`) the ONNX graphs' input/output names and shapes against the
manifest.

The manifest's `kind` says how the runtime uses the graphs (docs/INTERFACES.md, `KIND_IO`;
T = 2*obs_dim + act_dim + 1, one (s, a, r, s') row):
    posterior    encoder.onnx  transition[B, T]                     -> mu[B, L], var[B, L]
    (default)    policy.onnx   obs[B, obs_dim], z[B, L], noise[B, act_dim] -> action[B, act_dim]
    recurrent    step.onnx     hidden[B, H], obs, last_action[B, act_dim], reward[B, 1],
                               done[B, 1], noise  -> next_hidden[B, H], action
    conditioned  policy.onnx   obs, descriptor[B, D], noise         -> action
    weights      policy.onnx   obs, noise                           -> action
A posterior artifact may also carry `fused.onnx` (optional, `OPTIONAL_IO`): encoder +
posterior update + policy as one call, obs, transition, precision, eta (float64), noise ->
next_precision, next_eta (float64), z, factor_ok (bool), action; the server uses it on the
exploit per-step STEP path and serves an artifact without it as before.
Observation normalisation and action squashing/scaling live inside the graphs; the manifest
repeats them for people and for other runtimes.

Each graph also carries the manifest's essentials as ONNX `metadata_props` (`onnx_metadata`:
format, artifact kind, dims, names, units, bounds, control rate, latent size and
`zshot.interface_sha256`, the hash of the manifest fields that define the graphs' interface:
the manifest's own hash cannot be inside the models it hashes), doc strings on every input
and output (`io_docs`), and a graph name (`GRAPH_NAMES`), so Netron and other ONNX tools
show them. `verify_graphs` checks that metadata against the manifest when a graph has it
(artifacts exported before it was added have none and still load).

`manifest.json`'s JSON Schema is `manifest.schema.json` beside this module, generated from
`Manifest` (`manifest_json_schema`; a test keeps the file equal to it): `load_artifact`
validates with the pydantic model the schema comes from.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from runtime.kinds import ARTIFACT_KINDS, ArtifactKind
from zshot import __version__ as zshot_version
from zshot.config import StrictModel

FORMAT_VERSION = 1
FORMAT = "zshot-artifact"
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).resolve().parent / "manifest.schema.json"
ONNX_META_PREFIX = "zshot."
GRAPH_NAMES = {
    "encoder": "zshot_context_encoder",
    "policy": "zshot_policy",
    "step": "zshot_recurrent_step",
    "fused": "zshot_fused_step",
}
GraphRole = Literal["encoder", "policy", "step", "fused"]
ENCODER_IO = {"inputs": ["transition"], "outputs": ["mu", "var"]}
POLICY_IO = {"inputs": ["obs", "z", "noise"], "outputs": ["action"]}
FUSED_IO = {
    "inputs": ["obs", "transition", "precision", "eta", "noise"],
    "outputs": ["next_precision", "next_eta", "z", "factor_ok", "action"],
}
# Each kind's graphs (the manifest's `files` keys) and their input/output names.
KIND_IO: dict[ArtifactKind, dict[GraphRole, dict[str, list[str]]]] = {
    "posterior": {"encoder": ENCODER_IO, "policy": POLICY_IO},
    "recurrent": {
        "step": {
            "inputs": ["hidden", "obs", "last_action", "reward", "done", "noise"],
            "outputs": ["next_hidden", "action"],
        }
    },
    "conditioned": {"policy": {"inputs": ["obs", "descriptor", "noise"], "outputs": ["action"]}},
    "weights": {"policy": {"inputs": ["obs", "noise"], "outputs": ["action"]}},
}
# Graphs a kind MAY carry besides its own (a runtime that knows them may use them; one that
# does not serves the kind's graphs as before). posterior: `fused`, encoder + posterior
# update + policy as one call (training/common/fused_graph.py): precision, eta [B, L] and
# next_precision, next_eta float64, factor_ok [B, 1] bool, the rest float32.
OPTIONAL_IO: dict[ArtifactKind, dict[GraphRole, dict[str, list[str]]]] = {
    "posterior": {"fused": FUSED_IO},
}

__all__ = [
    "ARTIFACT_KINDS",
    "ENCODER_IO",
    "FORMAT_VERSION",
    "FUSED_IO",
    "KIND_IO",
    "OPTIONAL_IO",
    "POLICY_IO",
    "Artifact",
    "ArtifactError",
    "ArtifactKind",
    "ArtifactSpec",
    "FileEntry",
    "Manifest",
    "Normalisation",
    "add_optional_graph",
    "graph_widths",
    "io_docs",
    "load_artifact",
    "manifest_json_schema",
    "onnx_metadata",
    "sha256_file",
    "verify_graphs",
    "write_artifact",
    "write_graphs",
]


class ArtifactError(ValueError):
    """The artifact directory is missing, malformed, or does not match its manifest."""


class FileEntry(StrictModel):
    """One model file of the artifact and its content hash."""

    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Normalisation(StrictModel):
    """Observation normalisation, obs_n = (obs - mean) / std (already applied in the graphs)."""

    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _check(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have the same length")
        if any(not (math.isfinite(s) and s > 0) for s in self.std):
            raise ValueError("std entries must be finite and > 0")
        if any(not math.isfinite(m) for m in self.mean):
            raise ValueError("mean entries must be finite")
        return self


class ArtifactSpec(StrictModel):
    """What the exporter states about its models (the manifest minus files and bookkeeping)."""

    model_config = ConfigDict(allow_inf_nan=False)

    name: str = "zshot-policy"
    kind: ArtifactKind = "posterior"
    """How the runtime uses the graphs (module docstring; docs/PROTOCOL.md `## Artifact
    kinds`). Manifests written before kinds existed are `posterior`."""
    obs_dim: int = Field(ge=1, le=4096)
    act_dim: int = Field(ge=1, le=256)
    latent_dim: int = Field(default=0, ge=0, le=256)
    """Size L of the task latent z: kind posterior only (>= 1); 0 for the other kinds."""
    hidden_dim: int | None = Field(default=None, ge=1, le=4096)
    """Kind recurrent: size H of the step graph's hidden state (required there, else None)."""
    initial_hidden: list[float] | None = None
    """Kind recurrent: the hidden state a task starts from ([H]); None: zeros."""
    descriptor_dim: int | None = Field(default=None, ge=1, le=4096)
    """Kind conditioned: size D of the task descriptor (a one-hot task id, a plug
    descriptor, a goal) the client sends with RESET_TASK (required there, else None)."""
    descriptor_names: list[str] | None = None
    """Kind conditioned: a name per descriptor entry (informative; None: unnamed)."""
    obs_names: list[str]
    action_names: list[str]
    obs_units: list[str] | None = None
    """Unit of each observation entry ("mm", "deg/s", "1" for a normalised one, "" unknown);
    None in artifacts exported before units were recorded."""
    action_units: list[str] | None = None
    """Unit of each action entry (as obs_units)."""
    action_low: list[float]
    action_high: list[float]
    control_hz: float = Field(ge=0.1, le=10_000)
    obs_normalisation: Normalisation | None = None
    prior_mean: list[float] | None = None
    """Prior over z; None means N(0, I) as in PEARL."""
    prior_var: list[float] | None = None
    normalisation_in_graph: bool = True
    """True: the graphs take raw observations and return actions in env units."""
    env: dict[str, Any] = Field(default_factory=dict)
    """Where the models were trained: env id, task family, held-out plugs (informative)."""
    training: dict[str, Any] = Field(default_factory=dict)
    """Run id, config hash, steps, seed (informative)."""
    versions: dict[str, str] = Field(default_factory=dict)
    """Library versions used to export (torch, onnx opset...). zshot's is added."""

    @property
    def transition_dim(self) -> int:
        """Width of one (s, a, r, s') row fed to the encoder."""
        return 2 * self.obs_dim + self.act_dim + 1

    @model_validator(mode="after")
    def _check_dims(self) -> ArtifactSpec:
        def need(name: str, n: int, want: int) -> None:
            if n != want:
                raise ValueError(f"{name} has {n} entries, expected {want}")

        need("obs_names", len(self.obs_names), self.obs_dim)
        need("action_names", len(self.action_names), self.act_dim)
        need("action_low", len(self.action_low), self.act_dim)
        need("action_high", len(self.action_high), self.act_dim)
        if self.obs_units is not None:
            need("obs_units", len(self.obs_units), self.obs_dim)
        if self.action_units is not None:
            need("action_units", len(self.action_units), self.act_dim)
        for i, (lo, hi) in enumerate(zip(self.action_low, self.action_high, strict=True)):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"action bound {i}: need finite low < high, got [{lo}, {hi}]")
        if self.obs_normalisation is not None:
            need("obs_normalisation.mean", len(self.obs_normalisation.mean), self.obs_dim)
        self._check_kind()
        if self.prior_mean is not None:
            need("prior_mean", len(self.prior_mean), self.latent_dim)
        if self.prior_var is not None:
            need("prior_var", len(self.prior_var), self.latent_dim)
            if any(not (math.isfinite(v) and v > 0) for v in self.prior_var):
                raise ValueError("prior_var entries must be finite and > 0")
        return self

    def _check_kind(self) -> None:
        """The kind's own fields are given, and no other kind's."""
        kind = self.kind
        given = {
            "latent_dim": self.latent_dim != 0,
            "prior_mean": self.prior_mean is not None,
            "prior_var": self.prior_var is not None,
            "hidden_dim": self.hidden_dim is not None,
            "initial_hidden": self.initial_hidden is not None,
            "descriptor_dim": self.descriptor_dim is not None,
            "descriptor_names": self.descriptor_names is not None,
        }
        own = {
            "posterior": {"latent_dim", "prior_mean", "prior_var"},
            "recurrent": {"hidden_dim", "initial_hidden"},
            "conditioned": {"descriptor_dim", "descriptor_names"},
            "weights": set(),
        }[kind]
        foreign = sorted(k for k, v in given.items() if v and k not in own)
        if foreign:
            raise ValueError(f"kind {kind!r} takes no {', '.join(foreign)}")
        required = {
            "posterior": "latent_dim",
            "recurrent": "hidden_dim",
            "conditioned": "descriptor_dim",
        }.get(kind)
        if required is not None and not given[required]:
            raise ValueError(f"kind {kind!r} needs {required} (>= 1)")
        if self.initial_hidden is not None:
            if len(self.initial_hidden) != self.hidden_dim:
                raise ValueError(
                    f"initial_hidden has {len(self.initial_hidden)} entries, "
                    f"expected hidden_dim {self.hidden_dim}"
                )
            if not all(math.isfinite(v) for v in self.initial_hidden):
                raise ValueError("initial_hidden entries must be finite")
        if self.descriptor_names is not None and len(self.descriptor_names) != self.descriptor_dim:
            raise ValueError(
                f"descriptor_names has {len(self.descriptor_names)} entries, "
                f"expected descriptor_dim {self.descriptor_dim}"
            )

    def interface_sha256(self) -> str:
        """sha256 of the fields that define how to call the graphs (canonical JSON of
        INTERFACE_FIELDS, plus the KIND_FIELDS a non-posterior kind sets, so that a
        posterior artifact's hash is what it was before kinds existed): what each model's
        `zshot.interface_sha256` metadata states."""
        body = {k: getattr(self, k) for k in INTERFACE_FIELDS}
        if self.obs_normalisation is not None:
            body["obs_normalisation"] = self.obs_normalisation.model_dump()
        if self.kind != "posterior":
            body.update({k: getattr(self, k) for k in KIND_FIELDS if getattr(self, k) is not None})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()


INTERFACE_FIELDS = (
    "name",
    "obs_dim",
    "act_dim",
    "latent_dim",
    "obs_names",
    "action_names",
    "obs_units",
    "action_units",
    "action_low",
    "action_high",
    "control_hz",
    "obs_normalisation",
    "prior_mean",
    "prior_var",
    "normalisation_in_graph",
)
KIND_FIELDS = ("kind", "hidden_dim", "initial_hidden", "descriptor_dim", "descriptor_names")


def _named(names: list[str], units: list[str] | None) -> str:
    if units is None:
        return ", ".join(names)
    return ", ".join(f"{n} [{u}]" if u else n for n, u in zip(names, units, strict=True))


def onnx_metadata(spec: ArtifactSpec, kind: GraphRole) -> dict[str, str]:
    """The `metadata_props` of one graph: the manifest's essentials, every value a string
    (lists and numbers as JSON). `kind` is the graph's role (`zshot.artifact_kind`:
    encoder, policy, step); the artifact's kind is `zshot.kind`."""
    values: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "artifact_kind": kind,
        "kind": spec.kind,
        "name": spec.name,
        "obs_dim": spec.obs_dim,
        "act_dim": spec.act_dim,
        "latent_dim": spec.latent_dim,
        "transition_dim": spec.transition_dim,
        "obs_names": spec.obs_names,
        "obs_units": spec.obs_units,
        "action_names": spec.action_names,
        "action_units": spec.action_units,
        "action_low": spec.action_low,
        "action_high": spec.action_high,
        "control_hz": spec.control_hz,
        "normalisation_in_graph": spec.normalisation_in_graph,
        "env": spec.env.get("env", ""),
        "interface_sha256": spec.interface_sha256(),
    }
    for key in ("hidden_dim", "descriptor_dim"):
        if getattr(spec, key) is not None:
            values[key] = getattr(spec, key)
    return {
        ONNX_META_PREFIX + k: v if isinstance(v, str) else json.dumps(v, allow_nan=False)
        for k, v in values.items()
    }


def io_docs(spec: ArtifactSpec, kind: GraphRole) -> dict[str, str]:
    """Doc strings of one graph's inputs and outputs (the graph of role `kind` in an
    artifact of kind `spec.kind`), by name."""
    o, a, L = spec.obs_dim, spec.act_dim, spec.latent_dim
    obs = _named(spec.obs_names, spec.obs_units)
    act = _named(spec.action_names, spec.action_units)
    norm = (
        "raw units (normalisation is inside the graph)"
        if spec.normalisation_in_graph
        else ("normalised observations")
    )
    if kind == "encoder":
        return {
            "transition": f"[batch, {spec.transition_dim}] rows (s, a, r, s'): observation "
            f"[{o}] ({obs}), action sent [{a}] ({act}), reward [1], next observation [{o}]; "
            f"{norm}",
            "mu": f"[batch, {L}] mean of each transition's Gaussian factor over the task "
            "latent z (the posterior is their product with the prior)",
            "var": f"[batch, {L}] variance of each transition's Gaussian factor over z",
        }
    low = ", ".join(f"{v:g}" for v in spec.action_low)
    high = ", ".join(f"{v:g}" for v in spec.action_high)
    if kind == "fused":
        tot = "(prior included, as the runtime's NaturalPosterior keeps it)"
        return {
            "obs": f"[batch, {o}] observation ({obs}); {norm}",
            "transition": f"[batch, {spec.transition_dim}] the step's transition (s, a, r, "
            f"s'), as the encoder's input; {norm}",
            "precision": f"[batch, {L}] float64 posterior precision 1/var0 + sum 1/var_i {tot}",
            "eta": f"[batch, {L}] float64 posterior eta mu0/var0 + sum mu_i/var_i {tot}",
            "noise": f"[batch, {a}] standard normal noise of the stochastic policy; zeros give "
            "the deterministic action",
            "next_precision": f"[batch, {L}] float64 precision after multiplying in the "
            "transition's factor (precision + 1/var)",
            "next_eta": f"[batch, {L}] float64 eta after the factor (eta + mu/var)",
            "z": f"[batch, {L}] float32 new posterior mean next_eta / next_precision: the "
            "policy's z",
            "factor_ok": "[batch, 1] bool: the factor is usable (var > 0, mu and var finite); "
            "false: keep the old precision and eta",
            "action": f"[batch, {a}] action ({act}) of the policy at z, in env units, within "
            f"low [{low}] and high [{high}]; sent at {spec.control_hz:g} Hz",
        }
    docs = {
        "obs": f"[batch, {o}] observation ({obs}); {norm}",
        "noise": f"[batch, {a}] standard normal noise of the stochastic policy; zeros give "
        "the deterministic action",
        "action": f"[batch, {a}] action ({act}) in env units, within low [{low}] and high "
        f"[{high}]; sent at {spec.control_hz:g} Hz",
    }
    if spec.kind == "posterior":
        docs["z"] = f"[batch, {L}] task latent (a posterior sample, or its mean)"
    elif spec.kind == "conditioned":
        names = f" ({', '.join(spec.descriptor_names)})" if spec.descriptor_names else ""
        docs["descriptor"] = (
            f"[batch, {spec.descriptor_dim}] task descriptor{names}: a one-hot task id, a "
            "plug descriptor or a goal, as the client sent it with RESET_TASK"
        )
    elif spec.kind == "recurrent":
        H = spec.hidden_dim
        docs.update(
            {
                "hidden": f"[batch, {H}] recurrent state: the previous step's next_hidden; "
                "the manifest's initial_hidden (zeros if none) at a task's first step",
                "last_action": f"[batch, {a}] the action executed at the previous step "
                f"({act}); zeros at a task's first step",
                "reward": "[batch, 1] the reward of the previous step; 0 at a task's first step",
                "done": "[batch, 1] 1 at the first step of an episode that follows another "
                "episode of the same task (the previous step ended an episode), else 0",
                "next_hidden": f"[batch, {H}] the recurrent state after this step",
            }
        )
    return docs


class Manifest(ArtifactSpec):
    """`manifest.json`: the spec plus format version, creation time and file hashes."""

    format_version: Literal[1] = 1
    created: str
    files: dict[GraphRole, FileEntry]

    @model_validator(mode="after")
    def _check_files(self) -> Manifest:
        _check_roles(self.kind, set(self.files), "the manifest lists")
        return self


def _check_roles(kind: ArtifactKind, roles: set[str], what: str) -> None:
    """`roles` must be the kind's graphs plus any of its optional ones (ValueError)."""
    want = set(KIND_IO[kind])
    optional = set(OPTIONAL_IO.get(kind, {}))
    if not want <= roles or not roles <= want | optional:
        extra = f" (optional: {sorted(optional)})" if optional else ""
        raise ValueError(
            f"files: kind {kind!r} takes the graph(s) {sorted(want)}{extra}, {what} {sorted(roles)}"
        )


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of manifest.json, generated from `Manifest`."""
    schema = Manifest.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://zshot.dev/schemas/manifest.schema.json",
        "title": "zshot artifact manifest.json",
        **schema,
    }


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified artifact."""

    root: Path
    manifest: Manifest
    sha256: str
    """sha256 of manifest.json; it covers the model files through their hashes."""

    def graph_path(self, role: GraphRole) -> Path:
        """Absolute path of the graph of `role` (one of the kind's `KIND_IO` keys, or an
        `OPTIONAL_IO` one the manifest lists)."""
        return self.root / self.manifest.files[role].path

    @property
    def encoder_path(self) -> Path:
        """Absolute path of encoder.onnx (kind posterior)."""
        return self.graph_path("encoder")

    @property
    def policy_path(self) -> Path:
        """Absolute path of policy.onnx (every kind but recurrent)."""
        return self.graph_path("policy")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    # Write to a temp file in the same directory, fsync, then rename: a reader sees either
    # the old file or the complete new one, never a torn write.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; an artifact is meant to be copied to and read by other users.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifact(
    out_dir: str | Path,
    encoder: bytes | Path,
    policy: bytes | Path,
    spec: ArtifactSpec,
) -> Artifact:
    """Write a posterior artifact (encoder.onnx, policy.onnx, manifest.json) into `out_dir`
    and return it loaded (`write_graphs` writes any kind)."""
    return write_graphs(out_dir, {"encoder": encoder, "policy": policy}, spec)


def write_graphs(
    out_dir: str | Path, graphs: dict[GraphRole, bytes | Path], spec: ArtifactSpec
) -> Artifact:
    """Write the graphs of `spec.kind` (`KIND_IO[kind]` roles -> serialised ONNX bytes or
    paths, written as ROLE.onnx) and manifest.json into `out_dir`; return it loaded.

    The manifest is written last, so a directory with a manifest always has the files it
    names.
    """
    _check_roles(spec.kind, set(graphs), "got")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, FileEntry] = {}
    for key, src in graphs.items():
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        dst = root / f"{key}.onnx"
        _atomic_write(dst, data)
        files[key] = FileEntry(path=dst.name, sha256=hashlib.sha256(data).hexdigest())
    fields = spec.model_dump()
    fields["versions"] = {**spec.versions, "zshot": zshot_version}
    manifest = Manifest(
        **fields,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        files=files,  # type: ignore[arg-type]
    )
    _atomic_write(
        root / MANIFEST_NAME,
        (json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n").encode(),
    )
    return load_artifact(root)


def add_optional_graph(artifact: Artifact, role: GraphRole, data: bytes) -> Artifact:
    """Write `data` as ROLE.onnx into `artifact`'s directory and name it in manifest.json
    (an `OPTIONAL_IO` role of its kind; replaced if there already); returns it reloaded.
    The other files are untouched; the graph is written before the manifest names it."""
    m = artifact.manifest
    if role not in OPTIONAL_IO.get(m.kind, {}):
        raise ArtifactError(f"kind {m.kind!r} has no optional graph {role!r}")
    dst = artifact.root / f"{role}.onnx"
    mpath = artifact.root / MANIFEST_NAME
    # The manifest as written (its fields, their order, the ones it omits), one files
    # entry more: for an existing artifact the diff is that entry.
    fields = json.loads(mpath.read_bytes())
    fields["files"][role] = {"path": dst.name, "sha256": hashlib.sha256(data).hexdigest()}
    Manifest.model_validate(fields)
    _atomic_write(dst, data)
    _atomic_write(mpath, (json.dumps(fields, indent=2) + "\n").encode())
    return load_artifact(artifact.root)


def load_artifact(path: str | Path, *, check_graphs: bool = False) -> Artifact:
    """Load and verify an artifact directory; raises `ArtifactError` saying what is wrong."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root}: not a directory (expected an exported artifact)")
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise ArtifactError(f"{root}: no {MANIFEST_NAME}; is this an exported artifact?")
    raw = mpath.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{mpath}: not valid JSON: {exc}") from None
    if isinstance(data, dict) and data.get("format_version") not in (None, FORMAT_VERSION):
        raise ArtifactError(
            f"{mpath}: format_version {data.get('format_version')!r} is not supported "
            f"(this runtime reads version {FORMAT_VERSION})"
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()
        )
        raise ArtifactError(f"{mpath}: invalid manifest: {problems}") from None
    for key, entry in manifest.files.items():
        fpath = root / entry.path
        if Path(entry.path).is_absolute() or ".." in Path(entry.path).parts:
            raise ArtifactError(f"{mpath}: files.{key}.path must stay inside the artifact")
        if not fpath.is_file():
            raise ArtifactError(f"{root}: {key} file {entry.path} is missing")
        actual = sha256_file(fpath)
        if actual != entry.sha256:
            raise ArtifactError(
                f"{fpath}: sha256 {actual[:12]}… does not match the manifest's "
                f"{entry.sha256[:12]}… (file changed or corrupt; re-export)"
            )
    artifact = Artifact(
        root=root.resolve(), manifest=manifest, sha256=hashlib.sha256(raw).hexdigest()
    )
    if check_graphs:
        verify_graphs(artifact)
    return artifact


def _dims(shape: list[Any]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]


def graph_widths(m: ArtifactSpec) -> dict[GraphRole, tuple[dict[str, int], dict[str, int]]]:
    """Per graph of `m.kind` (and each optional graph a manifest `m` lists): (input name ->
    feature width, output name -> feature width); every input and output is [batch, width]
    (float32 but the fused graph's totals and factor_ok, `OPTIONAL_IO`)."""
    o, a = m.obs_dim, m.act_dim
    width = {
        "transition": m.transition_dim,
        "mu": m.latent_dim,
        "var": m.latent_dim,
        "z": m.latent_dim,
        "obs": o,
        "noise": a,
        "action": a,
        "last_action": a,
        "reward": 1,
        "done": 1,
        "hidden": m.hidden_dim or 0,
        "next_hidden": m.hidden_dim or 0,
        "descriptor": m.descriptor_dim or 0,
        "precision": m.latent_dim,
        "eta": m.latent_dim,
        "next_precision": m.latent_dim,
        "next_eta": m.latent_dim,
        "factor_ok": 1,
    }
    files = getattr(m, "files", {})
    roles = {
        **KIND_IO[m.kind],
        **{r: io for r, io in OPTIONAL_IO.get(m.kind, {}).items() if r in files},
    }
    return {
        role: ({n: width[n] for n in io["inputs"]}, {n: width[n] for n in io["outputs"]})
        for role, io in roles.items()
    }


def verify_graphs(artifact: Artifact) -> None:
    """Check the ONNX graphs' IO names and feature dims against the manifest and its kind
    (onnxruntime); raises `ArtifactError` naming the graph and what differs."""
    import onnxruntime as ort

    m = artifact.manifest
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for role, (inputs, outputs) in graph_widths(m).items():
        path = artifact.graph_path(role)
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ArtifactError(f"{path}: onnxruntime cannot load it: {exc}") from None
        _check_metadata(path, dict(sess.get_modelmeta().custom_metadata_map), m, role)
        for io, want, got in (
            ("input", inputs, {i.name: _dims(i.shape) for i in sess.get_inputs()}),
            ("output", outputs, {o.name: _dims(o.shape) for o in sess.get_outputs()}),
        ):
            if set(got) != set(want):
                raise ArtifactError(
                    f"{path}: {io}s are {sorted(got)}, a {role} graph of kind {m.kind!r} "
                    f"needs {sorted(want)}"
                )
            for name, w in want.items():
                shape = got[name]
                if len(shape) != 2 or shape[1] not in (None, w):
                    raise ArtifactError(
                        f"{path}: {io} {name!r} has shape {shape}, expected [batch, {w}]"
                    )


def _check_metadata(path: Path, meta: dict[str, str], m: Manifest, role: GraphRole) -> None:
    """A graph's zshot metadata (when it has any) must be the manifest's."""
    if not any(k.startswith(ONNX_META_PREFIX) for k in meta):
        return  # exported before graphs carried metadata
    want = onnx_metadata(m, role)
    keys = ["artifact_kind", "interface_sha256"]
    if ONNX_META_PREFIX + "kind" in meta:  # graphs exported before kinds existed lack it
        keys.append("kind")
    for k in (ONNX_META_PREFIX + key for key in keys):
        if meta.get(k) != want[k]:
            raise ArtifactError(
                f"{path}: metadata {k} is {meta.get(k)!r}, the manifest gives {want[k]!r} "
                "(a graph from another export?)"
            )
