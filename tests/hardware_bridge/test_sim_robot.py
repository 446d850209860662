"""SimRobot: the insertion env behind the Robot protocol; and `zshot demo` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardware_bridge.config import SafetyLimits, SimRobotConfig, WatchdogConfig
from hardware_bridge.loop import ControlLoop
from hardware_bridge.robot import Robot, RobotError
from tests.hardware_bridge.fakes import FakeRuntime

pytest.importorskip("pybullet")


@pytest.fixture(scope="module")
def robot():
    from hardware_bridge.robots.sim import SimRobot

    r = SimRobot(SimRobotConfig(), seed=0)
    r.connect()
    yield r
    r.disconnect()


def test_protocol_and_spec_follow_the_env(robot) -> None:
    from sim.config import InsertionEnvConfig

    assert isinstance(robot, Robot)
    cfg = InsertionEnvConfig()
    assert robot.obs_names == tuple(robot.env.obs_names) and len(robot.obs_names) == 18
    assert robot.action_spec.names == ("vx", "vy", "vz", "wz")
    assert robot.action_spec.scale == (cfg.max_lin_speed,) * 3 + (cfg.max_yaw_rate,)
    assert robot.control_hz == cfg.control_hz and robot.max_steps == cfg.max_steps


def test_hidden_socket_error_stays_hidden(robot) -> None:
    task = robot.set_task("US-AC-plug", 1)
    assert task["plug"] == "US-AC-plug" and (task["dx"], task["dy"]) != (0.0, 0.0)
    s = robot.reset()
    # positions are relative to the *believed* socket: the start is centred on it (±noise),
    # not on the true socket at (dx, dy)
    assert np.all(np.abs(s.tcp_position[:2]) <= 0.0011)
    assert s.tcp_position[2] > 0 and not s.success


def test_pressing_down_reaches_depth_or_contact_and_reports_force(robot) -> None:
    robot.set_task("Metal-peg-rd", 0)
    robot.reset()
    peak = 0.0
    for _ in range(60):
        robot.command(np.array([0.0, 0.0, -1.0, 0.0]))
        s = robot.observe()
        peak = max(peak, float(np.linalg.norm(s.wrench[:3])))
        if s.terminated or s.truncated:
            break
    assert s.success or peak > 0.0
    with pytest.raises(RobotError, match="non-finite"):
        robot.command(np.array([np.nan, 0, 0, 0]))


def test_unknown_plug_is_named(robot) -> None:
    with pytest.raises((RobotError, ValueError), match="no-such-plug"):
        robot.set_task("no-such-plug", 0)


def test_loop_over_sim_is_deterministic(robot) -> None:
    def run() -> list[np.ndarray]:
        from hardware_bridge.robots.sim import SimRobot

        r = SimRobot(SimRobotConfig(), seed=7)
        r.connect()
        r.set_task("EU-AC-plug", 0)
        rt = FakeRuntime(
            action_fn=lambda obs, i: np.array([0.3, -0.2, -0.8, 0.1], dtype=np.float32)
        )
        rt.hello()
        loop = ControlLoop(
            r, rt, safety=SafetyLimits(), watchdog=WatchdogConfig(), log=lambda m: None
        )
        res = loop.run_episode("exploit")
        r.disconnect()
        assert res.steps > 0
        return loop.context.rows

    a, b = run(), run()
    assert len(a) == len(b)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))


@pytest.mark.slow
def test_zshot_demo_runs_end_to_end_on_an_artifact(
    sim_artifact: Path, tmp_path: Path, capsys
) -> None:
    from hardware_bridge.cli import demo_main

    rc = demo_main([
        "--artifact", str(sim_artifact), "--out", str(tmp_path),
        "--set", "adapt_episodes=1", "--set", "eval_episodes=1",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads((tmp_path / "trials.json").read_text())
    assert [p["plug"] for p in data["plugs"]] == ["US-AC-plug", "EU-AC-plug", "Metal-peg-rd"]
    assert "| plug" in out and "zshot demo: done" in out
    assert len(list((tmp_path / "recordings").glob("episode_*.h5"))) == 6


def test_zshot_demo_without_artifact_says_how_to_get_one(tmp_path: Path, capsys) -> None:
    from hardware_bridge.cli import demo_main

    assert demo_main(["--artifact", str(tmp_path / "none")]) == 2
    assert "no artifact at" in capsys.readouterr().err


def test_bridge_is_transparent_when_no_limit_acts() -> None:
    """The spiral baseline through loop + safety gives the same trajectory as on the bare env."""
    from hardware_bridge.robots.sim import SimRobot
    from sim.insertion import InsertionEnv
    from sim.spiral import SpiralSearchPolicy

    r = SimRobot(SimRobotConfig(), seed=0)
    r.connect()
    task = r.set_task("US-AC-plug", 1)
    spiral = SpiralSearchPolicy(r.env.config)
    rt = FakeRuntime(action_fn=lambda obs, i: spiral.act(obs))
    rt.hello()
    # the spiral reverses at full speed (a DELTA clip with the defaults): widen that limit
    limits = SafetyLimits(max_lin_delta=1.0, max_ang_delta=10.0)
    loop = ControlLoop(r, rt, safety=limits, watchdog=WatchdogConfig(), log=lambda m: None)
    res = loop.run_episode("exploit")
    r.disconnect()
    rows = np.stack(loop.context.rows)  # [T, 18 + 4 + 1 + 18]
    assert res.flags == 0, "a limit acted: the comparison below would not hold"

    from sim.tasks import InsertionTask

    env = InsertionEnv(r.env.config)
    env.set_task(
        InsertionTask.model_validate({k: v for k, v in task.items() if k not in ("index", "label")})
    )
    obs, _ = env.reset(seed=0)  # SimRobot's first episode seed: seed * 100_003 + 0
    spiral.reset()
    for t in range(res.steps):
        np.testing.assert_array_equal(rows[t, :18], obs)
        a = spiral.act(obs)
        np.testing.assert_allclose(rows[t, 18:22], a, rtol=0, atol=1e-6)
        obs, reward, *_ = env.step(a)
        assert rows[t, 22] == np.float32(reward)
    env.close()
