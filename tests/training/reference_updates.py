"""Fixed-seed PEARL and offline-PEARL updates whose results are frozen in
`data/update_reference.npz` (recorded before training/ became a family of algorithms, issue
#18). `test_update_reference.py` replays them: a restructure that changes what an update
computes fails there.

Regenerate only when an update is *meant* to change (say why in the commit):

    python -m tests.training.reference_updates
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.config import CollectConfig, TrainConfig

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "data" / "update_reference.npz"
FINGERPRINT = HERE / "data" / "update_reference.json"
OBS, ACT = 3, 2


def fingerprint() -> dict[str, str]:
    """What bit-identity depends on: the torch build and the CPU kernels it picks."""
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}


def _cfg(**over: object) -> TrainConfig:
    base: dict[str, object] = {
        "env": "point",
        "iterations": 1,
        "initial_steps": 20,
        "tasks_per_iteration": 2,
        "steps_prior": 20,
        "steps_extra_posterior": 20,
        "updates_per_iteration": 5,
        "meta_batch": 3,
        "batch_size": 16,
        "context_size": 8,
        "buffer_capacity": 500,
        "num_train_tasks": 4,
        "sac": {"hidden": [16, 16], "auto_entropy": True},
        "encoder": {"hidden": [16], "latent_dim": 2},
        "eval": {"explore_episodes": 1, "eval_episodes": 1, "max_tasks": 1},
        "eval_every": 0,
        "checkpoint_every": 1,
    }
    base.update(over)
    return TrainConfig.model_validate(base)


def _batch(seed: int) -> Any:
    """The synthetic meta-batch the reference was recorded with (3 tasks, 8 transitions, 5
    context rows, 30 % terminal)."""
    from tests.training.conftest import random_batch

    return random_batch(OBS, ACT, T=3, B=8, C=5, seed=seed)


def _flat(prefix: str, nets: torch.nn.Module) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v.detach().numpy().copy() for k, v in nets.state_dict().items()}


def pearl_updates() -> dict[str, np.ndarray]:
    """Five online PEARL updates (auto temperature) on synthetic batches."""
    from training.algos.pearl.losses import PearlOptimizers
    from training.algos.pearl.losses import pearl_update as update
    from training.algos.pearl.networks import make_nets

    cfg = _cfg()
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    opts = PearlOptimizers.create(nets, cfg)
    for i in range(5):
        update(_batch(i), nets, opts, cfg)
    return _flat("pearl_update", nets)


def offline_updates(critic: str) -> dict[str, np.ndarray]:
    """Five offline PEARL updates (AWAC or IQL critic) on synthetic batches."""
    from training.algos.offline_pearl.losses import offline_update as update
    from training.algos.offline_pearl.networks import make_nets
    from training.algos.pearl.losses import PearlOptimizers

    cfg = _cfg(offline={"critic": critic, "dataset": "unused"})
    torch.manual_seed(0)
    nets = make_nets(OBS, ACT, cfg)
    opts = PearlOptimizers.create(nets, cfg)
    for i in range(5):
        update(_batch(i), nets, opts, cfg)
    return _flat(f"offline_update_{critic}", nets)


def pearl_training_run(root: Path) -> dict[str, np.ndarray]:
    """One iteration of online PEARL on the point task: collection, batches, updates."""
    from training.algos.pearl.trainer import Trainer

    trainer = Trainer(_cfg(seed=3), root / "pearl")
    trainer.run(progress=False)
    return _flat("pearl_run", trainer.nets)


def offline_training_run(root: Path) -> dict[str, np.ndarray]:
    """A collected point dataset (scripted + random behaviours) and 10 offline updates."""
    from training.algos.offline_pearl.trainer import OfflineTrainer
    from training.collect import collect_dataset as collect

    data = root / "data"
    collect(
        CollectConfig.model_validate(
            {
                "env": "point",
                "num_tasks": 3,
                "episodes_per_task": 2,
                "mix": {"scripted": 1, "random": 1, "policy": 0},
            }
        ),
        data,
        progress=False,
    )
    cfg = _cfg(seed=5, offline={"dataset": str(data), "updates": 10, "log_every": 5})
    trainer = OfflineTrainer(cfg, root / "offline")
    trainer.run(progress=False)
    return _flat("offline_run", trainer.nets)


def all_results() -> dict[str, np.ndarray]:
    torch.set_num_threads(1)  # one thread: the same reduction order on every run
    out: dict[str, np.ndarray] = {}
    out.update(pearl_updates())
    out.update(offline_updates("awac"))
    out.update(offline_updates("iql"))
    with tempfile.TemporaryDirectory() as tmp:
        out.update(pearl_training_run(Path(tmp)))
        out.update(offline_training_run(Path(tmp)))
    return out


if __name__ == "__main__":
    results = all_results()
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **results)
    FINGERPRINT.write_text(json.dumps(fingerprint(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(results)} tensors to {REFERENCE} ({fingerprint()})")
