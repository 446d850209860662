"""`zshot collect`: behaviour mixes, held-out plugs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.collect import collect_dataset, main, split_episodes
from training.common.datasets import MANIFEST, load_dataset
from training.config import CollectConfig

from ..conftest import ExportedArtifact

ROOT = Path(__file__).resolve().parents[2]


@given(
    n=st.integers(1, 200),
    fr=st.lists(st.floats(0, 10, allow_nan=False), min_size=3, max_size=3).filter(
        lambda f: sum(f) > 1e-6
    ),
)
def test_split_sums_to_n_and_stays_within_one_of_the_quota(n: int, fr: list[float]) -> None:
    mix = dict(zip(("scripted", "random", "policy"), fr, strict=True))
    counts = split_episodes(n, mix)
    assert sum(counts.values()) == n
    total = sum(fr)
    for k, v in mix.items():
        assert abs(counts[k] - n * v / total) < 1.0 + 1e-9
        if v == 0:
            assert counts[k] == 0


def test_point_collection_follows_the_mix(tmp_path: Path) -> None:
    cfg = CollectConfig.model_validate(
        {
            "env": "point",
            "num_tasks": 2,
            "episodes_per_task": 5,
            "mix": {"scripted": 3, "random": 2, "policy": 0},
        }
    )
    m = collect_dataset(cfg, tmp_path / "d", progress=False)
    assert m["behaviours"]["scripted"]["episodes"] == 6
    assert m["behaviours"]["random"]["episodes"] == 4
    assert m["behaviours"]["policy"]["episodes"] == 0
    # The noisy expert knows the goal: it mostly succeeds; filtered random actions rarely do.
    assert m["behaviours"]["scripted"]["successes"] >= 4
    assert all(r["episodes"] == {"scripted": 3, "random": 2} for r in m["tasks"])
    with pytest.raises(ValueError, match="already holds a dataset"):
        collect_dataset(cfg, tmp_path / "d", progress=False)


def test_policy_mix_needs_a_run(tmp_path: Path) -> None:
    cfg = CollectConfig.model_validate({"env": "point", "mix": {"policy": 1.0}})
    with pytest.raises(ValueError, match="policy_run"):
        collect_dataset(cfg, tmp_path / "d", progress=False)


def test_policy_behaviour_from_a_trained_run(trained_run: Path, tmp_path: Path) -> None:
    cfg = CollectConfig.model_validate(
        {
            "env": "point",
            "num_tasks": 2,
            "episodes_per_task": 2,
            "mix": {"scripted": 0, "random": 0, "policy": 1},
            "policy_run": str(trained_run),
        }
    )
    collect_dataset(cfg, tmp_path / "d", progress=False)
    ds = load_dataset(tmp_path / "d")
    assert ds.behaviours == ["policy"] and len(ds.tasks) == 2


def test_policy_behaviour_from_an_exported_artifact(
    trained_run: Path, exported_artifact: ExportedArtifact, tmp_path: Path
) -> None:
    """policy_run may be an artifact dir: onnxruntime gives the torch run's actions and
    posterior, and a collection runs from it."""
    import numpy as np

    from training.collect import PolicyBehaviour

    art = exported_artifact.root
    behs = [
        PolicyBehaviour(str(src), 2, 2, np.random.default_rng(0), latent="posterior")
        for src in (trained_run, art)
    ]
    rows = np.random.default_rng(1).normal(size=(6, 7)).astype(np.float32)
    for b in behs:
        b.reset("task")
        b.end_episode(rows)
        b.reset("task")
    np.testing.assert_allclose(behs[0].z, behs[1].z, atol=1e-5)
    np.testing.assert_allclose(behs[0].z_var, behs[1].z_var, rtol=1e-5)
    obs = np.array([0.3, -0.2], np.float32)
    np.testing.assert_allclose(behs[0].act(obs), behs[1].act(obs), atol=1e-5)
    with pytest.raises(ValueError, match="dims"):
        PolicyBehaviour(str(art), 3, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="neither a training run"):
        PolicyBehaviour(str(tmp_path), 2, 2, np.random.default_rng(0))

    cfg = CollectConfig.model_validate(
        {
            "env": "point",
            "num_tasks": 2,
            "episodes_per_task": 2,
            "mix": {"scripted": 0, "random": 0, "policy": 1},
            "policy_run": str(art),
            "policy_latent": "posterior",
        }
    )
    m = collect_dataset(cfg, tmp_path / "d", progress=False)
    assert m["behaviours"]["policy"]["episodes"] == 4


def test_policy_posterior_sampling_narrows_within_a_task_and_restarts_per_task(
    trained_run: Path, tmp_path: Path
) -> None:
    import numpy as np

    from training.collect import PolicyBehaviour
    from training.common.tasks import make_task_source

    cfg = CollectConfig.model_validate({"env": "point", "num_tasks": 2})
    source = make_task_source(cfg.as_train_config())
    env = source.make_env()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    beh = PolicyBehaviour(
        str(trained_run), obs_dim, act_dim, np.random.default_rng(0), latent="posterior"
    )
    a, b = source.train_tasks[:2]

    def episode(task: object) -> np.ndarray:
        beh.reset(task)
        env.set_task(task)
        obs, _ = env.reset(seed=0)
        rows = []
        for _ in range(5):
            act = beh.act(np.asarray(obs, np.float32))
            nxt, r, *_ = env.step(act)
            rows.append(np.concatenate([obs, act, [r], nxt]).astype(np.float32))
            obs = nxt
        beh.end_episode(np.stack(rows))
        return beh.z_var.copy()

    first = episode(a)
    assert np.allclose(first, 1.0)  # nothing seen yet: the prior
    second = episode(a)
    assert np.all(second < 1.0)  # 5 transitions of this task narrow the posterior
    assert np.allclose(episode(b), 1.0)  # a new task starts from the prior again
    with pytest.raises(ValueError, match="prior' or 'posterior"):
        PolicyBehaviour(str(trained_run), obs_dim, act_dim, np.random.default_rng(0), "mean")

    cfg = CollectConfig.model_validate(
        {
            "env": "point",
            "num_tasks": 2,
            "episodes_per_task": 3,
            "mix": {"scripted": 0, "random": 0, "policy": 1},
            "policy_run": str(trained_run),
            "policy_latent": "posterior",
        }
    )
    m = collect_dataset(cfg, tmp_path / "post", progress=False)
    assert m["behaviours"]["policy"]["episodes"] == 6


def test_insertion_collection_never_visits_held_out_plugs(tmp_path: Path) -> None:
    cfg = CollectConfig.model_validate(
        {
            "num_tasks": 2,
            "episodes_per_task": 2,
            "max_episode_steps": 4,
            "sim_overrides": {"tasks": {"n_train_per_plug": 1, "n_test_per_plug": 1}},
            "mix": {"scripted": 1, "random": 1, "policy": 0},
        }
    )
    collect_dataset(cfg, tmp_path / "ins", progress=False)
    ds = load_dataset(tmp_path / "ins")
    from sim.plugs import NAMED_PLUGS

    assert ds.obs_dim == 18 and ds.act_dim == 4
    assert not {t.label for t in ds.tasks} & set(NAMED_PLUGS)
    assert all(len(t) == 8 for t in ds.tasks)  # 2 episodes x 4 steps (time limit cut)
    for t in ds.tasks:  # hidden parameters travel with the data
        assert {"dx", "dy", "dyaw", "clearance", "friction"} <= set(t.task)


def test_teleop_demonstrations_know_the_socket(tmp_path: Path) -> None:
    """The teleop behaviour is told the task: noiseless, it inserts every episode; recorded
    as its own behaviour, so per-behaviour contexts can draw from it."""
    cfg = CollectConfig.model_validate(
        {
            "num_tasks": 3,
            "episodes_per_task": 2,
            "sim_overrides": {"tasks": {"n_train_per_plug": 1, "n_test_per_plug": 1}},
            "mix": {"teleop": 1, "scripted": 0, "random": 0, "policy": 0},
            "teleop_noise": 0.0,
        }
    )
    m = collect_dataset(cfg, tmp_path / "tele", progress=False)
    assert m["behaviours"]["teleop"] == {
        "episodes": 6,
        "successes": 6,
        "steps": m["behaviours"]["teleop"]["steps"],
    }
    assert m["behaviours"]["teleop"]["steps"] < 6 * 60  # straight in, no search
    ds = load_dataset(tmp_path / "tele")
    assert ds.behaviours == ["teleop"]


def test_cli_writes_the_dataset_and_rejects_bad_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    rc = main(
        [
            str(ROOT / "configs/collect/point.yaml"),
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "num_tasks=2",
            "--set",
            "episodes_per_task=2",
        ]
    )
    assert rc == 0
    assert json.loads((out / MANIFEST).read_text())["episodes"] == 4
    assert "4 episodes" in capsys.readouterr().out
    from zshot.config import ConfigError

    with pytest.raises(ConfigError, match="mix.bogus"):
        main(
            [
                str(ROOT / "configs/collect/point.yaml"),
                "--out",
                str(tmp_path / "x"),
                "--set",
                "mix.bogus=1",
            ]
        )


def test_cli_shows_no_bar_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(ROOT / "configs/collect/point.yaml"), "--set", "num_tasks=1"]
    assert main([*argv, "--set", "episodes_per_task=2", "--out", str(tmp_path / "d")]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "Minari dataset zshot/d-v0" in out
    with pytest.raises(SystemExit):  # neither --out nor --dataset-id
        main(argv)
    assert "give --out DIR or --dataset-id ID" in capsys.readouterr().err
