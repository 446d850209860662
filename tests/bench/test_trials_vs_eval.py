"""bench/trials_vs_eval.py: the paired per-task statistic, and a file that is not a trials
report refused in one line (the run itself needs an artifact and the sim: BENCHMARKS.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.trials_vs_eval import main, paired


def test_paired_mean_and_standard_error() -> None:
    assert paired([2.0]) == (2.0, 0.0)
    m, se = paired([1.0, -1.0, 3.0, 1.0])
    assert m == 1.0 and se == pytest.approx(math.sqrt((0 + 4 + 4 + 0) / 3 / 4))


@given(st.lists(st.integers(-10, 10), min_size=2, max_size=30), st.integers(-10, 10))
def test_a_constant_shift_moves_the_mean_not_the_error(diffs: list[int], c: int) -> None:
    m, se = paired([float(d) for d in diffs])
    m2, se2 = paired([float(d + c) for d in diffs])
    assert m2 == pytest.approx(m + c) and se2 == pytest.approx(se, abs=1e-9)


def test_refuses_a_file_that_is_not_a_trials_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"tasks": []}')
    assert main([str(tmp_path), str(bad), "--profile", "hard"]) == 2
    assert "not a trials report" in capsys.readouterr().err
