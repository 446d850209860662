"""Fixtures for every test folder: one tiny PEARL run on the toy task, trained once per
session (`trained_run`), and its artifact, exported once (`exported_artifact`).

Both are shared by every test that asks for them, so tests only READ them; a test that
changes a run or an artifact copies it to its own tmp_path first. The artifact's files are
made read-only, so a test that writes into them fails instead of breaking the others.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, NamedTuple

import pytest


class ExportedArtifact(NamedTuple):
    """`training.registry.export_run` of `trained_run`, done once."""

    root: Path
    """The artifact directory (encoder.onnx, policy.onnx, manifest.json), read-only files."""
    artifact: Any
    """The verified `runtime.artifact.LoadedArtifact` export_run returned."""
    parity: dict[str, float]
    """export_run's max |onnxruntime - torch| per graph on its check inputs."""


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir trained by the tiny config (checkpoint, history, eval.json, curves.png)."""
    from tests.training.conftest import tiny_config
    from training.algos.pearl.trainer import Trainer

    run = tmp_path_factory.mktemp("run")
    Trainer(tiny_config(), run).run(progress=False)
    return run


@pytest.fixture(scope="session")
def exported_artifact(
    trained_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> ExportedArtifact:
    """`trained_run` exported once (the ONNX exporter takes seconds per call)."""
    from training.registry import export_run

    root = tmp_path_factory.mktemp("exported") / "artifact"
    artifact, parity = export_run(trained_run, root)
    for f in root.iterdir():
        f.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return ExportedArtifact(root, artifact, parity)
