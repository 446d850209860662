"""Ceiling bench of an rdistill run (training/algos/rdistill/; BENCHMARKS.md `### rdistill's
ceiling`): where are the student's insertions lost, in finding the hole or in using it?

The student is a GRU with no explicit estimate, so its "estimate" is its history. Per test
task, K exploration then N evaluation episodes in a row (one hidden state, as `zshot eval`
runs a task), the same reset seeds in every column, each column in a fresh env (so the
script's K episodes are bit-identical in the two columns it drives):

- spiral-memory:    the teacher alone (sim.spiral.MemorySpiralPolicy, the run's
                    `rdistill.teacher`): the scripted controller the student imitates;
- script explores:  the teacher drives the K episodes, the student's GRU fed what was
                    executed, then the student drives the N: its skill when its history
                    holds a search that (mostly) found the hole;
- own:              the student drives all K + N, what `zshot eval` measures.

Success counts the N evaluation episodes only. `found` is the script's exploration finding
the hole at least once (ok/K episodes in the column's K); `reuse` is the script-explores
column on those tasks alone: the student's use of a found pose. On those tasks the bench
also prints where each evaluation episode first reaches the socket face (within 0.5 mm):
the median lateral and yaw error to the true socket, for the script and for the student
after the script's search: how precisely each recalls the found pose (the env's privileged
info, read by this bench only). Torch on CPU, the student's
mean action; in `known` no search is needed, so its columns are the skill with the pose
known. Seeded; prints a per-plug table, `--json` writes the counts.

    python bench/rdistill_ceiling.py runs/rd/rlS-s0 --profile hard --tasks-per-plug 5 -n 10
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.algos.rdistill.trainer import ShadowTeacher, run_trial
from training.algos.rl2.networks import RL2Nets
from training.common.tasks import make_task_source, select_test_tasks
from training.registry import load_run
from zshot.config import override_config

COLUMNS = ("spiral-memory", "script explores", "own")
TOUCH_MM = -0.5  # insertion depth (mm) at which the plug counts as at the socket face


class FirstTouch:
    """The env, recording per episode the privileged errors (info's lateral_error_mm and
    yaw_error_rad, in deg) at the first step the plug is within 0.5 mm of the socket face;
    None when it never gets there. Diagnostics of this bench only."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.touches: list[tuple[float, float] | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, **kw: Any) -> Any:
        self.touches.append(None)
        return self.env.reset(**kw)

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        info = out[4]
        if self.touches[-1] is None and info["insertion_depth_mm"] > TOUCH_MM:
            self.touches[-1] = (
                float(info["lateral_error_mm"]),
                math.degrees(float(info["yaw_error_rad"])),
            )
        return out


def ceiling(
    run_dir: str | Path,
    profile: str,
    k: int,
    n: int,
    tasks_per_plug: int | None,
    seed: int,
    progress: bool = True,
) -> dict[str, Any]:
    """The counts per plug: each column's eval successes, the script's exploration
    successes, tasks it found the hole on, and reuse (successes, episodes) on those."""
    try:
        run = load_run(run_dir)
    except FileNotFoundError as exc:
        raise SystemExit(f"rdistill_ceiling: {exc}") from None
    if run.algorithm.name != "rdistill":
        raise SystemExit(f"{run_dir}: a run of algo {run.algorithm.name!r}, not rdistill")
    cfg = override_config(run.cfg, [f"profile={profile}"], f"{run_dir}'s config")
    source = make_task_source(cfg)
    nets = run.nets
    assert isinstance(nets, RL2Nets)
    rows: dict[str, dict[str, int]] = {}
    # per plug and column: the first touch of each evaluation episode on found tasks
    touch: dict[str, dict[str, list[tuple[float, float] | None]]] = {}
    tasks = select_test_tasks(source, None, tasks_per_plug)
    t0 = time.monotonic()
    for i, task in enumerate(tasks):
        label = source.task_label(task)
        r = rows.setdefault(
            label,
            {"tasks": 0, "episodes": 0, "found": 0, "explore_ok": 0, "explore_episodes": 0,
             "reuse_ok": 0, "reuse_episodes": 0, **{c: 0 for c in COLUMNS}},
        )  # fmt: skip
        task_seed = int(np.random.default_rng([seed, i]).integers(2**31))
        out, touched = {}, {}
        for col in COLUMNS:
            rng = np.random.default_rng(task_seed)  # the same reset seeds in every column
            student = None if col == "spiral-memory" else nets
            lead = k if col == "script explores" else 0
            # a fresh env (~25 ms) per column: one env's contact state carries differences of
            # ~1e-19 from its earlier episodes, which a search in `hard` can amplify
            env = FirstTouch(source.make_env())
            teacher = ShadowTeacher(env.config, dict(cfg.rdistill.teacher))
            out[col] = run_trial(env, task, teacher, student, rng, k + n, teacher_episodes=lead)
            env.close()
            touched[col] = env.touches[k:]
            r[col] += sum(out[col].successes[k:])
        explored = out["script explores"].successes[:k]
        if explored != out["spiral-memory"].successes[:k]:  # the columns' premise
            raise RuntimeError(
                f"test task {i}: the script's exploration differs between two columns with "
                "the same reset seeds; the sim is not deterministic here"
            )
        r["tasks"] += 1
        r["episodes"] += n
        r["explore_ok"] += sum(explored)
        r["explore_episodes"] += k
        if any(explored):
            r["found"] += 1
            r["reuse_ok"] += sum(out["script explores"].successes[k:])
            r["reuse_episodes"] += n
            for col in COLUMNS[:2]:
                touch.setdefault(label, {}).setdefault(col, []).extend(touched[col])
        if progress:
            print(
                f"\r  {i + 1}/{len(tasks)} tasks ({time.monotonic() - t0:.0f} s)",
                end="",
                flush=True,
            )
    if progress:
        print()
    return {
        "run": str(run_dir),
        "profile": profile,
        "k": k,
        "n": n,
        "seed": seed,
        "plugs": rows,
        "first_touch": touch,
    }


def touch_medians(touches: list[tuple[float, float] | None]) -> tuple[float, float, int]:
    """Median lateral error (mm) and yaw error (deg) at the first touch, and how many
    episodes never reached the socket face."""
    hit = np.array([t for t in touches if t is not None], float).reshape(-1, 2)
    if not len(hit):
        return math.nan, math.nan, len(touches)
    lat, yaw = np.median(hit, axis=0)
    return float(lat), float(yaw), len(touches) - len(hit)


def print_table(res: dict[str, Any]) -> None:
    """One line per plug: each column x/episodes, found tasks, reuse on them."""
    print(
        f"{res['run']}: profile {res['profile']}, K = {res['k']} then N = {res['n']} "
        f"episodes per task, seed {res['seed']}"
    )
    head = "".join(f"{c:>18}" for c in COLUMNS)
    print(f"{'plug':<15}{head}{'found':>10}{'reuse':>11}")
    plugs = res["plugs"]
    tot = {key: sum(r[key] for r in plugs.values()) for key in next(iter(plugs.values()))}
    for label, r in [*sorted(plugs.items()), ("all", tot)]:
        eps = r["episodes"]
        cols = "".join(f"{str(r[c]) + '/' + str(eps):>18}" for c in COLUMNS)
        found = f"{r['found']}/{r['tasks']}"
        reuse = f"{r['reuse_ok']}/{r['reuse_episodes']}"
        print(f"{label:<15}{cols}{found:>10}{reuse:>11}")
    touch = res.get("first_touch") or {}
    if touch:
        print(
            "first touch of the socket face in the evaluation episodes of found tasks, "
            "median lateral error mm / yaw error deg (episodes that never touched):"
        )
        print(f"{'plug':<15}" + "".join(f"{c:>26}" for c in COLUMNS[:2]))
        every = {c: [t for per in touch.values() for t in per[c]] for c in COLUMNS[:2]}
        for label, per in [*sorted(touch.items()), ("all", every)]:
            line = f"{label:<15}"
            for col in COLUMNS[:2]:
                lat, yaw, never = touch_medians(per[col])
                line += f"{f'{lat:.2f} / {yaw:.2f} ({never})':>26}"
            print(line)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="an rdistill run dir (checkpoint.pt)")
    p.add_argument("--profile", choices=["known", "oda", "hard"], required=True)
    p.add_argument("-k", type=int, default=3, help="exploration episodes per task")
    p.add_argument("-n", type=int, default=10, help="evaluation episodes per task")
    p.add_argument("--tasks-per-plug", type=int, default=5)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--json", type=Path, help="write the counts here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.k < 1 or args.n < 1:
        p.error("-k and -n must be >= 1")
    torch.set_num_threads(1)
    res = ceiling(
        args.run,
        args.profile,
        args.k,
        args.n,
        args.tasks_per_plug,
        args.seed,
        progress=not args.no_progress,
    )
    print_table(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
