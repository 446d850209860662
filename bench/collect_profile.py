"""Where one `zshot collect` task's CPU goes, worker side and driver side (issue 22): one
process, one core, no fan-out.

Worker side, per task (`TaskCollector.collect_rows`): building the task's fresh env, playing
its episodes, closing the env, making the rows (the Minari info table). Driver side: the
task's `write_task` into a Minari writer (temp dir), timed per task and under cProfile (the
top functions by own time). CPU seconds (`getrusage`: in all, of them in the kernel, and minor page faults), so a neighbour's load shows
less than in wall-clock figures.

    OMP_NUM_THREADS=1 nice -n 5 python bench/collect_profile.py [--tasks 24] [--episodes 3]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import tempfile
from collections import defaultdict

from bench.ray_overhead import _config, _writer
from training.collect import TaskCollector, episode_rows, write_task
from training.common.rollout import RolloutWorker


def _usage() -> tuple[float, float, int]:
    """(CPU seconds, of them in the kernel, minor page faults) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime, r.ru_minflt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=24)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--top", type=int, default=18)
    args = p.parse_args()
    cfg = _config(args.episodes)
    col = TaskCollector(cfg)
    col.collect_rows(0)  # warm-up
    cpu: dict[str, float] = defaultdict(float)
    sys_cpu: dict[str, float] = defaultdict(float)
    faults: dict[str, int] = defaultdict(int)
    results, steps = [], 0
    for i in range(1, 1 + args.tasks):
        marks = [_usage()]
        worker = RolloutWorker(col.source.make_env, cfg.max_episode_steps)
        marks.append(_usage())
        eps = col._collect(worker, i)
        marks.append(_usage())
        worker.close()
        marks.append(_usage())
        rows = episode_rows(eps)
        marks.append(_usage())
        for k, name in enumerate(("env build", "episodes", "env close", "rows (info table)")):
            cpu[name] += marks[k + 1][0] - marks[k][0]
            sys_cpu[name] += marks[k + 1][1] - marks[k][1]
            faults[name] += marks[k + 1][2] - marks[k][2]
        results.append((i, rows))
        steps += sum(r.steps for r in rows)
    tmp = tempfile.mkdtemp(prefix="zshot-collect-profile-")
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # type: ignore[arg-type]
    writer = _writer(tmp, col, 0)
    u0 = _usage()
    for i, rows in results:
        write_task(writer, col.source, i, rows, stats)
    u1 = _usage()
    cpu["driver: write_task"] = u1[0] - u0[0]
    sys_cpu["driver: write_task"] = u1[1] - u0[1]
    faults["driver: write_task"] = u1[2] - u0[2]
    writer.abort()
    writer = _writer(tmp, col, 1)
    prof = cProfile.Profile()
    prof.enable()
    for i, rows in results:
        write_task(writer, col.source, i, rows, stats)
    prof.disable()
    writer.abort()
    n_eps = sum(len(r) for _, r in results)
    print(
        f"{args.tasks} tasks x {args.episodes} episodes, {steps} steps, load "
        f"{os.getloadavg()[0]:.2f}"
    )
    work = sum(v for k, v in cpu.items() if not k.startswith("driver"))
    for name, sec in cpu.items():
        print(
            f"  {name:<22} {1e3 * sec / args.tasks:7.2f} ms/task  {1e6 * sec / steps:7.1f} µs/step"
            f"  {100 * sec / (work + cpu['driver: write_task']):5.1f} % of the total; "
            f"system {100 * sys_cpu[name] / max(sec, 1e-9):3.0f} %, "
            f"{faults[name] / args.tasks:,.0f} page faults/task"
        )
    print(f"  ({1e3 * cpu['driver: write_task'] / n_eps:.2f} ms per episode written)")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    col.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
