"""Fixtures: random artifacts (no torch) shaped for MockRobot and SimRobot, and a runtime
server in a subprocess (so a test can kill -9 it)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware_bridge.cli import start_runtime
from tests.runtime.onnx_fixture import make_artifact


@pytest.fixture(scope="session")
def mock_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random artifact for MockRobot: obs 9, act 4, latent 2, 10 Hz."""
    root = tmp_path_factory.mktemp("mock_artifact")
    make_artifact(root, obs_dim=9, act_dim=4, latent_dim=2, seed=3, control_hz=10.0)
    return root


class Server:
    """A `zshot serve` subprocess that tests may kill, pause and restart on the same port."""

    def __init__(self, artifact: Path) -> None:
        self.artifact = artifact
        self.proc, self.endpoint = start_runtime(artifact)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.proc, ep = start_runtime(self.artifact, bind=self.endpoint)
        assert ep == self.endpoint

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server(mock_artifact: Path) -> Iterator[Server]:
    s = Server(mock_artifact)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def sim_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random artifact with the insertion env's dims: obs 18, act 4, latent 5, 10 Hz."""
    root = tmp_path_factory.mktemp("sim_artifact")
    make_artifact(root, obs_dim=18, act_dim=4, latent_dim=5, seed=4, control_hz=10.0)
    return root
