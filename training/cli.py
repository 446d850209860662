"""`zshot train`, `zshot export`, `zshot eval`: each is `main(argv) -> int`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from zshot.config import (
    add_profile_argument,
    add_set_argument,
    load_config,
    override_config,
    profile_override,
)

SCRIPTED_TARGETS = ("spiral", "spiral-memory", "spiral-memory-off")
"""`zshot eval` targets that are scripted baselines (with --config), not a run or artifact."""


def _run_dir(template: str, config_path: str, seed: int) -> Path:
    return Path(template.format(name=Path(config_path).stem, seed=seed))


def train_main(argv: Sequence[str]) -> int:
    """Meta-train PEARL (or SAC without context when use_latent is false) from a config."""
    p = argparse.ArgumentParser(
        prog="zshot train",
        description="Meta-train PEARL from a YAML config (defaults in training/config.py).",
    )
    p.add_argument("config", help="YAML under configs/train/")
    add_set_argument(p)
    add_profile_argument(p)
    p.add_argument("--run-dir", help="where to write the run (default: the config's run_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the run dir's checkpoint")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none anyway when stderr is not a terminal)",
    )
    args = p.parse_args(list(argv))

    from training.config import TrainConfig
    from training.offline import OfflineTrainer
    from training.trainer import CHECKPOINT, Trainer

    overrides = [*args.overrides, *profile_override(args.profile)]
    cfg = load_config(TrainConfig, args.config, overrides)  # ConfigError: one line (zshot.cli)
    run_dir = Path(args.run_dir) if args.run_dir else _run_dir(cfg.run_dir, args.config, cfg.seed)
    ckpt = run_dir / CHECKPOINT
    if ckpt.exists() and not args.resume:
        print(
            f"zshot train: {run_dir} already holds a run; pass --resume or another --run-dir",
            file=sys.stderr,
        )
        return 2
    if args.resume and not ckpt.exists():
        print(f"zshot train: --resume: no checkpoint in {run_dir}", file=sys.stderr)
        return 2
    if cfg.distill is not None:  # distillation from the privileged servo (issue #17)
        return _distill(cfg, run_dir, args.resume)
    trainer: Trainer | OfflineTrainer
    try:
        if cfg.offline.dataset is not None:  # offline PEARL / AWAC (issue #7)
            trainer = OfflineTrainer(cfg, run_dir)
        else:
            trainer = Trainer(cfg, run_dir)
        if args.resume:
            trainer.load_checkpoint()
            print(f"resumed {run_dir} at iteration {trainer.iteration} ({trainer.updates} updates)")
    except (RuntimeError, ValueError) as exc:
        print(f"zshot train: {exc}", file=sys.stderr)
        return 2
    # Bars go to stderr, and only to a terminal: `\r` redraws would fill a piped log.
    report = trainer.run(progress=not args.no_progress and sys.stderr.isatty())
    if report is not None:
        print(report.table())
    print(f"run: {run_dir}  (checkpoint, tb/, history.json, eval.json, curves.png)")
    if (run_dir / "tb").is_dir():
        print(f"look at it: tensorboard --logdir {run_dir / 'tb'}")
    return 0


def _distill(cfg: object, run_dir: Path, resume: bool) -> int:
    """`zshot train` of a config with a `distill` section (training/distill.py)."""
    from training.distill import DistillTrainer

    if resume:
        print("zshot train: --resume: a distillation run does not resume", file=sys.stderr)
        return 2
    try:
        trainer = DistillTrainer(cfg, run_dir)  # type: ignore[arg-type]
    except (RuntimeError, ValueError) as exc:
        print(f"zshot train: {exc}", file=sys.stderr)
        return 2
    report = trainer.run()
    print(report.table())
    print(f"run: {run_dir}  (checkpoint, history.json, eval.json, curves.png)")
    return 0


def export_main(argv: Sequence[str]) -> int:
    """Export a run to encoder.onnx + policy.onnx + manifest.json (with a parity check)."""
    p = argparse.ArgumentParser(
        prog="zshot export", description="Export a training run to an ONNX artifact directory."
    )
    p.add_argument("run_dir", help="a run directory written by `zshot train`")
    p.add_argument("--out", required=True, help="artifact directory to write (must not exist)")
    p.add_argument("--force", action="store_true", help="replace an existing --out directory")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="show torch.onnx's progress and warnings"
    )
    args = p.parse_args(list(argv))

    from training.export import export_run

    try:
        artifact, errors = export_run(
            args.run_dir, args.out, force=args.force, verbose=args.verbose
        )
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as exc:
        print(f"zshot export: {exc}", file=sys.stderr)
        return 2
    m = artifact.manifest
    secs = m.training.get("export_s", {})
    L, o, a = m.latent_dim, m.obs_dim, m.act_dim
    print(
        f"encoder.onnx  transition[B,{m.transition_dim}] -> mu[B,{L}], var[B,{L}]  "
        f"onnxruntime vs torch max |err| mu {errors['mu']:.1e}, var {errors['var']:.1e}  "
        f"({secs.get('encoder', float('nan')):.1f} s)"
    )
    print(
        f"policy.onnx   obs[B,{o}], z[B,{L}], noise[B,{a}] -> action[B,{a}]  "
        f"onnxruntime vs torch max |err| action {errors['action']:.1e}  "
        f"({secs.get('policy', float('nan')):.1f} s)"
    )
    print(f"wrote {artifact.root} (manifest.json sha256 {artifact.sha256[:12]})")
    return 0


def eval_main(argv: Sequence[str]) -> int:
    """Few-shot evaluation of a run dir (torch) or an exported artifact (onnxruntime)."""
    p = argparse.ArgumentParser(
        prog="zshot eval",
        description="Few-shot evaluation: per test task start from the prior, explore K "
        "episodes (posterior sampling), then N episodes with the posterior mean.",
    )
    p.add_argument(
        "target",
        metavar="RUN_OR_ARTIFACT",
        help="run dir, artifact dir, or 'spiral' / 'spiral-memory' (the scripted baselines; "
        "'spiral-memory-off': the memory spiral's search without its memory)",
    )
    p.add_argument(
        "--plugs",
        nargs="+",
        help="only these test plugs: shipped names or plug spec files (a file's plug is "
        "evaluated as a held-out plug; default: all test tasks)",
    )
    add_profile_argument(p)
    p.add_argument("--explore", "-k", type=int, help="K exploration episodes per task")
    p.add_argument("--episodes", "-n", type=int, help="N evaluation episodes per task")
    p.add_argument("--mode", choices=["episodic", "online"], help="posterior update protocol")
    p.add_argument("--tasks-per-plug", type=int, help="at most this many test tasks per plug")
    p.add_argument(
        "--max-tasks",
        type=int,
        help="then at most this many test tasks in all, the first in test-task order (bounds "
        "a locomotion evaluation, whose test tasks are not grouped by plug)",
    )
    p.add_argument(
        "--config",
        help="with RUN_OR_ARTIFACT = spiral, spiral-memory or spiral-memory-off (the baselines): the "
        "train config whose test tasks to use",
    )
    add_set_argument(
        p,
        help="override the training config that defines the test tasks (the model is "
        "unchanged), e.g. --set seed=1 for another draw of test tasks, "
        "--set 'train_plugs=[family]' for the offline configs' split",
    )
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument(
        "--json",
        help="write the report here (default: RUN/eval-<mode>-<profile>.json beside a run; "
        "./eval-<name>-<mode>-<profile>.json for an artifact or a baseline)",
    )
    args = p.parse_args(list(argv))
    for flag, val in (("--tasks-per-plug", args.tasks_per_plug), ("--max-tasks", args.max_tasks)):
        if val is not None and val < 1:
            print(f"zshot eval: {flag} must be at least 1, got {val}", file=sys.stderr)
            return 2

    from training.config import EvalConfig, TrainConfig
    from training.evaluate import (
        FewShotAgent,
        MemorySpiralAgent,
        OnnxAgent,
        SpiralAgent,
        TorchAgent,
        few_shot_eval,
    )
    from training.tasks import make_task_source

    target = Path(args.target)
    scripted = str(target) in SCRIPTED_TARGETS
    agent: FewShotAgent
    try:
        overrides = [*args.overrides, *profile_override(args.profile)]
        plug_filter, extra_plugs = _plug_args(args.plugs)
        if scripted:
            if not args.config:
                print(f"zshot eval {target}: needs --config (whose test tasks)", file=sys.stderr)
                return 2
            cfg = load_config(TrainConfig, args.config, overrides)
            if cfg.env != "insertion":
                print(
                    f"zshot eval {target}: the spiral baselines need env: insertion",
                    file=sys.stderr,
                )
                return 2
            source = make_task_source(cfg, extra_plugs)
            env = source.make_env()
            if str(target) == "spiral":
                agent = SpiralAgent(env.config)
                backend = "spiral-search (scripted)"
            elif str(target) == "spiral-memory":
                agent = MemorySpiralAgent(env.config)
                backend = "spiral-search with memory (scripted)"
            else:
                agent = MemorySpiralAgent(env.config, memory=False)
                backend = "spiral-search with memory off (scripted)"
            env.close()
        elif (target / "manifest.json").is_file():
            onnx_agent = OnnxAgent(target)
            cfg = TrainConfig.model_validate(onnx_agent.artifact.manifest.training["config"])
            agent = onnx_agent
            backend = "onnxruntime"
        elif (target / "checkpoint.pt").is_file():
            from training.pearl import make_nets
            from training.trainer import load_checkpoint

            state = load_checkpoint(target / "checkpoint.pt")
            cfg = TrainConfig.model_validate(state["config"])
            nets = make_nets(int(state["dims"]["obs"]), int(state["dims"]["act"]), cfg)
            nets.load_state_dict(state["nets"])
            agent = TorchAgent(nets, cfg.use_latent, cfg.encoder.prior_in_posterior)
            backend = "torch"
        else:
            print(
                f"zshot eval: {target} is neither a run dir (checkpoint.pt) nor an artifact "
                "(manifest.json), nor a baseline (spiral, spiral-memory, spiral-memory-off)",
                file=sys.stderr,
            )
            return 2
        if overrides and not scripted:
            cfg = override_config(cfg, overrides, f"{target}'s training config")
        ev = cfg.eval.model_dump()
        for key, val in (
            ("explore_episodes", args.explore),
            ("eval_episodes", args.episodes),
            ("mode", args.mode),
            ("tasks_per_plug", args.tasks_per_plug),
            ("max_tasks", args.max_tasks),
        ):
            if val is not None:
                ev[key] = val
        eval_cfg = EvalConfig.model_validate(ev)
        source = make_task_source(cfg, extra_plugs)
        report = few_shot_eval(
            source,
            agent,
            eval_cfg,
            seed=args.seed,
            plugs=plug_filter,
            max_steps=cfg.max_episode_steps,
        )
    except (RuntimeError, ValueError, KeyError) as exc:
        print(f"zshot eval: {exc}", file=sys.stderr)
        return 2
    report.protocol["backend"] = backend
    report.protocol["target"] = str(target)
    report.protocol["overrides"] = list(args.overrides)
    profile = source.env_info.get("profile")
    report.protocol["profile"] = profile
    print(
        f"{backend}: K={eval_cfg.explore_episodes} exploration + N={eval_cfg.eval_episodes} "
        f"evaluation episodes per task, mode {eval_cfg.mode}"
        + (f", profile {profile}" if profile else "")
    )
    print(report.table())
    tag = eval_cfg.mode + (f"-{profile}" if profile else "")
    if args.json:
        out = Path(args.json)
    elif scripted:
        out = Path(f"eval-{target}-{Path(args.config).stem}-{tag}.json")
    elif (target / "checkpoint.pt").is_file():
        out = target / f"eval-{tag}.json"  # beside the run
    else:  # an artifact: never into its folder (it may be a shipped one)
        out = Path(f"eval-{target.resolve().name}-{tag}.json")
    report.write_json(out)
    print(f"wrote {out}")
    return 0


def _plug_args(plugs: Sequence[str] | None) -> tuple[list[str] | None, list[str]]:
    """`--plugs` entries -> (labels to keep, spec files to add as held-out test plugs).
    A file must exist and pass its spec check (PlugSpecError, a ValueError, names it)."""
    if not plugs:
        return None, []
    from sim.plugs import is_plug_file
    from sim.tasks import check_plug, plug_label

    labels, files = [], []
    for item in plugs:
        if is_plug_file(item):
            labels.append(plug_label(check_plug(item)))
            files.append(item)
        else:
            labels.append(item)
    return labels, files
