"""The bridge against a runtime that misbehaves on the wire (a fake ROUTER speaking just
enough of the protocol): malformed replies are misses, a wrong rate is refused, and every
bad value on the command line is one line with exit 2. Also: CurveZMQ through the bridge,
BYE on SIGTERM and on restore, and recordings after a crash."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from hardware_bridge.config import SafetyLimits, TrialsConfig, URConfig, WatchdogConfig
from hardware_bridge.loop import ControlLoop
from hardware_bridge.recorder import Recorder
from hardware_bridge.robots.mock import MOCK_OBS_NAMES, MockRobot
from runtime.client import RuntimeClient, RuntimeErrorReply
from runtime.protocol import HEADER, REPLY_BIT, MsgType, pack_header
from zshot.cli import main
from zshot.config import ConfigError, load_config

Reply = Callable[[int, int, int], list[bytes]]  # (type, session, seq) -> reply frames


class HostileRuntime:
    """A ROUTER on a thread: a valid HELLO reply (rate `control_hz`), then `answer` decides
    every other reply (header + payload frames)."""

    def __init__(self, answer: Reply, control_hz: float = 10.0) -> None:
        self.answer = answer
        self.control_hz = control_hz
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 20)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.requests: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def hello_json(self, sid: int) -> bytes:
        return json.dumps({
            "session_id": sid, "protocol_version": 2, "obs_dim": 9, "act_dim": 4,
            "latent_dim": 2, "transition_dim": 23, "obs_names": list(MOCK_OBS_NAMES),
            "action_names": ["vx", "vy", "vz", "wz"], "action_low": [-1] * 4,
            "action_high": [1] * 4, "control_hz": self.control_hz, "artifact_sha256": "0" * 64,
            "artifact_name": "hostile", "mode": "explore", "update": "episode",
        }).encode()  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ident, head, *_ = self.sock.recv_multipart()
            except zmq.Again:
                continue
            _, _, typ, sid, seq, _, _ = HEADER.unpack(head)
            self.requests.append(typ)
            if typ == MsgType.HELLO:
                frames = [pack_header(typ | REPLY_BIT, 7, seq), self.hello_json(7)]
            else:
                frames = self.answer(typ, sid, seq)
            if frames:
                self.sock.send_multipart([ident, *frames])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        self.ctx.term()


def ok_then(step_reply: Callable[[int, int], list[bytes]]) -> Reply:
    """Well-formed replies to everything but STEP, whose reply `step_reply` makes."""

    def answer(typ: int, sid: int, seq: int) -> list[bytes]:
        head = pack_header(typ | REPLY_BIT, sid, seq)
        if typ == MsgType.STEP:
            return step_reply(sid, seq)
        if typ == MsgType.GET_STATE:
            z = np.zeros(2, "<f4").tobytes()
            return [head, z, z, z, struct.pack("<Q", 0), b"\x00", b""]  # kind posterior
        if typ == MsgType.OBSERVE:
            return [head, struct.pack("<Q", 1)]
        return [head]

    return answer


MALFORMED_STEP_REPLIES: dict[str, Callable[[int, int], list[bytes]]] = {
    "5-byte action": lambda sid, seq: [pack_header(MsgType.STEP | REPLY_BIT, sid, seq), b"12345"],
    "header only": lambda sid, seq: [pack_header(MsgType.STEP | REPLY_BIT, sid, seq)],
    "wrong width": lambda sid, seq: [
        pack_header(MsgType.STEP | REPLY_BIT, sid, seq),
        np.zeros(3, "<f4").tobytes(),
    ],
    "error without code": lambda sid, seq: [pack_header(MsgType.ERROR, sid, seq)],
    "error about an unreadable header (seq 0)": lambda sid, seq: [
        pack_header(MsgType.ERROR, 0, 0),
        struct.pack("<I", 2),
        b"protocol version 1 not supported",
    ],
    "reply of another type": lambda sid, seq: [
        pack_header(MsgType.OBSERVE | REPLY_BIT, sid, seq),
        b"x",
    ],
}


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostileRuntime]]:
    made: list[HostileRuntime] = []

    def make(answer: Reply, control_hz: float = 10.0) -> HostileRuntime:
        made.append(HostileRuntime(answer, control_hz))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _loop(robot: MockRobot, client: RuntimeClient) -> ControlLoop:
    return ControlLoop(
        robot,
        client,
        safety=SafetyLimits(),
        watchdog=WatchdogConfig(max_consecutive_misses=3, reconnect_timeout_s=0.0),
        latent_dim=2,
        log=lambda _: None,
    )


@pytest.mark.parametrize("case", sorted(MALFORMED_STEP_REPLIES))
def test_a_malformed_step_reply_is_a_miss_never_a_crash(
    hostile: Callable[..., HostileRuntime], case: str
) -> None:
    fake = hostile(ok_then(MALFORMED_STEP_REPLIES[case]))
    client = RuntimeClient(fake.endpoint, timeout_s=1.0)
    client.hello()
    with pytest.raises(RuntimeErrorReply):
        client.step(np.zeros(9))
    robot = MockRobot()
    robot.connect()
    result = _loop(robot, client).run_episode("explore")
    client.close()
    assert result.aborted and result.abort_reason.startswith("runtime_lost")
    assert result.misses == 3 and robot.stopped  # K misses: stopped, like a silent runtime


@pytest.mark.parametrize(
    "frames",
    [
        [b"\0" * 8, b"\0" * 8, b"\0" * 8],  # three frames, no count
        [b"\0" * 8, b"\0" * 8, b"\0" * 4, b"\0" * 8],  # z of another width
        [b"\0" * 7, b"\0" * 7, b"\0" * 7, b"\0" * 8],  # not float32
        [b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\0" * 3],  # a 3-byte count
        [b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\0" * 8],  # protocol 1's reply: no kind, no state
        [b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\x09", b""],  # no such kind
        [b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\x01", b""],  # not the HELLO's kind
        [b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\0" * 8, b"\x00", b"\0" * 3],  # state not f32
    ],
)
def test_a_malformed_get_state_reply_is_an_error_reply(
    hostile: Callable[..., HostileRuntime], frames: list[bytes]
) -> None:
    def answer(typ: int, sid: int, seq: int) -> list[bytes]:
        return [pack_header(typ | REPLY_BIT, sid, seq), *frames]

    fake = hostile(answer)
    client = RuntimeClient(fake.endpoint, timeout_s=1.0)
    client.hello()
    with pytest.raises(RuntimeErrorReply, match="malformed reply"):
        client.get_state()
    robot = MockRobot()
    robot.connect()
    result = _loop(robot, client).run_episode("explore")  # get_state at episode start
    client.close()
    assert result.aborted and "runtime_lost" in result.abort_reason and result.steps == 0


def test_a_silent_runtime_after_an_absurd_rate_is_still_stopped_within_the_robots_deadline(
    hostile: Callable[..., HostileRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    for hz in (0.01, 1e6):  # the runtime announces these; the robot runs at 10 Hz
        fake = hostile(ok_then(MALFORMED_STEP_REPLIES["header only"]), control_hz=hz)
        rc = main(["trials", "--runtime", fake.endpoint, "--robot", "mock", "--quiet"])
        err = capsys.readouterr().err
        assert rc == 1 and "refusing the runtime" in err and f"{hz:g} Hz" in err
        assert err.count("\n") == 1
        assert MsgType.STEP not in fake.requests and fake.requests[-1] == MsgType.BYE


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--set", "control_hz=1e-9"], "control_hz"),
        (["--runtime", "garbage"], "not an endpoint"),
        (["--runtime", "tcp://127.0.0.1:99999"], "not a port number"),
        (["--set", "safety.max_force=inf"], "max_force"),
        (["--set", "watchdog.reconnect_timeout_s=inf"], "reconnect_timeout_s"),
        (["--server-key", "/nonexistent.key"], "both"),
    ],
)
def test_bad_trials_values_are_one_line_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trials", "--robot", "mock", "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_unreadable_key_files_and_an_existing_record_file_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.key").write_text("not a key")
    argv = ["trials", "--robot", "mock", "--quiet", "--runtime", "tcp://127.0.0.1:9"]
    keys = ["--server-key", str(tmp_path / "junk.key"), "--client-key", str(tmp_path / "no")]
    assert main([*argv, *keys]) == 2
    assert "key file" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main([*argv, "--record", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "not a directory" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("model", "key", "value"),
    [
        (SafetyLimits, "max_force", float("inf")),
        (SafetyLimits, "max_torque", float("inf")),
        (SafetyLimits, "max_lin_delta", float("inf")),
        (SafetyLimits, "max_ang_delta", float("nan")),
        (SafetyLimits, "workspace_high", (0.03, 0.03, float("inf"))),
        (SafetyLimits, "workspace_low", (float("-inf"), -0.03, -0.03)),
        (WatchdogConfig, "reconnect_timeout_s", float("inf")),
        (WatchdogConfig, "deadline_fraction", float("nan")),
        (URConfig, "control_hz", 1e-9),
        (TrialsConfig, "control_hz", 1e-9),
    ],
)
def test_limits_refuse_infinity_and_absurd_rates(model: type, key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        model(**{key: value})


def test_trials_config_keys_come_in_pairs() -> None:
    with pytest.raises(ConfigError, match="both"):
        load_config(TrialsConfig, None, ["client_secret_key=x.key_secret"])


# -- with a real runtime ------------------------------------------------------------------
def _server(mock_artifact: Path, **cfg: object) -> object:
    from runtime.config import ServeConfig
    from runtime.model import LoadedModel
    from runtime.server import RuntimeServer

    config = ServeConfig(**{"poll_interval_s": 0.01, **cfg})  # type: ignore[arg-type]
    server = RuntimeServer(LoadedModel.load(mock_artifact, config), config)
    server.bind("tcp://127.0.0.1:*")
    server.start()
    return server


def test_restoring_the_runtime_closes_the_old_session(mock_artifact: Path) -> None:
    server = _server(mock_artifact, max_sessions=3, evict_idle_s=3600.0)
    try:
        client = RuntimeClient(server.endpoint, timeout_s=1.0)  # type: ignore[attr-defined]
        client.hello()
        loop = _loop(MockRobot(), client)
        for _ in range(100):  # a hundred pauses of the runtime, each followed by a restore
            assert loop.restore_runtime()
        assert list(server.sessions) == [client.session_id]  # type: ignore[attr-defined]
        other = RuntimeClient(server.endpoint, timeout_s=1.0)  # type: ignore[attr-defined]
        other.hello()  # not locked out
        other.close()
        client.close()
    finally:
        server.stop()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_sigterm_mid_trials_says_bye(mock_artifact: Path, tmp_path: Path) -> None:
    server = _server(mock_artifact)
    try:
        code = "import sys; from zshot.cli import main; sys.exit(main(sys.argv[1:]))"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "trials", "--runtime", server.endpoint,  # type: ignore[attr-defined]
             "--robot", "mock", "--quiet", "--set", "realtime=true", "--eval-episodes", "50",
             "--record", str(tmp_path / "rec")],
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        t0 = time.monotonic()
        while not server.sessions and time.monotonic() - t0 < 60:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert server.sessions, "the trials never opened a session"  # type: ignore[attr-defined]
        time.sleep(0.5)  # mid-episode
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert server.sessions == {}  # type: ignore[attr-defined]
        assert not list((tmp_path / "rec").glob("*.wal"))  # the open episode was closed
    finally:
        server.stop()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_trials_over_curve_follow_the_allow_list(mock_artifact: Path, tmp_path: Path) -> None:
    from runtime.cli import keys_main

    keys = tmp_path / "keys"
    for name in ("server", "robot1", "robot2"):
        assert keys_main(["generate", "--out", str(keys), "--name", name]) == 0
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "robot1.key").write_bytes((keys / "robot1.key").read_bytes())
    server = _server(
        mock_artifact,
        curve_secret_key=str(keys / "server.key_secret"),
        curve_allowed_clients=str(allowed),
    )

    def trials(robot: str) -> int:
        return main([
            "trials", "--runtime", server.endpoint, "--robot", "mock", "--quiet",  # type: ignore[attr-defined]
            "--plugs", "peg", "--adapt-episodes", "1", "--eval-episodes", "1",
            "--server-key", str(keys / "server.key"),
            "--client-key", str(keys / f"{robot}.key_secret"), "--out", str(tmp_path),
        ])  # fmt: skip

    try:
        assert trials("robot1") == 0
        assert trials("robot2") == 1  # not in the allow-list: no runtime answering
        (allowed / "robot2.key").write_bytes((keys / "robot2.key").read_bytes())
        (allowed / "robot1.key").unlink()
        t0 = time.monotonic()
        while server._allowed_mtime != allowed.stat().st_mtime and time.monotonic() - t0 < 5:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert trials("robot2") == 0
        assert trials("robot1") == 1
        assert server.sessions == {}  # type: ignore[attr-defined]
    finally:
        server.stop()  # type: ignore[attr-defined]


def test_a_garbage_log_is_set_aside_and_later_runs_record(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "episode_000000.wal").write_bytes(b"garbage, not a log")
    (rec / "episode_000001.wal").write_bytes(b"ZSHTWAL1" + struct.pack("<I", 5) + b"{bad}")
    r = Recorder(rec)
    assert [p.name for p in r.quarantined] == [
        "episode_000000.wal.corrupt",
        "episode_000001.wal.corrupt",
    ]
    assert (rec / "episode_000000.wal.corrupt").read_bytes() == b"garbage, not a log"  # kept
    assert r.next_index == 2  # the set-aside logs keep their numbers
    r.close()
    assert Recorder(rec).quarantined == []  # and never stop a later run
