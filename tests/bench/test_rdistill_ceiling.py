"""bench/rdistill_ceiling.py on a tiny rdistill run: every column counts only evaluation
episodes, the script's exploration is the same in the two columns it drives (the same reset
seeds), reuse counts the tasks it found the hole on, the first touch is recorded per
evaluation episode of those tasks, and a missing run is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.rdistill_ceiling import COLUMNS, ceiling, main, touch_medians
from training.algos.rdistill.trainer import RDistillTrainer
from training.config import TrainConfig
from zshot.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_columns_count_evaluation_episodes_of_the_same_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = {
        "rdistill.rounds": 1,
        "rdistill.trials_per_round": 1,
        "rdistill.episodes_per_trial": 1,
        "rdistill.updates_per_round": 1,
        "rdistill.batch_trials": 1,
        "rl2.gru_hidden": 8,
        "ppo.hidden": [8],
        "eval.max_tasks": 1,
        "eval.explore_episodes": 1,
        "eval.eval_episodes": 1,
    }
    cfg = load_config(
        TrainConfig,
        ROOT / "configs" / "train" / "rdistill_insertion.yaml",
        [f"{k}={json.dumps(v)}" for k, v in sets.items()],
    )
    run = tmp_path / "run"
    RDistillTrainer(cfg, run).run()
    res = ceiling(run, "hard", k=1, n=2, tasks_per_plug=1, seed=3, progress=False)
    plugs = res["plugs"]
    assert len(plugs) == 9 and all(r["tasks"] == 1 and r["episodes"] == 2 for r in plugs.values())
    for r in plugs.values():
        assert all(0 <= r[c] <= 2 for c in COLUMNS)
        assert r["reuse_episodes"] == 2 * r["found"] and r["reuse_ok"] <= r["reuse_episodes"]
        if r["found"]:
            assert r["reuse_ok"] == r["script explores"]
    touch = res["first_touch"]
    for label, r in plugs.items():
        if r["found"]:  # one entry per evaluation episode of the found task, per column
            assert all(len(touch[label][c]) == 2 for c in COLUMNS[:2])
            for t in touch[label]["spiral-memory"] + touch[label]["script explores"]:
                assert t is None or (t[0] >= 0 and 0 <= t[1] <= 180)
        else:
            assert label not in touch
    assert touch_medians([None, (1.0, 2.0), (3.0, 4.0)]) == (2.0, 3.0, 1)
    lat, yaw, never = touch_medians([None])
    assert lat != lat and yaw != yaw and never == 1
    # the script finds the hole in hard on most plugs within one episode plus two
    assert sum(r["spiral-memory"] for r in plugs.values()) >= 9
    again = ceiling(run, "hard", k=1, n=2, tasks_per_plug=1, seed=3, progress=False)
    assert again["plugs"] == plugs  # seeded
    assert main([str(run), "--profile", "known", "-k", "1", "-n", "1", "--tasks-per-plug", "1",
                 "--no-progress", "--json", str(tmp_path / "c.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "spiral-memory" in out and out.count("/9") >= 3 and "first touch" in out
    assert json.loads((tmp_path / "c.json").read_text())["profile"] == "known"
    with pytest.raises(SystemExit, match="rdistill_ceiling: .*no checkpoint"):
        main([str(tmp_path / "none"), "--profile", "hard"])
