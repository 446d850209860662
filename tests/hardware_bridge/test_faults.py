"""Fault tests against the real runtime (a `zshot serve` subprocess): kill -9 mid-trial,
replies delayed past the deadline (SIGSTOP), a dropped connection (a TCP proxy cut). Each
must end with the robot held/stopped, nothing recorded lost, and after the runtime returns
the posterior restored from the bridge's context log. NaN actions are covered with a fake
runtime in test_loop.py (a real artifact cannot be made to emit NaN on demand)."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from hardware_bridge.config import RecorderConfig, SafetyLimits, WatchdogConfig
from hardware_bridge.loop import ControlLoop, StepRecord
from hardware_bridge.recorder import Recorder, load_recordings
from hardware_bridge.robots.mock import MockRobot
from hardware_bridge.safety import SafetyFlag
from runtime.client import RuntimeClient
from tests.hardware_bridge.conftest import Server

pytestmark = pytest.mark.slow


class HookedRecorder(Recorder):
    """A Recorder that runs `hook(step_count)` after each recorded step."""

    hook: Any = None

    def begin_episode(self, meta: dict[str, Any]) -> None:
        super().begin_episode(meta)
        self.n = 0

    def record(self, step: StepRecord) -> None:
        super().record(step)
        self.n += 1
        if self.hook is not None:
            self.hook(self.n)


def make(
    endpoint: str, rec_dir: Path, **wd: Any
) -> tuple[ControlLoop, MockRobot, RuntimeClient, HookedRecorder, list[str]]:
    client = RuntimeClient(endpoint, timeout_s=2.0)
    client.hello(obs_dim=9, act_dim=4)
    robot = MockRobot(max_steps=25)
    robot.connect()
    robot.set_task("peg", 0)
    rec = HookedRecorder(rec_dir, RecorderConfig(fsync_every=1), latent_dim=2)
    msgs: list[str] = []
    cfg = WatchdogConfig(
        **{"max_consecutive_misses": 3, "reconnect_timeout_s": 20.0, "reconnect_poll_s": 0.05, **wd}
    )
    loop = ControlLoop(
        robot, client, safety=SafetyLimits(), watchdog=cfg, sink=rec, latent_dim=2, log=msgs.append
    )
    return loop, robot, client, rec, msgs


def reference_state(endpoint: str, rows: np.ndarray):
    """The posterior a fresh session reaches from exactly `rows`."""
    c = RuntimeClient(endpoint, timeout_s=5.0)
    c.hello()
    c.observe(rows)
    st = c.get_state()
    c.bye()
    c.close()
    return st


def check_nothing_lost(rec_dir: Path, results: list) -> None:
    ds = load_recordings(rec_dir)
    assert [e["steps"] for e in ds.episodes] == [r.steps for r in results]
    assert not any(e["recovered"] for e in ds.episodes)


def test_kill_9_mid_trial_safe_stop_then_posterior_restored(server: Server, tmp_path: Path) -> None:
    loop, robot, client, rec, msgs = make(server.endpoint, tmp_path)
    first = loop.run_episode("explore", {"plug": "peg"})
    assert not first.aborted and first.steps == 25
    at_kill: dict[str, Any] = {}

    def kill_at(n: int) -> None:
        if n == 10 and not at_kill:
            at_kill["state"] = client.get_state()
            at_kill["rows"] = np.stack(loop.context.rows)
            os.kill(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)

    rec.hook = kill_at
    second = loop.run_episode("explore", {"plug": "peg"})
    rec.hook = None
    assert second.aborted and second.abort_reason.startswith("runtime_lost")
    # first period without a reply held the robot (zero twist); K misses later it was stopped
    cmds = robot.commands[first.steps + 1 :]
    assert all(np.all(c == 0) for c in cmds[10:]) and robot.stopped
    assert second.steps == 10 + 3 and second.misses == 3
    assert any("robot stopped" in m for m in msgs)
    server.restart()
    # the bridge's context log matched what the runtime held when it died
    ref = reference_state(server.endpoint, at_kill["rows"])
    assert ref.count == at_kill["state"].count
    np.testing.assert_allclose(ref.mean, at_kill["state"].mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ref.var, at_kill["state"].var, rtol=1e-4, atol=1e-6)
    assert loop.restore_runtime()
    restored = client.get_state()
    assert restored.count == len(loop.context.rows)
    full = reference_state(server.endpoint, np.stack(loop.context.rows))
    np.testing.assert_allclose(restored.mean, full.mean, rtol=1e-4, atol=1e-5)
    third = loop.run_episode("exploit", {"plug": "peg"})
    assert not third.aborted
    rec.close()
    check_nothing_lost(tmp_path, [first, second, third])
    client.close()


def test_replies_delayed_past_the_deadline_hold_then_resume(server: Server, tmp_path: Path) -> None:
    # realtime pacing at 10 Hz: the deadline is 50 ms; SIGSTOP freezes the server.
    loop, _robot, client, rec, _ = make(server.endpoint, tmp_path, max_consecutive_misses=50)
    loop.realtime = True

    def pause_at(n: int) -> None:
        if n == 5:
            os.kill(server.proc.pid, signal.SIGSTOP)
            threading.Timer(0.35, os.kill, (server.proc.pid, signal.SIGCONT)).start()

    rec.hook = pause_at
    res = loop.run_episode("exploit", {"plug": "peg"})
    rec.hook = None
    assert not res.aborted and res.misses >= 1
    rec.close()
    assert load_recordings(tmp_path).actions.shape[0] == res.steps
    with h5py.File(tmp_path / "episode_000000.h5", "r") as f:
        fl = f["episode_0/infos/flags"][()]
        sent = f["episode_0/actions"][()]
        lat = f["episode_0/infos/latency_s"][()]
    missed = (fl & int(SafetyFlag.NO_REPLY)) != 0
    assert missed.sum() == res.misses
    assert np.all(sent[missed] == 0) and np.all(np.isnan(lat[missed]))
    assert not missed[-1]  # replies resumed before the episode ended
    client.close()


def test_paused_past_k_deadlines_aborts_then_same_server_resumes(
    server: Server, tmp_path: Path
) -> None:
    loop, robot, client, rec, _ = make(server.endpoint, tmp_path)
    loop.realtime = True

    def pause_at(n: int) -> None:
        if n == 3:
            os.kill(server.proc.pid, signal.SIGSTOP)

    rec.hook = pause_at
    res = loop.run_episode("explore", {"plug": "peg"})
    rec.hook = None
    assert res.aborted and robot.stopped and res.steps == 3 + 3
    os.kill(server.proc.pid, signal.SIGCONT)
    assert loop.restore_runtime()
    assert client.get_state().count == len(loop.context.rows)
    res2 = loop.run_episode("exploit", {"plug": "peg"})
    assert not res2.aborted
    rec.close()
    check_nothing_lost(tmp_path, [res, res2])
    client.close()


class Proxy:
    """A TCP forwarder whose connections can be cut (a dropped network link)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("tcp://").rsplit(":", 1)
        self.up = (host, int(port))
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen()
        self.lsock.settimeout(0.05)
        self.endpoint = f"tcp://127.0.0.1:{self.lsock.getsockname()[1]}"
        self.up_ok = threading.Event()
        self.up_ok.set()
        self.conns: list[socket.socket] = []
        self.done = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            if not self.up_ok.is_set():
                c.close()
                continue
            u = socket.create_connection(self.up)
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        """Drop every connection and refuse new ones until `restore`."""
        self.up_ok.clear()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.conns = []

    def restore(self) -> None:
        self.up_ok.set()

    def close(self) -> None:
        self.done = True
        self.cut()
        self.lsock.close()


def test_dropped_connection_stops_then_reconnects(server: Server, tmp_path: Path) -> None:
    proxy = Proxy(server.endpoint)
    try:
        loop, robot, client, rec, _msgs = make(proxy.endpoint, tmp_path)
        first = loop.run_episode("explore", {"plug": "peg"})
        assert not first.aborted

        def cut_at(n: int) -> None:
            if n == 8:
                proxy.cut()

        rec.hook = cut_at
        second = loop.run_episode("explore", {"plug": "peg"})
        rec.hook = None
        assert second.aborted and second.abort_reason.startswith("runtime_lost") and robot.stopped
        assert all(np.all(c == 0) for c in robot.commands[first.steps + 1 + 8 :])
        threading.Timer(0.3, proxy.restore).start()
        assert loop.restore_runtime()
        # the server survived, so it still holds the old session; the new one is rebuilt
        assert client.get_state().count == len(loop.context.rows)
        third = loop.run_episode("exploit", {"plug": "peg"})
        assert not third.aborted
        rec.close()
        check_nothing_lost(tmp_path, [first, second, third])
        client.close()
    finally:
        proxy.close()
