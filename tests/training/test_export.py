"""ONNX export: single-file models, normalisation/scaling in the graphs, parity with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from runtime.artifact import load_artifact
from training.evaluate import OnnxAgent
from training.export import PARITY_ATOL, check_parity, export_bytes, export_run
from training.pearl import make_nets

from .conftest import tiny_config

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


def test_export_run_writes_a_verified_artifact(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "artifact"
    _, errs = export_run(trained_run, out)
    assert sorted(p.name for p in out.iterdir()) == ["encoder.onnx", "manifest.json", "policy.onnx"]
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
    assert set(data["files"]) == {"encoder", "policy"}


def test_onnx_agent_matches_torch_agent(trained_run: Path, tmp_path: Path) -> None:
    from training.evaluate import TorchAgent
    from training.trainer import load_checkpoint

    export_run(trained_run, tmp_path / "a")
    onnx_agent = OnnxAgent(tmp_path / "a")
    state = load_checkpoint(trained_run / "checkpoint.pt")
    nets = make_nets(2, 2, tiny_config())
    nets.load_state_dict(state["nets"])
    torch_agent = TorchAgent(nets, True, True)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(10, 7)).astype(np.float32)
    for a, b in zip(onnx_agent.factors(rows), torch_agent.factors(rows), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for noise in (np.zeros(2, np.float32), rng.normal(size=2).astype(np.float32)):
        obs, z = rng.normal(size=2).astype(np.float32), rng.normal(size=3).astype(np.float32)
        np.testing.assert_allclose(
            onnx_agent.act(obs, z, noise), torch_agent.act(obs, z, noise), atol=1e-5
        )


def test_export_of_missing_run_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        export_run(tmp_path / "nope", tmp_path / "out")
