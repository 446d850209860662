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
        assert sum(p["episodes"] for p in report["tasks"]) == n
    capsys.readouterr()


@pytest.mark.parametrize("flag", ["--max-tasks", "--tasks-per-label", "--tasks-per-plug"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_eval_refuses_task_bounds_below_one(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert zshot(["eval", str(tmp_path), f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    named = "--tasks-per-label" if flag == "--tasks-per-plug" else flag  # the alias's name
    assert f"{named} must be at least 1, got {value}" in err


@pytest.mark.parametrize(
    ("argv", "named", "rule"),
    [
        (["-k", "-1"], "--explore/-k", "greater than or equal to 0"),
        (["-k", "51"], "--explore/-k", "less than or equal to 50"),
        (["-n", "0"], "--episodes/-n", "greater than or equal to 1"),
    ],
)
def test_eval_names_a_bad_episode_count_in_one_line(
    argv: list[str],
    named: str,
    rule: str,
    trained_run: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert zshot(["eval", str(trained_run), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err  # one line, no pydantic block
    assert err.startswith(f"zshot eval: {named}: ") and rule in err, err
    assert f"(got {argv[1]})" in err


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


@pytest.mark.slow
def test_train_prints_no_bars_into_a_pipe_and_says_how_to_look(tmp_path: Path) -> None:
    """`zshot train ... 2> log`: no `\\r` progress bar in the log (stderr is no terminal,
    even without --no-progress); the last line names the TensorBoard command; the toy
    task's table has no insertion columns."""
    import subprocess
    import sys

    import yaml

    from .conftest import ROOT, tiny_config

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config().model_dump(mode="json")))
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "zshot.cli", "train", str(cfg), "--run-dir", str(run)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr and "PEARL:" not in out.stderr
    assert "pybullet build time" not in out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == f"look at it: tensorboard --logdir {run / 'tb'}"
    assert (run / "tb").is_dir()
    assert "t_insert[s]" not in out.stdout and "t_success[s]" in out.stdout
