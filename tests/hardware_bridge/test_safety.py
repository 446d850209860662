"""Safety layer: whatever the input and the state, what reaches the robot is within limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_bridge.config import SafetyLimits
from hardware_bridge.robot import ActionSpec, RobotError, RobotState
from hardware_bridge.safety import SafetyFlag, SafetyLayer

LIMITS = SafetyLimits()
SPEC = ActionSpec(names=("vx", "vy", "vz", "wz"), scale=(0.05, 0.05, 0.05, 1.0))
HZ = 10.0
EPS = 1e-9

anything = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite_big = st.floats(min_value=-1e6, max_value=1e6)
positions = st.lists(
    st.one_of(st.floats(min_value=-0.2, max_value=0.2), anything), min_size=3, max_size=3
)
wrenches = st.lists(
    st.one_of(st.floats(min_value=-100, max_value=100), anything), min_size=6, max_size=6
)
commands = st.one_of(
    st.none(),
    st.lists(st.one_of(anything, finite_big, st.floats(-1.5, 1.5)), min_size=4, max_size=4),
    st.lists(st.floats(-2, 2), min_size=0, max_size=7),  # wrong shapes
    st.just("not a number"),
)


def state(pos: list[float], wrench: list[float]) -> RobotState:
    return RobotState(
        t=0.0,
        obs=np.zeros(3, dtype=np.float32),
        tcp_position=np.asarray(pos, dtype=np.float64),
        wrench=np.asarray(wrench, dtype=np.float64),
    )


def check_within_limits(layer: SafetyLayer, sent: np.ndarray, prev: np.ndarray, pos, flags) -> None:
    assert sent.shape == (SPEC.act_dim,)
    assert np.all(np.isfinite(sent))
    assert np.all(sent >= np.asarray(SPEC.low) - EPS) and np.all(
        sent <= np.asarray(SPEC.high) + EPS
    )
    twist = SPEC.to_twist(sent)
    assert np.linalg.norm(twist[:3]) <= LIMITS.max_lin_speed + EPS
    assert np.linalg.norm(twist[3:]) <= LIMITS.max_ang_speed + EPS
    p = np.asarray(pos, dtype=np.float64)
    if np.all(np.isfinite(p)):
        lo, hi = np.asarray(LIMITS.workspace_low), np.asarray(LIMITS.workspace_high)
        nxt = p + twist[:3] / HZ
        for i in range(3):
            if lo[i] <= p[i] <= hi[i]:
                assert lo[i] - EPS <= nxt[i] <= hi[i] + EPS
            elif p[i] < lo[i]:
                assert twist[i] >= -EPS  # outside: never further out
            else:
                assert twist[i] <= EPS
    exempt = SafetyFlag.NO_REPLY | SafetyFlag.NONFINITE | SafetyFlag.SENSOR_FAULT
    exempt |= SafetyFlag.FORCE_STOP | SafetyFlag.WORKSPACE
    if not flags & exempt:
        d = twist - prev
        assert np.linalg.norm(d[:3]) <= LIMITS.max_lin_delta + EPS
        assert np.linalg.norm(d[3:]) <= LIMITS.max_ang_delta + EPS


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(commands, positions, wrenches), min_size=1, max_size=8))
def test_whatever_the_input_what_is_sent_is_within_limits(seq) -> None:
    layer = SafetyLayer(LIMITS, SPEC, HZ)
    for cmd, pos, wrench in seq:
        prev = layer.previous_twist
        out = layer.filter(cmd, state(pos, wrench))
        check_within_limits(layer, out.sent, prev, pos, out.flags)
        np.testing.assert_allclose(out.twist, SPEC.to_twist(out.sent))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4))
def test_small_commands_inside_the_box_pass_unchanged(cmd) -> None:
    layer = SafetyLayer(
        LIMITS.model_copy(update={"max_lin_delta": 1.0, "max_ang_delta": 10.0}), SPEC, HZ
    )
    a = np.asarray(cmd) * 0.1  # |v| <= 0.05*0.1*sqrt(3) < max speed, one step moves < 1 mm
    out = layer.filter(a, state([0.0, 0.0, 0.02], [0.0] * 6))
    assert out.flags == SafetyFlag.NONE
    np.testing.assert_allclose(out.sent, a)
    np.testing.assert_allclose(out.commanded, a)


@pytest.mark.parametrize("bad", [[np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, -np.inf, 0]])
def test_nan_or_inf_holds_and_keeps_what_was_commanded(bad) -> None:
    layer = SafetyLayer(LIMITS, SPEC, HZ)
    out = layer.filter(bad, state([0, 0, 0.02], [0] * 6))
    assert out.flags & SafetyFlag.NONFINITE and out.flags.holds
    assert np.all(out.sent == 0)
    np.testing.assert_array_equal(np.isnan(out.commanded), np.isnan(np.asarray(bad, dtype=float)))


def test_no_reply_holds() -> None:
    out = SafetyLayer(LIMITS, SPEC, HZ).filter(None, state([0, 0, 0.02], [0] * 6))
    assert out.flags == SafetyFlag.NO_REPLY and np.all(out.sent == 0)


def test_force_over_threshold_retracts_up() -> None:
    layer = SafetyLayer(LIMITS, SPEC, HZ)
    out = layer.filter([0, 0, -1, 0], state([0, 0, 0.0], [0, 0, LIMITS.max_force + 1, 0, 0, 0]))
    assert out.flags & SafetyFlag.FORCE_STOP
    np.testing.assert_allclose(out.twist[:3], [0, 0, LIMITS.retract_speed])


def test_torque_over_threshold_retracts() -> None:
    layer = SafetyLayer(LIMITS, SPEC, HZ)
    out = layer.filter([0, 0, -1, 0], state([0, 0, 0.0], [0, 0, 0, 0, 0, LIMITS.max_torque * 2]))
    assert out.flags & SafetyFlag.FORCE_STOP and out.twist[2] > 0


def test_box_wall_stops_motion_outward() -> None:
    layer = SafetyLayer(LIMITS.model_copy(update={"max_lin_delta": 1.0}), SPEC, HZ)
    hi = LIMITS.workspace_high[0]
    out = layer.filter([1, 0, 0, 0], state([hi - 0.001, 0, 0.02], [0] * 6))
    assert out.flags & SafetyFlag.WORKSPACE
    assert out.twist[0] == pytest.approx(0.001 * HZ)  # exactly reaches the wall


def test_speed_and_delta_limits_act() -> None:
    layer = SafetyLayer(LIMITS, SPEC, HZ)
    out = layer.filter([1, 1, 0, 0], state([0, 0, 0.02], [0] * 6))
    assert out.flags & SafetyFlag.DELTA
    assert np.linalg.norm(out.twist[:3]) == pytest.approx(LIMITS.max_lin_delta)
    for _ in range(20):
        out = layer.filter([1, 1, 0, 0], state([0, 0, 0.02], [0] * 6))
    assert np.linalg.norm(out.twist[:3]) == pytest.approx(LIMITS.max_lin_speed)
    assert out.flags & SafetyFlag.SPEED


def test_sensor_fault_holds() -> None:
    out = SafetyLayer(LIMITS, SPEC, HZ).filter([0.1, 0, 0, 0], state([np.nan, 0, 0], [0] * 6))
    assert out.flags == SafetyFlag.SENSOR_FAULT and np.all(out.sent == 0)


def test_bad_limits_and_specs_are_named() -> None:
    with pytest.raises(ValueError, match="workspace_low.x"):
        SafetyLimits(workspace_low=(0.1, 0, 0), workspace_high=(0.0, 1, 1))
    with pytest.raises(RobotError, match="not twist components"):
        ActionSpec(names=("vx", "jump"), scale=(1.0, 1.0))
    with pytest.raises(RobotError, match="low < 0 < high"):
        ActionSpec(names=("vx",), scale=(1.0,), low=(0.1,), high=(1.0,))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(anything, finite_big), min_size=4, max_size=4), min_size=1, max_size=30
    )
)
def test_through_the_whole_loop_what_reaches_the_robot_is_within_limits(actions) -> None:
    from hardware_bridge.config import WatchdogConfig
    from hardware_bridge.loop import ControlLoop
    from hardware_bridge.robots.mock import MockRobot
    from tests.hardware_bridge.fakes import FakeRuntime

    robot = MockRobot(max_steps=len(actions), action_spec=SPEC, start=(0.0, 0.0, 0.005))
    robot.connect()
    robot.set_task("p", 0)
    rt = FakeRuntime(action_fn=lambda obs, i: np.asarray(actions[i]))
    rt.hello()
    loop = ControlLoop(robot, rt, safety=LIMITS, watchdog=WatchdogConfig(), log=lambda m: None)
    loop.run_episode("exploit")
    lo, hi = np.asarray(LIMITS.workspace_low), np.asarray(LIMITS.workspace_high)
    for cmd in robot.commands:
        tw = SPEC.to_twist(cmd)
        assert np.all(np.isfinite(cmd)) and np.all(np.abs(cmd) <= 1.0 + EPS)
        assert np.linalg.norm(tw[:3]) <= LIMITS.max_lin_speed + EPS
        assert np.linalg.norm(tw[3:]) <= LIMITS.max_ang_speed + EPS
    pos = robot.observe().tcp_position
    assert np.all(pos >= lo - 1e-9) and np.all(pos <= hi + 1e-9)
