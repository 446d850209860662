"""A plug the user brings, as a spec file, through `zshot eval`, `zshot trials` and
`zshot sim baseline`; the profile switch; strict JSON; one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zshot.cli import main as zshot

pytest.importorskip("pybullet")

REPO = Path(__file__).resolve().parents[2]
TRAIN = str(REPO / "configs" / "train" / "insertion.yaml")


@pytest.fixture
def plug_file(tmp_path: Path) -> Path:
    """A user's plug: the square peg's spec under another name, in a file of its own."""
    text = (REPO / "sim" / "plugs" / "Metal-peg-sq.yaml").read_text()
    lines = ["name: My-square-peg" if ln.startswith("name:") else ln for ln in text.splitlines()]
    path = tmp_path / "user plugs" / "my_peg.yaml"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def _strict(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-finite token {token} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_eval_and_sim_baseline_take_a_plug_file_and_draw_the_same_tasks(
    plug_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["-n", "1", "--tasks-per-plug", "2", "--profile", "oda"]
    assert zshot(["eval", "spiral", "--config", TRAIN, "--plugs", str(plug_file), "Metal-peg-sq",
                  "-k", "0", *common]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "My-square-peg" in out and "profile oda" in out
    ev = _strict(tmp_path / "eval-spiral-insertion-episodic-oda.json")
    assert sorted(p["label"] for p in ev["tasks"]) == ["Metal-peg-sq", "My-square-peg"]
    assert ev["protocol"]["profile"] == "oda"
    assert zshot(["sim", "baseline", "--plug", str(plug_file), "--plug", "Metal-peg-sq",
                  *common, "--json", str(tmp_path / "b.json")]) == 0  # fmt: skip
    base = _strict(tmp_path / "b.json")
    # the same tasks, episodes and outcomes: it is the same evaluation
    assert [(p["label"], p["successes"], p["mean_return"]) for p in base["tasks"]] == [
        (p["label"], p["successes"], p["mean_return"]) for p in ev["tasks"]
    ]
    # the user's file is not the shipped peg: its own tasks (other clearance/friction draws)
    mine = next(p for p in ev["tasks"] if p["label"] == "My-square-peg")
    assert mine["episodes"] == 2


def test_eval_of_an_artifact_never_writes_into_its_folder(
    sim_artifact_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in sim_artifact_copy.iterdir())
    rc = zshot(["eval", str(sim_artifact_copy), "--plugs", "Metal-peg-sq", "-k", "0", "-n", "1",
                "--tasks-per-plug", "1", "--profile", "known"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in sim_artifact_copy.iterdir()) == before
    report = _strict(tmp_path / f"eval-{sim_artifact_copy.name}-episodic-known.json")
    assert report["protocol"]["profile"] == "known"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "easy"], "unknown profile 'easy'; profiles: known, oda, hard"),
        (["--plugs", "/no/such/plug.yaml"], "/no/such/plug.yaml: no such plug spec file"),
    ],
)
def test_eval_bad_profile_or_missing_plug_file_is_one_line(args, message, capsys) -> None:
    assert zshot(["eval", "spiral", "--config", TRAIN, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(message) and len([ln for ln in err if "zshot" in ln]) == 1


def test_eval_plug_file_failing_its_spec_check_is_named(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsource: x\nbody: {shape: box, width: 10, depth: 10, height: 5}\npins: []\n"
    )
    assert zshot(["eval", "spiral", "--config", TRAIN, "--plugs", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "pins" in err and "Traceback" not in err


@pytest.mark.slow
def test_trials_take_a_plug_file_and_run_several_tasks_per_plug(
    sim_artifact_copy: Path, plug_file: Path, tmp_path: Path, capsys
) -> None:
    from hardware_bridge.cli import start_runtime

    proc, endpoint = start_runtime(sim_artifact_copy)
    try:
        rc = zshot(["trials", "--runtime", endpoint, "--robot", "sim", "--plugs",
                    f"{plug_file},Metal-peg-sq", "--tasks-per-plug", "2", "--adapt-episodes", "0",
                    "--eval-episodes", "1", "--profile", "known", "--out", str(tmp_path),
                    "--quiet"])  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "force limit" in out.splitlines()[1] or "force limit" in out
    data = _strict(tmp_path / "trials.json")
    rows = {p["plug"]: p for p in data["plugs"]}
    assert set(rows) == {"My-square-peg", "Metal-peg-sq"}  # labelled by name, not path
    for row in rows.values():
        assert row["n_eval"] == 2 and len(row["tasks"]) == 2 and len(row["episodes"]) == 2
        assert row["tasks"][0] != row["tasks"][1]  # two hidden tasks
        assert all(t["dx"] == 0.0 and t["dyaw"] == 0.0 for t in row["tasks"])  # known
    assert rows["My-square-peg"]["tasks"][0]["plug"] == str(plug_file)


def test_trials_bad_plug_file_or_profile_is_one_line(capsys) -> None:
    """Refused before any runtime is contacted (no runtime listens on port 9)."""
    assert zshot(["trials", "--robot", "sim", "--profile", "easy"]) == 2
    assert "unknown profile 'easy'" in capsys.readouterr().err
    rc = zshot(["trials", "--runtime", "tcp://127.0.0.1:9", "--robot", "sim", "--plugs",
                "/no/plug.yaml", "--quiet"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "/no/plug.yaml: no such plug spec file" in err and "Traceback" not in err


@pytest.fixture
def sim_artifact_copy(tmp_path: Path) -> Path:
    """The shipped demo artifact, copied (tests never write into the shipped one)."""
    dst = tmp_path / "demo_artifact"
    shutil.copytree(REPO / "hardware_bridge" / "demo_artifact", dst)
    return dst
