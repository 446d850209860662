"""Dataset formats: the Minari layout `zshot collect` writes vs per-episode recorder files.

Collects one insertion dataset (Minari layout), rewrites its episodes as the recorder's
per-episode HDF5 files (what `zshot trials --record` leaves on a robot), exports those back
with `zshot dataset export`, and prints bytes on disk and zshot's load time of each, as
ratios against the recordings measured in the same run (BENCHMARKS.md `## datasets`).

    python bench/dataset_formats.py [NUM_TASKS]      # default 12 tasks x 8 episodes
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from hardware_bridge.config import RecorderConfig
from hardware_bridge.loop import StepRecord
from hardware_bridge.recorder import Recorder
from training.collect import collect_dataset
from training.common.datasets import load_dataset
from training.config import CollectConfig
from training.dataset_cli import export_recordings

ROOT = Path(__file__).resolve().parents[1]


def _size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def _load_s(path: Path, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_dataset(path)
        best = min(best, time.perf_counter() - t0)
    return best


def _as_recordings(minari_root: Path, out: Path) -> None:
    """Every episode of a Minari dataset written through the recorder (as on a robot)."""
    rec = Recorder(out, RecorderConfig(fsync_every=0, compression=None), latent_dim=1)
    with h5py.File(minari_root / "data" / "main_data.hdf5") as h5:
        for name in sorted(h5, key=lambda k: int(k.split("_")[1])):
            g = h5[name]
            obs, act = g["observations"][()], g["actions"][()]
            rew, term, trunc = g["rewards"][()], g["terminations"][()], g["truncations"][()]
            rec.begin_episode(
                {"task": {"json": str(g.attrs["task_json"])}, "plug": str(g.attrs["label"])}
            )
            for t in range(len(act)):
                rec.record(
                    StepRecord(
                        t_wall=float(t),
                        t_mono=float(t),
                        obs=obs[t],
                        commanded=act[t].astype(np.float64),
                        sent=act[t].astype(np.float64),
                        reward=float(rew[t]),
                        terminated=bool(term[t]),
                        truncated=bool(trunc[t]),
                        next_obs=obs[t + 1],
                        z_mean=np.zeros(1),
                        z_var=np.ones(1),
                        latency_s=0.0,
                        flags=0,
                        wrench=np.zeros(6),
                    )
                )
            rec.end_episode({})
    rec.close()


def main() -> None:
    """Print the table rows."""
    n_tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    cfg = CollectConfig.model_validate(
        {
            **__import__("yaml").safe_load((ROOT / "configs/collect/insertion.yaml").read_text()),
            "num_tasks": n_tasks,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        m = collect_dataset(cfg, base / "minari", progress=False)
        collect_s = time.perf_counter() - t0
        _as_recordings(base / "minari", base / "rec")
        t0 = time.perf_counter()
        export_recordings(base / "rec", base / "export")
        export_s = time.perf_counter() - t0
        rows = {
            "recordings (episode_N.h5 per episode)": base / "rec",
            "zshot collect (Minari layout)": base / "minari",
            "zshot dataset export of the recordings": base / "export",
        }
        measured = {label: (_size(d), _load_s(d)) for label, d in rows.items()}
        ref_size, ref_load = next(iter(measured.values()))
        print(
            f"{m['episodes']} episodes, {m['steps']} steps ({n_tasks} tasks); "
            f"collect {collect_s:.1f} s, export {export_s:.2f} s"
        )
        print("| format | files | MB | x recordings | load s | x recordings |")
        print("|---|---|---|---|---|---|")
        for label, d in rows.items():
            size, load = measured[label]
            files = sum(1 for f in d.rglob("*") if f.is_file())
            print(
                f"| {label} | {files} | {size / 1e6:.2f} | {size / ref_size:.2f} | "
                f"{load:.3f} | {load / ref_load:.2f} |"
            )


if __name__ == "__main__":
    main()
