"""The robot path against `zshot eval` on the same tasks (issue #17: "`zshot trials` through
the runtime gives the same per-plug figures as `zshot eval` within sampling noise").

`zshot trials --robot sim` draws its tasks from the sim's task family (`SimRobot`), `zshot
eval` from the training config's test tasks, so their per-plug figures differ by the task
draw as well as by the path. This bench reads a trials report (trials.json: every task's
parameters), runs `zshot eval`'s few-shot protocol (onnxruntime, the artifact's own agent)
on exactly those tasks with the same K and N, and prints per plug both figures and their
paired difference: per task, trials' successes minus eval's (of N), its mean over the
plug's tasks and that mean's standard error across tasks. Paired per task, because a
task's episodes are not independent draws (one hidden socket error, one adapted state: a
task found in its exploration episodes tends to succeed in all N); the episodes' start
poses are what differs.

    zshot serve ART --bind tcp://127.0.0.1:5561 &
    zshot trials --runtime tcp://127.0.0.1:5561 --robot sim --plugs EU-AC-plug,UK-AC-plug \\
        --adapt-episodes 3 --eval-episodes 10 --tasks-per-plug 10 --profile hard --out T
    python bench/trials_vs_eval.py ART T/trials.json --profile hard
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path


def paired(diffs: list[float]) -> tuple[float, float]:
    """(mean, standard error of the mean) of per-task differences (SE 0 for one task)."""
    m = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return m, 0.0
    var = sum((d - m) ** 2 for d in diffs) / (len(diffs) - 1)
    return m, math.sqrt(var / len(diffs))


def main(argv: list[str] | None = None) -> int:
    """Print the per-plug table; exit 2 on a file it cannot use."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("trials", type=Path, help="a `zshot trials` trials.json")
    ap.add_argument("--profile", choices=("known", "oda", "hard"), required=True)
    ap.add_argument("--seed", type=int, default=12345, help="the evaluation's reset seeds")
    args = ap.parse_args(argv)
    try:
        report = json.loads(args.trials.read_text())
        plugs = report["plugs"]
        k, n = int(report["adapt_episodes"]), int(report["eval_episodes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"trials_vs_eval: {args.trials}: not a trials report ({exc})", file=sys.stderr)
        return 2
    from sim.tasks import InsertionTask
    from training.cli import eval_target  # zshot eval's own agent for an artifact
    from training.common.tasks import make_task_source
    from training.config import EvalConfig
    from training.evaluate import few_shot_eval

    agent, cfg, backend = eval_target(args.artifact, None, [])
    cfg = cfg.model_copy(update={"profile": args.profile})
    fields = set(InsertionTask.model_fields)
    tasks, keys = [], []
    for p, row in enumerate(plugs):
        for t, task in enumerate(row["tasks"]):
            tasks.append(InsertionTask(**{key: v for key, v in task.items() if key in fields}))
            keys.append(f"{p}/{t}")
    files = sorted({t.plug for t in tasks if t.plug.endswith((".yaml", ".yml"))})
    source = make_task_source(cfg, extra_test_plugs=files or None)
    label_of = {id(t): key for t, key in zip(tasks, keys, strict=True)}
    source = dataclasses.replace(source, test_tasks=tasks, labeler=lambda t: label_of[id(t)])
    ev = EvalConfig(explore_episodes=k, eval_episodes=n)
    rep = few_shot_eval(source, agent, ev, seed=args.seed)
    per_task = {r.label: r.successes for r in rep.tasks}
    print(f"{backend}; K = {k}, N = {n}, profile {args.profile}, the trials' {len(tasks)} tasks")
    print(
        "| plug | zshot trials (runtime + bridge) | zshot eval, same tasks | per task: mean difference ± SE (of N) |"
    )
    print("|---|---:|---:|---:|")
    for p, row in enumerate(plugs):
        mine = [ep for ep in row["episodes"] if ep["mode"] == "exploit"]
        diffs = []
        for t in range(len(row["tasks"])):
            got = sum(bool(ep["success"]) for ep in mine if ep["task_index"] == t)
            diffs.append(float(got - per_task[f"{p}/{t}"]))
        a = int(row["successes"])
        b = sum(per_task[f"{p}/{t}"] for t in range(len(row["tasks"])))
        m, se = paired(diffs)
        print(
            f"| {row['plug']} | {a}/{row['n_eval']} | {b}/{n * len(row['tasks'])} | {m:+.1f} ± {se:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
