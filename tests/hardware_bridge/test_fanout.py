"""`zshot trials --workers N` (hardware_bridge/fanout.py): the (plug, task) units on Ray
workers, the same per-plug report as one worker; a one-line refusal where it cannot run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.hardware_bridge.conftest import Server
from zshot import parallel
from zshot.cli import main


def test_workers_without_ray_is_a_one_line_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(parallel, "ray_available", lambda: False)
    assert main(["trials", "--robot", "sim", "--workers", "2", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"zshot trials: {parallel.RAY_HINT}"


def test_bad_worker_count_and_robot_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trials", "--robot", "sim", "--workers", "0", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "zshot trials: --workers must be at least 1, got 0"
    pytest.importorskip("ray")
    assert main(["trials", "--robot", "mock", "--workers", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "zshot trials: --workers 2 needs a simulated robot (sim, sim-locomotion), not mock"
    )
    rec = ["--record", "somewhere"]
    assert main(["trials", "--robot", "sim", "--workers", "2", *rec, "--quiet"]) == 2
    assert "use it with --workers 1" in capsys.readouterr().err


def test_one_worker_imports_no_ray() -> None:
    # hardware_bridge.fanout and the CLI load without Ray; it is imported only to fan out
    import subprocess

    code = (
        "import sys, hardware_bridge.cli, hardware_bridge.fanout\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def _figures(path: Path) -> list[dict[str, Any]]:
    """Every per-plug field and episode of a trials.json (nothing there is wall-clock)."""
    data = json.loads(path.read_text())
    assert data["incomplete"] == ""
    return list(data["plugs"])


@pytest.mark.slow
def test_two_workers_give_the_one_worker_report(sim_artifact: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    server = Server(sim_artifact)
    try:
        # K = 0: the runtime then answers deterministically (posterior mean); what the units
        # draw on the bridge side (tasks, start poses per episode number) is all tested here.
        base = [
            "trials", "--runtime", server.endpoint, "--robot", "sim",
            "--plugs", "US-AC-plug,EU-AC-plug", "--tasks-per-plug", "2",
            "--adapt-episodes", "0", "--eval-episodes", "2", "--seed", "5", "--quiet",
        ]  # fmt: skip
        assert main([*base, "--out", str(tmp_path / "w1")]) == 0
        assert main([*base, "--workers", "2", "--out", str(tmp_path / "w2")]) == 0
    finally:
        server.stop()
    one, two = _figures(tmp_path / "w1" / "trials.json"), _figures(tmp_path / "w2" / "trials.json")
    assert [p["plug"] for p in one] == ["US-AC-plug", "EU-AC-plug"]
    assert all(p["completed"] and len(p["episodes"]) == 4 for p in one)
    # the episodes differ (task, start pose): a merge in the wrong order would show
    returns = [e["episode_return"] for p in one for e in p["episodes"]]
    assert len(set(returns)) == len(returns)
    assert two == one
