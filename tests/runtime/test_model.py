"""onnxruntime settings: one intra-op thread, spinning off, GPU only on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from runtime.artifact import load_artifact
from runtime.config import ServeConfig
from runtime.model import LoadedModel, session_options
from tests.runtime.onnx_fixture import RandomWeights
from zshot.config import ConfigError


def test_default_session_options_are_one_thread_no_spinning() -> None:
    opts = session_options(ServeConfig())
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    spin = session_options(ServeConfig(allow_spinning=True, intra_op_threads=2))
    assert spin.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert spin.intra_op_num_threads == 2


def test_cpu_provider_by_default(model: LoadedModel) -> None:
    assert model.providers == ["CPUExecutionProvider"]


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here"
)
def test_unavailable_gpu_provider_is_a_clear_config_error(
    artifact_dir: tuple[Path, RandomWeights],
) -> None:
    cfg = ServeConfig(providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ConfigError, match=r"CUDAExecutionProvider.*onnxruntime-gpu"):
        LoadedModel(load_artifact(artifact_dir[0]), cfg)


def test_model_matches_reference(
    model: LoadedModel, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    w = artifact_dir[1]
    rng = np.random.default_rng(0)
    tr = rng.normal(size=(5, w.transition_dim)).astype(np.float32)
    mu, var = model.encode(tr)
    ref_mu, ref_var = w.encode(tr)
    np.testing.assert_allclose(mu, ref_mu, atol=1e-5)
    np.testing.assert_allclose(var, ref_var, rtol=1e-5)
    assert np.all(var > 0)
    obs = rng.normal(size=(1, 6)).astype(np.float32)
    z = rng.normal(size=(1, 4)).astype(np.float32)
    np.testing.assert_allclose(model.act(obs, z), w.act(obs, z), atol=1e-5)


def test_public_and_direct_onnxruntime_paths_agree(
    artifact_dir: tuple[Path, RandomWeights],
) -> None:
    m = LoadedModel.load(artifact_dir[0], ServeConfig())
    tr = np.random.default_rng(1).normal(size=(3, 16)).astype(np.float32)
    obs, z = tr[:1, :6].copy(), tr[:1, :4].copy()
    assert m._raw  # this onnxruntime exposes the C++ session
    fast = (*m.encode(tr), m.act(obs, z))
    m._raw = False
    slow = (*m.encode(tr), m.act(obs, z))
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)
