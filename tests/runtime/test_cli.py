"""`zshot serve` and `zshot keys` as a user runs them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from runtime.client import RuntimeClient
from tests.runtime.onnx_fixture import RandomWeights, make_artifact

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "zshot", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_serve_answers_and_stops_on_sigint(artifact_dir: tuple[Path, RandomWeights]) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = serve(str(artifact_dir[0]), "--bind", endpoint, "--set", "seed=1")
    try:
        with RuntimeClient(endpoint, timeout_s=1.0) as c:
            deadline = time.monotonic() + 30
            while True:  # the process needs a moment to import onnxruntime and bind
                try:
                    info = c.hello(timeout_s=1.0)
                    break
                except OSError:
                    assert proc.poll() is None, proc.communicate()
                    assert time.monotonic() < deadline
            assert info.obs_dim == 6
            assert c.step(np.zeros(6, np.float32)).shape == (3,)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert f"listening on {endpoint}" in out and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_refuses_a_tampered_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import serve_main

    make_artifact(tmp_path / "a", seed=5)
    with open(tmp_path / "a" / "encoder.onnx", "ab") as f:
        f.write(b"\0")
    assert serve_main([str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "refusing the artifact" in err and "encoder.onnx" in err and "sha256" in err


def test_serve_refuses_a_graph_that_does_not_match_its_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.artifact import write_artifact
    from runtime.cli import serve_main

    w = RandomWeights(6, 3, 4, 8, seed=0)
    wide = RandomWeights(7, 3, 4, 8, seed=0)  # policy graph for obs_dim 7
    write_artifact(tmp_path / "b", w.encoder_onnx(), wide.policy_onnx(), w.spec())
    assert serve_main([str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "policy.onnx" in err and "'obs'" in err


def test_serve_refuses_public_bind_without_keys(
    artifact_dir: tuple[Path, RandomWeights], capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import serve_main

    assert serve_main([str(artifact_dir[0]), "--bind", "tcp://0.0.0.0:0"]) == 2
    assert "--insecure" in capsys.readouterr().err


def test_serve_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import serve_main

    assert serve_main([str(tmp_path / "nothing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_keys_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import keys_main

    assert keys_main(["generate", "--out", str(tmp_path), "--name", "../x"]) == 2
    assert "bad key name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("bind", "needle"),
    [
        ("garbage", "not an endpoint"),
        ("tcp://127.0.0.1", "not an endpoint"),
        ("tcp://127.0.0.1:99999", "not a port number"),
        ("tcp://127.0.0.1:-1", "not a port number"),
        ("udp://127.0.0.1:5555", "unsupported"),
    ],
)
def test_serve_names_a_bad_bind_in_one_line(
    artifact_dir: tuple[Path, RandomWeights],
    capsys: pytest.CaptureFixture[str],
    bind: str,
    needle: str,
) -> None:
    from runtime.cli import serve_main

    assert serve_main([str(artifact_dir[0]), "--bind", bind]) == 2
    err = capsys.readouterr().err
    assert needle in err and "loopback" not in err and err.count("\n") == 1
