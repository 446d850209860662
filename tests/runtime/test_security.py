"""Loopback by default; beyond it CurveZMQ with an allow-list, or an explicit --insecure."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq.auth

from runtime.cli import keys_main
from runtime.client import RuntimeClient, RuntimeTimeout, RuntimeUnavailable
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer, SecurityError, is_loopback


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.2:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://lo:5555", True),
        ("ipc:///tmp/zshot.sock", True),
        ("inproc://x", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.10:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://[::]:5555", False),
        ("udp://127.0.0.1:5555", False),
    ],
)
def test_is_loopback(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


def test_default_bind_is_loopback() -> None:
    assert is_loopback(ServeConfig().bind)


def test_refuses_to_listen_beyond_loopback_without_curve(model: LoadedModel) -> None:
    server = RuntimeServer(model, ServeConfig())
    try:
        with pytest.raises(SecurityError, match="CurveZMQ.*--insecure"):
            server.bind("tcp://0.0.0.0:*")
        assert server.sock is None
    finally:
        server.stop()


def test_insecure_allows_it_explicitly(model: LoadedModel) -> None:
    server = RuntimeServer(model, ServeConfig(insecure=True))
    try:
        assert server.bind("tcp://0.0.0.0:*").startswith("tcp://0.0.0.0:")
    finally:
        server.stop()


def _keys(tmp_path: Path, name: str) -> tuple[bytes, bytes]:
    assert keys_main(["generate", "--out", str(tmp_path / "keys"), "--name", name]) == 0
    public, secret = zmq.auth.load_certificate(tmp_path / "keys" / f"{name}.key_secret")
    assert secret is not None
    return public, secret


def test_keys_generate_writes_a_pair_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public, secret = _keys(tmp_path, "robot1")
    assert len(public) == len(secret) == 40  # Z85 of 32-byte keys
    assert (tmp_path / "keys" / "robot1.key_secret").stat().st_mode & 0o077 == 0
    assert zmq.auth.load_certificate(tmp_path / "keys" / "robot1.key")[1] is None  # public only
    assert keys_main(["generate", "--out", str(tmp_path / "keys"), "--name", "robot1"]) == 2
    assert "exists" in capsys.readouterr().err


def _curve_server(
    model: LoadedModel, tmp_path: Path, allowed_names: list[str], **cfg: object
) -> tuple[RuntimeServer, Path, bytes]:
    """A CurveZMQ server (keys under tmp_path/keys) allowing `allowed_names`; not started."""
    server_pub, _ = _keys(tmp_path, "server")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for name in allowed_names:
        (allowed / f"{name}.key").write_bytes((tmp_path / "keys" / f"{name}.key").read_bytes())
    config = ServeConfig(
        curve_secret_key=str(tmp_path / "keys" / "server.key_secret"),
        curve_allowed_clients=str(allowed),
        poll_interval_s=0.01,
        **cfg,  # type: ignore[arg-type]
    )
    return RuntimeServer(model, config), allowed, server_pub


def test_curve_serves_allowed_clients_only(model: LoadedModel, tmp_path: Path) -> None:
    good = _keys(tmp_path, "good")
    bad = _keys(tmp_path, "bad")
    server, _, server_pub = _curve_server(model, tmp_path, ["good"])
    endpoint = server.bind("tcp://0.0.0.0:*").replace(
        "0.0.0.0", "127.0.0.1"
    )  # beyond loopback: OK with curve
    server.start()
    try:
        with RuntimeClient(
            endpoint, timeout_s=2.0, server_public_key=server_pub, client_keys=good
        ) as ok:
            ok.hello()
            assert ok.step(np.zeros(6)).shape == (3,)
        refused = RuntimeClient(
            endpoint, timeout_s=0.5, server_public_key=server_pub, client_keys=bad
        )
        with pytest.raises((RuntimeTimeout, RuntimeUnavailable)):
            refused.hello()
        refused.close()
        plain = RuntimeClient(endpoint, timeout_s=0.5)  # no keys at all
        with pytest.raises((RuntimeTimeout, RuntimeUnavailable)):
            plain.hello()
        plain.close()
        assert server.sessions == {}  # the good client said bye; nobody else got in
    finally:
        server.stop()


def test_curve_config_errors_are_named(model: LoadedModel, tmp_path: Path) -> None:
    _keys(tmp_path, "server")
    cases = [
        (ServeConfig(curve_secret_key=str(tmp_path / "nope")), "no such file"),
        (ServeConfig(curve_secret_key=str(tmp_path / "keys" / "server.key")), "only a public key"),
        (ServeConfig(curve_secret_key=str(tmp_path / "keys" / "server.key_secret")), "allow-list"),
    ]
    for cfg, needle in cases:
        server = RuntimeServer(model, cfg)
        try:
            with pytest.raises(SecurityError, match=needle):
                server.bind("tcp://127.0.0.1:*")
        finally:
            server.stop()


def _wait(cond: object, timeout: float = 5.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_allow_list_changes_apply_without_a_restart(model: LoadedModel, tmp_path: Path) -> None:
    first, second = _keys(tmp_path, "first"), _keys(tmp_path, "second")
    server, allowed, server_pub = _curve_server(model, tmp_path, ["first"])
    endpoint = server.bind("tcp://127.0.0.1:*")
    server.start()
    a = RuntimeClient(endpoint, timeout_s=2.0, server_public_key=server_pub, client_keys=first)
    b = RuntimeClient(endpoint, timeout_s=0.3, server_public_key=server_pub, client_keys=second)
    try:
        a.hello()
        assert a.step(np.zeros(6)).shape == (3,)
        with pytest.raises((RuntimeTimeout, RuntimeUnavailable)):
            b.hello()
        # Swap the keys: `first` removed, `second` added; the server notices by itself.
        (allowed / "second.key").write_bytes((tmp_path / "keys" / "second.key").read_bytes())
        (allowed / "first.key").unlink()
        assert _wait(lambda: not server.sessions)  # the removed key's session is closed
        b.reconnect()  # a fresh handshake, now with an allowed key
        b.timeout_s = 2.0
        b.hello()
        assert b.step(np.zeros(6)).shape == (3,)
        with pytest.raises(RuntimeTimeout):  # still connected, but served nothing any more
            a.hello(timeout_s=0.3)
        assert [s.key for s in server.sessions.values()] == [second[0].decode()]
    finally:
        a.close()
        b.close()
        server.stop()


def test_with_curve_only_reload_clients_may_reload(
    model: LoadedModel, artifact_dir: tuple[Path, object], tmp_path: Path
) -> None:
    from runtime.client import RuntimeErrorReply
    from runtime.protocol import ErrorCode
    from runtime.server import RELOAD_REFUSED

    admin, robot = _keys(tmp_path, "admin"), _keys(tmp_path, "robot")
    admins = tmp_path / "admins"
    admins.mkdir()
    (admins / "admin.key").write_bytes((tmp_path / "keys" / "admin.key").read_bytes())
    server, _, server_pub = _curve_server(
        model,
        tmp_path,
        ["admin", "robot"],
        reload_root=str(artifact_dir[0].parent),
        reload_clients=str(admins),
    )
    endpoint = server.bind("tcp://127.0.0.1:*")
    server.start()
    try:
        with RuntimeClient(
            endpoint, timeout_s=2.0, server_public_key=server_pub, client_keys=robot
        ) as r:
            r.hello()
            with pytest.raises(RuntimeErrorReply) as info:
                r.reload(str(artifact_dir[0]))
            assert (info.value.code, info.value.message) == (ErrorCode.BAD_ARTIFACT, RELOAD_REFUSED)
        with RuntimeClient(
            endpoint, timeout_s=2.0, server_public_key=server_pub, client_keys=admin
        ) as a:
            a.hello()
            assert a.reload(str(artifact_dir[0])).obs_dim == 6
    finally:
        server.stop()


def _held(server: RuntimeServer) -> list[int]:
    """What the flood guard counts as buffered in libzmq, per connection."""
    from runtime.flood import _read_bytes

    guard = server._guard
    assert guard is not None
    return [_read_bytes(p.sock) - p.consumed for p in guard.peers.values()]


@pytest.mark.parametrize("curve", [False, True])
def test_flood_accounting_is_exact_so_long_sessions_never_drift(
    model: LoadedModel, tmp_path: Path, curve: bool
) -> None:
    """The guard's per-connection count must not grow with traffic (a drift would cut a
    legitimate robot after enough steps): after 300 and after 1,500 requests of every
    frame size class it holds the same handshake bytes."""
    if curve:
        client_keys = _keys(tmp_path, "robot")
        server, _, server_pub = _curve_server(model, tmp_path, ["robot"])
        kw: dict[str, object] = {"server_public_key": server_pub, "client_keys": client_keys}
    else:
        server, kw = RuntimeServer(model, ServeConfig(poll_interval_s=0.01)), {}
    endpoint = server.bind("tcp://127.0.0.1:*")
    server.start()
    try:
        c = RuntimeClient(endpoint, timeout_s=2.0, **kw)  # type: ignore[arg-type]
        c.hello()
        rng = np.random.default_rng(0)
        obs, tr = np.zeros(6, np.float32), rng.normal(size=16).astype(np.float32)
        held = []
        for n in (300, 1200):
            for i in range(n):
                if i % 3 == 0:
                    c.observe(rng.normal(size=(1 + i % 40, 16)))  # short and long frames
                else:
                    c.step(obs, tr if i % 2 else None)
            time.sleep(0.05)
            held.append(_held(server))
        c.close()
        assert len(held[0]) == 1 and held[0] == held[1], held
        assert 0 <= held[0][0] < 4096  # the greeting and handshake only
    finally:
        server.stop()
