"""`zshot sim`: list plugs, check spec files, render a plug and socket, run the spiral baseline.

zshot sim list
zshot sim check my_plug.yaml
zshot sim view --plug UK-AC-plug --out frames/ [--hidden-error | --dx MM --dy MM --dyaw DEG]
zshot sim baseline [--profile known|oda|hard] [--memory] [--plug P ...] [--json F]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zshot.config import add_profile_argument, add_set_argument, load_config

__all__ = ["main", "run_baseline"]

_TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train" / "insertion.yaml"


def _config(path: str | None, overrides: Sequence[str]):
    from sim.config import InsertionEnvConfig

    return load_config(InsertionEnvConfig, path, list(overrides))


def run_baseline(config, plug: str, episodes: int, known_pose: bool, seed: int = 0) -> dict:
    """Spiral baseline on `plug`: success rate, mean time-to-insert (s) of the successes,
    safety violations. Socket errors drawn from the config's task ranges unless known_pose."""
    from sim.insertion import InsertionEnv
    from sim.spiral import SpiralSearchPolicy
    from sim.tasks import InsertionTask

    ts = config.tasks
    rng = np.random.default_rng(seed)
    env = InsertionEnv(config, plug=plug)
    policy = SpiralSearchPolicy(config)
    successes, violations, times = 0, 0, []
    try:
        for ep in range(episodes):
            e, ey = (0.0, 0.0) if known_pose else (ts.socket_xy_error, ts.socket_yaw_error)
            task = InsertionTask(
                plug=plug,
                dx=float(rng.uniform(-e, e)),
                dy=float(rng.uniform(-e, e)),
                dyaw=float(rng.uniform(-ey, ey)),
            )
            env.set_task(task)
            obs, _ = env.reset(seed=seed * 100003 + ep)
            policy.reset()
            while True:
                obs, _, term, trunc, info = env.step(policy.act(obs))
                if term or trunc:
                    break
            successes += int(info["is_success"])
            violations += int(info["safety_violation"])
            if info["is_success"]:
                times.append(info["elapsed_s"])
    finally:
        env.close()
    return {
        "plug": plug,
        "episodes": episodes,
        "success_rate": successes / episodes,
        "mean_time_s": float(np.mean(times)) if times else float("nan"),
        "violations": violations,
    }


def _cmd_list(args: argparse.Namespace) -> int:
    from sim.plugs import NAMED_PLUGS, list_plugs, load_plug

    for name in list_plugs():
        spec = load_plug(name)
        tag = "named/held-out" if name in NAMED_PLUGS else "training"
        print(f"{name:16s} {len(spec.pins)} pin(s)  {tag:15s} {spec.description}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from sim.geometry import GeometryError, socket_geometry
    from sim.plugs import PlugSpecError, load_plug

    rc = 0
    for item in args.spec:
        try:
            spec = load_plug(item)
            geom = socket_geometry(spec, spec.clearance)
            print(f"{item}: ok ({len(spec.pins)} pins, socket of {len(geom.boxes)} boxes)")
        except (PlugSpecError, GeometryError) as exc:
            print(f"zshot sim: {exc}", file=sys.stderr)
            rc = 2
    return rc


def _cmd_view(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import math

    import matplotlib.pyplot as plt

    from sim.insertion import InsertionEnv
    from sim.spiral import SpiralSearchPolicy
    from sim.tasks import InsertionTask

    cfg = _config(args.config, args.set)
    explicit = [v is not None for v in (args.dx, args.dy, args.dyaw)]
    if args.hidden_error and any(explicit):
        print("zshot sim: give --hidden-error or --dx/--dy/--dyaw, not both", file=sys.stderr)
        return 2
    dx, dy, dyaw = 0.0, 0.0, 0.0  # m, m, rad: the known-pose case
    if args.hidden_error:  # a draw from the config's socket error ranges, as in training
        rng = np.random.default_rng(args.seed)
        e, ey = cfg.tasks.socket_xy_error, cfg.tasks.socket_yaw_error
        dx, dy, dyaw = (float(rng.uniform(-e, e)), float(rng.uniform(-e, e)),
                        float(rng.uniform(-ey, ey)))  # fmt: skip
    elif any(explicit):
        dx, dy = (args.dx or 0.0) / 1000.0, (args.dy or 0.0) / 1000.0
        dyaw = math.radians(args.dyaw or 0.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = InsertionEnv(cfg, plug=args.plug, render_mode="rgb_array")
    env.set_task(InsertionTask(plug=args.plug, dx=dx, dy=dy, dyaw=dyaw))
    policy = SpiralSearchPolicy(cfg)
    obs, _ = env.reset(seed=args.seed)
    frames = 0
    for step in range(args.steps):
        if step % args.every == 0:
            plt.imsave(out / f"frame_{step:04d}.png", env.render_frame(args.width, args.height))
            frames += 1
        obs, _, term, trunc, info = env.step(policy.act(obs))
        if term or trunc:
            break
    plt.imsave(out / "final.png", env.render_frame(args.width, args.height))
    env.close()
    where = (
        f"hidden socket error dx {dx * 1000:+.2f} mm, dy {dy * 1000:+.2f} mm, "
        f"dyaw {math.degrees(dyaw):+.2f} deg"
        if (dx, dy, dyaw) != (0.0, 0.0, 0.0)
        else "known socket pose"
    )
    print(
        f"wrote {frames + 1} PNG frames to {out} ({where}; spiral search inserted: "
        f"{info['is_success']}, peak force {info['peak_force']:.1f} N)"
    )
    return 0


def _cmd_baseline(args: argparse.Namespace) -> int:
    """The scripted baseline on the same test tasks, with the same protocol and report, as
    `zshot eval spiral[-memory] --config TRAIN_CONFIG` (it runs that command)."""
    from zshot.cli import main as zshot_main

    if args.known_pose:
        if args.profile not in (None, "known"):
            print("zshot sim: --known-pose contradicts --profile " + args.profile, file=sys.stderr)
            return 2
        args.profile = "known"
    argv = ["eval", "spiral-memory" if args.memory else "spiral", "--config", args.config]
    argv += ["-k", str(args.explore), "-n", str(args.episodes)]
    argv += ["--tasks-per-plug", str(args.tasks_per_plug), "--seed", str(args.seed)]
    for flag, value in (("--profile", args.profile), ("--json", args.json)):
        if value is not None:
            argv += [flag, value]
    if args.plug:
        argv += ["--plugs", *args.plug]
    for item in args.set:
        argv += ["--set", item]
    return zshot_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `zshot sim`."""
    parser = argparse.ArgumentParser(prog="zshot sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the shipped plugs")
    c = sub.add_parser("check", help="validate plug spec files (or shipped names)")
    c.add_argument("spec", nargs="+")
    for name, helptext in (("view", "render frames to PNG"), ("baseline", "spiral baseline")):
        s = sub.add_parser(name, help=helptext)
        if name == "view":
            s.add_argument("--config", default=None, help="configs/sim/*.yaml")
            add_set_argument(s, dest="set")
            s.add_argument("--seed", type=int, default=0)
            s.add_argument("--plug", default="UK-AC-plug")
            s.add_argument("--out", required=True)
            s.add_argument("--steps", type=int, default=60)
            s.add_argument("--every", type=int, default=5)
            s.add_argument("--width", type=int, default=480)
            s.add_argument("--height", type=int, default=360)
            s.add_argument(
                "--hidden-error",
                action="store_true",
                help="socket pose error drawn from the config's task ranges (with --seed): "
                "what a policy meets in training and on the robot",
            )
            s.add_argument("--dx", type=float, help="socket error in x, mm (default 0)")
            s.add_argument("--dy", type=float, help="socket error in y, mm (default 0)")
            s.add_argument("--dyaw", type=float, help="socket yaw error, deg (default 0)")
        else:
            s.add_argument(
                "--config",
                default=str(_TRAIN_CONFIG),
                help="the train config whose test tasks to use (default: "
                "configs/train/insertion.yaml, as `zshot eval spiral --config` takes)",
            )
            add_set_argument(s, dest="set", help="override a key of that train config")
            s.add_argument("--seed", type=int, default=12345, help="evaluation seed")
            s.add_argument(
                "--plug",
                action="append",
                default=None,
                help="a shipped plug name or a plug spec file (repeatable; default: the "
                "held-out plugs)",
            )
            s.add_argument("--episodes", "-n", type=int, default=10, help="N per task")
            s.add_argument(
                "--explore", "-k", type=int, default=0, help="K exploration episodes per task"
            )
            s.add_argument("--tasks-per-plug", type=int, default=10)
            add_profile_argument(s)
            s.add_argument("--known-pose", action="store_true", help="= --profile known")
            s.add_argument(
                "--memory",
                action="store_true",
                help="the spiral search with memory (sim.spiral), not the plain one",
            )
            s.add_argument("--json", help="write the report here (default: ./eval-*.json)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    handler = {
        "list": _cmd_list,
        "check": _cmd_check,
        "view": _cmd_view,
        "baseline": _cmd_baseline,
    }[args.cmd]
    from sim.plugs import PlugSpecError

    try:
        return handler(args)
    except PlugSpecError as exc:
        print(f"zshot sim: {exc}", file=sys.stderr)
        return 2
