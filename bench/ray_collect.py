"""Collection throughput on Ray: env steps/s with 1 worker (in this process, no Ray) and with
N Ray actors, efficiency = throughput(N) / (N x throughput(1)), and Ray's start-up cost.

The work is `zshot collect`'s own unit (training.collect.TaskCollector.collect: one train
task's episodes, per-task seeds) on the insertion env (configs/collect/insertion.yaml's
behaviours, `--tasks` tasks x `--episodes` episodes). Steady state: each actor is built and
has collected one warm-up task before the clock starts (the one-off costs are printed apart:
`ray.init`, actor start + env build). Wall-clock figures: the machine is shared, so other
jobs' load shows up in them; run it on an idle machine for the real ratio.

    timeout 900 python bench/ray_collect.py [--workers 2] [--tasks 8] [--episodes 2]
"""

from __future__ import annotations

import argparse
import os
import time

from training.collect import TaskCollector
from training.common.parallel import init_ray
from training.config import CollectConfig
from zshot.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(episodes: int) -> CollectConfig:
    path = os.path.join(ROOT, "configs", "collect", "insertion.yaml")
    return load_config(CollectConfig, path, [f"episodes_per_task={episodes}"])


def _steps(episodes: list) -> int:  # type: ignore[type-arg]
    return sum(ep.steps for _, ep, _, _ in episodes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", type=int, default=8, help="timed tasks per measurement")
    p.add_argument("--episodes", type=int, default=2, help="episodes per task")
    args = p.parse_args()
    cfg = _config(args.episodes)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")

    local = TaskCollector(cfg)
    local.collect(0)  # warm-up
    t, cpu = time.perf_counter(), time.process_time()
    steps1 = sum(_steps(local.collect(1 + i)) for i in range(args.tasks))
    tp1 = steps1 / (time.perf_counter() - t)
    per_core = steps1 / (time.process_time() - cpu)
    local.close()
    print(
        f"1 worker (in process): {steps1} steps, {tp1:,.0f} env steps/s wall, "
        f"{per_core:,.0f} per CPU-second (the load-free per-worker rate)"
    )

    t = time.perf_counter()
    init_ray(args.workers)
    t_init = time.perf_counter() - t
    import ray

    actor = ray.remote(num_cpus=1)(TaskCollector)
    t = time.perf_counter()
    actors = [actor.remote(cfg) for _ in range(args.workers)]
    ray.get([a.collect.remote(0) for a in actors])  # warm-up: actor start, env build, task 0
    t_actors = time.perf_counter() - t
    todo = list(range(1, 1 + args.tasks))
    pending = {}
    t = time.perf_counter()
    for a in actors:
        if todo:
            pending[a.collect.remote(todo.pop(0))] = a
    stepsn = 0
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        a = pending.pop(ref)
        stepsn += _steps(ray.get(ref))
        if todo:
            pending[a.collect.remote(todo.pop(0))] = a
    tpn = stepsn / (time.perf_counter() - t)
    ray.shutdown()
    eff = tpn / (args.workers * tp1)
    print(f"{args.workers} Ray workers: {stepsn} steps, {tpn:,.0f} env steps/s wall")
    if stepsn != steps1:
        print("WARNING: the workers collected other episodes than 1 worker did")
    print(f"efficiency tp({args.workers}) / ({args.workers} x tp(1)) = {eff:.2f}  (goal >= 0.9)")
    print(
        f"Ray start-up: ray.init {t_init:.1f} s; {args.workers} actors + warm-up task {t_actors:.1f} s"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
