"""MAML's adaptation curve: the return after 0, 1, .., S inner policy-gradient steps (each
on K fresh episodes of the policy adapted so far) on a run's test tasks, from the
meta-trained policy and, as the paper's comparison, from a freshly initialised one (the
same config, its observation normaliser set the same way). The gap at step 0 is what the
meta-training bought without adaptation, the slope what it bought for adaptation.

    python bench/maml_adaptation.py RUN_DIR [--steps 3] [--tasks 6] [--seeds 0,1]
        [--png docs/img/maml_point_adaptation.png]

Prints one row per policy (mean return over tasks and seeds by step, and its standard
error over tasks x seeds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.algos.maml.trainer import MAMLTrainer
from training.common.checkpoint import CHECKPOINT
from training.config import TrainConfig


def curve(trainer: MAMLTrainer, steps: int, seeds: list[int]) -> np.ndarray:
    """(tasks x seeds, steps + 1) returns."""
    rows = []
    for s in seeds:
        rows.extend(
            t["returns"] for t in trainer.adaptation_curve(steps, seed_offset=1000 + s)["tasks"]
        )
    return np.asarray(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--tasks", type=int, default=6)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--png")
    args = p.parse_args()
    run = Path(args.run)
    trained = MAMLTrainer(_cfg(run, args.tasks), run)
    trained.load_checkpoint(run / CHECKPOINT)
    fresh = MAMLTrainer(_cfg(run, args.tasks), run / "unused")
    fresh._initial_stats()  # the normaliser as a run's first iteration sets it
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {
        "meta-trained": curve(trained, args.steps, seeds),
        "fresh init": curve(fresh, args.steps, seeds),
    }
    print(f"{'policy':<14}" + "".join(f"{f'step {s}':>16}" for s in range(args.steps + 1)))
    for name, r in results.items():
        se = r.std(0, ddof=1) / np.sqrt(len(r))
        print(
            f"{name:<14}"
            + "".join(f"{m:>9.2f} ± {e:<4.2f}" for m, e in zip(r.mean(0), se, strict=True))
        )
    print(f"({len(r)} task x seed curves each; K = {trained.cfg.maml.episodes_per_task} episodes per step, "
          f"inner lr {trained.cfg.maml.inner_lr}; run {run}, iteration {trained.iteration})")  # fmt: skip
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, r in results.items():
            se = r.std(0, ddof=1) / np.sqrt(len(r))
            ax.errorbar(
                range(args.steps + 1), r.mean(0), yerr=se, marker="o", capsize=3, label=name
            )
        ax.set_xlabel("inner policy-gradient steps")
        ax.set_ylabel("mean episode return")
        ax.set_xticks(range(args.steps + 1))
        ax.legend()
        fig.tight_layout()
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=100)
        print(f"saved {args.png}")


def _cfg(run: Path, tasks: int) -> TrainConfig:
    import yaml

    cfg = TrainConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    return cfg.model_copy(update={"maml": cfg.maml.model_copy(update={"eval_tasks": tasks})})


if __name__ == "__main__":
    main()
