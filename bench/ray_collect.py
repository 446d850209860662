"""Collection throughput on Ray: env steps/s with 1 worker (in this process, no Ray) and with
N Ray actors, efficiency = throughput(N) / (N x throughput(1)), and Ray's start-up cost.

The work is `zshot collect`'s own unit (training.collect.TaskCollector.collect: one train
task's episodes, per-task seeds) on the insertion env (configs/collect/insertion.yaml's
behaviours, `--tasks` tasks x `--episodes` episodes). Steady state: each actor is built and
has collected one warm-up task before the clock starts (the one-off costs are printed apart:
`ray.init`, actor start + env build).

Every repeat measures, one after the other on the same tasks, so that the neighbours' load
hits them alike (the machine is shared: read the ratios, not the absolute rates):

- `1 worker`: in this process, no Ray (the denominator of every efficiency);
- `ray in_flight=1 episodes`: N actors, one call queued per actor, the episodes sent back
  as `Episode` objects with their per-step info dicts (issue 22's first version);
- `ray in_flight=2 episodes`: two calls queued per actor (the actor starts its next task
  while the driver takes the last one's result: what `zshot collect` does now);
- `ray in_flight=2 rows`: as above, the episodes sent back as arrays only (the info dicts
  turned into the Minari info table on the worker);
- `N processes, no Ray`: N plain processes (multiprocessing, spawned and warmed up before
  the clock) each collecting its share, nothing but the step count sent back: the
  reference, what this machine gives N processes without any fan-out library.

Besides, each fan-out's CPU efficiency (CPU seconds per step of the 1-worker run over
those of every process of the fan-out: driver, GCS, raylet and actors, read from /proc):
the fan-out's own overhead, less moved by the neighbours than the wall clock (contention
still costs CPU per step: compare the no-Ray row), the driver's share of a core, and what
pickling one task's result costs.

    timeout 1800 nice -n 10 python bench/ray_collect.py [--workers 2] [--tasks 16] \
        [--episodes 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import time
from typing import Any

import numpy as np

from training.collect import EpisodeRows, TaskCollector
from training.common.parallel import init_ray
from training.config import CollectConfig
from zshot.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(episodes: int) -> CollectConfig:
    path = os.path.join(ROOT, "configs", "collect", "insertion.yaml")
    return load_config(CollectConfig, path, [f"episodes_per_task={episodes}"])


def _steps(episodes: list[Any]) -> int:
    return sum(int(ep.steps if isinstance(ep, EpisodeRows) else ep[1].steps) for ep in episodes)


class BenchCollector(TaskCollector):
    """`collect` as `zshot collect` runs it, plus the two other ways to send it back."""

    def rows(self, index: int) -> list[EpisodeRows]:
        """Task `index`'s episodes as arrays (`collect_rows`: what `zshot collect` sends)."""
        return self.collect_rows(index)

    def count(self, index: int) -> int:
        """Only the step count (the no-Ray ceiling sends nothing else back)."""
        return _steps(self.collect(index))


_PROC: BenchCollector | None = None


def _proc_init(cfg: CollectConfig) -> None:
    global _PROC
    _PROC = BenchCollector(cfg)
    _PROC.collect(0)  # warm-up, as the actors'


def _proc_count(index: int) -> int:
    assert _PROC is not None
    return _PROC.count(index)


def _cpu_seconds(pids: set[int] | None = None) -> tuple[float, set[int]]:
    """CPU seconds (user + system) of this process and all its descendants (the local Ray's
    GCS, raylet and actors; the process pool), or of `pids` only; with the pids counted."""
    parent: dict[int, int] = {}
    ticks: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parent[int(d)] = int(fields[1])
        ticks[int(d)] = float(fields[11]) + float(fields[12])  # utime + stime
    if pids is None:
        pids, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            top = frontier.pop()
            kids = [c for c, pp in parent.items() if pp == top]
            pids.update(kids)
            frontier.extend(kids)
    return sum(ticks.get(q, 0.0) for q in pids) / os.sysconf("SC_CLK_TCK"), pids


def _summary(title: str, table: dict[str, list[float]]) -> None:
    print(title)
    for label, effs in table.items():
        cells = " ".join(f"{e:.2f}" for e in effs)
        print(f"  {label:<26} {cells}  median {np.median(effs):.2f}")


def _pickle_times(obj: Any, repeats: int = 20) -> tuple[bytes, float, float]:
    """The pickle of `obj` and the best of `repeats` dump and load times (s)."""
    dumps, loads = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        blob = pickle.dumps(obj, protocol=5)
        dumps.append(time.perf_counter() - t)
        t = time.perf_counter()
        pickle.loads(blob)
        loads.append(time.perf_counter() - t)
    return blob, min(dumps), min(loads)


def _on_ray(actors: list[Any], method: str, tasks: list[int], in_flight: int) -> tuple[int, float]:
    """(steps, driver CPU seconds) of `tasks` over `actors`, `in_flight` calls per actor;
    the driver blocks in ray.wait."""
    import ray

    todo, pending, steps = list(tasks), {}, 0
    cpu = time.process_time()
    for a in actors:
        for _ in range(in_flight):
            if todo:
                pending[getattr(a, method).remote(todo.pop(0))] = a
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        a = pending.pop(ref)
        steps += _steps(ray.get(ref))
        if todo:
            pending[getattr(a, method).remote(todo.pop(0))] = a
    return steps, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", type=int, default=8, help="timed tasks per measurement")
    p.add_argument("--episodes", type=int, default=2, help="episodes per task")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    cfg, n = _config(args.episodes), args.workers
    tasks = list(range(1, 1 + args.tasks))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")

    local = BenchCollector(cfg)
    local.collect(0)  # warm-up
    blob, t_pickle, t_unpickle = _pickle_times(local.collect(1))
    blob_rows, t_pickle_rows, t_unpickle_rows = _pickle_times(local.rows(1))

    t = time.perf_counter()
    init_ray(n)
    t_init = time.perf_counter() - t
    import ray

    actor: Any = ray.remote(num_cpus=1)(BenchCollector)
    t = time.perf_counter()
    actors = [actor.remote(cfg) for _ in range(n)]
    ray.get([a.collect.remote(0) for a in actors])  # warm-up: actor start, env build, task 0
    t_actors = time.perf_counter() - t
    pool = mp.get_context("spawn").Pool(n, _proc_init, (cfg,))
    pool.map(_proc_count, [0] * n, chunksize=1)  # every process built (and warm)
    pool_pids = {int(proc.pid) for proc in pool._pool}  # type: ignore[attr-defined]

    variants = [
        ("ray in_flight=1 episodes", "collect", 1),
        ("ray in_flight=2 episodes", "collect", 2),
        ("ray in_flight=2 rows", "rows", 2),
    ]
    table: dict[str, list[float]] = {}
    cpu_table: dict[str, list[float]] = {}
    for rep in range(args.repeats):
        t, cpu = time.perf_counter(), time.process_time()
        steps1 = sum(_steps(local.collect(i)) for i in tasks)
        tp1 = steps1 / (time.perf_counter() - t)
        per_core = steps1 / (time.process_time() - cpu)
        print(
            f"[{rep}] load {os.getloadavg()[0]:.2f}; 1 worker: {steps1} steps, {tp1:,.0f} "
            f"steps/s wall, {per_core:,.0f} per CPU-second"
        )
        cpu_step1 = (time.process_time() - cpu) / steps1
        for label, method, in_flight in variants:
            ray_pids = _cpu_seconds()[1] - pool_pids
            cpu0 = _cpu_seconds(ray_pids)[0]
            t = time.perf_counter()
            steps, driver_cpu = _on_ray(actors, method, tasks, in_flight)
            wall = time.perf_counter() - t
            cpu_eff = cpu_step1 / ((_cpu_seconds(ray_pids)[0] - cpu0) / steps)
            eff = steps / wall / (n * tp1)
            table.setdefault(label, []).append(eff)
            cpu_table.setdefault(label, []).append(cpu_eff)
            same = "" if steps == steps1 else "  WARNING: other episodes than 1 worker's"
            print(
                f"[{rep}]   {label:<26} {steps / wall:>7,.0f} steps/s  efficiency {eff:.2f}  "
                f"CPU efficiency {cpu_eff:.2f}  driver CPU {100 * driver_cpu / wall:.0f} % "
                f"of a core{same}"
            )
        cpu0 = _cpu_seconds(pool_pids)[0]
        t = time.perf_counter()
        steps = sum(pool.map(_proc_count, tasks, chunksize=1))
        wall = time.perf_counter() - t
        cpu_eff = cpu_step1 / ((_cpu_seconds(pool_pids)[0] - cpu0) / steps)
        eff = steps / wall / (n * tp1)
        label = f"{n} processes, no Ray"
        table.setdefault(label, []).append(eff)
        cpu_table.setdefault(label, []).append(cpu_eff)
        print(
            f"[{rep}]   {label:<26} {steps / wall:>7,.0f} steps/s  efficiency {eff:.2f}  "
            f"CPU efficiency {cpu_eff:.2f}"
        )
    pool.close()
    pool.join()
    ray.shutdown()
    local.close()
    _summary(f"\nefficiency tp({n}) / ({n} x tp(1)), {args.repeats} repeats (goal >= 0.9):", table)
    _summary(
        "CPU efficiency = CPU per step of 1 worker / of every process of the fan-out (driver, "
        "GCS, raylet, actors; the pool's processes):",
        cpu_table,
    )
    print(
        f"one task's result pickled (worker) / unpickled (driver), best of 20: as episodes "
        f"{len(blob) / 1e3:.0f} KB, {1e3 * t_pickle:.2f} / {1e3 * t_unpickle:.2f} ms; as rows "
        f"{len(blob_rows) / 1e3:.0f} KB, {1e3 * t_pickle_rows:.2f} / {1e3 * t_unpickle_rows:.2f} ms"
    )
    print(f"Ray start-up: ray.init {t_init:.1f} s; {n} actors + warm-up task {t_actors:.1f} s")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
