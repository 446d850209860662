"""The UR adapter against a fake of the ur_rtde interfaces."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from hardware_bridge.config import SafetyLimits, URConfig, WatchdogConfig
from hardware_bridge.loop import ControlLoop
from hardware_bridge.robot import RobotError
from hardware_bridge.robots.ur import (
    UR_OBS_NAMES,
    URRobot,
    _matrix_to_rotvec,
    matrix_to_rpy,
    rotvec_to_matrix,
)
from tests.hardware_bridge import fake_ur_rtde
from tests.hardware_bridge.fakes import FakeRuntime


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch) -> fake_ur_rtde.FakeArm:
    ctrl, recv, arm = fake_ur_rtde.modules()
    monkeypatch.setitem(sys.modules, "rtde_control", ctrl)
    monkeypatch.setitem(sys.modules, "rtde_receive", recv)
    return arm


def names(arm: fake_ur_rtde.FakeArm) -> list[str]:
    return [c[0] for c in arm.calls]


def test_obs_layout_matches_the_insertion_env() -> None:
    from sim.insertion import OBS_NAMES

    assert UR_OBS_NAMES == tuple(OBS_NAMES)


def test_without_ur_rtde_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rtde_control", None)
    with pytest.raises(RobotError, match=r"zshot\[robot\]"):
        URRobot().connect()


def test_reset_moves_above_the_socket_and_observes_in_its_frame(arm) -> None:
    cfg = URConfig(
        socket_position=(0.5, 0.1, 0.05), socket_yaw=math.pi / 2, start_offset=(0.0, 0.0, 0.03)
    )
    r = URRobot(cfg)
    r.connect()
    assert arm.connected_to == [(cfg.host, cfg.rtde_frequency)]  # the control interface
    s = r.reset()
    kind, args = arm.calls[-1]
    assert kind == "moveL" and np.allclose(args[0][:3], [0.5, 0.1, 0.08])
    np.testing.assert_allclose(s.obs[:3], [0.0, 0.0, 30.0], atol=1e-4)  # mm above the socket
    np.testing.assert_allclose(s.tcp_position, [0.0, 0.0, 0.03 - cfg.tcp_to_tip], atol=1e-9)
    # a base-frame force along +x is along -y of a socket turned by +90 degrees
    arm.force = [10.0, 0, 0, 0, 0, 0]
    s = r.observe()
    np.testing.assert_allclose(s.wrench[:3], [0.0, -10.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(s.obs[12:15], [0.0, -0.5, 0.0], atol=1e-6)  # / force_ref 20 N


def test_speed_commands_are_rotated_into_the_base_frame(arm) -> None:
    cfg = URConfig(socket_yaw=math.pi / 2, action_scale_lin=0.02)
    r = URRobot(cfg)
    r.connect()
    r.reset()
    r.command(np.array([1.0, 0.0, -0.5, 0.0]))
    kind, (xd, acc, t) = arm.calls[-1]
    assert kind == "speedL" and t == pytest.approx(0.1) and acc == cfg.acceleration
    np.testing.assert_allclose(xd, [0.0, 0.02, -0.01, 0, 0, 0], atol=1e-12)
    with pytest.raises(RobotError, match="non-finite"):
        r.command(np.array([np.nan, 0, 0, 0]))
    assert names(arm).count("speedL") == 1  # the NaN never reached the robot


def test_servo_mode_targets_pose_plus_twist_times_period(arm) -> None:
    r = URRobot(URConfig(mode="servo", socket_yaw=0.0))
    r.connect()
    r.reset()
    before = list(arm.pose)
    r.command(np.array([0.0, 0.0, -1.0, 0.0]))
    kind, args = arm.calls[-1]
    assert kind == "servoL"
    np.testing.assert_allclose(args[0][:3], np.add(before[:3], [0, 0, -0.002]), atol=1e-9)
    r.stop()
    assert names(arm)[-1] == "servoStop"


def test_excessive_force_triggers_the_protective_stop_and_the_loop_aborts(arm) -> None:
    r = URRobot(URConfig(max_steps=20))
    r.connect()
    rt = FakeRuntime(action_fn=lambda obs, i: np.array([0, 0, -0.5, 0], dtype=np.float32))
    rt.hello()
    loop = ControlLoop(
        r, rt, safety=SafetyLimits(max_force=500.0), watchdog=WatchdogConfig(), log=lambda m: None
    )
    r.set_task("US-AC-plug", 0)
    r.reset()
    calls_before = len(arm.calls)

    def push_after_moves() -> None:
        if names(arm)[calls_before:].count("speedL") >= 3:
            arm.force = [0, 0, r.cfg.protective_stop_force + 5, 0, 0, 0]

    orig = r.command

    def command(a):  # type: ignore[no-untyped-def]
        orig(a)
        push_after_moves()

    r.command = command  # type: ignore[method-assign]
    res = loop.run_episode("exploit")
    assert "triggerProtectiveStop" in names(arm)
    assert res.aborted and res.abort_reason.startswith("protective_stop")
    with pytest.raises(RobotError, match="protective-stopped"):
        r.reset()
    r.disconnect()
    assert names(arm)[-3:] == ["stopScript", "disconnect_control", "disconnect_receive"]


def test_unknown_observation_names_are_refused() -> None:
    with pytest.raises(RobotError, match="cannot measure"):
        URRobot(obs_names=("x_mm", "joint_temp"))


def test_rotation_helpers_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        rv = rng.normal(size=3)
        rv *= rng.uniform(0, 3.1) / np.linalg.norm(rv)
        m = rotvec_to_matrix(rv)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(rotvec_to_matrix(_matrix_to_rotvec(m)), m, atol=1e-9)
    # rpy convention: R = Rz(yaw) Ry(pitch) Rx(roll)
    yaw = 0.3
    np.testing.assert_allclose(
        matrix_to_rpy(rotvec_to_matrix([0, 0, yaw])), [0, 0, yaw], atol=1e-12
    )
