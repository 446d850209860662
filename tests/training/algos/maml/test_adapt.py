"""`zshot adapt` end to end: a tiny MAML run on the insertion sim, its meta-policy served by
the runtime with a reload_root, and SimRobot driven through the bridge's control loop: the
K adaptation episodes are recorded, the adapted weights computed from the recordings and
exported, the runtime hot-reloads them, and the evaluation episodes get the adapted
policy's actions. Bad input: one line, exit 2 (a refused RELOAD: exit 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from runtime.client import RuntimeClient
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer
from training.algos.maml.adapt import adapted_params, load_maml_run, recorded_episodes
from training.algos.maml.networks import MAMLNets, Params, forward_with
from training.algos.maml.trainer import MAMLTrainer
from training.config import TrainConfig
from training.registry import export_run
from zshot.cli import main as zshot

PLUG = "US-AC-plug"  # a held-out named plug (SimRobot draws test tasks)


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path, str]]:
    """(run dir, sim config, reload root, endpoint): one MAML iteration on 8-step insertion
    episodes, its export at root/meta, served with RELOAD allowed under root."""
    tmp = tmp_path_factory.mktemp("maml-adapt")
    sim = tmp / "sim.yaml"
    sim.write_text("max_steps: 8\n")
    cfg = TrainConfig.model_validate(
        {
            "algo": "maml", "env": "insertion", "sim_config": str(sim), "iterations": 1,
            "initial_steps": 8, "meta_batch": 1, "eval_every": 0, "num_train_tasks": 2,
            "maml": {"hidden": [16], "episodes_per_task": 2, "outer_steps": 1,
                     "eval_tasks": 1, "eval_steps": 1, "init_std": 0.3, "inner_lr": 0.5},
        }
    )  # fmt: skip
    MAMLTrainer(cfg, tmp / "run").run(progress=False)
    root = tmp / "reload"
    export_run(tmp / "run", root / "meta")
    serve = ServeConfig(seed=0, poll_interval_s=0.01, reload_root=str(root))
    server = RuntimeServer(LoadedModel.load(root / "meta", serve), serve)
    server.bind("tcp://127.0.0.1:*")
    server.start()
    yield tmp / "run", sim, root, server.endpoint
    server.stop()


def mean_action(nets: MAMLNets, params: Params, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        mean, _ = forward_with(nets.policy, params, torch.as_tensor(obs, dtype=torch.float32))
    return mean.numpy()


def adapt_args(run: Path, sim: Path, endpoint: str, out: Path, *extra: str) -> list[str]:
    return ["adapt", str(run), "--runtime", endpoint, "--robot", "sim", "--plug", PLUG,
            "--out", str(out), "--set", f"sim.sim_config={sim}", "--quiet", *extra]  # fmt: skip


@pytest.mark.slow
def test_adapt_records_adapts_exports_reloads_and_evaluates(
    cell: tuple[Path, Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run, sim, root, endpoint = cell
    out = root / "us-ac"
    args = adapt_args(run, sim, endpoint, out, "--adapt-episodes", "2", "--eval-episodes", "2")
    assert zshot(args) == 0, capsys.readouterr().err
    report = json.loads((out / "adapt.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["step-0", "eval"]
    assert [s["episodes"] for s in report["stages"]] == [2, 2]
    assert report["stages"][0]["artifact"] == str(out / "adapted-1")

    # The exported weights are the inner step on what was recorded (commanded actions).
    nets, cfg, _ = load_maml_run(run)
    theta = nets.policy.detached_params()
    episodes = recorded_episodes(out / "recordings" / "step-0")
    assert len(episodes) == 2 and all(len(o) == 8 for o, _, _ in episodes)
    params = adapted_params(nets, cfg, theta, episodes, cfg.maml.inner_lr)
    manifest = json.loads((out / "adapted-1" / "manifest.json").read_text())
    assert manifest["kind"] == "weights"
    assert manifest["training"]["adaptation"]["steps"] == 1
    assert manifest["training"]["adaptation"]["from_sha256"] == report["meta_artifact_sha256"]

    # The evaluation episodes ran on the adapted policy (after RELOAD): their commanded
    # actions are its mean actions (no noise in evaluation), not the meta-policy's.
    obs, commanded = [], []
    for f in sorted((out / "recordings" / "eval").glob("*.h5")):
        with h5py.File(f, "r") as h5:
            for g in h5.values():
                obs.append(np.asarray(g["observations"][()])[:-1])
                commanded.append(np.asarray(g["commanded_actions"][()]))
    o, c = np.concatenate(obs), np.concatenate(commanded)
    assert len(o) == 16
    np.testing.assert_allclose(c, mean_action(nets, params, o), atol=1e-4)
    assert np.abs(c - mean_action(nets, theta, o)).max() > 1e-3  # the step changed the policy

    # Another session gets them too once it reloads the artifact; before, the meta-policy.
    client = RuntimeClient(endpoint, timeout_s=5.0)
    try:
        client.hello()
        x = o[3]
        np.testing.assert_allclose(client.step(x), mean_action(nets, theta, x[None])[0], atol=1e-5)
        assert client.reload(str(out / "adapted-1")).kind == "weights"
        np.testing.assert_allclose(client.step(x), mean_action(nets, params, x[None])[0], atol=1e-5)
    finally:
        client.close()


@pytest.mark.slow
def test_adapt_says_in_one_line_when_the_runtime_refuses_the_reload(
    cell: tuple[Path, Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, sim, _, endpoint = cell
    outside = tmp_path / "not-under-reload-root"
    rc = zshot(adapt_args(run, sim, endpoint, outside, "--adapt-episodes", "1"))
    err = capsys.readouterr().err
    assert rc == 1 and "refused RELOAD" in err and "reload_root" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (outside / "recordings" / "step-0").is_dir()  # the episodes are kept


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--adapt-episodes", "0"], "--adapt-episodes must be >= 1"),
        (["--inner-lr", "nan"], "--inner-lr must be a finite number > 0"),
        (["--runtime", "http://x"], "--runtime"),
    ],
)
def test_bad_flags_are_named_in_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["adapt", str(tmp_path), "--runtime", "tcp://127.0.0.1:1", "--plug", PLUG,
            "--out", str(tmp_path / "out"), *extra]  # fmt: skip
    assert zshot(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_run_that_is_not_maml_is_refused(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--runtime", "tcp://127.0.0.1:1", "--plug", PLUG, "--out", str(tmp_path / "o")]
    assert zshot(["adapt", str(tmp_path), *base]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err
    assert zshot(["adapt", str(trained_run), *base]) == 2
    err = capsys.readouterr().err
    assert "a pearl run" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "o").mkdir()
    assert zshot(["adapt", str(trained_run), *base]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    (tmp_path / "o" / "notes.txt").write_text("someone's data")
    assert zshot(["adapt", str(trained_run), *base, "--force"]) == 2
    assert "not the output of a `zshot adapt`" in capsys.readouterr().err
    assert (tmp_path / "o" / "notes.txt").read_text() == "someone's data"


def test_unanswered_periods_leave_the_loss_but_not_the_return() -> None:
    from training.algos.maml.adapt import policy_gradient_batch

    obs = np.arange(10, dtype=np.float32).reshape(5, 2)
    cmd = np.ones((5, 2), np.float32)
    cmd[[0, 3]] = np.nan  # no reply at periods 0 and 3: the watchdog held the robot
    rew = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    ((o, a, r),) = policy_gradient_batch([(obs, cmd, rew)])
    np.testing.assert_array_equal(o, obs[[1, 2, 4]])
    assert np.isfinite(a).all() and a.shape == (3, 2)
    np.testing.assert_array_equal(r, [1.0 + 2.0, 3.0 + 4.0, 5.0])  # every reward kept
    assert policy_gradient_batch([(obs, np.full((5, 2), np.nan, np.float32), rew)]) == []
