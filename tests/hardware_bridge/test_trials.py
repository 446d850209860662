"""Trial runner: K explore + N exploit episodes per plug, the table, JSON and PNG; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardware_bridge.config import SafetyLimits, TrialsConfig, WatchdogConfig
from hardware_bridge.loop import ControlLoop
from hardware_bridge.recorder import load_recordings
from hardware_bridge.robots.mock import MockRobot
from hardware_bridge.trials import format_table, run_trials, save_plot
from tests.hardware_bridge.fakes import FakeRuntime
from zshot.cli import main


def seek(obs: np.ndarray, i: int) -> np.ndarray:
    # knows nothing of the hidden socket error: succeeds only where it is within clearance
    x, y, _ = obs[:3]
    return np.array([-x / 0.002, -y / 0.002, -1.0, 0.0], dtype=np.float32)


def test_schedule_modes_and_table() -> None:
    rt = FakeRuntime(action_fn=seek)
    rt.hello()
    robot = MockRobot(max_steps=30, pose_error_range=0.004)
    robot.connect()
    modes: list[str] = []
    orig = rt.set_mode

    def spy(mode: str, update: str = "episode") -> None:
        modes.append(mode)
        orig(mode, update)

    rt.set_mode = spy  # type: ignore[method-assign]
    loop = ControlLoop(
        robot, rt, safety=SafetyLimits(), watchdog=WatchdogConfig(), log=lambda m: None
    )
    cfg = TrialsConfig(robot="mock", plugs=["a", "b", "c"], adapt_episodes=2, eval_episodes=4)
    report = run_trials(loop, cfg, log=lambda m: None)
    assert modes == (["explore"] * 2 + ["exploit"] * 4) * 3
    assert rt.calls.count("reset_task") == 3
    assert [r.plug for r in report.plugs] == ["a", "b", "c"]
    for r in report.plugs:
        assert r.completed and len(r.episodes) == 6 and r.n_eval == 4
        ev = [e for e in r.episodes if e["mode"] == "exploit"]
        assert r.successes == sum(e["success"] for e in ev)
        if r.successes:
            ok = [e["duration_s"] for e in ev if e["success"]]
            assert r.mean_time_s == pytest.approx(sum(ok) / len(ok))
    # the hidden error differs per plug: some succeed (error within clearance), some never do
    assert {r.successes for r in report.plugs} != {0}
    table = format_table(report)
    header = [c.strip() for c in table.splitlines()[0].split("|")[1:-1]]
    assert header == ["plug", "successes/N", "mean time", "peak force", "force limit", "aborted"]
    assert all(f"{r.successes}/4" in table for r in report.plugs)


def test_runtime_that_never_returns_ends_the_session_incomplete() -> None:
    rt = FakeRuntime(action_fn=seek)
    rt.hello()
    rt.kill_after_steps = 5
    robot = MockRobot(max_steps=30)
    robot.connect()
    loop = ControlLoop(
        robot,
        rt,
        safety=SafetyLimits(),
        watchdog=WatchdogConfig(reconnect_timeout_s=0.05, reconnect_poll_s=0.01),
        log=lambda m: None,
    )
    cfg = TrialsConfig(robot="mock", plugs=["a", "b"], adapt_episodes=1, eval_episodes=2)
    report = run_trials(loop, cfg, log=lambda m: None)
    assert report.incomplete.startswith("runtime lost during plug a")
    assert len(report.plugs) == 1 and not report.plugs[0].completed and report.plugs[0].aborted == 1
    assert "incomplete" in format_table(report)
    json.dumps(report.as_dict())  # NaN mean time serialises (as null)


def test_plot_and_json(tmp_path: Path) -> None:
    rt = FakeRuntime(action_fn=seek)
    rt.hello()
    robot = MockRobot(max_steps=10)
    robot.connect()
    loop = ControlLoop(
        robot, rt, safety=SafetyLimits(), watchdog=WatchdogConfig(), log=lambda m: None
    )
    report = run_trials(
        loop,
        TrialsConfig(robot="mock", plugs=["a"], adapt_episodes=0, eval_episodes=2),
        log=lambda m: None,
    )
    data = json.loads(report.save_json(tmp_path / "t.json").read_text())
    assert data["plugs"][0]["n_eval"] == 2 and data["eval_episodes"] == 2
    png = save_plot(report, tmp_path / "t.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_zshot_trials_cli_against_a_real_runtime(
    server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main([
        "trials", "--runtime", server.endpoint, "--robot", "mock", "--plugs", "peg-a,peg-b",
        "--adapt-episodes", "1", "--eval-episodes", "2", "--record", str(tmp_path / "rec"), "--quiet",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| plug" in out and "peg-a" in out and "peg-b" in out and "/2" in out
    data = json.loads((tmp_path / "rec" / "trials.json").read_text())
    assert [p["plug"] for p in data["plugs"]] == ["peg-a", "peg-b"]
    assert (tmp_path / "rec" / "trials.png").is_file()
    ds = load_recordings(tmp_path / "rec")
    assert len(ds.episodes) == 6 and {e["plug"] for e in ds.episodes} == {"peg-a", "peg-b"}
    assert [e["mode"] for e in ds.episodes] == ["explore", "exploit", "exploit"] * 2


def test_zshot_trials_without_runtime_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["trials", "--runtime", "tcp://127.0.0.1:9", "--robot", "mock", "--quiet"])
    assert rc == 1
    assert "no runtime answering at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_zshot_trials_bad_flag_value_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trials", "--robot", "mock", "--eval-episodes", "0"]) == 2
    assert "eval_episodes" in capsys.readouterr().err
