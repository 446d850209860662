"""Fixtures: a random artifact (no torch) and an in-process runtime server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from runtime.client import RuntimeClient
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer
from tests.runtime.onnx_fixture import RandomWeights, make_artifact


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RandomWeights]:
    """A random artifact (obs 6, act 3, latent 4) and its numpy reference."""
    root = tmp_path_factory.mktemp("artifact")
    _, weights = make_artifact(root, seed=0)
    return root, weights


@pytest.fixture(scope="session")
def other_artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RandomWeights]:
    """Same dims, other weights and latent size (a retrained model to reload)."""
    root = tmp_path_factory.mktemp("artifact2")
    _, weights = make_artifact(root, seed=1, latent_dim=5, prior_var=[2.0] * 5)
    return root, weights


class Running:
    """A server on a daemon thread plus what tests need to talk to it."""

    def __init__(self, server: RuntimeServer, weights: RandomWeights) -> None:
        self.server = server
        self.endpoint = server.endpoint
        self.weights = weights
        self.clients: list[RuntimeClient] = []

    def client(self, **kw: object) -> RuntimeClient:
        """A connected client (closed at teardown); default deadline 2 s for slow CI."""
        kw.setdefault("timeout_s", 2.0)
        c = RuntimeClient(self.endpoint, **kw)  # type: ignore[arg-type]
        self.clients.append(c)
        return c

    def raw(self) -> zmq.Socket[bytes]:
        """A bare DEALER socket connected to the server (for malformed messages)."""
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 2000)
        s.connect(self.endpoint)
        return s


def start_server(model: LoadedModel, weights: RandomWeights, **cfg: object) -> Running:
    """Bind a server on a free loopback port and run it on a thread."""
    config = ServeConfig(**{"seed": 0, "poll_interval_s": 0.01, **cfg})  # type: ignore[arg-type]
    server = RuntimeServer(model, config)
    server.bind("tcp://127.0.0.1:*")
    server.start()
    return Running(server, weights)


@pytest.fixture(scope="session")
def model(artifact_dir: tuple[Path, RandomWeights]) -> LoadedModel:
    """The random artifact loaded into onnxruntime."""
    return LoadedModel.load(artifact_dir[0], ServeConfig())


@pytest.fixture
def running(model: LoadedModel, artifact_dir: tuple[Path, RandomWeights]) -> Iterator[Running]:
    """A fresh server per test (sessions never leak between tests)."""
    r = start_server(model, artifact_dir[1])
    yield r
    for c in r.clients:
        c.close()
    r.server.stop()


def rand_transition(rng: np.random.Generator, w: RandomWeights, n: int | None = None) -> np.ndarray:
    """Random (s, a, r, s') rows [n, T] (or one row [T])."""
    shape = (w.transition_dim,) if n is None else (n, w.transition_dim)
    return rng.normal(size=shape).astype(np.float32)
