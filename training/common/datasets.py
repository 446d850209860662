"""Multi-task offline datasets: episodes grouped by task, from Minari datasets or recordings.

`load_dataset` reads (docs/OFFLINE.md `## Data`):

- a Minari dataset (training/common/minari_format.py): what `zshot collect` and `zshot dataset
  export` write, or one made by Minari itself (e.g. `minari.DataCollector` around a zshot
  env); each episode's task (with the hidden parameters: socket pose error, clearance,
  friction, ...), label (`plug` in older datasets) and behaviour (`mode`) are its metadata;
- a directory of bridge recordings (`hardware_bridge.recorder`, one HDF5 file per
  episode, read by its `load_recordings`), or one such file; collections written before
  the Minari layout are recordings plus a dataset.json.

zshot's own datasets have a `dataset.json` beside them:

    {"format": "zshot-offline-dataset", "version": 1, "complete": true,
     "episodes": N, "steps": S, "tasks": [...], "behaviours": {...}, "config": {...}}

written with `complete: false` before the first episode and rewritten at the end, so an
interrupted collection is refused on load ("partial dataset") instead of silently training
on a subset. Recordings and Minari datasets from elsewhere have none and load as they are.

`OfflineDataset` holds one transition table per task, (s, a, r, s', done) plus the
behaviour of each transition, and samples PEARL meta-batches from it:

    RL batch      (T, B, .)  uniform over the task's transitions
    context       (T, C, D)  from the whole task ("mixed") or from one behaviour's
                             transitions ("per_behaviour"), D = 2*obs + act + 1
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardware_bridge.recorder import RecordingError, load_recordings
from training.common.minari_format import (
    DATA_DIR,
    MinariFormatError,
    find_data_dir,
    read_minari,
    write_json_atomic,
)

DATASET_FORMAT = "zshot-offline-dataset"
DATASET_VERSION = 1
MANIFEST = "dataset.json"


class DatasetError(ValueError):
    """A dataset is corrupt, truncated, partial or unusable; the message names the file."""


@dataclass
class TaskData:
    """All transitions of one task: arrays (N, .) float32, `behaviour` (N,) int codes."""

    task: dict[str, Any]
    label: str
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray  # (N, 1)
    next_obs: np.ndarray
    dones: np.ndarray  # (N, 1): 1.0 for true terminations only (time-outs bootstrap)
    behaviour: np.ndarray  # (N,) index into OfflineDataset.behaviours
    episodes: int

    def __len__(self) -> int:
        return int(self.obs.shape[0])


@dataclass
class OfflineDataset:
    """Transitions grouped by task; `sample` and `sample_context` build PEARL batches."""

    tasks: list[TaskData]
    behaviours: list[str]
    obs_dim: int
    act_dim: int
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def num_transitions(self) -> int:
        """Transitions over all tasks."""
        return sum(len(t) for t in self.tasks)

    def check_dims(self, obs_dim: int, act_dim: int) -> None:
        """Raise DatasetError unless the dataset matches the env's dims."""
        if (obs_dim, act_dim) != (self.obs_dim, self.act_dim):
            raise DatasetError(
                f"dataset has obs/act dims ({self.obs_dim}, {self.act_dim}); the env has "
                f"({obs_dim}, {act_dim}) (collected on another env?)"
            )

    def obs_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of every observation in the dataset, (obs_dim,) each."""
        obs = np.concatenate([t.obs for t in self.tasks])
        return obs.mean(0), obs.std(0)

    def sample(self, tasks: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """n transitions per task (uniform, with replacement): obs, act, rew, next, done (T, n, .)."""
        out: list[list[np.ndarray]] = [[], [], [], [], []]
        for t in tasks:
            d = self.tasks[int(t)]
            idx = rng.integers(0, len(d), n)
            for k, arr in enumerate((d.obs, d.actions, d.rewards, d.next_obs, d.dones)):
                out[k].append(arr[idx])
        return tuple(np.stack(parts) for parts in out)

    def sample_context(
        self,
        tasks: np.ndarray,
        n: int,
        rng: np.random.Generator,
        per_behaviour: bool = False,
    ) -> np.ndarray:
        """n (s, a, r, s') rows per task: (T, n, 2*obs + act + 1).

        per_behaviour: each task's rows come from one behaviour present in that task, drawn
        uniformly among them (the context-shift remedy, training/algos/offline_pearl/losses.py).
        """
        rows = []
        for t in tasks:
            d = self.tasks[int(t)]
            pool = np.arange(len(d))
            if per_behaviour:
                present = np.unique(d.behaviour)
                b = present[rng.integers(0, len(present))]
                pool = pool[d.behaviour == b]
            idx = pool[rng.integers(0, len(pool), n)]
            rows.append(
                np.concatenate([d.obs[idx], d.actions[idx], d.rewards[idx], d.next_obs[idx]], -1)
            )
        return np.stack(rows).astype(np.float32)


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write dataset.json atomically (temp file, fsync, rename)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        d / MANIFEST, {"format": DATASET_FORMAT, "version": DATASET_VERSION, **manifest}
    )
    return d / MANIFEST


def _read_manifest(d: Path) -> dict[str, Any]:
    path = d / MANIFEST
    if not path.is_file():
        return {}
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable dataset manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a {DATASET_FORMAT} manifest")
    if int(m.get("version", -1)) != DATASET_VERSION:
        raise DatasetError(f"{path}: version {m.get('version')}, this code reads {DATASET_VERSION}")
    if not m.get("complete", False):
        raise DatasetError(
            f"{d}: partial dataset (the collection was interrupted before it finished; "
            "collect again, or delete dataset.json to use the episodes as plain recordings)"
        )
    return m


def _task_key(task: dict[str, Any]) -> str:
    return json.dumps(task, sort_keys=True)


def _recording_episodes(p: Path) -> list[dict[str, Any]]:
    """Bridge recordings (episode_N.h5 files) as per-episode transition arrays."""
    try:
        rec = load_recordings(p)
    except RecordingError as exc:
        raise DatasetError(str(exc)) from None
    out = []
    ends = np.cumsum([int(ep["steps"]) for ep in rec.episodes])  # episodes are contiguous
    for ep, end in zip(rec.episodes, ends, strict=True):
        sel = slice(int(end) - int(ep["steps"]), int(end))
        out.append(
            {
                "name": f"{ep['file']}/{ep['group']}",
                "obs": rec.observations[sel],
                "next_obs": rec.next_observations[sel],
                "actions": rec.actions[sel],
                "rewards": rec.rewards[sel],
                "terminations": rec.terminations[sel],
                "task": ep["task"],
                "label": ep["plug"],  # the recorder's name (insertion: the plug)
                "mode": ep["mode"],
            }
        )
    return out


def _minari_episodes(data_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A Minari dataset (zshot's or anyone's) as per-episode transition arrays."""
    try:
        raw, meta = read_minari(data_dir)
    except MinariFormatError as exc:
        raise DatasetError(str(exc)) from None
    out = []
    for ep in raw:
        obs = ep["observations"]
        out.append(
            {
                "name": ep["name"],
                "obs": obs[:-1],
                "next_obs": obs[1:],
                "actions": ep["actions"],
                "rewards": ep["rewards"],
                "terminations": ep["terminations"],
                "task": ep["task"],
                "label": ep["label"],
                "mode": ep["mode"],
            }
        )
    return out, meta


def load_dataset(path: str | Path) -> OfflineDataset:
    """Load and validate a dataset: a Minari dataset (ROOT or ROOT/data, written by
    `zshot collect`, `zshot dataset export` or Minari itself), a directory of bridge
    recordings, or a single recording file.

    Raises DatasetError naming the file for corrupt, truncated or partial data, for episodes
    without task metadata, and when the episode count differs from the manifest's.
    """
    p = Path(path)
    data_dir = find_data_dir(p) if p.is_dir() else None
    root = p if data_dir is None or data_dir == p / DATA_DIR else data_dir.parent
    manifest = _read_manifest(root) if p.is_dir() else {}
    minari_meta: dict[str, Any] = {}
    if data_dir is not None:
        episodes, minari_meta = _minari_episodes(data_dir)
    else:
        episodes = _recording_episodes(p)
    if manifest and int(manifest.get("episodes", -1)) != len(episodes):
        raise DatasetError(
            f"{p}: manifest lists {manifest.get('episodes')} episodes, found {len(episodes)} "
            "(episodes missing or added)"
        )
    dims = {(e["obs"].shape[1], e["actions"].shape[1]) for e in episodes}
    if len(dims) != 1:
        raise DatasetError(f"{p}: episodes of different obs/act dims {sorted(dims)}")
    behaviours: list[str] = []
    groups: dict[str, dict[str, Any]] = {}
    for ep in episodes:
        task = ep["task"]
        if not isinstance(task, dict) or not task:
            raise DatasetError(
                f"{ep['name']}: no task metadata (no task_json / task/... episode metadata, "
                "no infos/task); offline meta-RL needs to know which task each episode "
                "belongs to (docs/OFFLINE.md)"
            )
        mode = ep["mode"] or "unknown"
        if mode not in behaviours:
            behaviours.append(mode)
        g = groups.setdefault(
            _task_key(task), {"task": task, "label": ep["label"] or "task", "eps": []}
        )
        g["eps"].append(ep)
    tasks: list[TaskData] = []
    for g in groups.values():
        eps = g["eps"]

        def cat(key: str, eps: list[dict[str, Any]] = eps) -> np.ndarray:
            return np.concatenate([e[key] for e in eps])

        obs, actions = cat("obs"), cat("actions")
        if not np.isfinite(obs).all() or not np.isfinite(actions).all():
            raise DatasetError(f"{p}: task {g['label']} holds non-finite observations or actions")
        codes = np.concatenate(
            [np.full(len(e["actions"]), behaviours.index(e["mode"] or "unknown")) for e in eps]
        ).astype(np.int64)
        tasks.append(
            TaskData(
                task=g["task"],
                label=str(g["label"]),
                obs=obs.astype(np.float32),
                actions=actions.astype(np.float32),
                rewards=cat("rewards").astype(np.float32)[:, None],
                next_obs=cat("next_obs").astype(np.float32),
                dones=cat("terminations").astype(np.float32)[:, None],
                behaviour=codes,
                episodes=len(eps),
            )
        )
    (obs_dim, act_dim) = dims.pop()
    return OfflineDataset(
        tasks=tasks,
        behaviours=behaviours,
        obs_dim=int(obs_dim),
        act_dim=int(act_dim),
        manifest=manifest or ({"minari": minari_meta} if minari_meta else {}),
    )
