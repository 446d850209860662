"""PEARL's online collection (`zshot train --workers N`) on Ray: env steps/s of one refresh
round with 1 worker (the trainer's own process) and N Ray actors, efficiency =
throughput(N) / (N x throughput(1)).

The insertion recipe (configs/train/insertion.yaml: 10 tasks per round, 100 prior + 100
posterior steps each, 2x128 policy and encoder) on its first `--train-tasks` train tasks;
both trainers do their initial collection (and the N-worker one its actors' start) before
the clock. Each repeat times one round on each, one after the other, with the same tasks
and the same weights (the rounds are the same: the step counts are checked). Wall clock
on a shared machine: read the ratios of one repeat, not the absolute rates.

    timeout 1800 nice -n 10 python bench/ray_train_collect.py [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from training.algos.pearl.collection import Unit, refresh_phases
from training.algos.pearl.trainer import Trainer
from training.common.parallel import init_ray
from training.config import TrainConfig
from zshot.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-tasks", type=int, default=20)
    p.add_argument("--run-dir", default="/tmp/zshot-bench-ray-train")
    args = p.parse_args()
    path = os.path.join(ROOT, "configs", "train", "insertion.yaml")
    sets = [f"num_train_tasks={args.train_tasks}", "initial_steps=20"]
    cfg = load_config(TrainConfig, path, sets)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    one = Trainer(cfg, os.path.join(args.run_dir, "one"))
    one._initial_collection()
    init_ray(args.workers)
    many = Trainer(
        cfg.model_copy(update={"workers": args.workers}), os.path.join(args.run_dir, "n")
    )
    t = time.perf_counter()
    many._initial_collection()  # the actors' start, their envs and the initial round
    print(f"{args.workers} actors' start + initial round: {time.perf_counter() - t:.1f} s")
    rng = np.random.default_rng(0)
    effs = []
    for rep in range(args.repeats):
        tasks = rng.choice(args.train_tasks, size=cfg.tasks_per_iteration, replace=False)
        units = [Unit(int(k), rep + 2, refresh_phases(cfg)) for k in tasks]
        rates = []
        for trainer in (one, many):
            before = trainer.env_steps
            t = time.perf_counter()
            trainer.collect(units)
            rates.append((trainer.env_steps - before, time.perf_counter() - t))
        (s1, w1), (sn, wn) = rates
        eff = (sn / wn) / (args.workers * s1 / w1)
        effs.append(eff)
        same = "" if s1 == sn else "  WARNING: other steps than 1 worker's"
        print(
            f"[{rep}] load {os.getloadavg()[0]:.2f}; 1 worker {s1 / w1:,.0f} steps/s, "
            f"{args.workers} workers {sn / wn:,.0f} steps/s; efficiency {eff:.2f}{same}"
        )
    many.close()
    one.close()
    print("efficiency " + " ".join(f"{e:.2f}" for e in effs) + f", median {np.median(effs):.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
