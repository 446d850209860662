"""ONNX export: single-file models, normalisation/scaling in the graphs, parity with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from runtime.artifact import load_artifact
from tests.conftest import ExportedArtifact
from tests.training.conftest import ROOT, tiny_config
from training.algos.pearl.export import PARITY_ATOL, check_parity, export_bytes
from training.algos.pearl.networks import make_nets
from training.common.agents import OnnxAgent
from training.registry import export_run

pytestmark = pytest.mark.slow  # the dynamo exporter takes a few seconds per graph


def test_parity_on_random_nets_with_normalisation() -> None:
    cfg = tiny_config()
    torch.manual_seed(3)
    nets = make_nets(5, 2, cfg)
    # non-trivial normalisation: the graphs must carry it
    nets.set_obs_stats(
        torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0]), torch.tensor([2.0, 0.1, 1.0, 5.0, 0.3])
    )
    enc, pol, enc_g, pol_g = export_bytes(nets, 5, 2)
    errs = check_parity(enc, pol, enc_g, pol_g, 5, 2, cfg.encoder.latent_dim, seed=7, batch=200)
    assert max(errs.values()) <= PARITY_ATOL
    for model, inputs, outputs in (
        (enc, ["transition"], ["mu", "var"]),
        (pol, ["obs", "z", "noise"], ["action"]),
    ):
        proto = onnx.load_model_from_string(model)
        assert [i.name for i in proto.graph.input] == inputs
        assert [o.name for o in proto.graph.output] == outputs
        # single file: no initializer points at external data
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def test_export_run_writes_a_verified_artifact(
    trained_run: Path, exported_artifact: ExportedArtifact
) -> None:
    out, errs = exported_artifact.root, exported_artifact.parity
    files = ["encoder.onnx", "fused.onnx", "manifest.json", "policy.onnx"]
    assert sorted(p.name for p in out.iterdir()) == files
    loaded = load_artifact(out, check_graphs=True)
    m = loaded.manifest
    assert (m.obs_dim, m.act_dim, m.latent_dim) == (2, 2, 3)
    assert m.obs_names == ["x", "y"] and m.action_low == [-1.0, -1.0]
    assert m.prior_mean == [0.0] * 3 and m.prior_var == [1.0] * 3
    assert m.control_hz == 10.0 and m.versions["torch"].startswith("2.")
    state = torch.load(trained_run / "checkpoint.pt", weights_only=True)
    np.testing.assert_allclose(
        m.obs_normalisation.mean, state["nets"]["encoder.normaliser.mean"].numpy(), rtol=1e-6
    )
    assert max(errs.values()) <= PARITY_ATOL
    data = json.loads((out / "manifest.json").read_text())
    assert set(data["files"]) == {"encoder", "policy", "fused"}  # fused: the one-call STEP


def test_onnx_agent_matches_torch_agent(
    trained_run: Path, exported_artifact: ExportedArtifact
) -> None:
    from training.algos.pearl.agent import TorchAgent
    from training.common.checkpoint import load_checkpoint

    onnx_agent = OnnxAgent(exported_artifact.root)
    state = load_checkpoint(trained_run / "checkpoint.pt")
    nets = make_nets(2, 2, tiny_config())
    nets.load_state_dict(state["nets"])
    torch_agent = TorchAgent(nets, True, True)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(10, 7)).astype(np.float32)
    assert onnx_agent.encoder is not None and torch_agent.encoder is not None
    pairs = zip(onnx_agent.encoder.factors(rows), torch_agent.encoder.factors(rows), strict=True)
    for a, b in pairs:
        np.testing.assert_allclose(a, b, atol=1e-5)
    for noise in (np.zeros(2, np.float32), rng.normal(size=2).astype(np.float32)):
        obs, z = rng.normal(size=2).astype(np.float32), rng.normal(size=3).astype(np.float32)
        np.testing.assert_allclose(
            onnx_agent.act(obs, z, noise), torch_agent.act(obs, z, noise), atol=1e-5
        )


def test_export_of_missing_run_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        export_run(tmp_path / "nope", tmp_path / "out")


def test_graphs_carry_the_manifests_essentials(
    exported_artifact: ExportedArtifact, tmp_path: Path
) -> None:
    from runtime.artifact import GRAPH_NAMES, onnx_metadata

    art = exported_artifact.artifact
    m = art.manifest
    assert m.obs_units == ["m", "m"] and m.action_units == ["1", "1"]
    fused = art.graph_path("fused")
    for kind, path in (
        ("encoder", art.encoder_path),
        ("policy", art.policy_path),
        ("fused", fused),
    ):
        proto = onnx.load(path)
        onnx.checker.check_model(proto)
        assert (proto.ir_version, proto.opset_import[0].version) == (10, 20)
        assert proto.graph.name == GRAPH_NAMES[kind] and proto.doc_string
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta == onnx_metadata(m, kind)
        assert meta["zshot.artifact_kind"] == kind
        assert json.loads(meta["zshot.obs_names"]) == m.obs_names == ["x", "y"]
        assert json.loads(meta["zshot.action_low"]) == m.action_low
        assert json.loads(meta["zshot.latent_dim"]) == m.latent_dim == 3
        assert float(meta["zshot.control_hz"]) == m.control_hz
        assert meta["zshot.interface_sha256"] == m.interface_sha256()
        for value in (*proto.graph.input, *proto.graph.output):
            assert value.doc_string.startswith("[batch, "), value.name
    # The runtime checks the metadata against the manifest: a graph from another export
    # (here: re-annotated for another control rate) is named, though its sha256 is listed.
    from runtime.artifact import ArtifactError, ArtifactSpec, load_artifact, write_artifact
    from training.algos.pearl.export import annotate

    spec = ArtifactSpec.model_validate(m.model_dump(exclude={"created", "files", "format_version"}))
    other = spec.model_copy(update={"control_hz": 20.0})
    enc = annotate(art.encoder_path.read_bytes(), other, "encoder")
    bad = write_artifact(tmp_path / "bad", enc, art.policy_path, spec)
    with pytest.raises(ArtifactError, match="interface_sha256"):
        load_artifact(bad.root, check_graphs=True)


def test_export_refuses_an_existing_dir_unless_forced(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "art"
    out.mkdir()
    (out / "keep.txt").write_text("a shipped artifact")
    with pytest.raises(FileExistsError, match="--force"):
        export_run(trained_run, out)
    assert (out / "keep.txt").read_text() == "a shipped artifact"
    art, _ = export_run(trained_run, out, force=True)
    files = ["encoder.onnx", "fused.onnx", "manifest.json", "policy.onnx"]
    assert sorted(p.name for p in out.iterdir()) == files
    assert art.root == out.resolve()
    assert [p.name for p in tmp_path.iterdir()] == ["art"]  # no temp or old dirs left


def test_export_cli_prints_one_line_per_graph(trained_run: Path, tmp_path: Path) -> None:
    """`zshot export` as a user runs it (own process): torch.onnx's progress and warnings
    only with --verbose."""
    import subprocess
    import sys

    def export(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "zshot.cli", "export", str(trained_run), *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)

    quiet = export("--out", str(tmp_path / "a"))
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stdout.splitlines()
    assert len(lines) == 4 and lines[0].startswith("encoder.onnx") and "mu " in lines[0]
    assert lines[2].startswith("fused.onnx")
    assert all("onnxruntime vs torch max |err|" in line for line in lines[:2])
    assert lines[1].startswith("policy.onnx") and "action " in lines[1]
    assert quiet.stderr == ""
    again = export("--out", str(tmp_path / "a"))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    loud = export("--out", str(tmp_path / "b"), "--verbose")
    assert loud.returncode == 0 and "[torch.onnx]" in loud.stdout + loud.stderr
