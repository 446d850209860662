"""`zshot trials` and the control loop with every artifact kind: a conditioned artifact gets
each plug's task descriptor at RESET_TASK (also after the runtime comes back), a recurrent
and a weights artifact run like a posterior one, and descriptors that do not fit the served
kind are refused before the robot moves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hardware_bridge.cli import start_runtime
from hardware_bridge.recorder import load_recordings
from hardware_bridge.robots.mock import MOCK_OBS_NAMES
from runtime.artifact import ArtifactKind
from tests.hardware_bridge.fakes import FakeRuntime
from tests.hardware_bridge.test_loop import make_loop
from tests.runtime.kinds_fixture import make_kind_artifact
from zshot.cli import main

TRIALS = ["trials", "--robot", "mock", "--plugs", "peg-a,peg-b", "--adapt-episodes", "1",
          "--eval-episodes", "1", "--quiet"]  # fmt: skip


@pytest.fixture
def kind_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """`zshot serve` of a random artifact of the requested kind, MockRobot's dims and rate."""
    kind: ArtifactKind = request.param
    spec = {"control_hz": 10.0, "obs_names": list(MOCK_OBS_NAMES)}
    make_kind_artifact(tmp_path / kind, kind, spec, obs_dim=9, act_dim=4, width=3, seed=5)
    proc, endpoint = start_runtime(tmp_path / kind)
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("kind_server", ["recurrent", "weights"], indirect=True)
def test_trials_run_against_recurrent_and_weights_artifacts(
    kind_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main([*TRIALS, "--runtime", kind_server, "--out", str(tmp_path),
               "--record", str(tmp_path / "rec")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0 and not err, err
    ds = load_recordings(tmp_path / "rec")  # no latent: the recorder keeps zero-width z
    assert len(ds.episodes) == 4
    data = json.loads((tmp_path / "trials.json").read_text())
    assert [p["plug"] for p in data["plugs"]] == ["peg-a", "peg-b"]
    episodes = [e for p in data["plugs"] for e in p["episodes"]]
    assert len(episodes) == 4 and all(e["steps"] > 0 for e in episodes)
    assert not any(e["aborted"] or e["misses"] for e in episodes)


@pytest.mark.slow
@pytest.mark.parametrize("kind_server", ["conditioned"], indirect=True)
def test_trials_send_each_plugs_descriptor_to_a_conditioned_artifact(
    kind_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main([*TRIALS, "--runtime", kind_server, "--out", str(tmp_path),
               "--task-descriptor", "peg-a=1,0,0", "--task-descriptor", "peg-b=0,1,0"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    data = json.loads((tmp_path / "trials.json").read_text())
    episodes = [e for p in data["plugs"] for e in p["episodes"]]
    assert len(episodes) == 4 and not any(e["aborted"] or e["misses"] for e in episodes)
    # Missing or wrong-size descriptors: one line, exit 2, before any episode.
    rc = main([*TRIALS, "--runtime", kind_server, "--task-descriptor", "peg-a=1,0,0"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing for peg-b" in err and len(err.strip().splitlines()) == 1
    rc = main([*TRIALS, "--runtime", kind_server, "--task-descriptor", "peg-a=1,0",
               "--task-descriptor", "peg-b=0,1,0"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "must have 3 values" in err and "peg-a (2)" in err


@pytest.mark.slow
def test_descriptors_for_a_posterior_artifact_are_refused(
    server: object, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main([*TRIALS, "--runtime", server.endpoint, "--task-descriptor", "peg-a=1"])  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert rc == 2 and "serves a posterior artifact, which takes none" in err


@pytest.mark.parametrize("bad", ["peg-a", "=1,2", "peg-a=1,x", "peg-a=nan"])
def test_a_malformed_task_descriptor_flag_is_named(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trials", "--robot", "mock", "--task-descriptor", bad]) == 2
    err = capsys.readouterr().err
    assert "--task-descriptor" in err and "Traceback" not in err


def test_the_loop_resends_the_descriptor_when_the_runtime_comes_back() -> None:
    rt = FakeRuntime()
    loop, *_ = make_loop(rt)
    loop.reset_task([0.0, 1.0, 0.0])
    loop.run_episode("explore")
    rt.kill()
    rt.alive = True  # a restarted server: new session, no state
    assert loop.restore_runtime()
    assert rt.descriptors == [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    loop.reset_task()  # a kind without descriptors: none sent
    assert rt.descriptors[-1] is None
    assert np.isfinite(loop.run_episode("exploit").episode_return)
