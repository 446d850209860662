"""`zshot train`, `zshot export`, `zshot eval`, `zshot algos` and `python -m training.finetune`:
each is `main(argv) -> int`."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from training.algos.offline_pearl.finetune import finetune_task
from training.algos.pearl.agent import TorchAgent
from training.behaviours import ContactSpiralAgent, MemorySpiralAgent, SpiralAgent
from training.common.agents import (
    FewShotAgent,
    OnnxAgent,
    OnnxConditionedPolicy,
    OnnxRecurrentAgent,
)
from training.common.checkpoint import CHECKPOINT
from training.common.parallel import (
    add_workers_arguments,
    init_ray,
    run_ordered,
    workers_error,
)
from training.common.tasks import make_task_source, select_test_tasks
from training.config import EvalConfig, TrainConfig
from training.evaluate import (
    EpisodeResult,
    conditioned_eval,
    context_eval,
    few_shot_eval,
    few_shot_task_env,
    goal_eval,
)
from training.registry import (
    ALGORITHMS,
    agent_of,
    export_run,
    load_finetune_run,
    load_run,
    make_trainer,
)
from zshot.config import (
    ConfigError,
    add_profile_argument,
    add_set_argument,
    load_config,
    override_config,
    profile_override,
)
from zshot.jsonio import write_json
from zshot.plug_descriptor import check_plug_descriptor_version

SCRIPTED_TARGETS = ("spiral", "spiral-memory", "spiral-memory-off", "spiral-contact")
"""`zshot eval` targets that are scripted baselines (with --config), not a run or artifact."""


def algos_main(argv: Sequence[str]) -> int:
    """`zshot algos`: one line per algorithm: name, artifact kind, paper."""
    p = argparse.ArgumentParser(
        prog="zshot algos",
        description="List the training algorithms (`algo:` in a train config) and their papers.",
    )
    p.parse_args(list(argv))
    width = max(len(n) for n in ALGORITHMS)
    kinds = max(len(a.artifact_kind) for a in ALGORITHMS.values()) + 2
    for algo in ALGORITHMS.values():
        print(f"{algo.name:<{width}}  {f'[{algo.artifact_kind}]':<{kinds}}  {algo.paper}")
    return 0


def _run_dir(template: str, config_path: str, seed: int) -> Path:
    return Path(template.format(name=Path(config_path).stem, seed=seed))


def train_main(argv: Sequence[str]) -> int:
    """Train the config's algorithm (`algo`, `zshot algos`): PEARL (or SAC without context
    when use_latent is false), offline PEARL from `offline.dataset`."""
    p = argparse.ArgumentParser(
        prog="zshot train",
        description="Train from a YAML config (defaults in training/config.py): the config's "
        "`algo` (`zshot algos`), by default PEARL, or offline PEARL when offline.dataset is set.",
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
    add_workers_arguments(p, default="the config's `workers`")
    args = p.parse_args(list(argv))
    if args.workers is not None and (err := workers_error(args.workers)) is not None:
        print(f"zshot train: {err}", file=sys.stderr)
        return 2

    overrides = [*args.overrides, *profile_override(args.profile)]
    if args.workers is not None:
        overrides.append(f"workers={args.workers}")
    cfg = load_config(TrainConfig, args.config, overrides)  # ConfigError: one line (zshot.cli)
    if (err := workers_error(cfg.workers)) is not None:
        print(f"zshot train: {err}", file=sys.stderr)
        return 2
    if cfg.workers > 1:  # PEARL's rollout workers join this Ray (a cluster, or a local one)
        try:
            init_ray(cfg.workers, args.ray_address)
        except Exception as exc:  # an address that does not answer, a Ray that cannot start
            print(f"zshot train: ray: {exc}".splitlines()[0], file=sys.stderr)
            return 2
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
    try:
        trainer = make_trainer(cfg, run_dir)  # the config's `algo` (training/registry.py)
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
    made = [
        n
        for n in ("checkpoint.pt", "tb/", "history.json", "eval.json", "curves.png")
        if (run_dir / n.rstrip("/")).exists()
    ]
    print(f"run: {run_dir}  ({', '.join(made)})")
    if (run_dir / "tb").is_dir():
        print(f"look at it: tensorboard --logdir {run_dir / 'tb'}")
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

    try:
        artifact, errors = export_run(
            args.run_dir, args.out, force=args.force, verbose=args.verbose
        )
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as exc:
        print(f"zshot export: {exc}", file=sys.stderr)
        return 2
    m = artifact.manifest
    if m.kind != "posterior":  # one line per graph of the kind (runtime.artifact.KIND_IO)
        from runtime.artifact import KIND_IO

        errs = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        for role, io in KIND_IO[m.kind].items():
            print(f"{role}.onnx  ({m.kind}) {', '.join(io['inputs'])} -> "
                  f"{', '.join(io['outputs'])}  onnxruntime vs torch max |err| {errs}")  # fmt: skip
        print(f"wrote {artifact.root} (manifest.json sha256 {artifact.sha256[:12]})")
        return 0
    secs = m.training.get("export_s", {})
    L, o, a = m.latent_dim, m.obs_dim, m.act_dim
    if m.kind == "conditioned":  # policy.onnx only (MT-SAC, Distral)
        print(
            f"policy.onnx   obs[B,{o}], descriptor[B,{m.descriptor_dim}], noise[B,{a}] -> "
            f"action[B,{a}]  onnxruntime vs torch max |err| action {errors['action']:.1e}"
        )
        print(f"wrote {artifact.root} (manifest.json sha256 {artifact.sha256[:12]})")
        return 0
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
    if "fused" in m.files:
        print(
            "fused.onnx    encoder + posterior update + policy in one call (bit-identical "
            f"to the two graphs)  ({secs.get('fused', float('nan')):.1f} s)"
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
        "'spiral-memory-off': the memory spiral's search without its memory; "
        "'spiral-contact': the memory spiral with its yaw search led by the contact torque)",
    )
    add_label_arguments(
        p,
        None,
        "the report's first column; default: all test tasks. Insertion: plug names or plug "
        "spec files (a file's plug is evaluated as a held-out plug)",
    )
    add_profile_argument(p)
    p.add_argument("--explore", "-k", type=int, help="K exploration episodes per task")
    p.add_argument("--episodes", "-n", type=int, help="N evaluation episodes per task")
    p.add_argument("--mode", choices=["episodic", "online"], help="posterior update protocol")
    p.add_argument(
        "--max-tasks",
        type=int,
        help="then at most this many test tasks in all, the first in test-task order (bounds "
        "a locomotion evaluation, whose labels can hold many test tasks)",
    )
    p.add_argument(
        "--config",
        help="with RUN_OR_ARTIFACT = spiral, spiral-memory, spiral-memory-off or spiral-contact "
        "(the scripted baselines): the "
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
        "--sample-actions",
        action="store_true",
        help="a conditioned artifact: actions sampled from the policy (its noise input from "
        "N(0, I), seeded by --seed) instead of its mean action",
    )
    p.add_argument(
        "--train-tasks",
        action="store_true",
        help="a conditioned artifact told task descriptors: its train tasks (each told its "
        "descriptor) instead of the held-out test tasks",
    )
    p.add_argument(
        "--json",
        help="write the report here (default: RUN/eval-<mode>-<profile>.json beside a run; "
        "./eval-<name>-<mode>-<profile>.json for an artifact or a baseline)",
    )
    add_workers_arguments(p)
    args = p.parse_args(list(argv))
    for flag, val in (("--tasks-per-label", args.tasks_per_label), ("--max-tasks", args.max_tasks)):
        if val is not None and val < 1:
            print(f"zshot eval: {flag} must be at least 1, got {val}", file=sys.stderr)
            return 2

    if (err := workers_error(args.workers)) is not None:
        print(f"zshot eval: {err}", file=sys.stderr)
        return 2
    target = Path(args.target)
    scripted = str(target) in SCRIPTED_TARGETS
    agent: FewShotAgent
    told: OnnxConditionedPolicy | None = None
    told_kind = "onehot"
    try:
        overrides = [*args.overrides, *profile_override(args.profile)]
        label_filter, extra_plugs = _label_args(args.tasks)
        if (
            not scripted
            and (target / "manifest.json").is_file()
            and _artifact_kind(target) == "conditioned"
        ):
            told = OnnxConditionedPolicy(
                target,
                np.random.default_rng([args.seed, 7]) if args.sample_actions else None,
            )
            cfg = TrainConfig.model_validate(told.artifact.manifest.training["config"])
            told_kind = str(told.artifact.manifest.training.get("task_input", "onehot"))
            if told_kind == "descriptor" and cfg.env == "insertion":
                check_plug_descriptor_version(told.artifact.manifest.training, str(target))
            backend = (
                "onnxruntime (conditioned: each train task told its descriptor)"
                if told_kind == "descriptor" and args.train_tasks
                else "onnxruntime (conditioned: each test task told its descriptor, zero-shot)"
                if told_kind == "descriptor"
                else "onnxruntime (conditioned: each train task told its one-hot id)"
            )
        else:
            if args.sample_actions or args.train_tasks:
                raise ValueError(
                    "--sample-actions and --train-tasks are for conditioned artifacts; "
                    f"{target} is not one"
                )
            agent, cfg, backend = eval_target(target, args.config, overrides)
        if overrides and not scripted:
            cfg = override_config(cfg, overrides, f"{target}'s training config")
        ev = cfg.eval.model_dump()
        flags = {
            "explore_episodes": ("--explore/-k", args.explore),
            "eval_episodes": ("--episodes/-n", args.episodes),
            "mode": ("--mode", args.mode),
            "tasks_per_label": ("--tasks-per-label", args.tasks_per_label),
            "max_tasks": ("--max-tasks", args.max_tasks),
        }
        for key, (_, val) in flags.items():
            if val is not None:
                ev[key] = val
        eval_cfg = _eval_config(ev, {k: flag for k, (flag, _) in flags.items()})
        source = make_task_source(cfg, extra_plugs)
        if told is not None:
            goal_told = "goal" in told.artifact.manifest.training
            zero_shot = told_kind == "descriptor" and not args.train_tasks
            if args.train_tasks and told_kind != "descriptor":
                raise ValueError(
                    f"--train-tasks: {target} is not told task descriptors (a one-hot id is "
                    "evaluated on the train tasks without the flag; a goal artifact on its goals)"
                )
            if goal_told:
                backend = "onnxruntime (conditioned: each episode told its goal)"
                report = goal_eval(
                    source,
                    told,
                    eval_cfg.eval_episodes,
                    seed=args.seed,
                    max_steps=cfg.max_episode_steps,
                )
            else:
                told_d = told_kind == "descriptor"
                want = len(source.descriptor_names if told_d else source.train_tasks)
                if want != told.descriptor_dim:
                    what = "descriptor values" if told_d else "train tasks"
                    raise ValueError(
                        f"{target}: descriptor_dim {told.descriptor_dim}, but its config gives "
                        f"{want} {what}"
                    )
                report = conditioned_eval(
                    source,
                    told,
                    eval_cfg.eval_episodes,
                    seed=args.seed,
                    max_steps=cfg.max_episode_steps,
                    descriptor="descriptor" if told_d else "onehot",
                    tasks=select_test_tasks(
                        source,
                        label_filter,
                        eval_cfg.tasks_per_label,
                        eval_cfg.max_tasks,
                        flag="--tasks: ",
                    )
                    if zero_shot
                    else None,
                )
        else:
            run_tasks: Callable[[int], Iterator[tuple[int, Any]]] | None = None
            if args.workers > 1:  # each worker rebuilds the agent and the tasks from these
                spec = (
                    str(target),
                    args.config,
                    overrides,
                    extra_plugs,
                    label_filter,
                    ev,
                    args.seed,
                )
                run_tasks = functools.partial(
                    run_ordered,
                    EvalWorker,
                    spec,
                    "run",
                    workers=args.workers,
                    ray_address=args.ray_address,
                )

            report = few_shot_eval(
                source,
                agent,
                eval_cfg,
                seed=args.seed,
                labels=label_filter,
                max_steps=cfg.max_episode_steps,
                run_tasks=run_tasks,
            )
    except _TargetError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (RuntimeError, ValueError, KeyError) as exc:
        print(f"zshot eval: {exc}", file=sys.stderr)
        return 2
    report.protocol["backend"] = backend
    if told is not None:
        report.protocol["sample_actions"] = told.sample_rng is not None
    report.protocol["target"] = str(target)
    report.protocol["overrides"] = list(args.overrides)
    profile = source.env_info.get("profile")
    report.protocol["profile"] = profile
    mode = "told" if told is not None else eval_cfg.mode
    explore = 0 if told is not None else eval_cfg.explore_episodes
    print(
        f"{backend}: K={explore} exploration + N={eval_cfg.eval_episodes} "
        f"evaluation episodes per task, mode {mode}" + (f", profile {profile}" if profile else "")
    )
    print(report.table())
    tag = mode + (f"-{profile}" if profile else "")
    if args.json:
        out = Path(args.json)
    elif scripted:
        out = Path(f"eval-{target}-{Path(args.config).stem}-{tag}.json")
    elif (target / CHECKPOINT).is_file():
        out = target / f"eval-{tag}.json"  # beside the run
    else:  # an artifact: never into its folder (it may be a shipped one)
        out = Path(f"eval-{target.resolve().name}-{tag}.json")
    report.write_json(out)
    print(f"wrote {out}")
    return 0


def add_label_arguments(p: argparse.ArgumentParser, per_label: int | None, about: str) -> None:
    """`--tasks LABEL...` and `--tasks-per-label N` (args.tasks, args.tasks_per_label), with
    their insertion spellings `--plugs` and `--tasks-per-plug` as the same options."""
    p.add_argument(
        "--tasks",
        "--plugs",
        dest="tasks",
        nargs="+",
        metavar="LABEL",
        help=f"only the test tasks with these labels ({about}); --plugs: the same",
    )
    p.add_argument(
        "--tasks-per-label",
        "--tasks-per-plug",
        dest="tasks_per_label",
        type=int,
        default=per_label,
        help="at most this many test tasks per label; --tasks-per-plug: the same",
    )


class _TargetError(ValueError):
    """A `zshot eval` target that cannot be evaluated (its message is the whole line)."""


def eval_target(
    target: Path, config: str | None, overrides: list[str]
) -> tuple[FewShotAgent, TrainConfig, str]:
    """`zshot eval`'s target -> (agent, the training config, backend name); public so that
    a bench evaluates exactly what `zshot eval` would (bench/trials_vs_eval.py)."""
    agent: FewShotAgent
    if str(target) in SCRIPTED_TARGETS:
        if not config:
            raise _TargetError(f"zshot eval {target}: needs --config (whose test tasks)")
        cfg = load_config(TrainConfig, config, overrides)
        if cfg.env != "insertion":
            raise _TargetError(f"zshot eval {target}: the spiral baselines need env: insertion")
        env = make_task_source(cfg).make_env()
        if str(target) == "spiral":
            agent, backend = SpiralAgent(env.config), "spiral-search (scripted)"
        elif str(target) == "spiral-memory":
            agent = MemorySpiralAgent(env.config)
            backend = "spiral-search with memory (scripted)"
        elif str(target) == "spiral-contact":
            agent = ContactSpiralAgent(env.config)
            backend = "spiral-search with memory, contact-led yaw (scripted)"
        else:
            agent = MemorySpiralAgent(env.config, memory=False)
            backend = "spiral-search with memory off (scripted)"
        env.close()
        return agent, cfg, backend
    if (target / "manifest.json").is_file() and _artifact_kind(target) == "recurrent":
        rec = OnnxRecurrentAgent(target)  # hidden state kept across a task's episodes
        cfg = TrainConfig.model_validate(rec.artifact.manifest.training["config"])
        return rec, cfg, "onnxruntime (recurrent)"
    if (target / "manifest.json").is_file():
        if _artifact_kind(target) == "weights":
            raise _TargetError(
                f"zshot eval {target}: a weights artifact (MAML) adapts by gradient steps, "
                "which the few-shot protocol does not take; serve it and run `zshot adapt "
                "RUN_DIR --runtime ..` (the adaptation curve of a run: its adaptation.json)"
            )
        onnx_agent = OnnxAgent(target)
        cfg = TrainConfig.model_validate(onnx_agent.artifact.manifest.training["config"])
        return onnx_agent, cfg, "onnxruntime"
    if (target / CHECKPOINT).is_file():
        run = load_run(target)
        return agent_of(run), run.cfg, "torch"
    raise _TargetError(
        f"zshot eval: {target} is neither a run dir (checkpoint.pt) nor an artifact "
        "(manifest.json), nor a baseline (spiral, spiral-memory, spiral-memory-off, "
        "spiral-contact)"
    )


class EvalWorker:
    """`zshot eval --workers N`: one Ray actor's own agent, env and test tasks (rebuilt
    from the command's arguments); `run(i)` is test task i's few-shot episodes, drawn from
    `task_rng(seed, i)` as in one process (training/common/parallel.py)."""

    def __init__(
        self,
        target: str,
        config: str | None,
        overrides: list[str],
        extra_plugs: list[str],
        labels: list[str] | None,
        eval_cfg: dict[str, Any],
        seed: int,
    ) -> None:
        self.agent, cfg, _ = eval_target(Path(target), config, overrides)
        if overrides and str(target) not in SCRIPTED_TARGETS:
            cfg = override_config(cfg, overrides, f"{target}'s training config")
        self.cfg, self.eval_cfg, self.seed = cfg, EvalConfig.model_validate(eval_cfg), seed
        self.source = make_task_source(cfg, extra_plugs)
        e = self.eval_cfg
        self.tasks = select_test_tasks(self.source, labels, e.tasks_per_label, e.max_tasks)

    def run(self, i: int) -> tuple[list[EpisodeResult], list[EpisodeResult]]:
        """Test task i's (exploration, evaluation) episodes (a fresh env, as in one process)."""
        return few_shot_task_env(
            self.source,
            self.tasks[i],
            self.agent,
            self.eval_cfg,
            self.seed,
            i,
            self.cfg.max_episode_steps,
        )


def _artifact_kind(path: Path) -> str:
    """The `kind` an artifact's manifest declares (posterior when it states none); the full
    check is the loader's, when the agent is built."""
    try:
        data = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return "posterior"  # the loader then says what is wrong with it
    kind = data.get("kind", "posterior") if isinstance(data, dict) else "posterior"
    return str(kind)


def _eval_config(ev: dict[str, Any], flags: dict[str, str]) -> EvalConfig:
    """`EvalConfig` from `ev`; a bad value raises ConfigError in one line naming the
    command-line flag it came from (or the config key), the rule and the value."""
    try:
        return EvalConfig.model_validate(ev)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "eval"
        where = flags.get(key, f"eval.{key}")
        raise ConfigError(f"{where}: {err['msg'].lower()} (got {err.get('input')!r})") from None


def _label_args(items: Sequence[str] | None) -> tuple[list[str] | None, list[str]]:
    """`--tasks` entries -> (labels to keep, plug spec files to add as held-out test plugs).
    A plug file must exist and pass its spec check (PlugSpecError, a ValueError, names it);
    an entry that is no plug file is a label (a plug name, a terrain or point label)."""
    if not items:
        return None, []
    from sim.plugs import is_plug_file  # lazy: sim only when labels are named
    from sim.tasks import check_plug, plug_label

    labels, files = [], []
    for item in items:
        if is_plug_file(item):
            labels.append(plug_label(check_plug(item)))
            files.append(item)
        else:
            labels.append(item)
    return labels, files


def finetune_main(argv: Sequence[str] | None = None) -> int:
    """Context-shift evaluation or fine-tuning of a run (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m training.finetune",
        description="Adapting an offline PEARL run to a new task: context first, gradients "
        "when far from data (training/algos/offline_pearl/finetune.py).",
    )
    p.add_argument("run", help="run dir (checkpoint.pt) of offline or online PEARL")
    p.add_argument(
        "--context",
        choices=["scripted", "teleop", "own", "both", "all"],
        default="both",
        help="where the K context episodes come from: the noisy spiral (scripted), a "
        "demonstrator told the task (teleop), the policy's own exploration (own); "
        "both = scripted and own, all = the three",
    )
    p.add_argument("-k", "--context-episodes", type=int, help="K context episodes per task")
    p.add_argument("-n", "--episodes", type=int, default=10, help="evaluation episodes per task")
    add_label_arguments(p, 10, "default: all test tasks")
    p.add_argument(
        "--finetune", metavar="LABEL", help="fine-tune on the first test task with this label"
    )
    add_set_argument(
        p,
        help="config overrides, e.g. --set finetune.max_episodes=20, "
        "--set finetune.offline_tasks_per_batch=0, --set offline.dataset=PATH",
    )
    p.add_argument("--artifacts", help="export each fine-tuned version here (vNNN/)")
    p.add_argument("--runtime", help="RELOAD each exported artifact on this runtime (tcp://...)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        nets, cfg = load_finetune_run(args.run)
        # -k is one more override, so a bad value is reported like any --set.
        k = args.context_episodes
        overrides = ([f"finetune.context_episodes={k}"] if k is not None else []) + args.overrides
        cfg = override_config(cfg, overrides, f"{args.run}'s config")
        # One intra-op thread (TrainConfig.torch_threads): batch-1 forward passes gain nothing
        # from more, and spin-waiting OpenMP threads stall on a shared machine.
        torch.set_num_threads(cfg.torch_threads)
        source = make_task_source(cfg)
        out: dict[str, Any] = {"run": args.run, "seed": args.seed}
        if args.finetune:
            task = select_test_tasks(source, [args.finetune], 1)[0]
            reload_fn = None
            if args.runtime:
                from runtime.client import RuntimeClient  # lazy: only with --runtime

                client = RuntimeClient(args.runtime)
                client.hello()

                def reload_fn(path: Path) -> None:
                    client.reload(str(path.resolve()))

            res, _ = finetune_task(
                nets,
                cfg,
                source,
                task,
                args.seed,
                artifact_dir=args.artifacts,
                on_artifact=reload_fn,
            )
            out["finetune"] = res.__dict__
            print(
                f"{args.finetune}: context {res.context_successes}/{cfg.finetune.context_episodes}, "
                f"online episodes {''.join('+' if s else '-' for s in res.episodes)}, gradient from "
                f"{res.gradient_from} (offline tasks per step: {res.offline_tasks_per_batch}), "
                f"{cfg.finetune.streak} in a row after {res.reached_after}, "
                f"final {res.final_successes}/{res.final_episodes}"
            )
        else:
            groups = {"both": ["scripted", "own"], "all": ["teleop", "scripted", "own"]}
            kinds = groups.get(args.context, [args.context])
            agent = TorchAgent(nets, cfg.use_latent, cfg.encoder.prior_in_posterior)
            for kind in kinds:
                rep = context_eval(
                    source,
                    agent,
                    cfg,
                    context_source=kind,
                    episodes=args.episodes,
                    seed=args.seed,
                    labels=args.tasks,
                    tasks_per_label=args.tasks_per_label,
                )
                print(f"context from {kind} (K={cfg.finetune.context_episodes}):")
                print(rep.table())
                out[kind] = rep.to_json()
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"finetune: {exc}", file=sys.stderr)
        return 2
    if args.json:
        write_json(args.json, out, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0
