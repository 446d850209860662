"""Offline datasets: round trip through the Minari layout (and recordings), clear errors on bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.training.conftest import recorded_step
from training.collect import collect_dataset
from training.common.datasets import MANIFEST, DatasetError, load_dataset
from training.config import CollectConfig


def point_collect_config(**over: object) -> CollectConfig:
    """A toy-task collection of a few tasks and episodes (well under a second)."""
    base: dict[str, object] = {
        "env": "point",
        "num_tasks": 3,
        "episodes_per_task": 4,
        "mix": {"scripted": 0.5, "random": 0.5, "policy": 0.0},
    }
    base.update(over)
    return CollectConfig.model_validate(base)


@pytest.fixture(scope="module")
def point_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "point"
    collect_dataset(point_collect_config(), out, progress=False)
    return out


def _episodes(root: Path) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """(task, observations, actions) of every episode group in ROOT/data/main_data.hdf5."""
    out = []
    with h5py.File(root / "data" / "main_data.hdf5") as h5:
        for name in sorted(h5, key=lambda k: int(k.split("_")[1])):
            g = h5[name]
            out.append((json.loads(g.attrs["task_json"]), g["observations"][()], g["actions"][()]))
    return out


def test_round_trip_matches_the_episode_groups(point_dataset: Path) -> None:
    ds = load_dataset(point_dataset)
    manifest = json.loads((point_dataset / MANIFEST).read_text())
    assert manifest["complete"] and manifest["episodes"] == 12
    assert len(ds.tasks) == 3 and ds.obs_dim == 2 and ds.act_dim == 2
    assert sorted(ds.behaviours) == ["random", "scripted"]
    assert ds.num_transitions == manifest["steps"]
    # Task metadata (hidden parameters) survives: each dataset task is one manifest task.
    assert sorted(json.dumps(t.task, sort_keys=True) for t in ds.tasks) == sorted(
        json.dumps(r["task"], sort_keys=True) for r in manifest["tasks"]
    )
    # Transitions equal the raw arrays of the Minari episode groups, in order, per task.
    first = ds.tasks[0]
    eps = [e for e in _episodes(point_dataset) if e[0] == first.task]
    np.testing.assert_array_equal(first.obs, np.concatenate([o[:-1] for _, o, _ in eps]))
    np.testing.assert_array_equal(first.next_obs, np.concatenate([o[1:] for _, o, _ in eps]))
    np.testing.assert_array_equal(first.actions, np.concatenate([a for _, _, a in eps]))
    assert first.episodes == 4 == len(eps)
    # The data dir itself (what minari.MinariDataset takes) loads the same.
    same = load_dataset(point_dataset / "data")
    assert same.num_transitions == ds.num_transitions and len(same.tasks) == 3


def test_sampling_shapes_and_per_behaviour_context(point_dataset: Path) -> None:
    ds = load_dataset(point_dataset)
    rng = np.random.default_rng(0)
    obs, act, rew, nxt, done = ds.sample(np.array([0, 2]), 5, rng)
    assert obs.shape == (2, 5, 2) and act.shape == (2, 5, 2) and rew.shape == (2, 5, 1)
    assert nxt.shape == (2, 5, 2) and done.shape == (2, 5, 1)
    ctx = ds.sample_context(np.array([1]), 64, rng, per_behaviour=True)
    assert ctx.shape == (1, 64, 2 * 2 + 2 + 1)
    # Every row of a per-behaviour context comes from one behaviour's transitions.
    d = ds.tasks[1]
    table = np.concatenate([d.obs, d.actions, d.rewards, d.next_obs], -1)
    for _ in range(5):
        ctx = ds.sample_context(np.array([1]), 32, rng, per_behaviour=True)[0]
        idx = [int(np.flatnonzero((table == row).all(1))[0]) for row in ctx]
        assert len(set(d.behaviour[idx].tolist())) == 1
    mixed = ds.sample_context(np.array([1]), 256, rng, per_behaviour=False)[0]
    idx = [int(np.flatnonzero((table == row).all(1))[0]) for row in mixed]
    assert len(set(d.behaviour[idx].tolist())) == 2


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_corrupt_file_is_named(point_dataset: Path, tmp_path: Path) -> None:
    d = _copy(point_dataset, tmp_path / "bad")
    victim = d / "data" / "main_data.hdf5"
    victim.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(DatasetError, match=victim.name):
        load_dataset(d)


def test_truncated_file_is_named(point_dataset: Path, tmp_path: Path) -> None:
    d = _copy(point_dataset, tmp_path / "trunc")
    victim = d / "data" / "main_data.hdf5"
    raw = victim.read_bytes()
    victim.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match=victim.name):
        load_dataset(d)


def test_partial_collection_is_refused(point_dataset: Path, tmp_path: Path) -> None:
    d = _copy(point_dataset, tmp_path / "partial")
    m = json.loads((d / MANIFEST).read_text())
    m["complete"] = False
    (d / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="partial dataset"):
        load_dataset(d)
    # An interrupted write has no metadata.json yet: refused too (and Minari refuses it).
    d2 = _copy(point_dataset, tmp_path / "nometa")
    (d2 / MANIFEST).unlink()
    (d2 / "data" / "metadata.json").unlink()
    with pytest.raises(DatasetError, match=r"no metadata\.json"):
        load_dataset(d2)


def test_missing_episode_is_refused(point_dataset: Path, tmp_path: Path) -> None:
    d = _copy(point_dataset, tmp_path / "missing")
    with h5py.File(d / "data" / "main_data.hdf5", "r+") as h5:
        del h5["episode_11"]
    with pytest.raises(DatasetError, match="lists 12 episodes, the file holds 11"):
        load_dataset(d)
    meta = json.loads((d / "data" / "metadata.json").read_text())
    meta["total_episodes"] = 11
    (d / "data" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="manifest lists 12 episodes, found 11"):
        load_dataset(d)


def test_episode_without_task_metadata_is_refused(point_dataset: Path, tmp_path: Path) -> None:
    d = _copy(point_dataset, tmp_path / "notask")
    (d / MANIFEST).unlink()  # a Minari dataset from elsewhere: no zshot manifest
    with h5py.File(d / "data" / "main_data.hdf5", "r+") as h5:
        g = h5["episode_2"]
        for key in [k for k in g.attrs if k.startswith("task")]:
            del g.attrs[key]
    with pytest.raises(DatasetError, match="episode_2: no task metadata"):
        load_dataset(d)


def test_missing_dataset_and_wrong_dims(point_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such recording"):
        load_dataset(tmp_path / "nope")
    ds = load_dataset(point_dataset)
    with pytest.raises(DatasetError, match=r"obs/act dims \(2, 2\)"):
        ds.check_dims(18, 4)


def test_bridge_recordings_load_as_a_dataset(tmp_path: Path) -> None:
    """A robot recording (Recorder, no manifest) is a dataset: one format for both."""
    from hardware_bridge.recorder import Recorder

    rec = Recorder(tmp_path / "rec", latent_dim=2)
    for plug in ("a", "b"):
        rec.begin_episode({"task": {"plug": plug, "dx": 0.001}, "plug": plug, "mode": "trial"})
        for t in range(3):
            rec.record(recorded_step(t, t == 2))
        rec.end_episode({})
    ds = load_dataset(tmp_path / "rec")
    assert [t.label for t in ds.tasks] == ["a", "b"]
    assert ds.behaviours == ["trial"]
    np.testing.assert_array_equal(ds.tasks[0].dones[:, 0], [0, 0, 1])
    np.testing.assert_array_equal(ds.tasks[1].next_obs[:, 0], [1, 2, 3])


def test_an_earlier_per_episode_collection_still_loads(tmp_path: Path) -> None:
    """Collections written before the Minari layout (episode_N.h5 + dataset.json) load, and
    their manifest's episode count is still checked."""
    from hardware_bridge.recorder import Recorder
    from training.common.datasets import write_manifest

    d = tmp_path / "old"
    rec = Recorder(d, latent_dim=1)
    for k in range(3):
        rec.begin_episode({"task": {"plug": "p", "goal_x": float(k % 2)}, "mode": "scripted"})
        rec.record(recorded_step(0, True, obs_dim=2, latent_dim=1))
        rec.end_episode({})
    write_manifest(d, {"complete": True, "episodes": 3})
    ds = load_dataset(d)
    assert [t.episodes for t in ds.tasks] == [2, 1] and ds.behaviours == ["scripted"]
    write_manifest(d, {"complete": True, "episodes": 4})
    with pytest.raises(DatasetError, match="manifest lists 4 episodes, found 3"):
        load_dataset(d)


def test_a_dataset_written_before_the_task_label_rename_loads(
    point_dataset: Path, tmp_path: Path
) -> None:
    """Datasets collected before the rename say `plug` (episode metadata, the point task's
    own field): they load with the same tasks and labels."""
    new = load_dataset(point_dataset)
    old = _copy(point_dataset, tmp_path / "old")
    with h5py.File(old / "data" / "main_data.hdf5", "r+") as h5:
        for g in h5.values():
            g.attrs["plug"] = g.attrs["label"]
            del g.attrs["label"]
            task = json.loads(g.attrs["task_json"])
            task["plug"] = task.pop("label")
            g.attrs["task_json"] = json.dumps(task)
            g.attrs["task/plug"] = g.attrs["task/label"]
            del g.attrs["task/label"]
    ds = load_dataset(old)
    assert (
        [t.label for t in ds.tasks]
        == [t.label for t in new.tasks]
        == [
            "train-0",
            "train-1",
            "train-2",
        ]
    )
    assert [t.episodes for t in ds.tasks] == [t.episodes for t in new.tasks]
    assert all("plug" in t.task for t in ds.tasks)  # the metadata as it was written
