"""The exported artifact: `encoder.onnx` + `policy.onnx` + `manifest.json`.

This is the only hand-off from training to the robot. The runtime owns its schema: training
writes it through `write_artifact`, the server reads it through `load_artifact`, which
verifies every file's sha256, the dims against the names and bounds, and (with
`check_graphs=True`) the ONNX graphs' input/output names and shapes against the manifest.

Graph IO (docs/INTERFACES.md):
    encoder.onnx  transition[B, 2*obs_dim + act_dim + 1] = (s, a, r, s')  ->  mu[B, L], var[B, L]
    policy.onnx   obs[B, obs_dim], z[B, L], noise[B, act_dim]            ->  action[B, act_dim]
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

from zshot import __version__ as zshot_version
from zshot.config import StrictModel

FORMAT_VERSION = 1
FORMAT = "zshot-artifact"
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).resolve().parent / "manifest.schema.json"
ONNX_META_PREFIX = "zshot."
GRAPH_NAMES = {"encoder": "zshot_context_encoder", "policy": "zshot_policy"}
ENCODER_IO = {"inputs": ["transition"], "outputs": ["mu", "var"]}
POLICY_IO = {"inputs": ["obs", "z", "noise"], "outputs": ["action"]}

__all__ = [
    "ENCODER_IO",
    "FORMAT_VERSION",
    "POLICY_IO",
    "Artifact",
    "ArtifactError",
    "ArtifactSpec",
    "FileEntry",
    "Manifest",
    "Normalisation",
    "io_docs",
    "load_artifact",
    "manifest_json_schema",
    "onnx_metadata",
    "sha256_file",
    "verify_graphs",
    "write_artifact",
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
    obs_dim: int = Field(ge=1, le=4096)
    act_dim: int = Field(ge=1, le=256)
    latent_dim: int = Field(ge=1, le=256)
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
        if self.prior_mean is not None:
            need("prior_mean", len(self.prior_mean), self.latent_dim)
        if self.prior_var is not None:
            need("prior_var", len(self.prior_var), self.latent_dim)
            if any(not (math.isfinite(v) and v > 0) for v in self.prior_var):
                raise ValueError("prior_var entries must be finite and > 0")
        return self

    def interface_sha256(self) -> str:
        """sha256 of the fields that define how to call the graphs (canonical JSON of
        INTERFACE_FIELDS): what each model's `zshot.interface_sha256` metadata states."""
        body = {k: getattr(self, k) for k in INTERFACE_FIELDS}
        if self.obs_normalisation is not None:
            body["obs_normalisation"] = self.obs_normalisation.model_dump()
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


def _named(names: list[str], units: list[str] | None) -> str:
    if units is None:
        return ", ".join(names)
    return ", ".join(f"{n} [{u}]" if u else n for n, u in zip(names, units, strict=True))


def onnx_metadata(spec: ArtifactSpec, kind: Literal["encoder", "policy"]) -> dict[str, str]:
    """The `metadata_props` of one graph: the manifest's essentials, every value a string
    (lists and numbers as JSON)."""
    values: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "artifact_kind": kind,
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
    return {
        ONNX_META_PREFIX + k: v if isinstance(v, str) else json.dumps(v, allow_nan=False)
        for k, v in values.items()
    }


def io_docs(spec: ArtifactSpec, kind: Literal["encoder", "policy"]) -> dict[str, str]:
    """Doc strings of one graph's inputs and outputs, by name."""
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
    return {
        "obs": f"[batch, {o}] observation ({obs}); {norm}",
        "z": f"[batch, {L}] task latent (a posterior sample, or its mean)",
        "noise": f"[batch, {a}] standard normal noise of the stochastic policy; zeros give "
        "the deterministic action",
        "action": f"[batch, {a}] action ({act}) in env units, within low [{low}] and high "
        f"[{high}]; sent at {spec.control_hz:g} Hz",
    }


class Manifest(ArtifactSpec):
    """`manifest.json`: the spec plus format version, creation time and file hashes."""

    format_version: Literal[1] = 1
    created: str
    files: dict[Literal["encoder", "policy"], FileEntry]

    @model_validator(mode="after")
    def _check_files(self) -> Manifest:
        missing = {"encoder", "policy"} - set(self.files)
        if missing:
            raise ValueError(f"files: missing entries {sorted(missing)}")
        return self


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

    @property
    def encoder_path(self) -> Path:
        """Absolute path of encoder.onnx."""
        return self.root / self.manifest.files["encoder"].path

    @property
    def policy_path(self) -> Path:
        """Absolute path of policy.onnx."""
        return self.root / self.manifest.files["policy"].path


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
    """Write encoder.onnx, policy.onnx and manifest.json into `out_dir` and return it loaded.

    `encoder`/`policy` are serialised ONNX models (bytes) or paths to them. The manifest is
    written last, so a directory with a manifest always has the files it names.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, FileEntry] = {}
    for key, src in (("encoder", encoder), ("policy", policy)):
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


def verify_graphs(artifact: Artifact) -> None:
    """Check the ONNX graphs' IO names and feature dims against the manifest (onnxruntime)."""
    import onnxruntime as ort

    m = artifact.manifest
    expect = {
        "encoder": (
            {"transition": artifact.manifest.transition_dim},
            {"mu": m.latent_dim, "var": m.latent_dim},
        ),
        "policy": (
            {"obs": m.obs_dim, "z": m.latent_dim, "noise": m.act_dim},
            {"action": m.act_dim},
        ),
    }
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    key: Literal["encoder", "policy"]
    for key, (inputs, outputs) in expect.items():  # type: ignore[assignment]
        path = artifact.encoder_path if key == "encoder" else artifact.policy_path
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ArtifactError(f"{path}: onnxruntime cannot load it: {exc}") from None
        _check_metadata(path, dict(sess.get_modelmeta().custom_metadata_map), m, key)
        for kind, want, got in (
            ("input", inputs, {i.name: _dims(i.shape) for i in sess.get_inputs()}),
            ("output", outputs, {o.name: _dims(o.shape) for o in sess.get_outputs()}),
        ):
            if set(got) != set(want):
                raise ArtifactError(
                    f"{path}: {kind}s are {sorted(got)}, the manifest needs {sorted(want)}"
                )
            for name, width in want.items():
                shape = got[name]
                if len(shape) != 2 or shape[1] not in (None, width):
                    raise ArtifactError(
                        f"{path}: {kind} {name!r} has shape {shape}, expected [batch, {width}]"
                    )


def _check_metadata(
    path: Path, meta: dict[str, str], m: Manifest, kind: Literal["encoder", "policy"]
) -> None:
    """A graph's zshot metadata (when it has any) must be the manifest's."""
    if not any(k.startswith(ONNX_META_PREFIX) for k in meta):
        return  # exported before graphs carried metadata
    want = onnx_metadata(m, kind)
    for k in (ONNX_META_PREFIX + "artifact_kind", ONNX_META_PREFIX + "interface_sha256"):
        if meta.get(k) != want[k]:
            raise ArtifactError(
                f"{path}: metadata {k} is {meta.get(k)!r}, the manifest gives {want[k]!r} "
                "(a graph from another export?)"
            )
