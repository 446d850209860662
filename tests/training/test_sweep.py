"""`zshot sweep`: the trial grid, bad input, and a smoke sweep on a local Ray with a
failing trial reported while the others finish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from training import sweep as sweep_mod
from training.common.checkpoint import CHECKPOINT
from training.sweep import parse_grid, split_values, trial_name, trials
from zshot import parallel

from .conftest import tiny_config

plain = st.text(
    st.characters(blacklist_characters=",[]{}", blacklist_categories=["Cs"]), min_size=1
)


@given(st.lists(plain.map(str.strip).filter(bool), min_size=1, max_size=5))
def test_split_values_inverts_a_comma_join(values: list[str]) -> None:
    assert split_values(",".join(values)) == values


def test_commas_inside_brackets_stay_in_one_value() -> None:
    assert split_values("[a,b],[c],{x: 1, y: 2},3") == ["[a,b]", "[c]", "{x: 1, y: 2}", "3"]


@given(st.lists(st.integers(0, 99), min_size=1, max_size=3, unique=True), st.integers(1, 3))
def test_trials_are_the_product_of_seeds_and_values(seeds: list[int], k: int) -> None:
    grid = parse_grid([f"a={','.join(str(v) for v in range(k))}", "b=x,y"])
    got = trials(seeds, grid)
    assert len(got) == len(seeds) * k * 2
    assert len({tuple(t) for t in got}) == len(got)
    assert all(t[0].startswith("seed=") for t in got)
    assert len({trial_name(i, t) for i, t in enumerate(got)}) == len(got)


def _tiny_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config().model_dump(mode="json")))
    return path


def test_a_bad_key_stops_the_sweep_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _tiny_yaml(tmp_path)
    out = tmp_path / "sw"
    assert sweep_mod.main([str(cfg), "--set", "bogus_key=1,2", "--out", str(out)]) == 2
    assert "bogus_key" in capsys.readouterr().err
    assert not out.exists()
    assert sweep_mod.main([str(cfg), "--seeds", "0,x", "--out", str(out)]) == 2
    assert "--seeds '0,x'" in capsys.readouterr().err
    assert sweep_mod.main([str(cfg), "--set", "noequals", "--out", str(out)]) == 2
    assert "expected KEY=V1,V2" in capsys.readouterr().err


def test_sweep_workers_without_ray_is_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(parallel, "ray_available", lambda: False)
    argv = [str(_tiny_yaml(tmp_path)), "--out", str(tmp_path / "sw"), "--workers", "2"]
    assert sweep_mod.main(argv) == 2
    assert capsys.readouterr().err.strip() == f"zshot sweep: {parallel.RAY_HINT}"


@pytest.mark.slow
def test_sweep_on_ray_reports_a_failed_trial_and_finishes_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ray: Any = pytest.importorskip("ray")
    cfg, out = _tiny_yaml(tmp_path), tmp_path / "sw"
    missing = tmp_path / "no-such-dataset"
    argv = [str(cfg), "--seeds", "0,1", "--set", f"offline.dataset=null,{missing}"]
    try:
        rc = sweep_mod.main([*argv, "--out", str(out), "--workers", "2"])
    finally:
        ray.shutdown()
    assert rc == 1  # some trial failed
    rows = json.loads((out / "sweep.json").read_text())["trials"]
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "failed"]
    for r in rows:
        if r["status"] == "ok":
            assert (Path(r["run_dir"]) / CHECKPOINT).is_file()
            assert 0.0 <= r["success_rate"] <= 1.0
        else:
            assert "no-such-dataset" in r["error"]
            assert (Path(r["run_dir"]) / "error.txt").is_file()
    table = (out / "summary.md").read_text()
    assert table.count("| failed |") == 2 and table.count("| ok |") == 2
    assert (out / "summary.png").stat().st_size > 0
    assert "2 failed" in capsys.readouterr().out
