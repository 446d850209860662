"""`zshot dataset export RECORDING_DIR --out DIR`: bridge recordings as a Minari dataset.

The recorder keeps its crash-safe format on the robot (a write-ahead log per episode, one
HDF5 file per finished episode: hardware_bridge/recorder.py); this turns a finished
recording directory into the Minari layout `zshot collect` writes (training/common/minari_format.py),
so `minari.load_dataset`, `minari.MinariDataset` and zshot's offline training open it.

Per episode: observations [T+1], actions (the action *sent*, after safety) [T], rewards,
terminations, truncations [T]; infos/<key> [T+1] (Minari's convention: row 0 is the reset's
info, which a recording does not have: NaN for floats, 0 for ints) with timestamps,
t_monotonic, latency_s, flags, z_mean, z_var, wrench and commanded_actions; metadata task
(task_json + task/<param>), label (the recording's `plug`), mode, recovered, summary,
source_file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hardware_bridge.recorder import RecordingError, load_recordings
from training.common.datasets import MANIFEST, write_manifest
from training.common.minari_format import (
    MinariFormatError,
    MinariWriter,
    box_space_json,
    dataset_id_for,
    find_data_dir,
    resolve_out,
    space_json,
)

_INFO_KEYS = ("timestamps", "t_monotonic", "latency_s", "flags", "z_mean", "z_var", "wrench")


def _with_reset_row(arr: np.ndarray) -> np.ndarray:
    """[T, ...] per-step values as Minari's [T+1, ...]: a first row for the reset (unknown)."""
    fill = np.nan if arr.dtype.kind == "f" else 0
    return np.concatenate([np.full((1, *arr.shape[1:]), fill, arr.dtype), arr])


def export_recordings(
    recording: str | Path,
    out: str | Path,
    dataset_id: str | None = None,
    env_id: str | None = None,
) -> dict[str, Any]:
    """Write the episodes of a recording directory as a Minari dataset at `out`; returns
    dataset.json's content. `env_id`: a registered gymnasium id whose spaces and spec the
    dataset states (default: spaces from the data, no env spec)."""
    src, root = Path(recording), Path(out)
    if (root / MANIFEST).exists() or find_data_dir(root) is not None:
        raise MinariFormatError(f"{root} already holds a dataset; choose another --out")
    try:
        rec = load_recordings(src)
    except RecordingError as exc:
        raise MinariFormatError(str(exc)) from None
    ds_id = dataset_id_for(root, dataset_id)
    obs_dim, act_dim = int(rec.observations.shape[1]), int(rec.actions.shape[1])
    env_spec = None
    if env_id is not None:
        import gymnasium as gym  # lazy: only with --env-id

        import sim  # noqa: F401  (registers the zshot ids; lazy: pybullet only then)

        try:
            spec = gym.spec(env_id)
        except gym.error.Error as exc:
            raise MinariFormatError(f"--env-id {env_id!r}: {exc}") from None
        env = gym.make(spec)
        try:
            obs_space, act_space = space_json(env.observation_space), space_json(env.action_space)
            if env.observation_space.shape != (obs_dim,) or env.action_space.shape != (act_dim,):
                raise MinariFormatError(
                    f"--env-id {env_id}: spaces {env.observation_space.shape} / "
                    f"{env.action_space.shape} differ from the recording's ({obs_dim},) / "
                    f"({act_dim},)"
                )
        finally:
            env.close()
        env_spec = str(spec.to_json())
    else:
        inf = np.full(obs_dim, np.inf)
        obs_space = box_space_json(-inf, inf)
        bound = 1.0 if np.abs(rec.actions).max(initial=0.0) <= 1.0 else np.inf
        act_space = box_space_json(np.full(act_dim, -bound), np.full(act_dim, bound))
    writer = MinariWriter(
        root,
        dataset_id=ds_id,
        observation_space=obs_space,
        action_space=act_space,
        env_spec=env_spec,
    )
    tasks: dict[str, dict[str, Any]] = {}
    try:
        for ep in rec.episodes:
            with h5py.File(ep["file"], "r") as h5:
                g = h5[ep["group"]]
                infos: dict[str, np.ndarray] = {}
                for key in _INFO_KEYS:
                    if f"infos/{key}" in g:
                        infos[key] = _with_reset_row(np.asarray(g[f"infos/{key}"][()]))
                if "commanded_actions" in g:
                    infos["commanded_actions"] = _with_reset_row(
                        np.asarray(g["commanded_actions"][()])
                    )
                summary = json.loads(g.attrs.get("summary", "{}"))
                writer.add_episode(
                    g["observations"][()],
                    g["actions"][()],
                    g["rewards"][()],
                    g["terminations"][()],
                    g["truncations"][()],
                    infos,
                    {
                        "task": ep["task"],
                        "label": ep["plug"],  # the recorder's name: the plug
                        "mode": ep["mode"],
                        "recovered": ep["recovered"],
                        "summary": summary if isinstance(summary, dict) else {},
                        "source_file": Path(ep["file"]).name,
                    },
                )
            key = json.dumps(ep["task"], sort_keys=True)
            row = tasks.setdefault(key, {"label": ep["plug"], "task": ep["task"], "episodes": 0})
            row["episodes"] += 1
    except BaseException:
        writer.abort()
        raise
    writer.close(
        author="zshot dataset export",
        algorithm_name="+".join(sorted({e["mode"] or "unknown" for e in rec.episodes})),
        description=f"zshot robot recordings exported from {src.resolve().name}",
        zshot={"source": str(src.resolve()), "tasks": len(tasks)},
    )
    manifest = {
        "complete": True,
        "dataset_id": ds_id,
        "source": str(src.resolve()),
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "episodes": len(rec.episodes),
        "steps": int(rec.actions.shape[0]),
        "tasks": list(tasks.values()),
    }
    write_manifest(root, manifest)
    return manifest


def main(argv: Sequence[str]) -> int:
    """`zshot dataset export RECORDING_DIR (--out DIR | --dataset-id ID) [--env-id GYM_ID]`."""
    p = argparse.ArgumentParser(
        prog="zshot dataset", description="Offline datasets in Minari's layout."
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="export bridge recordings (zshot trials --record) to Minari")
    e.add_argument("recording", help="a recording directory (episode_NNNNNN.h5 files)")
    e.add_argument("--out", help="dataset directory to create (default: $MINARI_DATASETS_PATH/ID)")
    e.add_argument("--dataset-id", help="Minari dataset id, (namespace/)name-vN")
    e.add_argument(
        "--env-id", help="gymnasium id whose spaces and spec to record (e.g. zshot/Insertion-v0)"
    )
    args = p.parse_args(list(argv))
    out = resolve_out(args.out, args.dataset_id, e.error)
    try:
        m = export_recordings(args.recording, out, args.dataset_id, args.env_id)
    except MinariFormatError as exc:
        print(f"zshot dataset: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {out} (Minari dataset {m['dataset_id']}): {m['episodes']} episodes, "
        f"{m['steps']} steps, {len(m['tasks'])} tasks"
    )
    return 0
