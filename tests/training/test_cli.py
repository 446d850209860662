"""`zshot eval` options (training/cli.py): --max-tasks bounds an evaluation in all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zshot.cli import main as zshot


def test_eval_max_tasks_bounds_the_number_of_test_tasks(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the tiny run's config evaluates at most 2 of its 6 test tasks; the flag overrides that
    for n in (1, 3):
        js = tmp_path / f"max{n}.json"
        argv = ["eval", str(trained_run), "-k", "0", "-n", "1", "--max-tasks", str(n)]
        assert zshot([*argv, "--json", str(js)]) == 0
        report = json.loads(js.read_text())
        assert report["protocol"]["tasks"] == n
        assert sum(p["episodes"] for p in report["plugs"]) == n
    capsys.readouterr()


@pytest.mark.parametrize("flag", ["--max-tasks", "--tasks-per-plug"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_eval_refuses_task_bounds_below_one(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert zshot(["eval", str(tmp_path), f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} must be at least 1, got {value}" in err


def test_eval_set_redraws_the_test_tasks_and_names_a_bad_key(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    returns = {}
    for seed in ("0", "7"):
        js = tmp_path / f"s{seed}.json"
        argv = ["eval", str(trained_run), "-k", "0", "-n", "1", "--set", f"seed={seed}"]
        assert zshot([*argv, "--json", str(js)]) == 0
        report = json.loads(js.read_text())
        assert report["protocol"]["overrides"] == [f"seed={seed}"]
        returns[seed] = report["mean_return"]
    # seed 7 draws other goals for the point tasks: the same policy scores differently
    assert returns["0"] != returns["7"]
    assert zshot(["eval", str(trained_run), "--set", "nope=1"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "--set nope=1" in err
