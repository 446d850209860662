"""bench/mtins_table.py on tiny fake run dirs: training plugs pooled over seeds (deterministic
and sampled), zero-shot only for the descriptor methods ("not defined" for the others),
PEARL's reports beside them, and a clear error for a run dir it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.mtins_table import collect, load_pearl, main, markdown

TRAIN = ["train-a", "train-b"]
HELD = ["US-AC-plug", "Metal-peg-rd"]


def report(path: Path, labels: list[str], successes: list[int], episodes: int = 2) -> None:
    """A report with one row per label, or (for the held-out plugs, as a told policy's
    report has it) one row per task, two tasks per label splitting the episodes."""
    per_task = labels == HELD and "pearl" not in str(path)
    rows = [
        {"label": lab, "successes": part, "episodes": episodes // 2 if per_task else episodes}
        for lab, s in zip(labels, successes, strict=True)
        for part in ([s // 2, s - s // 2] if per_task else [s])
    ]
    path.write_text(json.dumps({"tasks": rows}))


def fake_run(root: Path, stem: str, seed: int, train: list[int], **extra: list[int]) -> Path:
    """A run dir as the bench's commands leave it; `extra`: file stem -> successes."""
    d = root / f"{stem}-s{seed}"
    d.mkdir(parents=True)
    report(d / "eval.json", TRAIN, train)
    for name, succ in extra.items():
        labels = TRAIN if name == "eval_sampled" else HELD
        report(d / (name.replace("_", "-") + ".json"), labels, succ)
    history = [
        {"counters/env_steps": 10.0, "train/success": 0.0, "time/update_ms": 100.0},
        {"counters/env_steps": 900.0, "counters/updates": 40.0, "train/success": 0.5,
         "time/update_ms": 120.0},
    ]  # fmt: skip
    (d / "history.json").write_text(json.dumps(history))
    (d / "config.yaml").write_text("max_minutes: 4\n")
    return d


def test_the_tables_pool_seeds_and_leave_zero_shot_to_descriptor_methods(tmp_path: Path) -> None:
    fake_run(tmp_path, "mtsac_insertion_onehot", 0, [2, 0], eval_sampled=[2, 1])
    fake_run(tmp_path, "mtsac_insertion_onehot", 1, [1, 0], eval_sampled=[0, 1])
    fake_run(tmp_path, "mtsac_insertion_descriptor", 0, [0, 0], zeroshot_oda=[1, 0],
             zeroshot_hard=[0, 0], zeroshot_oda_sampled=[2, 2])  # fmt: skip
    (tmp_path / "pearl").mkdir()
    report(tmp_path / "pearl" / "oda-s0-k0.json", HELD, [0, 1])
    report(tmp_path / "pearl" / "oda-s1-k0.json", HELD, [1, 1])
    (tmp_path / "notes").mkdir()  # ignored
    methods = collect(tmp_path)
    assert [m.stem for m in methods] == ["mtsac_insertion_onehot", "mtsac_insertion_descriptor"]
    lines = markdown(methods, load_pearl(tmp_path / "pearl")).splitlines()
    assert lines[0] == "| training plug | MT-SAC (one-hot) | MT-SAC, plug descriptor |"
    assert "| train-a | 3/4 · 2/4 | 0/2 |" in lines
    assert "| all, deterministic | 3/8 (37.5 %) | 0/4 (0.0 %) |" in lines
    assert "| all, sampled actions | 4/8 (50.0 %) | - |" in lines
    onehot = next(ln for ln in lines if ln.startswith("| MT-SAC (one-hot) | 0, 1 | 4 min"))
    assert onehot.count("not defined (told an id)") == 2 and "| 0.25, 0.25 |" in onehot
    assert "| 3/8 (37.5 %) (s0 2, s1 1) | 4/8 (50.0 %) (s0 3, s1 1) |" in onehot
    desc = next(ln for ln in lines if ln.startswith("| MT-SAC, plug descriptor | 0 |"))
    assert "| 1/4 (25.0 %); sampled 4/4 (100.0 %) | 0/4 (0.0 %) |" in desc
    held = lines.index(next(ln for ln in lines if ln.startswith("| held-out plug |")))
    assert "PEARL r3, K = 0, `oda`" in lines[held]
    assert "| US-AC-plug | 1/2 | 2/2 | 1/4 | 0/2 |" in lines  # oda det, sampled, PEARL; hard


def test_a_run_dir_without_its_report_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = fake_run(tmp_path, "mtppo_insertion", 0, [0, 0])
    (d / "eval.json").unlink()
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "eval.json" in err and len(err.strip().splitlines()) == 1
    assert main([str(tmp_path / "none")]) == 2


def test_the_png_is_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    fake_run(tmp_path, "dnc_insertion", 0, [1, 0])
    assert main([str(tmp_path), "--png", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").stat().st_size > 0
