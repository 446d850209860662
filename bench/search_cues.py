"""Where the spiral search with memory spends its time in `hard`, and what a robot can sense that
says which way yaw is off (BENCHMARKS.md `## contact cues for the yaw search`).

    python bench/search_cues.py time  [--tasks-per-plug 10] [-k 3] [-n 10]
    python bench/search_cues.py probe [--plugs ...] [--offsets 0,0.3,0.6,1.0] [--yaws 3,2,1,-1,-2,-3]

`time`: the memory spiral (`zshot eval spiral-memory`'s defaults) on the `hard` test tasks;
for every episode that begins before the task's hole was first found, the control steps
spent per phase, and the search steps split by whether the pass's yaw target was within
`--yaw-tol` deg of the true socket yaw (the bench reads the hidden task to score this: a
diagnostic, no controller sees it). Prints how many passes each task needed, which yaw
offset found the hole, and the share of pre-find time spent searching x/y at a wrong yaw.

`probe`: the contact wrench a robot measures when a plug is pressed onto the socket at a
known offset: the plug (believed yaw 0) descends at a point `offset` mm from the true socket
centre (8 directions) onto a socket rotated by `yaw` deg, presses 8 N down for 1 s, then
20 N for 1 s; prints per plug and yaw error the mean torque about z (N·m, as the wrist
reads it), the depth the pins reached (mm) and the fraction of presses whose torque sign
matches the sign of the yaw error.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.` without PYTHONPATH

from bench.search_variants import protocol
from training.behaviours import MemorySpiralAgent
from training.common.tasks import select_test_tasks
from training.evaluate import few_shot_eval


class TimingAgent(MemorySpiralAgent):
    """The memory spiral that counts, per episode, its steps per phase and per yaw offset."""

    def __init__(self, sim_config: Any, yaw_tol: float) -> None:
        super().__init__(sim_config)
        self.yaw_tol = yaw_tol
        self.true_yaw = 0.0  # deg, set per task by the bench (privileged: scoring only)
        self.true_xy = (0.0, 0.0)  # mm, likewise
        self.dips: list[tuple[float, float, float]] = []  # (distance mm, yaw error deg, dip mm)
        self.found = False
        self.rows: list[dict[str, Any]] = []  # one per episode before the hole was found
        self.tasks: list[dict[str, Any]] = []
        self.ep: dict[str, Any] = {}

    def reset_task(self) -> None:
        """A new task: a new record."""
        super().reset_task()
        self.found = False
        self.tasks.append({"episodes_to_find": None, "found_offset": None, "passes": 0})

    def reset_episode(self) -> None:
        """A new attempt: fresh counters."""
        super().reset_episode()
        self.ep = defaultdict(int)

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Count the step under the phase the script is in, then act."""
        p: Any = self.policy
        phase = p.phase
        if phase == "search" and not p.local:
            yaw = p.centre[2] + p.yaw_offset
            right = abs(yaw - self.true_yaw) <= self.yaw_tol
            phase = "search, right yaw" if right else "search, wrong yaw"
            if math.isfinite(p.z_face):
                x, y, z = (float(obs[i]) for i in (0, 1, 2))
                dist = math.hypot(x - self.true_xy[0], y - self.true_xy[1])
                self.dips.append((dist, abs(float(obs[5]) - self.true_yaw), p.z_face - z))
        self.ep[phase] += 1
        return super().act(obs, z, noise)

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        """Record the episode if it began before the hole was found."""
        p: Any = self.policy
        rec = self.tasks[-1]
        rec["episodes"] = rec.get("episodes", 0) + 1
        if not self.found:
            self.rows.append(dict(self.ep))
            if success:
                self.found = True
                rec["episodes_to_find"] = rec["episodes"]
                rec["found_offset"] = p.yaw_offset
                rec["passes"] = p.passes
        super().end_episode(success, final_obs)


def run_time(args: argparse.Namespace) -> None:
    """The `time` figures."""
    cfg, ev, source = protocol(args, "hard")
    env = source.make_env()
    agent = TimingAgent(env.config, args.yaw_tol)
    env.close()
    tasks = select_test_tasks(source, args.plugs, args.tasks_per_plug)
    order = iter(tasks)
    inner_reset = agent.reset_task

    def reset_task() -> None:
        task = next(order)
        agent.true_yaw = math.degrees(task.dyaw)
        agent.true_xy = (task.dx * 1e3, task.dy * 1e3)
        inner_reset()

    agent.reset_task = reset_task  # type: ignore[method-assign]
    t0 = time.perf_counter()
    report = few_shot_eval(
        source, agent, ev, 12345, labels=args.plugs, max_steps=cfg.max_episode_steps
    )
    wins = sum(r.successes for r in report.tasks)
    total = sum(r.episodes for r in report.tasks)
    print(f"memory spiral, hard, K={args.k}: {wins}/{total} ({time.perf_counter() - t0:.0f} s)")
    steps: dict[str, int] = defaultdict(int)
    for row in agent.rows:
        for k, v in row.items():
            steps[k] += v
    n_pre = len(agent.rows)
    all_steps = sum(steps.values())
    print(f"\n{n_pre} episodes began before their task's hole was found; their steps by phase:")
    for k in sorted(steps, key=lambda k: -steps[k]):
        print(f"  {k:<20} {steps[k]:>6} steps  {100 * steps[k] / max(all_steps, 1):5.1f} %")
    wrong = steps.get("search, wrong yaw", 0)
    right = steps.get("search, right yaw", 0)
    print(
        f"  search at a yaw within {args.yaw_tol} deg of the truth: {right} steps; at a wrong "
        f"yaw: {wrong} ({100 * wrong / max(wrong + right, 1):.0f} % of the search)"
    )
    d = np.asarray(agent.dips)
    print(
        "\nsearch steps in contact: the plug's dip below the face height (mm, what the robot "
        "measures) by its true distance from the hole and yaw error (what it does not):"
    )
    print("  distance   yaw err    steps  dip>0.05  dip>0.1  dip>0.2  dip>0.4")
    for lo, hi in ((0.0, 0.15), (0.15, 0.3), (0.3, 0.6), (0.6, 99.0)):
        for ylo, yhi in ((0.0, 1.0), (1.0, 99.0)):
            m = (d[:, 0] >= lo) & (d[:, 0] < hi) & (d[:, 1] >= ylo) & (d[:, 1] < yhi)
            n = int(m.sum())
            fr = [float((d[m, 2] > t).mean()) if n else 0.0 for t in (0.05, 0.1, 0.2, 0.4)]
            print(
                f"  {lo:.2f}-{hi:<5.2f} {ylo:.0f}-{yhi:<3.0f} deg {n:>7}  "
                + "  ".join(f"{v:7.3f}" for v in fr)
            )
    print("\ntasks by episodes needed to find the hole (first success):")
    hist: dict[Any, int] = defaultdict(int)
    for rec in agent.tasks:
        hist[rec["episodes_to_find"]] += 1
    for k in sorted(hist, key=lambda v: (v is None, v or 0)):
        print(f"  {'never' if k is None else k:>5}: {hist[k]} tasks")
    print("\ntasks needing > 2 episodes: true yaw, the pass's yaw offset that found it, passes")
    for task, rec in zip(tasks, agent.tasks, strict=True):
        e = rec["episodes_to_find"]
        if e is None or e > 2:
            print(
                f"  {source.task_label(task):<14} yaw {math.degrees(task.dyaw):+.2f} deg "
                f"dx {task.dx * 1e3:+.2f} dy {task.dy * 1e3:+.2f} mm: found at episode {e}, "
                f"offset {rec['found_offset']}, after {rec['passes']} passes"
            )


def press(env: Any, offset: tuple[float, float], yaw_err: float, seed: int) -> dict[str, float]:
    """Descend at `offset` mm from the true socket centre onto a socket rotated `yaw_err` deg;
    press 8 N then 20 N; the wrist's mean torque about z and lateral force, and the depth."""
    from sim.insertion import OBS_INDEX, twist_action
    from sim.tasks import InsertionTask

    cfg = env.config
    task = InsertionTask(plug=env.task.plug, dyaw=math.radians(yaw_err))
    env.set_task(task)
    obs, _ = env.reset(seed=seed)
    out: dict[str, float] = {}
    z_face = math.nan
    tz8: list[float] = []
    tz20: list[float] = []
    fxy: list[float] = []
    for step in range(60):
        x, y, z = (float(obs[OBS_INDEX[n]]) for n in ("x_mm", "y_mm", "z_mm"))
        yaw = float(obs[OBS_INDEX["yaw_deg"]])
        fz = float(obs[OBS_INDEX["fz"]]) * cfg.force_ref
        vxy = [4.0 * (offset[0] - x), 4.0 * (offset[1] - y)]
        if not math.isfinite(z_face) and fz > 2.0:
            z_face = z
        if not math.isfinite(z_face):
            vz = -15.0
        else:
            f = 8.0 if step < 40 else 20.0
            vz = -(f - fz) * 1.0 - (0.0 if step < 40 else 2.0)
            (tz8 if step < 40 else tz20).append(float(obs[OBS_INDEX["tz"]]) * cfg.torque_ref)
            fxy.append(float(np.hypot(obs[OBS_INDEX["fx"]], obs[OBS_INDEX["fy"]])) * cfg.force_ref)
        a = twist_action(cfg, np.array([vxy[0], vxy[1], vz]), -math.radians(yaw) * 2.0)
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            break
    depth = env.plug_spec.max_pin_length - float(obs[OBS_INDEX["z_mm"]])
    out["tz8"] = float(np.mean(tz8[-10:])) if tz8 else 0.0
    out["tz20"] = float(np.mean(tz20[-10:])) if tz20 else 0.0
    out["fxy"] = float(np.mean(fxy[-10:])) if fxy else 0.0
    out["depth"] = depth
    out["success"] = float(bool(info.get("success", False)))
    return out


def run_probe(args: argparse.Namespace) -> None:
    """The `probe` figures."""
    from sim.config import InsertionEnvConfig
    from sim.insertion import InsertionEnv
    from sim.tasks import InsertionTask

    cfg = InsertionEnvConfig(profile="known", start_xy_noise=0.0, start_yaw_noise=0.0)
    offsets = [float(v) for v in args.offsets.split(",")]
    yaws = [float(v) for v in args.yaws.split(",")]
    t0 = time.perf_counter()
    print(
        "per plug and yaw error: presses at 0 / 8 directions x each offset (mm) from the true "
        "centre;\n  in = pins half their length in or more; partial = dropped 0.3 mm or more, stalled above; face = "
        "stopped on the face;\n  tz = median torque about z at 20 N (mN·m) of each group; "
        "agree = its sign is the yaw error's"
    )
    for plug in args.plugs:
        env = InsertionEnv(config=cfg, task=InsertionTask(plug=plug))
        full = env.plug_spec.max_pin_length
        tot = {"partial": [0, 0], "face": [0, 0]}
        for yaw in yaws:
            groups: dict[str, list[float]] = {"in": [], "partial": [], "face": []}
            for off in offsets:
                dirs = [0.0] if off == 0 else [i * math.pi / 4 for i in range(8)]
                for i, a in enumerate(dirs):
                    r = press(env, (off * math.cos(a), off * math.sin(a)), yaw, seed=i)
                    g = (
                        "in"
                        if r["success"] or r["depth"] > 0.5 * full
                        else ("partial" if r["depth"] > 0.3 else "face")
                    )
                    groups[g].append(r["tz20"] * 1e3)
            cells = []
            for g, v in groups.items():
                agree = sum(1 for t in v if abs(t) > 0.05 and np.sign(t) == np.sign(yaw))
                if g in tot:
                    tot[g][0] += agree
                    tot[g][1] += len(v)
                med = f"{np.median(v):+6.2f}" if v else "     -"
                loud = sum(1 for t in v if abs(t) > 0.05)
                cells.append(f"{g} {len(v):>2} tz {med} |tz|>0.05: {loud:>2} agree {agree:>2}")
            print(f"{plug:<15} {yaw:+5.1f} deg | " + " | ".join(cells))
        print(
            f"{plug:<15} torque sign = yaw-error sign: partial {tot['partial'][0]}/"
            f"{tot['partial'][1]}, face {tot['face'][0]}/{tot['face'][1]}"
        )
        env.close()
    print(f"({time.perf_counter() - t0:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    """Parse and run one of the two measurements."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["time", "probe"])
    p.add_argument("--config", default="configs/train/insertion.yaml")
    p.add_argument("--seed", type=int, default=0, help="the config's seed (test-task draw)")
    p.add_argument("-k", type=int, default=3)
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--tasks-per-plug", type=int, default=10)
    p.add_argument("--plugs", nargs="+")
    p.add_argument("--yaw-tol", type=float, default=0.5)
    p.add_argument("--offsets", default="0,0.1,0.2,0.3,0.45")
    p.add_argument("--yaws", default="3,2,1,-1,-2,-3")
    args = p.parse_args(argv)
    if args.what == "time":
        run_time(args)
    else:
        if not args.plugs:
            args.plugs = ["Car-plug-4p", "US-AC-plug", "Metal-peg-rec", "UK-AC-plug"]
        run_probe(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
