"""bench/mt10_table.py on tiny fake run dirs: pooled cells, the means, the paper column,
and a clear error for a run dir it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.mt10_table import PAPER_MT50, collect, main, markdown

TASKS = ["reach-v3", "push-v3"]


def fake_run(
    root: Path,
    method: str,
    seed: int,
    successes: list[int],
    episodes: int = 3,
    env_steps: int = 1000,
    mean_return: float = 5.0,
) -> Path:
    """A run dir as the MT10 commands leave it: zeval.json, history.json, config.yaml."""
    d = root / f"mt10_{method}-s{seed}"
    d.mkdir(parents=True)
    rows = [
        {"label": lab, "successes": s, "episodes": episodes, "mean_return": 1.0}
        for lab, s in zip(TASKS, successes, strict=True)
    ]
    (d / "zeval.json").write_text(json.dumps({"tasks": rows, "mean_return": mean_return}))
    history = [
        {"iteration": 1, "counters/env_steps": 10.0, "counters/updates": 1.0, "train/return": 3.0},
        {
            "iteration": 2,
            "counters/env_steps": float(env_steps),
            "counters/updates": 50.0,
            "train/return": 40.0,
        },
    ]
    (d / "history.json").write_text(json.dumps(history))
    (d / "config.yaml").write_text("max_minutes: 2.0\n")
    return d


def test_cells_pool_seeds_and_the_mean_is_over_tasks(tmp_path: Path) -> None:
    fake_run(tmp_path, "mtsac", 0, [3, 0], env_steps=1200)
    fake_run(tmp_path, "mtsac", 1, [1, 1], env_steps=1300, mean_return=12.25)
    fake_run(tmp_path, "mtppo", 0, [0, 0])
    (tmp_path / "not_a_run").mkdir()  # ignored: not mt10_<method>-s<seed>
    methods = collect(tmp_path)
    assert [m.key for m in methods] == ["mtsac", "mtppo"]  # the table's order, not the dirs'
    text = markdown(methods)
    lines = text.splitlines()
    assert lines[0] == "| MT10 task | MT-SAC (one-hot) | MT-PPO |"
    assert "| reach-v3 | 4/6 | 0/3 |" in lines
    assert "| push-v3 | 1/6 | 0/3 |" in lines
    # pooled per-task rates 4/6 and 1/6 -> mean 5/12 = 41.7 %; seeds: (1 + 0)/2, (1/3 + 1/3)/2
    assert "| mean over tasks | **41.7 %** | **0.0 %** |" in lines
    assert "| mean, per seed | s0 50.0 %, s1 33.3 % | s0 0.0 % |" in lines
    row = next(line for line in lines if line.startswith("| MT-SAC (one-hot) | 0, 1 |"))
    assert "| 2 min | 1,200, 1,300 | 50, 50 | 3 -> 40, 3 -> 40 | 5.0, 12.2 | 41.7 % |" in row
    assert row.endswith(f"| {PAPER_MT50['mtsac']:.2f} % |")
    assert next(line for line in lines if line.startswith("| MT-PPO |")).endswith("| 8.98 % |")


def test_a_run_without_its_report_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_run(tmp_path, "mtsac", 0, [1, 0])
    (fake_run(tmp_path, "distral", 0, [0, 0]) / "zeval.json").unlink()
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "mt10_distral-s0/zeval.json: missing" in err


@pytest.mark.parametrize(
    ("content", "what"),
    [("{not json", "not readable JSON"), (json.dumps({"rows": []}), "not a `zshot eval` report")],
)
def test_a_bad_report_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, what: str
) -> None:
    (fake_run(tmp_path, "mtsac", 0, [1, 0]) / "zeval.json").write_text(content)
    assert main([str(tmp_path)]) == 2
    assert what in capsys.readouterr().err


def test_no_runs_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no mt10_<method>-s<seed> run dirs" in capsys.readouterr().err
    fake_run(tmp_path, "multihead", 0, [2, 1])
    png = tmp_path / "out" / "mt10.png"
    assert main([str(tmp_path), "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
