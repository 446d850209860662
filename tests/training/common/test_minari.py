"""Datasets through Minari's own API and back (needs the `minari` extra; `make setup` has it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import recorded_step
from training.collect import collect_dataset
from training.common.datasets import MANIFEST, load_dataset
from training.common.minari_format import MINARI_LAYOUT_VERSION, dataset_id_for
from training.config import CollectConfig
from training.dataset_cli import export_recordings
from training.dataset_cli import main as dataset_main

minari = pytest.importorskip("minari")


@pytest.fixture
def minari_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(home))
    return home


def test_layout_version_is_one_minari_reads() -> None:
    assert MINARI_LAYOUT_VERSION in minari.supported_dataset_versions


def test_dataset_ids(minari_home: Path, tmp_path: Path) -> None:
    assert dataset_id_for(minari_home / "zshot" / "ins-v3") == "zshot/ins-v3"
    assert dataset_id_for(tmp_path / "my data") == "zshot/my_data-v0"
    assert dataset_id_for(tmp_path / "x", "lab/run-v2") == "lab/run-v2"
    with pytest.raises(ValueError, match="Minari's form"):
        dataset_id_for(tmp_path / "x", "no version")


def test_collect_opens_with_minari_and_round_trips(minari_home: Path) -> None:
    cfg = CollectConfig.model_validate(
        {
            "env": "point",
            "num_tasks": 3,
            "episodes_per_task": 3,
            "mix": {"scripted": 2, "random": 1, "policy": 0},
        }
    )
    root = minari_home / "zshot" / "point-v0"
    m = collect_dataset(cfg, root, progress=False)
    assert m["dataset_id"] == "zshot/point-v0"
    for ds in (minari.load_dataset("zshot/point-v0"), minari.MinariDataset(root / "data")):
        assert ds.total_episodes == 9 and ds.total_steps == m["steps"]
        assert ds.id == "zshot/point-v0"
    assert "zshot/point-v0" in minari.list_local_datasets()
    ds = minari.load_dataset("zshot/point-v0")
    mine = load_dataset(root)
    by_task = {json.dumps(t.task, sort_keys=True): t for t in mine.tasks}
    seen: dict[str, list[np.ndarray]] = {}
    metas = list(ds.storage.get_episode_metadata(range(ds.total_episodes)))
    for ep, meta in zip(ds.iterate_episodes(), metas, strict=True):
        # Minari's conventions: T+1 observations and infos, T of the rest.
        assert ep.observations.shape == (len(ep) + 1, 2) and ep.actions.shape == (len(ep), 2)
        assert all(len(v) == len(ep) + 1 for v in ep.infos.values())
        # The task and its hidden parameters are episode metadata, as Minari returns it.
        task = json.loads(meta["task_json"])
        assert {k: float(meta["task"][k]) for k in ("goal_x", "goal_y", "gain")} == {
            k: task[k] for k in ("goal_x", "goal_y", "gain")
        }
        assert meta["mode"] in ("scripted", "random")
        seen.setdefault(json.dumps(task, sort_keys=True), []).append(ep.actions)
    # zshot's loader groups exactly Minari's episodes by task, in order.
    assert set(seen) == set(by_task)
    for key, acts in seen.items():
        np.testing.assert_array_equal(by_task[key].actions, np.concatenate(acts))
    assert len(ds.sample_episodes(4)) == 4
    env = ds.recover_environment()
    assert env.spec is not None and env.spec.max_episode_steps == 20
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


@pytest.mark.slow
def test_insertion_collection_recovers_its_env(minari_home: Path) -> None:
    cfg = CollectConfig.model_validate(
        {
            "num_tasks": 2,
            "episodes_per_task": 1,
            "max_episode_steps": 3,
            "sim_overrides": {"tasks": {"n_train_per_plug": 1, "n_test_per_plug": 1}},
            "mix": {"scripted": 1, "random": 0, "policy": 0},
        }
    )
    collect_dataset(cfg, minari_home / "zshot" / "ins-v0", progress=False)
    ds = minari.load_dataset("zshot/ins-v0")
    meta = next(iter(ds.storage.get_episode_metadata([0])))
    assert {"dx", "dy", "dyaw", "clearance", "friction"} <= set(meta["task"])
    env = ds.recover_environment()
    assert env.spec is not None and env.spec.max_episode_steps == 3
    assert env.unwrapped.config.model_dump(mode="json") == m_sim(ds)
    env.close()


def m_sim(ds: object) -> dict:
    return json.loads(ds.storage.metadata["env_spec"])["kwargs"]["config"]  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_minari_data_collector_dataset_trains(minari_home: Path) -> None:
    """Somebody else's dataset: minari.DataCollector around a zshot env, tasks set with
    set_task; the zshot env's info["task"] is what groups it (no zshot metadata at all)."""
    pytest.importorskip("jax")  # DataCollector needs minari[create]
    import gymnasium as gym

    import sim  # noqa: F401
    from sim.tasks import TaskFamily

    env = gym.make("zshot/Insertion-v0")
    collector = minari.DataCollector(env, record_infos=True)
    tasks = TaskFamily(env.unwrapped.config, seed=0).train_tasks[:2]
    for i, task in enumerate(tasks):
        for rep in range(2):
            env.unwrapped.set_task(task)
            collector.reset(seed=10 * i + rep)
            for _ in range(4):
                *_, term, trunc, _ = collector.step(env.action_space.sample())
                if term or trunc:
                    break
    collector.create_dataset(
        "lab/insertion-random-v0",
        algorithm_name="random",
        author="lab",
        author_email="lab@example.org",
        code_permalink="https://example.org",
        description="random actions",
    )
    collector.close()
    ds = load_dataset(minari_home / "lab" / "insertion-random-v0")
    assert ds.behaviours == ["random"]  # algorithm_name
    assert [t.episodes for t in ds.tasks] == [2, 2]
    assert [t.task["dx"] for t in ds.tasks] == pytest.approx([t.dx for t in tasks])
    assert ds.obs_dim == 18 and ds.act_dim == 4


def _record(directory: Path) -> None:
    from hardware_bridge.recorder import Recorder

    rec = Recorder(directory, latent_dim=2)
    for plug, n in (("a", 3), ("b", 2), ("a", 2)):
        rec.begin_episode({"task": {"plug": plug, "dx": 0.001}, "plug": plug, "mode": "trial"})
        for t in range(n):
            rec.record(recorded_step(t, t == n - 1, commanded=0.9, t_wall=100.0 + t))
        rec.end_episode({"success": plug == "b"})
    rec.close()


def test_recordings_export_to_minari_and_back(minari_home: Path, tmp_path: Path) -> None:
    _record(tmp_path / "rec")
    out = minari_home / "robot" / "trials-v0"
    m = export_recordings(tmp_path / "rec", out)
    assert m["episodes"] == 3 and m["steps"] == 7 and len(m["tasks"]) == 2
    ds = minari.load_dataset("robot/trials-v0")
    assert ds.total_episodes == 3 and ds.total_steps == 7
    ep = ds[0]
    assert ep.observations.shape == (4, 3)
    assert ep.infos["timestamps"].shape == (4,) and np.isnan(ep.infos["timestamps"][0])
    np.testing.assert_array_equal(ep.infos["timestamps"][1:], [100.0, 101.0, 102.0])
    np.testing.assert_allclose(ep.infos["commanded_actions"][1], [0.9, 0.9], rtol=1e-6)
    meta = next(iter(ds.storage.get_episode_metadata([1])))
    assert meta["task"]["plug"] == "b" and meta["mode"] == "trial"
    # zshot's loader reads the export as it reads the recordings themselves.
    a, b = load_dataset(tmp_path / "rec"), load_dataset(out)
    assert [t.label for t in a.tasks] == [t.label for t in b.tasks] == ["a", "b"]
    for ta, tb in zip(a.tasks, b.tasks, strict=True):
        np.testing.assert_array_equal(ta.obs, tb.obs)
        np.testing.assert_array_equal(ta.actions, tb.actions)
        np.testing.assert_array_equal(ta.dones, tb.dones)
    assert json.loads((out / MANIFEST).read_text())["complete"]
    with pytest.raises(ValueError, match="already holds a dataset"):
        export_recordings(tmp_path / "rec", out)


def test_dataset_cli(minari_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(tmp_path / "rec")
    assert dataset_main(["export", str(tmp_path / "rec"), "--dataset-id", "robot/cli-v1"]) == 0
    assert "(Minari dataset robot/cli-v1): 3 episodes" in capsys.readouterr().out
    assert minari.load_dataset("robot/cli-v1").total_episodes == 3
    # An unrecovered write-ahead log (a crash mid-episode) is named, not half-exported.
    (tmp_path / "rec" / "episode_000009.wal").write_bytes(b"ZSHTWAL1")
    assert dataset_main(["export", str(tmp_path / "rec"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zshot dataset: ") and "episode_000009.wal" in err
    assert not (tmp_path / "o" / "data" / "metadata.json").exists()
    with pytest.raises(SystemExit) as exc:
        dataset_main(["export", str(tmp_path / "rec"), "--dataset-id", "bad id"])
    assert exc.value.code == 2
