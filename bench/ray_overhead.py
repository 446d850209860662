"""Where a 2-worker `zshot collect` loses time (issue 22): efficiency = throughput(N) /
(N x throughput(1)) of the product's own loop, with each process's CPU, the workers' idle
gaps and the cost of sending results back.

The loop is `collect_dataset`'s: `WorkerPool` with 2 calls in flight per worker, the driver
writing every task's episodes into a Minari writer (`training.collect.write_task`, in a
temporary directory, aborted at the end) as they come back in task order. 1 worker is the
same loop in this process (the denominator, measured in the same invocation just before).
One invocation is one `--mode`:

- `ray-defaults`: a local Ray with Ray's own settings (`init_ray(lean=False)`: what
  `zshot collect` ran before this bench);
- `ray`: a local Ray as `init_ray` starts it now (`LOCAL_SYSTEM_CONFIG`);
- `procs`: 2 plain processes (multiprocessing, spawned and warmed before the clock) sending
  back the same `EpisodeRows`: the reference without a fan-out library.

In each Ray mode two results formats: `episodes` (the worker sends `Episode` objects with
their per-step info dicts, the driver builds the info table: the product before) and `rows`
(`TaskCollector.collect_rows`: arrays, the table built on the worker: the product now).

Per timed phase it prints, for every process of the fan-out (this driver and all its
descendants, read from /proc: GCS, raylet, dashboard / runtime-env agents, autoscaler
monitor, log monitor, the actors, Ray's idle workers), its CPU in % of one core and its
nice value; the workers' idle gaps (stamped in the worker: from returning a result to
starting the next call); the driver's time in `write_task` (and building the info table
in `episodes`). Lines starting `RESULT` are for bench/ray_overhead_summary.py.

    nice -n 5 python bench/ray_overhead.py --mode ray [--tasks 24] [--episodes 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import shutil
import tempfile
import time
from collections import defaultdict
from typing import Any

import numpy as np

from training.collect import EpisodeRows, TaskCollector, episode_rows, write_task
from training.common.minari_format import MinariWriter, space_json
from training.common.parallel import WorkerPool, init_ray
from training.config import CollectConfig
from zshot.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def _config(episodes: int) -> CollectConfig:
    path = os.path.join(ROOT, "configs", "collect", "insertion.yaml")
    return load_config(CollectConfig, path, [f"episodes_per_task={episodes}"])


class Probe(TaskCollector):
    """`TaskCollector` stamping its calls: the idle gap before each call (since the end of
    its last one) and its busy time."""

    def __init__(self, cfg: CollectConfig) -> None:
        super().__init__(cfg)
        self.reset_stamps()

    def reset_stamps(self) -> int:
        self._last: float | None = None
        self._gaps: list[float] = []
        self._busy = 0.0
        return os.getpid()

    def _stamp(self, fn: Any, index: int) -> Any:
        t = time.monotonic()
        if self._last is not None:
            self._gaps.append(t - self._last)
        out = fn(index)
        self._last = time.monotonic()
        self._busy += self._last - t
        return out

    def episodes(self, index: int) -> Any:
        return self._stamp(self.collect, index)

    def rows(self, index: int) -> Any:
        return self._stamp(self.collect_rows, index)

    def stamps(self) -> tuple[list[float], float]:
        return self._gaps, self._busy


def _procs() -> dict[int, tuple[int, str, float, int]]:
    """pid -> (ppid, name, CPU seconds, nice) of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = tail.split()
        comm = head.split("(", 1)[1]
        out[int(d)] = (
            int(fields[1]),
            _name(comm, cmd),
            (float(fields[11]) + float(fields[12])) / TICK,
            int(fields[16]),
        )
    return out


def _name(comm: str, cmd: str) -> str:
    for key, name in (
        ("gcs_server", "gcs_server"),
        ("raylet/raylet", "raylet"),
        ("DashboardAgent", "dashboard agent"),
        ("RuntimeEnvAgent", "runtime-env agent"),
        ("dashboard/dashboard.py", "dashboard (minimal head)"),
        ("autoscaler/_private/monitor.py", "autoscaler monitor"),
        ("log_monitor.py", "log monitor"),
        ("ray::IDLE", "ray idle worker"),
        ("ray::Probe", "worker"),
        ("multiprocessing", "worker"),
    ):
        if key in cmd or key in comm:
            return name
    return comm


def _tree(procs: dict[int, tuple[int, str, float, int]]) -> set[int]:
    pids, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        top = frontier.pop()
        kids = [c for c, v in procs.items() if v[0] == top]
        pids.update(kids)
        frontier.extend(kids)
    return pids


class CpuWatch:
    """CPU seconds of this process and its descendants between `start` and `stop`."""

    def start(self) -> None:
        self.before = _procs()
        self.t = time.perf_counter()

    def stop(self) -> tuple[float, dict[str, float], dict[str, set[int]]]:
        wall = time.perf_counter() - self.t
        after = _procs()
        cpu: dict[str, float] = defaultdict(float)
        nice: dict[str, set[int]] = defaultdict(set)
        for pid in _tree(after):
            _ppid, name, sec, ni = after[pid]
            name = "driver" if pid == os.getpid() else name
            cpu[name] += sec - (self.before[pid][2] if pid in self.before else 0.0)
            nice[name].add(ni)
        return wall, dict(cpu), dict(nice)


def _writer(tmp: str, local: TaskCollector, k: int) -> MinariWriter:
    env = local.worker.env
    return MinariWriter(
        os.path.join(tmp, f"w{k}"),
        dataset_id=f"bench/ray-overhead-{k}-v0",
        observation_space=space_json(env.observation_space),
        action_space=space_json(env.action_space),
    )


def _drive(results: Any, writer: MinariWriter, source: Any, convert: bool) -> tuple[int, float]:
    """Write every task as `collect_dataset` does; (steps, driver seconds in conversion +
    write_task)."""
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # type: ignore[arg-type]
    steps, busy = 0, 0.0
    try:
        for ti, eps in results:
            t = time.perf_counter()
            rows = episode_rows(eps) if convert else eps
            write_task(writer, source, ti, rows, stats)
            busy += time.perf_counter() - t
            steps += sum(r.steps for r in rows)
    finally:
        writer.abort()
    return steps, busy


_PROC: TaskCollector | None = None


def _proc_init(cfg: CollectConfig) -> None:
    global _PROC
    _PROC = TaskCollector(cfg)
    _PROC.collect_rows(0)


def _proc_rows(index: int) -> tuple[int, list[EpisodeRows]]:
    assert _PROC is not None
    return index, _PROC.collect_rows(index)


def _pickle_cost(obj: Any) -> str:
    dumps, loads = [], []
    for _ in range(20):
        t = time.perf_counter()
        blob = pickle.dumps(obj, protocol=5)
        dumps.append(time.perf_counter() - t)
        t = time.perf_counter()
        pickle.loads(blob)
        loads.append(time.perf_counter() - t)
    return (
        f"{len(blob) / 1e3:.0f} KB, dump {1e3 * min(dumps):.2f} ms, load {1e3 * min(loads):.2f} ms"
    )


def _report(
    label: str,
    rep: int,
    steps: int,
    wall: float,
    tp1: float,
    cpu: dict[str, float],
    nice: dict[str, set[int]],
    n: int,
    extra: str,
) -> None:
    eff = steps / wall / (n * tp1)
    total = sum(cpu.values())
    print(
        f"[{rep}] {label:<22} {steps / wall:>6,.0f} steps/s  efficiency {eff:.3f}  "
        f"CPU {100 * total / wall:.0f} % of a core in all  {extra}"
    )
    for name, sec in sorted(cpu.items(), key=lambda kv: -kv[1]):
        if sec <= 0:
            continue
        print(f"        {name:<26} {100 * sec / wall:6.1f} %  nice {sorted(nice[name])}")
    work = cpu.get("worker", 0.0)
    print(
        f"RESULT {label} rep={rep} eff={eff:.4f} tp={steps / wall:.1f} tp1={tp1:.1f} "
        f"other_cpu_pct={100 * (total - work) / wall:.2f} worker_cpu_pct={100 * work / wall:.2f} "
        f"load={os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("ray-defaults", "ray", "procs"), required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", type=int, default=24, help="timed tasks per measurement")
    p.add_argument("--episodes", type=int, default=3, help="episodes per task")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--variants",
        default="episodes,rows",
        help="Ray modes: the results formats to time, comma-separated (episodes, rows)",
    )
    p.add_argument("--label", default="", help="a prefix for the settings' names (e.g. before)")
    args = p.parse_args()
    formats = [v for v in args.variants.split(",") if v]
    if not formats or set(formats) - {"episodes", "rows"}:
        p.error(f"--variants: episodes and/or rows, got {args.variants!r}")
    pre = f"{args.label} " if args.label else ""
    cfg, n = _config(args.episodes), args.workers
    tasks = list(range(1, 1 + args.tasks))
    print(
        f"mode {args.mode}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    local = Probe(cfg)
    local.rows(0)  # warm-up
    source = local.source
    print(
        f"one task's result: as episodes {_pickle_cost(local.collect(1))}; "
        f"as rows {_pickle_cost(local.collect_rows(1))}"
    )
    tmp = tempfile.mkdtemp(prefix="zshot-ray-overhead-")
    one = WorkerPool(Probe, (cfg,), workers=1, local=local)
    pool: Any = None
    ray_mod: Any = None
    if args.mode == "procs":
        pool = mp.get_context("spawn").Pool(n, _proc_init, (cfg,))
        pool.map(_proc_rows, [0] * n, chunksize=1)
        variants = [(f"{pre}procs rows", "rows")]
    else:
        t = time.perf_counter()
        init_ray(n, lean=args.mode == "ray")
        t_init = time.perf_counter() - t
        import ray as ray_mod

        t = time.perf_counter()
        pool = WorkerPool(Probe, (cfg,), workers=n, in_flight=2)
        list(pool.map("rows", [0] * n))  # actors built, envs warm
        print(f"ray.init {t_init:.1f} s; {n} actors + warm-up task {time.perf_counter() - t:.1f} s")
        variants = [(f"{pre}{args.mode} {v}", v) for v in formats]
    watch = CpuWatch()
    k = 0
    for rep in range(args.repeats):
        watch.start()
        steps1, busy1 = _drive(one.map("rows", tasks), _writer(tmp, local, k), source, False)
        wall1, cpu1, nice1 = watch.stop()
        k += 1
        tp1 = steps1 / wall1
        _report(
            f"{pre}1 worker",
            rep,
            steps1,
            wall1,
            tp1,
            cpu1,
            nice1,
            1,
            f"driver in write_task {100 * busy1 / wall1:.1f} %",
        )
        for label, method in variants:
            writer = _writer(tmp, local, k)
            k += 1
            if args.mode == "procs":
                watch.start()
                steps, busy = _drive(
                    pool.imap(_proc_rows, tasks, chunksize=1), writer, source, False
                )
                wall, cpu, nice = watch.stop()
                extra = f"driver in write_task {100 * busy / wall:.1f} %"
            else:
                ray_mod.get([a.reset_stamps.remote() for a in pool._actors])
                watch.start()
                steps, busy = _drive(pool.map(method, tasks), writer, source, method == "episodes")
                wall, cpu, nice = watch.stop()
                stamps = ray_mod.get([a.stamps.remote() for a in pool._actors])
                gaps = [g for gs, _ in stamps for g in gs]
                idle = 1 - sum(b for _, b in stamps) / (n * wall)
                extra = (
                    f"driver in conversion + write_task {100 * busy / wall:.1f} %; worker "
                    f"gaps between calls median {1e3 * np.median(gaps):.1f} ms, max "
                    f"{1e3 * max(gaps):.1f} ms ({len(gaps)}); workers idle {100 * idle:.1f} % of the wall"
                )
            same = "" if steps == steps1 else "  WARNING: other steps than 1 worker's"
            _report(label, rep, steps, wall, tp1, cpu, nice, n, extra + same)
    if args.mode == "procs":
        pool.close()
        pool.join()
    else:
        pool.close()
        # idle cost of Ray's own processes, the actors killed: 5 s
        watch.start()
        time.sleep(5)
        wall, cpu, _ = watch.stop()
        cells = ", ".join(
            f"{k} {100 * v / wall:.1f} %"
            for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
            if v > 0
        )
        print(f"idle 5 s after the actors ended: {cells}")
        ray_mod.shutdown()
    local.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
