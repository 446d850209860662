"""bench/meta_learning.py: learning curves read from fake run dirs (history.json +
train.json as meta_compare.py leaves them), each method's key, the wall-clock axis (logged
or spread over env steps), the table, the PNG, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.meta_learning import LearningError, load_all, load_run, main, metric_key, table


def fake_run(
    root: Path, name: str, rows: list[dict[str, float]], train_seconds: float = 120.0
) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "history.json").write_text(json.dumps(rows))
    (run / "train.json").write_text(json.dumps({"train_seconds": train_seconds}))
    return run


def test_maml_reads_the_post_step_return_and_others_train_return() -> None:
    assert metric_key("maml", "return") == "train/return_post"
    assert metric_key("rl2", "return") == "train/return"
    assert metric_key("maml", "success") == "train/success"


def test_a_run_without_logged_time_spreads_its_train_seconds_over_env_steps(
    tmp_path: Path,
) -> None:
    rows = [
        {"counters/env_steps": s, "train/return": r, "train/return_post": -r}
        for s, r in ((100.0, 1.0), (300.0, 2.0), (400.0, 4.0))
    ]
    c = load_run(fake_run(tmp_path, "maml-s1", rows, train_seconds=240.0))
    assert (c.method, c.seed, c.timed) == ("maml", 1, False)
    np.testing.assert_allclose(c.values, [-1.0, -2.0, -4.0])  # the post-step return
    np.testing.assert_allclose(c.minutes, [1.0, 3.0, 4.0])  # 4 minutes spread by steps
    assert c.final(2) == pytest.approx(-3.0)


def test_a_run_with_logged_time_keeps_it(tmp_path: Path) -> None:
    rows = [
        {"counters/env_steps": 10.0 * i, "train/return": float(i), "time/train_min": 0.5 * i}
        for i in (1, 2, 3)
    ]
    c = load_run(fake_run(tmp_path, "pearl-s0", rows, train_seconds=999.0))
    assert c.timed
    np.testing.assert_allclose(c.minutes, [0.5, 1.0, 1.5])


def test_table_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, sign in (("rl2-s0", 1.0), ("nocontext-s1", -1.0)):
        rows = [{"counters/env_steps": 50.0 * i, "train/return": sign * i} for i in (1, 2, 3, 4)]
        fake_run(tmp_path / "fam", name, rows)
    (tmp_path / "fam" / "rl2-s9").mkdir()  # not trained (no train.json): not listed
    curves = load_all(tmp_path / "fam", "return")
    assert [(c.method, c.seed) for c in curves] == [("nocontext", 1), ("rl2", 0)]
    text = table(curves, "return", 2)
    assert "| rl2 | 0 | 4 | 200 | 2.0 | 1.00 | 3.50 |" in text
    assert "| nocontext | 1 | 4 | 200 | 2.0 | -1.00 | -3.50 |" in text
    png = tmp_path / "l.png"
    assert main([str(tmp_path / "fam"), "--png", str(png), "--last", "2"]) == 0
    assert png.stat().st_size > 1000
    assert "| rl2 | 0 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such directory"),
        ("empty", "no trained run"),
        ("nohistory", "history.json missing"),
        ("nokey", "no iteration logs 'train/success'"),
        ("badname", "not a METHOD-sSEED run dir"),
    ],
)
def test_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    root = tmp_path / "fam"
    if setup != "missing":
        root.mkdir()
    if setup == "nohistory":
        (root / "rl2-s0").mkdir()
        (root / "rl2-s0" / "train.json").write_text("{}")
    if setup == "nokey":
        fake_run(root, "rl2-s0", [{"counters/env_steps": 1.0, "train/return": 0.0}])
    if setup == "badname":
        run = fake_run(root, "RL2_zero", [{"counters/env_steps": 1.0, "train/return": 0.0}])
        with pytest.raises(LearningError, match=message):
            load_run(run)
        return
    metric = "success" if setup == "nokey" else "return"
    assert main([str(root), "--metric", metric]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
