"""`zshot trials --plug-descriptors`: the robot side computes each plug's descriptor from its
spec file (zshot/plug_descriptor.py, no sim or torch) and sends it to a conditioned
artifact trained on plug descriptors; a plug without a readable spec is one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware_bridge.cli import _config_from_args, _trials_parser, start_runtime
from hardware_bridge.robots.mock import MOCK_OBS_NAMES
from tests.runtime.kinds_fixture import make_kind_artifact
from zshot.cli import main
from zshot.plug_descriptor import PLUG_DESCRIPTOR_DIM, PLUG_DESCRIPTOR_VERSION, plug_descriptor_of

PLUGS = "US-AC-plug,Metal-peg-rd"


def test_the_flag_fills_each_plugs_descriptor_from_its_spec(tmp_path: Path) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text(Path(__file__).parents[2].joinpath("sim/plugs/Tri-peg.yaml").read_text())
    args = _trials_parser().parse_args(
        ["--robot", "mock", "--plugs", f"{PLUGS},{spec}", "--plug-descriptors",
         "--task-descriptor", "Metal-peg-rd=" + ",".join(["0.5"] * PLUG_DESCRIPTOR_DIM)]
    )  # fmt: skip
    cfg = _config_from_args(args)
    assert cfg.task_descriptors["US-AC-plug"] == plug_descriptor_of("US-AC-plug")
    assert cfg.task_descriptors[str(spec)] == plug_descriptor_of("Tri-peg")
    assert cfg.task_descriptors["Metal-peg-rd"] == [0.5] * PLUG_DESCRIPTOR_DIM  # given wins


def test_a_plug_without_a_spec_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["trials", "--robot", "mock", "--plugs", "peg-a", "--plug-descriptors"])
    err = capsys.readouterr().err
    assert rc == 2 and "--plug-descriptors" in err and "peg-a" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_computing_descriptors_loads_neither_sim_nor_torch() -> None:
    code = (
        "import sys; from hardware_bridge.cli import _plug_descriptors; "
        "_plug_descriptors(['US-AC-plug']); "
        "bad = [m for m in ('torch', 'pybullet', 'sim', 'training') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.fixture
def descriptor_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A conditioned artifact told PLUG_DESCRIPTOR_DIM values, MockRobot's dims and rate, its
    manifest's `training` the test's parameter (default: this code's descriptor version)."""
    training = getattr(request, "param", {"plug_descriptor_version": PLUG_DESCRIPTOR_VERSION})
    spec = {"control_hz": 10.0, "obs_names": list(MOCK_OBS_NAMES), "training": training}
    make_kind_artifact(
        tmp_path / "art", "conditioned", spec, obs_dim=9, act_dim=4, width=PLUG_DESCRIPTOR_DIM,
        seed=5,
    )  # fmt: skip
    proc, endpoint = start_runtime(tmp_path / "art")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
def test_trials_send_plug_descriptors_to_a_conditioned_artifact(
    descriptor_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["trials", "--robot", "mock", "--plugs", PLUGS, "--adapt-episodes", "1",
            "--eval-episodes", "1", "--quiet", "--runtime", descriptor_server]  # fmt: skip
    rc = main([*base, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "missing for US-AC-plug" in err  # without the flag: none to send
    rc = main([*base, "--out", str(tmp_path), "--plug-descriptors"])
    err = capsys.readouterr().err
    assert rc == 0, err
    data = json.loads((tmp_path / "trials.json").read_text())
    episodes = [e for p in data["plugs"] for e in p["episodes"]]
    assert len(episodes) == 4 and not any(e["aborted"] or e["misses"] for e in episodes)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("descriptor_server", "said"),
    [({"plug_descriptor_version": 1}, "trained on version 1"), ({}, "reports none")],
    indirect=["descriptor_server"],
)
def test_an_artifact_of_another_descriptor_version_is_refused_in_one_line(
    descriptor_server: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["trials", "--robot", "mock", "--plugs", PLUGS, "--adapt-episodes", "1",
               "--eval-episodes", "1", "--quiet", "--runtime", descriptor_server,
               "--out", str(tmp_path), "--plug-descriptors"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and said in err and f"version {PLUG_DESCRIPTOR_VERSION}" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "trials.json").exists()  # refused before any episode
    # The same artifact told descriptors by hand (no version claimed) is not checked.
    given = [
        f"--task-descriptor={p}=" + ",".join(["0"] * PLUG_DESCRIPTOR_DIM) for p in PLUGS.split(",")
    ]
    rc = main(["trials", "--robot", "mock", "--plugs", PLUGS, "--adapt-episodes", "1",
               "--eval-episodes", "1", "--quiet", "--runtime", descriptor_server,
               "--out", str(tmp_path), *given])  # fmt: skip
    assert rc == 0, capsys.readouterr().err


def test_plug_and_goal_descriptors_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["trials", "--robot", "mock", "--plugs", PLUGS, "--plug-descriptors",
               "--goal-descriptors"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "exclude each other" in err and "Traceback" not in err
