"""Ceiling bench of a distillation run (training/algos/distill/trainer.py; BENCHMARKS.md `## distill`):
where are insertions lost, the skill or the estimate?

Per test task, the same reset seeds in every column:

- servo truth:   the privileged teacher told the episode's true socket pose (the ceiling);
- oracle z:      the student with z = the true pose (its skill when it knows the hole);
- demo context:  the student with z = the posterior mean after K episodes of the teacher
                 (noiseless demonstrations, a person told the socket: ODA's context);
- own context:   the student with z = the posterior mean after its own K exploration
                 episodes (z drawn from the posterior each), what `zshot eval` measures.

Also the mean |estimate error| after the demonstrations (mm, mm, deg). Seeded.

    python bench/distill_ceiling.py runs/distill_insertion-s0 --profile hard --tasks-per-plug 3 -n 5
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import torch

from training.algos.distill.trainer import pose_to_z, teacher_for, z_to_pose
from training.common.agents import Posterior
from training.common.tasks import make_task_source, select_test_tasks
from training.registry import load_run
from zshot.config import override_config

COLUMNS = ("servo truth", "oracle z", "demo context", "own context")


def episode(
    env: Any,
    task: Any,
    nets: Any,
    z: np.ndarray | None,
    seed: int,
    teacher_params: dict[str, float] | None = None,
) -> tuple[bool, Any]:
    """One episode: the teacher (z None; the run's `distill.teacher` tuning) or the student
    with a fixed z; (success, rows)."""
    obs, info = env.reset(seed=seed)
    pose = np.asarray(info["socket_pose"])
    teacher = teacher_for(env, task, pose, teacher_params)
    z_t = torch.as_tensor(pose_to_z(pose) if z is None else z, dtype=torch.float32)[None]
    rows, ok = [], False
    for _ in range(env.config.max_steps):
        if z is None:
            a = np.asarray(teacher.act(obs), np.float32)
        else:
            with torch.no_grad():
                mean, _ = nets.policy(torch.as_tensor(obs, dtype=torch.float32)[None], z_t)
            a = torch.tanh(mean)[0].numpy()
        nxt, r, term, trunc, info = env.step(a)
        rows.append(np.concatenate([obs, a, [r], nxt]).astype(np.float32))
        ok = ok or bool(info["is_success"])
        obs = nxt
        if term or trunc:
            break
    return ok, np.stack(rows)


def posterior_after(nets: Any, rows: list[np.ndarray]) -> Posterior:
    """The runtime's posterior (prior times every transition's factor)."""
    post = Posterior(3, True)
    with torch.no_grad():
        for r in rows:
            mu, var = nets.encoder(torch.as_tensor(r))
            post.add(mu.numpy().astype(np.float64), var.numpy().astype(np.float64))
    return post


def main(argv: list[str] | None = None) -> int:
    """Print success per plug for each column, and the estimate error."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--profile", choices=["known", "oda", "hard"], required=True)
    p.add_argument("-k", type=int, default=3, help="context episodes per task")
    p.add_argument("-n", type=int, default=5, help="episodes per task and column")
    p.add_argument("--tasks-per-plug", type=int, default=3)
    p.add_argument("--seed", type=int, default=12345)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run = load_run(args.run)
    nets, cfg = run.nets, run.cfg
    cfg = override_config(cfg, [f"profile={args.profile}"], f"{args.run}'s config")
    source = make_task_source(cfg)
    env = source.make_env()
    tp = cfg.distill.teacher.params() if cfg.distill is not None else {}
    wins: dict[str, dict[str, int]] = {c: {} for c in COLUMNS}
    counts: dict[str, int] = {}
    errors = []
    rng = np.random.default_rng(args.seed)
    for task in select_test_tasks(source, None, args.tasks_per_plug):
        env.set_task(task)
        label = source.task_label(task)
        demos = [
            episode(env, task, nets, None, int(rng.integers(2**31)), tp)[1] for _ in range(args.k)
        ]
        demo_z = posterior_after(nets, demos).mean.astype(np.float32)
        own: list[np.ndarray] = []
        for _ in range(args.k):  # posterior sampling from the student's own episodes
            z_s = posterior_after(nets, own).sample(rng).astype(np.float32)
            own.append(episode(env, task, nets, z_s, int(rng.integers(2**31)))[1])
        own_z = posterior_after(nets, own).mean.astype(np.float32)
        truth = np.array([task.dx, task.dy, task.dyaw])
        est = z_to_pose(demo_z)
        errors.append(
            [(est[0] - truth[0]) * 1e3, (est[1] - truth[1]) * 1e3, math.degrees(est[2] - truth[2])]
        )
        seeds = [int(rng.integers(2**31)) for _ in range(args.n)]
        for col in COLUMNS:
            ok = 0
            for s in seeds:
                z: np.ndarray | None = None
                if col == "oracle z":
                    obs_pose = env.reset(seed=s)[1]["socket_pose"]
                    z = pose_to_z(np.asarray(obs_pose))
                elif col == "demo context":
                    z = demo_z
                elif col == "own context":
                    z = own_z
                ok += int(episode(env, task, nets, z, s, tp)[0])
            wins[col][label] = wins[col].get(label, 0) + ok
        counts[label] = counts.get(label, 0) + args.n
    env.close()
    print(
        f"{args.run}: profile {args.profile}, {sum(counts.values()) // args.n} test tasks, "
        f"K = {args.k}, {args.n} episodes per task and column, seed {args.seed}"
    )
    print(f"{'plug':<16}" + "".join(f"{c:>14}" for c in COLUMNS))
    for label in sorted(counts):
        n = counts[label]
        print(f"{label:<16}" + "".join(f"{wins[c][label]:>10}/{n:<3}" for c in COLUMNS))
    total = sum(counts.values())
    print(f"{'all':<16}" + "".join(f"{sum(wins[c].values()):>10}/{total:<3}" for c in COLUMNS))
    e = np.abs(np.asarray(errors)).mean(0)
    print(
        f"mean |estimate error| after {args.k} demonstrations: dx {e[0]:.3f} mm, "
        f"dy {e[1]:.3f} mm, dyaw {e[2]:.2f} deg"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
