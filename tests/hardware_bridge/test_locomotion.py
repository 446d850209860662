"""LocomotionRobot and its joint safety layer; `zshot trials --robot sim-locomotion` against a
real `zshot serve` with the runtime updating the posterior every step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_bridge.config import (
    LocomotionLimits,
    SafetyLimits,
    TrialsConfig,
    WatchdogConfig,
)
from hardware_bridge.robot import Robot, RobotError, RobotState
from hardware_bridge.robots.locomotion import JointActionSpec, JointSafetyLayer
from hardware_bridge.safety import SafetyFlag
from tests.runtime.onnx_fixture import make_artifact

SPEC = JointActionSpec(names=("a", "b", "c"), scale=(120.0, 90.0, 60.0))
EPS = 1e-12

anything = st.floats(allow_nan=True, allow_infinity=True, width=64)
commands = st.one_of(
    st.none(),
    st.lists(st.one_of(anything, st.floats(-3, 3)), min_size=3, max_size=3),
    st.lists(st.floats(-2, 2), min_size=0, max_size=6),  # wrong shapes
)
observations = st.lists(st.one_of(st.floats(-10, 10), anything), min_size=4, max_size=4)


def _state(obs: list[float] | None = None) -> RobotState:
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: a faulty reading
        o = np.asarray(obs if obs is not None else [0.0] * 4, dtype=np.float32)
    return RobotState(t=0.0, obs=o, tcp_position=np.zeros(3), wrench=np.zeros(6))


@settings(max_examples=100, deadline=None)
@given(
    cap=st.floats(0.05, 1.0),
    delta=st.one_of(st.none(), st.floats(0.01, 2.0)),
    seq=st.lists(st.tuples(commands, observations), min_size=1, max_size=12),
)
def test_whatever_the_input_the_joint_command_is_within_limits(cap, delta, seq) -> None:
    layer = JointSafetyLayer(LocomotionLimits(max_action=cap, max_action_delta=delta), SPEC, 20.0)
    prev = np.zeros(3)
    for cmd, obs in seq:
        safe = layer.filter(cmd, _state(obs))
        assert safe.sent.shape == (3,) and np.all(np.isfinite(safe.sent))
        assert np.all(np.abs(safe.sent) <= cap + EPS)
        assert np.array_equal(safe.twist, np.zeros(6))
        if safe.flags.holds:
            assert np.array_equal(safe.sent, np.zeros(3))  # hold = zero torque
        elif delta is not None:
            assert np.all(np.abs(safe.sent - prev) <= delta + 1e-9)
        finite_obs = np.all(np.isfinite(_state(obs).obs))
        if cmd is None:
            assert safe.flags == SafetyFlag.NO_REPLY
        elif len(cmd) != 3 or not np.all(np.isfinite(cmd)):
            assert safe.flags == SafetyFlag.NONFINITE
        elif not finite_obs:
            assert safe.flags == SafetyFlag.SENSOR_FAULT
        prev = safe.sent


def test_clipping_and_rate_limit_flags() -> None:
    layer = JointSafetyLayer(LocomotionLimits(max_action=0.5, max_action_delta=0.2), SPEC, 20.0)
    s = layer.filter([0.1, -0.1, 0.0], _state())
    assert s.flags == SafetyFlag.NONE and np.allclose(s.sent, [0.1, -0.1, 0.0])
    s = layer.filter([0.9, -0.9, 0.15], _state())
    assert s.flags == SafetyFlag.RANGE | SafetyFlag.DELTA
    assert np.allclose(s.sent, [0.3, -0.3, 0.15])  # capped to 0.5, then moved by <= 0.2
    assert np.allclose(layer.filter([0.9, -0.9, 0.15], _state()).sent, [0.5, -0.5, 0.15])
    s = layer.filter([np.nan, 0, 0], _state())
    assert s.flags.holds and np.isnan(s.commanded[0]) and np.allclose(s.sent, 0.0)
    assert layer.retract(_state()).flags == SafetyFlag.FORCE_STOP


def test_bad_joint_specs_are_named() -> None:
    with pytest.raises(RobotError, match="no joint names"):
        JointActionSpec(names=(), scale=())
    with pytest.raises(RobotError, match="duplicate"):
        JointActionSpec(names=("a", "a"), scale=(1.0, 1.0))
    with pytest.raises(RobotError, match="positive finite scales"):
        JointActionSpec(names=("a",), scale=(0.0,))
    with pytest.raises(RobotError, match="low < 0 < high"):
        JointActionSpec(names=("a",), scale=(1.0,), low=(0.1,), high=(1.0,))
    with pytest.raises(RobotError, match="no Cartesian twist"):
        SPEC.to_twist([0.0, 0.0, 0.0])


def test_trials_config_defaults_to_per_step_updates_for_locomotion() -> None:
    cfg = TrialsConfig.model_validate({"robot": "sim-locomotion"})
    assert cfg.update == "step" and cfg.plugs == ["test/0", "test/1", "test/2"]
    explicit = TrialsConfig.model_validate({"robot": "sim-locomotion", "update": "episode"})
    assert explicit.update == "episode"
    assert TrialsConfig().update == "episode"  # insertion unchanged


# -- the simulated robot ------------------------------------------------------------------------
pybullet = pytest.importorskip("pybullet")


@pytest.fixture(scope="module")
def robot() -> Any:
    from hardware_bridge.config import LocomotionRobotConfig
    from hardware_bridge.robots.locomotion import LocomotionRobot

    r = LocomotionRobot(LocomotionRobotConfig(terrain_config="configs/terrain/cheetah_vel.yaml"))
    r.connect()
    yield r
    r.disconnect()


def test_robot_follows_the_env_and_refuses_bad_input(robot: Any) -> None:
    assert isinstance(robot, Robot)
    assert len(robot.obs_names) == 17 and robot.action_spec.act_dim == 6
    assert robot.control_hz == pytest.approx(20.0) and robot.max_steps == 200
    assert robot.action_spec.scale == tuple(float(t) for t in robot.env.body.max_torque)
    task = robot.set_task("test", 31)  # 30 test tasks: index wraps
    assert task["index"] == 1 and task["family"] == "cheetah-vel"
    assert robot.set_task("train/4", 0)["task_id"] == "train/4"
    for bad in ("US-AC-plug", "test/x", "test/99"):
        with pytest.raises(RobotError, match="task"):
            robot.set_task(bad, 0)
    s = robot.reset()
    assert s.obs.shape == (17,) and s.reward == 0.0 and not s.success
    with pytest.raises(RobotError, match="non-finite"):
        robot.command(np.full(6, np.nan))
    robot.command(np.ones(6))
    moved = robot.observe()
    assert moved.reward != 0.0 and not np.array_equal(moved.obs, s.obs)


def test_stop_means_zero_torque_and_episode_end_means_no_motion(robot: Any) -> None:
    robot.set_task("test", 0)
    robot.reset()
    robot.stop()
    robot.command(np.ones(6))
    # zero torque: the control cost is 0, so reward = forward term alone
    assert robot.observe().info["forward_reward"] == pytest.approx(robot.observe().reward)
    robot.reset()
    for _ in range(robot.max_steps):
        robot.command(np.zeros(6))
    last = robot.observe()
    assert last.truncated
    robot.hold()  # after the end: a no-op, not an env error
    assert robot.observe() is last


def test_trials_against_a_real_runtime_update_the_posterior_every_step(tmp_path: Path) -> None:
    """`zshot trials --robot sim-locomotion` against `zshot serve` with a random artifact of
    the cheetah's dims; the loop's per-step posterior means change within an episode."""
    from hardware_bridge.cli import start_runtime, trials_main
    from hardware_bridge.config import LocomotionRobotConfig
    from hardware_bridge.loop import ControlLoop
    from hardware_bridge.robots.locomotion import LocomotionRobot
    from runtime.client import RuntimeClient
    from sim.terrain import TerrainEnv

    env = TerrainEnv()
    names, acts = list(env.obs_names), list(env.action_names)
    env.close()
    art = tmp_path / "art"
    make_artifact(art, obs_dim=17, act_dim=6, latent_dim=3, seed=5, control_hz=20.0,
                  obs_names=names, action_names=acts,
                  action_low=[-1.0] * 6, action_high=[1.0] * 6)  # fmt: skip
    proc, endpoint = start_runtime(art)
    try:
        out = tmp_path / "out"
        rc = trials_main(
            ["--robot", "sim-locomotion", "--runtime", endpoint, "--plugs", "test/2",
             "--adapt-episodes", "1", "--eval-episodes", "1", "--out", str(out),
             "--quiet", "--set", "watchdog.deadline_fraction=1.0"]
        )  # fmt: skip
        assert rc == 0
        report = json.loads((out / "trials.json").read_text())
        assert report["metric"] == "return" and (out / "trials.png").is_file()
        row = report["plugs"][0]
        assert row["completed"] and row["task"]["task_id"] == "test/2"
        assert row["mean_return"] < 0 and row["adapt_mean_return"] < 0  # -|v - target| - ctrl
        assert [e["steps"] for e in row["episodes"]] == [200, 200]

        # The same loop with a sink: with update=step the posterior mean moves every step and
        # the runtime's context holds every transition of the episode.
        class Sink:
            def __init__(self) -> None:
                self.z: list[np.ndarray] = []

            def begin_episode(self, meta: dict[str, Any]) -> None:
                pass

            def record(self, step: Any) -> None:
                self.z.append(step.z_mean)

            def end_episode(self, summary: dict[str, Any]) -> None:
                pass

        robot = LocomotionRobot(
            LocomotionRobotConfig(terrain_config="configs/terrain/cheetah_vel.yaml")
        )
        client = RuntimeClient(endpoint, timeout_s=2.0)
        try:
            client.hello(obs_dim=17, act_dim=6)
            sink = Sink()
            loop = ControlLoop(
                robot, client, safety=SafetyLimits(),
                watchdog=WatchdogConfig(deadline_fraction=1.0), update="step",
                latent_dim=3, sink=sink, log=lambda _: None,
            )  # fmt: skip
            assert isinstance(loop.safety, JointSafetyLayer)
            robot.connect()
            robot.set_task("test", 0)
            loop.reset_task()
            res = loop.run_episode("exploit")
            assert res.steps == 200 and not res.aborted and res.misses == 0
            z = np.stack(sink.z)
            assert np.all(np.isfinite(z)) and len({tuple(r) for r in z.round(6)}) > 100
            assert client.get_state().count == 200
        finally:
            robot.disconnect()
            client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
