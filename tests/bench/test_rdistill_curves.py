"""bench/rdistill_curves.py on fake history files: the student's success comes from its DAgger
trials or else its probes (never the teacher's), a PNG is written, and a bad argument or a
missing run dir is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.rdistill_curves import main, smoothed, student_success


def test_smoothed_is_a_trailing_mean_over_the_values_that_exist() -> None:
    assert smoothed([1.0, None, 0.0, 0.5], 2) == [1.0, 1.0, 0.0, 0.25]
    assert smoothed([0.2, 0.4], 1) == [0.2, 0.4]
    out = smoothed([None, 1.0], 1)
    assert out[0] != out[0] and out[1] == 1.0  # NaN where no value exists


def test_student_success_reads_dagger_trials_then_probes() -> None:
    row = {"student_success_hard": 0.25, "probe_success_hard": 0.75, "teacher_success_hard": 1.0}
    assert student_success(row, "hard") == 0.25
    assert student_success({**row, "student_success_hard": None}, "hard") == 0.75
    assert student_success({**row, "student_success_hard": float("nan")}, "hard") == 0.75
    assert student_success({"teacher_success_oda": 1.0}, "oda") is None
    assert student_success({"phase": "rl", "rl_success_oda": 0.5}, "oda") == 0.5


def test_draws_each_run_and_refuses_what_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows: list[dict[str, object]] = [
        {"iteration": i, "bc_loss": 0.1 / (i + 1), "probe_success_known": 0.5 + 0.1 * i}
        for i in range(3)
    ]
    # an RL phase's rows: the warm-up's bc_loss is NaN, written as null
    rows += [{"iteration": 3, "phase": "rl", "bc_loss": None, "rl_success_known": 0.9}]
    (run / "history.json").write_text(json.dumps(rows))
    png = tmp_path / "c.png"
    assert main([f"bc={run}", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "bc round 2: student known 0.7" in out and "hard None" in out
    assert "bc rl 3: student known 0.9" in out and "bc -" in out
    assert png.stat().st_size > 1000
    assert main([f"bc={run}", "--png", str(png), "--smooth", "2"]) == 0
    assert main([f"bc={run}", "--png", str(png), "--smooth", "0"]) == 2
    assert "--smooth must be >= 1" in capsys.readouterr().err
    assert main([str(run), "--png", str(png)]) == 2
    assert "expected LABEL=RUN_DIR" in capsys.readouterr().err
    assert main([f"x={tmp_path}", "--png", str(png)]) == 2
    assert "no such file" in capsys.readouterr().err
