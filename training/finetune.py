"""Adapting an offline PEARL run to a new task: context first, gradients when far from data.

The ODA recipe (Zhao et al. 2022, sec. IV): on a new plug, (1) infer z from a little context
(contextual adaptation, no gradient), and if that does not solve the task (2) fine-tune the
networks online on the task's own trials with the same offline losses (training/offline.py).

- `context_eval`: the measurement of the context shift. Per test task, the posterior is
  built from K episodes of either the noisy scripted expert ("scripted": demonstrations, as
  the behaviour data was gathered) or the policy's own posterior-sampling exploration
  ("own": PEARL's protocol); then N episodes with z = posterior mean. The gap between the
  two is the cost of the mismatch between behaviour and test-time context.
- `finetune_task`: K context episodes, then up to `max_episodes` online episodes with
  z = posterior mean; when the first `far_window` of them succeed less than `far_threshold`
  the task is far from the data and each further episode is followed by
  `updates_per_episode` offline-PEARL gradient steps. As in ODA (and AWAC's offline-to-online
  fine-tuning) the offline data stays in the batches: each step's meta-batch is the new task
  (its online buffer) plus `offline_tasks_per_batch` tasks of the run's offline dataset
  (`offline.dataset`), built as training/offline.py builds them (`mixed_batch`); 0 is the
  task's own buffer alone (T = 1). After each gradient phase the networks can be exported to
  a new artifact and the runtime told to RELOAD it (`on_artifact`), so the robot runs the
  fine-tuned policy from its next episode.

CLI: `python -m training.finetune RUN --context both -n 10` (context-shift table) and
`python -m training.finetune RUN --finetune PLUG [--artifacts DIR --runtime ADDR]`.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from training.algos.pearl.losses import PearlBatch, PearlOptimizers
from training.common.networks import PearlNets
from training.common.replay import MultiTaskReplayBuffer
from training.common.tasks import TaskSource, env_control_hz
from training.config import FinetuneConfig, TrainConfig
from training.evaluate import (
    EpisodeResult,
    FewShotReport,
    Posterior,
    TorchAgent,
    plug_result,
    run_episode,
)
from zshot.config import add_set_argument
from zshot.jsonio import write_json

if TYPE_CHECKING:
    from training.common.datasets import OfflineDataset


class DemoAgent:
    """A demonstrator of training.collect behind the FewShotAgent interface: the noisy
    scripted expert ("scripted") or the teleop demonstrator told the task ("teleop")."""

    use_latent = False
    prior_in_posterior = True

    def __init__(
        self, env: Any, task: Any, noise: float, rng: np.random.Generator, kind: str = "scripted"
    ) -> None:
        from training.collect import ScriptedBehaviour, TeleopBehaviour

        kinds = {"scripted": ScriptedBehaviour, "teleop": TeleopBehaviour}
        if kind not in kinds:
            raise ValueError(f"demonstrations are 'scripted' or 'teleop', not {kind!r}")
        self.behaviour = kinds[kind](env, noise, rng)
        self.task = task
        self.latent_dim = 1

    def reset_episode(self) -> None:
        """Restart the demonstrator on the task."""
        self.behaviour.reset(self.task)

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unused: a demonstrator has no encoder."""
        raise NotImplementedError("a demonstrator has no encoder")

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The demonstrator's noisy action."""
        return self.behaviour.act(obs)


def demo_noise(ft: FinetuneConfig) -> dict[str, float]:
    """Action noise per demonstrator kind, from the fine-tuning config."""
    return {"scripted": ft.scripted_noise, "teleop": ft.teleop_noise}


def gather_context(
    env: Any,
    task: Any,
    agent: TorchAgent,
    post: Posterior,
    source_kind: str,
    episodes: int,
    noise: dict[str, float],
    rng: np.random.Generator,
    control_hz: float,
    max_steps: int | None,
) -> list[EpisodeResult]:
    """K context episodes on `task` (env already set to it), each added to `post`.

    `source_kind`: "scripted" or "teleop" (demonstrations, with action noise
    `noise[source_kind]`, see `demo_noise`) or "own" (the policy's posterior sampling)."""
    out = []
    for _ in range(episodes):
        if source_kind in ("scripted", "teleop"):
            demo = DemoAgent(env, task, noise[source_kind], rng, kind=source_kind)
            ep = run_episode(
                env,
                demo,
                Posterior(1),
                rng,
                z_mode="mean",
                update_every_step=False,
                control_hz=control_hz,
                max_steps=max_steps,
            )
        else:  # own: PEARL's posterior sampling, z ~ q(z | c) once per episode
            ep = run_episode(
                env,
                agent,
                post,
                rng,
                z_mode="sample",
                update_every_step=False,
                control_hz=control_hz,
                max_steps=max_steps,
                stochastic_policy=True,
            )
        if agent.use_latent and len(ep.transitions):
            post.add(*agent.factors(ep.transitions))
        out.append(ep)
    return out


def select_tasks(
    source: TaskSource, plugs: list[str] | None, tasks_per_plug: int | None
) -> list[Any]:
    """The source's test tasks, optionally only `plugs`, at most `tasks_per_plug` each."""
    tasks = list(source.test_tasks)
    if plugs:
        known = {source.task_label(t) for t in tasks}
        unknown = sorted(set(plugs) - known)
        if unknown:
            raise ValueError(f"plugs {unknown} are not among the test plugs {sorted(known)}")
        tasks = [t for t in tasks if source.task_label(t) in plugs]
    if tasks_per_plug is not None:
        seen: dict[str, int] = {}
        kept = []
        for t in tasks:
            label = source.task_label(t)
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= tasks_per_plug:
                kept.append(t)
        tasks = kept
    if not tasks:
        raise ValueError("no test tasks selected")
    return tasks


def context_eval(
    source: TaskSource,
    nets: PearlNets,
    cfg: TrainConfig,
    *,
    context_source: str,
    episodes: int,
    seed: int,
    plugs: list[str] | None = None,
    tasks_per_plug: int | None = None,
) -> FewShotReport:
    """Per test task: K context episodes from `context_source`, then `episodes` with z = mean."""
    ft = cfg.finetune
    agent = TorchAgent(nets, cfg.use_latent, cfg.encoder.prior_in_posterior)
    env = source.make_env()
    hz = env_control_hz(env)
    rng = np.random.default_rng(seed)
    per: dict[str, tuple[list[EpisodeResult], list[EpisodeResult]]] = {}
    for task in select_tasks(source, plugs, tasks_per_plug):
        label = source.task_label(task)
        evals, ctxs = per.setdefault(label, ([], []))
        env.set_task(task)
        post = Posterior(agent.latent_dim, agent.prior_in_posterior)
        ctxs += gather_context(
            env,
            task,
            agent,
            post,
            context_source,
            ft.context_episodes,
            demo_noise(ft),
            rng,
            hz,
            cfg.max_episode_steps,
        )
        for _ in range(episodes):
            evals.append(
                run_episode(
                    env,
                    agent,
                    post,
                    rng,
                    z_mode="mean",
                    update_every_step=False,
                    control_hz=hz,
                    max_steps=cfg.max_episode_steps,
                    stochastic_policy=ft.sample_actions,
                )
            )
    env.close()
    rows = [plug_result(label, *per[label]) for label in sorted(per)]
    protocol = {
        "context_source": context_source,
        "context_episodes": ft.context_episodes,
        "eval_episodes_per_task": episodes,
        "tasks_per_plug": tasks_per_plug,
        "seed": seed,
        "use_latent": cfg.use_latent,
        "sample_actions": ft.sample_actions,
    }
    return FewShotReport(rows, protocol)


@dataclass
class FinetuneResult:
    """What fine-tuning on one task did."""

    task: dict[str, Any]
    context_successes: int
    episodes: list[bool] = field(default_factory=list)  # success of each online episode
    gradient_from: int | None = None  # first online episode followed by gradient steps
    reached_after: int | None = None  # online episodes until `streak` successes in a row
    final_successes: int = 0
    final_episodes: int = 0
    artifacts: list[str] = field(default_factory=list)
    offline_dataset: str | None = None  # the dataset mixed into the gradient steps, if any
    offline_tasks_per_batch: int = 0  # dataset tasks per gradient step (0: own data only)


def save_run(nets: PearlNets, cfg: TrainConfig, run_dir: Path, updates: int) -> Path:
    """A checkpoint in `zshot train`'s schema (what training.export.export_run reads)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "checkpoint.pt"
    torch.save(
        {
            "config": cfg.model_dump(mode="json"),
            "iteration": updates,
            "env_steps": 0,
            "updates": updates,
            "nets": nets.state_dict(),
            "dims": {"obs": nets.obs_dim, "act": nets.act_dim},
        },
        path,
    )
    return path


def load_finetune_dataset(cfg: TrainConfig, obs_dim: int, act_dim: int) -> OfflineDataset:
    """The run's offline dataset (`cfg.offline.dataset`) for fine-tuning batches.

    Raises ValueError (training.datasets.DatasetError for unreadable data) naming the path,
    and saying how to fine-tune without it.
    """
    from training.common.datasets import DatasetError, load_dataset

    k = cfg.finetune.offline_tasks_per_batch
    path = cfg.offline.dataset
    hint = (
        "set offline.dataset=PATH to the dataset the run was trained on, or "
        "finetune.offline_tasks_per_batch=0 to fine-tune on the new task's data only"
    )
    if path is None:
        raise ValueError(
            f"finetune.offline_tasks_per_batch={k} mixes offline data into fine-tuning, but the "
            f"run's config names no offline.dataset (an online run?); {hint}"
        )
    try:
        data = load_dataset(path)
        data.check_dims(obs_dim, act_dim)
    except DatasetError as exc:
        raise DatasetError(
            f"offline dataset for fine-tuning (offline.dataset={path!r}, relative paths from "
            f"{Path.cwd()}): {exc}; {hint}"
        ) from None
    _check_enough_tasks(k, data, str(path))
    return data


def _check_enough_tasks(k: int, data: OfflineDataset, name: str) -> None:
    """Refuse drawing k distinct offline tasks per batch from a dataset with fewer."""
    if k > len(data.tasks):
        raise ValueError(
            f"finetune.offline_tasks_per_batch={k} exceeds the {len(data.tasks)} tasks of the "
            f"offline dataset {name}"
        )


def mixed_batch(
    buf: MultiTaskReplayBuffer,
    dataset: OfflineDataset | None,
    cfg: TrainConfig,
    rng: np.random.Generator,
    data_rng: np.random.Generator,
) -> PearlBatch:
    """One fine-tuning meta-batch: row 0 the new task (buffer task 0), then
    `cfg.finetune.offline_tasks_per_batch` distinct dataset tasks (training/offline.py's
    sampling, `cfg.offline.context_sampling` included); `cfg.batch_size` transitions and
    `cfg.context_size` context rows per task (`cfg` is the fine-tuning config, whose
    batch_size is finetune.batch_size)."""
    ft = cfg.finetune
    obs, act, rew, nxt, done = buf.sample(np.array([0]), cfg.batch_size, rng)
    c = buf.sample_context(np.array([0]), cfg.context_size, rng)
    t = torch.from_numpy
    online = PearlBatch(t(obs), t(act), t(rew), t(nxt), t(done), t(c))
    k = ft.offline_tasks_per_batch
    if k == 0 or dataset is None:
        return online
    from training.algos.offline_pearl.losses import sample_offline_batch

    tasks = data_rng.choice(len(dataset.tasks), size=k, replace=False)
    offline = sample_offline_batch(dataset, cfg, data_rng, tasks)
    return PearlBatch(*(torch.cat([a, b]) for a, b in zip(online, offline, strict=True)))


def finetune_task(
    nets: PearlNets,
    cfg: TrainConfig,
    source: TaskSource,
    task: Any,
    seed: int,
    *,
    artifact_dir: str | Path | None = None,
    on_artifact: Callable[[Path], None] | None = None,
    dataset: OfflineDataset | None = None,
) -> tuple[FinetuneResult, PearlNets]:
    """Contextual adaptation, then gradient fine-tuning if far from the data (module doc).

    `nets` are not modified (a copy is fine-tuned and returned). With `artifact_dir`, each
    gradient phase is exported to `artifact_dir/vNNN` and passed to `on_artifact` (e.g. a
    RuntimeClient's reload) before the next episode. The offline data mixed into the
    gradient steps (`finetune.offline_tasks_per_batch` > 0) is `dataset` if given, else
    `cfg.offline.dataset`, loaded (and refused with a ValueError naming it) before the first
    episode.
    """
    from training.algos.offline_pearl.losses import update

    ft = cfg.finetune
    mix = ft.offline_tasks_per_batch if ft.updates_per_episode > 0 else 0
    dataset_name = "(passed to finetune_task)"
    if mix > 0:
        if dataset is None:
            dataset = load_finetune_dataset(cfg, nets.obs_dim, nets.act_dim)
            dataset_name = str(cfg.offline.dataset)
        else:
            _check_enough_tasks(mix, dataset, dataset_name)
            dataset.check_dims(nets.obs_dim, nets.act_dim)
    else:
        dataset = None
    # Offline tasks are drawn from their own stream: with offline_tasks_per_batch = 0 the
    # episodes and online batches are the same as before offline data was mixed in.
    data_rng = np.random.default_rng([seed, 1])
    nets = copy.deepcopy(nets)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = source.make_env()
    hz = env_control_hz(env)
    env.set_task(task)
    agent = TorchAgent(nets, cfg.use_latent, cfg.encoder.prior_in_posterior)
    post = Posterior(agent.latent_dim, agent.prior_in_posterior)
    ctx = gather_context(
        env,
        task,
        agent,
        post,
        ft.context_source,
        ft.context_episodes,
        demo_noise(ft),
        rng,
        hz,
        cfg.max_episode_steps,
    )
    cap = (ft.context_episodes + ft.max_episodes + 1) * int(cfg.max_episode_steps or 1000)
    buf = MultiTaskReplayBuffer(1, cap, nets.obs_dim, nets.act_dim)
    rows: list[np.ndarray] = []  # the posterior's context (`finetune.online_context`)

    def remember(ep: EpisodeResult, online: bool = True) -> None:
        """Every transition into the replay buffer; into the posterior as configured."""
        o, a = nets.obs_dim, nets.act_dim
        for r in ep.transitions:
            buf.add(0, r[:o], r[o : o + a], float(r[o + a]), r[o + a + 1 :], False)
        if (
            not online
            or ft.online_context == "all"
            or (ft.online_context == "successes" and ep.success)
        ):
            rows.append(ep.transitions)
            if online and agent.use_latent:
                post.add(*agent.factors(ep.transitions))

    for ep in ctx:
        remember(ep, online=False)  # gather_context added them to the posterior
    # T = 1 + mix tasks per gradient step: the new task, then `mix` offline tasks.
    ft_cfg = cfg.model_copy(update={"meta_batch": 1 + mix, "batch_size": ft.batch_size})
    optimizers = PearlOptimizers.create(nets, ft_cfg)
    result = FinetuneResult(
        task=task.model_dump(mode="json"),
        context_successes=sum(e.success for e in ctx),
        offline_dataset=None if dataset is None else dataset_name,
        offline_tasks_per_batch=mix,
    )
    streak, updates = 0, 0
    for i in range(ft.max_episodes):
        grad = result.gradient_from is not None
        ep = run_episode(
            env,
            agent,
            post,
            rng,
            z_mode="mean",
            update_every_step=False,
            control_hz=hz,
            max_steps=cfg.max_episode_steps,
            stochastic_policy=grad or ft.sample_actions,
        )
        remember(ep)
        result.episodes.append(bool(ep.success))
        streak = streak + 1 if ep.success else 0
        if streak >= ft.streak:
            result.reached_after = i + 1
            break
        if (
            not grad
            and i + 1 >= ft.far_window
            and np.mean(result.episodes[-ft.far_window :]) < ft.far_threshold
        ):
            result.gradient_from = i + 1
            grad = True
        if grad and ft.updates_per_episode > 0:
            for _ in range(ft.updates_per_episode):
                update(mixed_batch(buf, dataset, ft_cfg, rng, data_rng), nets, optimizers, ft_cfg)
                updates += 1
            # The encoder moved: rebuild the posterior from its context transitions.
            post.reset()
            if agent.use_latent:
                post.add(*agent.factors(np.concatenate(rows)))
            if artifact_dir is not None:
                from training.algos.pearl.export import export_run

                out = Path(artifact_dir) / f"v{len(result.artifacts):03d}"
                with tempfile.TemporaryDirectory() as tmp:
                    save_run(nets, cfg, Path(tmp), updates)
                    export_run(tmp, out)
                result.artifacts.append(str(out))
                if on_artifact is not None:
                    on_artifact(out)
    for _ in range(ft.final_episodes):
        ep = run_episode(
            env,
            agent,
            post,
            rng,
            z_mode="mean",
            update_every_step=False,
            control_hz=hz,
            max_steps=cfg.max_episode_steps,
            stochastic_policy=ft.sample_actions,
        )
        result.final_successes += int(ep.success)
        result.final_episodes += 1
    env.close()
    return result, nets


def load_run(run_dir: str | Path) -> tuple[PearlNets, TrainConfig]:
    """Networks and config of a run dir (offline or online PEARL)."""
    from training.algos.pearl.losses import make_nets
    from training.algos.pearl.trainer import load_checkpoint

    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    cfg = TrainConfig.model_validate(state["config"])
    nets = make_nets(int(state["dims"]["obs"]), int(state["dims"]["act"]), cfg)
    nets.load_state_dict(state["nets"])
    return nets, cfg


def main(argv: Sequence[str] | None = None) -> int:
    """Context-shift evaluation or fine-tuning of a run (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m training.finetune", description=__doc__.split("\n")[0]
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
    p.add_argument("--tasks-per-plug", type=int, default=10)
    p.add_argument("--plugs", nargs="+")
    p.add_argument("--finetune", metavar="PLUG", help="fine-tune on this plug's first test task")
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
    from training.common.tasks import make_task_source
    from zshot.config import override_config

    try:
        nets, cfg = load_run(args.run)
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
            task = select_tasks(source, [args.finetune], 1)[0]
            reload_fn = None
            if args.runtime:
                from runtime.protocol import RuntimeClient

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
            for kind in kinds:
                rep = context_eval(
                    source,
                    nets,
                    cfg,
                    context_source=kind,
                    episodes=args.episodes,
                    seed=args.seed,
                    plugs=args.plugs,
                    tasks_per_plug=args.tasks_per_plug,
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


if __name__ == "__main__":
    raise SystemExit(main())
