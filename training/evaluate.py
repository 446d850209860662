"""Few-shot evaluation: per test task, start from the prior, explore K episodes, then evaluate.

Protocols (`EvalConfig.mode`):

- episodic (PEARL's): z ~ posterior once per exploration episode (posterior sampling; the
  first episode samples the prior), the episode's transitions are added to the context and
  the posterior is recomputed; then N evaluation episodes with z = posterior mean.
- online: the posterior is updated after every step from the first episode on and z is
  always the current posterior mean (what a robot does when it must succeed on trial one).

The same code evaluates a training run (torch networks) or an exported artifact
(onnxruntime, so the numbers are the ones the robot gets): both give per-transition factors
(mu_n, var_n) and actions; the posterior is accumulated here in natural parameters, exactly
as the runtime does. Episodes run through the one episode loop (training/common/rollout.py).

`context_eval` measures the context shift: the posterior built from K episodes of a
demonstrator (training/behaviours.py) or of the policy's own exploration, then N episodes
with its mean (the ODA protocol; fine-tuning is training/algos/offline_pearl/finetune.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.behaviours import DemoAgent, demo_noise
from training.common.agents import FewShotAgent, Posterior, new_posterior
from training.common.rollout import run_episode as run_rollout
from training.common.rollout import task_rng
from training.common.tasks import TaskSource, env_control_hz, select_test_tasks
from training.config import EvalConfig, TrainConfig
from zshot.jsonio import write_json


@dataclass
class EpisodeResult:
    """One episode's outcome."""

    ret: float
    success: bool
    steps: int
    time_to_insert: float | None  # seconds to first success, None if it never succeeded
    peak_force: float
    safety_violation: bool  # the env ended the episode for excess force
    transitions: np.ndarray = field(repr=False)  # (steps, D)


def run_episode(
    env: Any,
    agent: FewShotAgent,
    posterior: Posterior,
    rng: np.random.Generator,
    *,
    z_mode: str,
    update_every_step: bool,
    control_hz: float,
    max_steps: int | None = None,
    stochastic_policy: bool = False,
) -> EpisodeResult:
    """One episode (training/common/rollout.py); z from the posterior ("sample" once, or
    "mean"); returns its outcome and transitions.

    With `update_every_step` the posterior is updated in place after every step and z is
    recomputed (its mean); otherwise the caller adds `transitions` when it chooses.
    """
    seed = int(rng.integers(2**31))  # drawn before z: the order evaluation always used
    agent.reset_episode()
    act_dim = env.action_space.shape[0]
    z = _latent(agent, posterior, rng, z_mode)
    enc = agent.encoder if update_every_step else None

    def act(obs: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal(act_dim) if stochastic_policy else np.zeros(act_dim)
        return agent.act(np.asarray(obs, np.float32), z, noise.astype(np.float32))

    def online_update(row: np.ndarray) -> None:
        nonlocal z
        agent.observe(row)  # a recurrent agent's next last_action and reward
        if enc is not None:
            posterior.add(*enc.factors(row[None]))
            z = posterior.mean.astype(np.float32)

    ep = run_rollout(env, act, seed, max_steps=max_steps, on_step=online_update)
    agent.end_episode(ep.success, ep.obs[-1])
    first = ep.first_success
    return EpisodeResult(
        ret=ep.ret,
        success=first is not None,
        steps=ep.steps,
        time_to_insert=None if first is None else first / control_hz,
        peak_force=max([0.0, *(float(i.get("peak_force", 0.0)) for i in ep.infos)]),
        safety_violation=any(bool(i.get("safety_violation", False)) for i in ep.infos),
        transitions=ep.transitions(),
    )


def mean_z_episode(
    env: Any,
    agent: FewShotAgent,
    posterior: Posterior,
    rng: np.random.Generator,
    control_hz: float,
    max_steps: int | None,
    stochastic_policy: bool = False,
) -> EpisodeResult:
    """An episode with z = the posterior's mean, the posterior left as it is."""
    return run_episode(
        env,
        agent,
        posterior,
        rng,
        z_mode="mean",
        update_every_step=False,
        control_hz=control_hz,
        max_steps=max_steps,
        stochastic_policy=stochastic_policy,
    )


def _latent(
    agent: FewShotAgent, post: Posterior, rng: np.random.Generator, mode: str
) -> np.ndarray:
    if agent.encoder is None:
        return np.zeros(agent.latent_dim, np.float32)  # SAC without context: z fixed at 0
    z = post.sample(rng) if mode == "sample" else post.mean
    return z.astype(np.float32)


@dataclass
class TaskResult:
    """Aggregated evaluation episodes of one task label (over its test tasks: one plug on
    insertion, one held-out terrain setting, one goal of the point task)."""

    label: str
    successes: int
    episodes: int
    mean_return: float
    mean_time_to_insert: float | None  # over successful episodes, seconds
    peak_force: float  # max over evaluation episodes, N
    mean_peak_force: float
    safety_violations: int  # evaluation episodes ended by the env's force limit
    mean_steps: float  # evaluation episode length (control steps)
    explore_successes: int  # successes during exploration episodes (not counted above)
    explore_episodes: int
    std_return: float = 0.0  # over evaluation episodes
    explore_mean_return: float = float("nan")  # over exploration episodes (NaN: none)


def _time_cell(p: TaskResult) -> str:
    """Mean time to success (s) of a report row, "-" without successes."""
    return f"{p.mean_time_to_insert:.2f}" if p.mean_time_to_insert is not None else "-"


@dataclass
class FewShotReport:
    """Per-label results plus the protocol that produced them."""

    tasks: list[TaskResult]
    protocol: dict[str, Any]

    @property
    def success_rate(self) -> float:
        """Successes / episodes over all labels."""
        n = sum(p.episodes for p in self.tasks)
        return sum(p.successes for p in self.tasks) / n if n else 0.0

    def table(self) -> str:
        """The per-label table people read: insertion's (first column "plug", as every
        insertion task is one; time to insert, peak force, force-limit
        endings), return-based for locomotion (`return_table`), success-based for other
        success envs (`success_table`: the toy task has no insertion or forces)."""
        if self.protocol.get("metric") == "return":
            return self.return_table()
        if self.protocol.get("env_kind", "insertion") != "insertion":
            return self.success_table()
        return self._success_rows(
            "plug",
            22,
            [
                ("t_insert[s]", 11, _time_cell),
                ("peak F[N]", 10, lambda p: f"{p.peak_force:.1f}"),
                ("violations", 10, lambda p: str(p.safety_violations)),
            ],
        )

    def success_table(self) -> str:
        """Per task label: successes, mean return, time to success and episode length."""
        return self._success_rows(
            "task",
            max([22, *(len(p.label) for p in self.tasks)]),
            [("t_success[s]", 12, _time_cell), ("steps", 6, lambda p: f"{p.mean_steps:.0f}")],
        )

    def _success_rows(
        self, label: str, width: int, columns: list[tuple[str, int, Callable[[TaskResult], str]]]
    ) -> str:
        """label | success | return | the given columns (header, width, cell), then "all"."""
        head = f"{label:<{width}} {'success':>9} {'return':>9}" + "".join(
            f" {h:>{n}}" for h, n, _ in columns
        )
        lines = [head, "-" * len(head)]
        for p in self.tasks:
            lines.append(
                f"{p.label:<{width}} {f'{p.successes}/{p.episodes}':>9} {p.mean_return:>9.2f}"
                + "".join(f" {cell(p):>{n}}" for _, n, cell in columns)
            )
        n = sum(p.episodes for p in self.tasks)
        s = sum(p.successes for p in self.tasks)
        lines.append(f"{'all':<{width}} {f'{s}/{n}':>9}")
        return "\n".join(lines)

    def return_table(self) -> str:
        """Per task label: evaluation return (mean, std over episodes), the exploration
        episodes' mean return and length; success is not a locomotion figure."""
        w = max([30, *(len(p.label) for p in self.tasks)])  # terrain labels can be long
        head = (
            f"{'task':<{w}} {'episodes':>8} {'return':>9} {'std':>8} {'explore ret':>11} "
            f"{'steps':>6}"
        )
        lines = [head, "-" * len(head)]
        for p in self.tasks:
            # no exploration episodes (K = 0, online mode): "-", not nan
            explore = p.explore_mean_return
            explore_s = f"{explore:>11.2f}" if np.isfinite(explore) else f"{'-':>11}"
            lines.append(
                f"{p.label:<{w}} {p.episodes:>8} {p.mean_return:>9.2f} {p.std_return:>8.2f} "
                f"{explore_s} {p.mean_steps:>6.0f}"
            )
        n = sum(p.episodes for p in self.tasks)
        lines.append(f"{'all':<{w}} {n:>8} {self.mean_return:>9.2f}")
        return "\n".join(lines)

    @property
    def mean_return(self) -> float:
        """Mean evaluation return over every episode of every label."""
        n = sum(p.episodes for p in self.tasks)
        return sum(p.mean_return * p.episodes for p in self.tasks) / n if n else float("nan")

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "protocol": self.protocol,
            "success_rate": self.success_rate,
            "mean_return": self.mean_return,
            "tasks": [asdict(p) for p in self.tasks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FewShotReport:
        """The report `to_json` wrote; also one written before the rename (rows under
        "plugs", each labelled "plug")."""
        rows = data["tasks"] if "tasks" in data else data.get("plugs", [])
        out = []
        for row in rows:
            row = dict(row)
            if "label" not in row:
                row["label"] = row.pop("plug")
            out.append(TaskResult(**row))
        return cls(out, dict(data.get("protocol", {})))

    def write_json(self, path: str | Path) -> None:
        """Write `to_json()` to `path` as strict JSON (NaN as null)."""
        write_json(path, self.to_json())


def task_result(label: str, eps: list[EpisodeResult], explore: list[EpisodeResult]) -> TaskResult:
    """One report row from a label's evaluation episodes and its exploration episodes."""
    ttis = [e.time_to_insert for e in eps if e.time_to_insert is not None]
    return TaskResult(
        label=label,
        successes=sum(e.success for e in eps),
        episodes=len(eps),
        mean_return=float(np.mean([e.ret for e in eps])),
        mean_time_to_insert=float(np.mean(ttis)) if ttis else None,
        peak_force=float(max(e.peak_force for e in eps)),
        mean_peak_force=float(np.mean([e.peak_force for e in eps])),
        safety_violations=sum(e.safety_violation for e in eps),
        mean_steps=float(np.mean([e.steps for e in eps])),
        explore_successes=sum(e.success for e in explore),
        explore_episodes=len(explore),
        std_return=float(np.std([e.ret for e in eps])),
        explore_mean_return=float(np.mean([e.ret for e in explore])) if explore else float("nan"),
    )


def few_shot_task(
    env: Any,
    agent: FewShotAgent,
    cfg: EvalConfig,
    rng: np.random.Generator,
    control_hz: float,
    max_steps: int | None,
) -> tuple[list[EpisodeResult], list[EpisodeResult]]:
    """One test task's (exploration, evaluation) episodes (env already set to it), every
    draw from `rng` (the task's own stream, `task_rng(seed, index)`)."""
    online = cfg.mode == "online"
    agent.reset_task()  # a scripted baseline's memory is per task
    post = new_posterior(agent)
    explore: list[EpisodeResult] = []
    for _ in range(cfg.explore_episodes):
        ep = run_episode(
            env,
            agent,
            post,
            rng,
            z_mode="mean" if online else "sample",
            update_every_step=online,
            control_hz=control_hz,
            max_steps=max_steps,
        )
        if not online and agent.encoder is not None and len(ep.transitions):
            post.add(*agent.encoder.factors(ep.transitions))
        explore.append(ep)
    evals = [
        run_episode(
            env,
            agent,
            post,
            rng,
            z_mode="mean",
            update_every_step=online,
            control_hz=control_hz,
            max_steps=max_steps,
        )
        for _ in range(cfg.eval_episodes)
    ]
    return explore, evals


def few_shot_task_env(
    source: TaskSource,
    task: Any,
    agent: FewShotAgent,
    cfg: EvalConfig,
    seed: int,
    index: int,
    max_steps: int | None,
) -> tuple[list[EpisodeResult], list[EpisodeResult]]:
    """Test task `index` (`task`) on a fresh env of `source`, drawn from `task_rng(seed,
    index)`: the insertion env keeps PyBullet state across `set_task`, so a reused env
    would make a task's episodes depend on the tasks run before it."""
    env = source.make_env()
    try:
        env.set_task(task)
        rng = task_rng(seed, index)
        return few_shot_task(env, agent, cfg, rng, env_control_hz(env), max_steps)
    finally:
        env.close()


def few_shot_eval(
    source: TaskSource,
    agent: FewShotAgent,
    cfg: EvalConfig,
    seed: int,
    *,
    labels: list[str] | None = None,
    max_steps: int | None = None,
    run_tasks: Callable[[int], Iterator[tuple[int, Any]]] | None = None,
) -> FewShotReport:
    """Run the few-shot protocol on the source's test tasks (optionally only those labelled
    `labels`).

    Test task i draws from `task_rng(seed, i)` alone: the report does not depend on the
    order the tasks run in. `run_tasks(n)`: an iterator of (i, (explore, eval)) for the n
    selected tasks, in index order (`zshot eval --workers`: training/cli.py's EvalWorker); default: in
    this process."""
    tasks = select_test_tasks(
        source, labels, cfg.tasks_per_label, cfg.max_tasks, flag="--tasks/--plugs: "
    )
    if run_tasks is None:

        def local(n: int) -> Iterator[tuple[int, Any]]:
            for i in range(n):
                yield i, few_shot_task_env(source, tasks[i], agent, cfg, seed, i, max_steps)

        run_tasks = local
    per_label: dict[str, dict[str, list]] = {}
    for i, (explore, evals) in run_tasks(len(tasks)):
        acc = per_label.setdefault(source.task_label(tasks[i]), {"eval": [], "explore": []})
        acc["explore"] += explore
        acc["eval"] += evals
    rows = []
    for label in sorted(per_label):
        eps: list[EpisodeResult] = per_label[label]["eval"]
        exp: list[EpisodeResult] = per_label[label]["explore"]
        rows.append(task_result(label, eps, exp))
    protocol = {
        "mode": cfg.mode,
        "explore_episodes": cfg.explore_episodes,
        "eval_episodes_per_task": cfg.eval_episodes,
        "tasks": len(tasks),
        "seed": seed,
        "seeds": "per task: task_rng(seed, test task index)",
        "use_latent": agent.encoder is not None,
        "metric": getattr(source, "metric", "success"),
        "env_kind": getattr(source, "kind", "insertion"),
    }
    return FewShotReport(rows, protocol)


def gather_context(
    env: Any,
    task: Any,
    agent: FewShotAgent,
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
        if agent.encoder is not None and len(ep.transitions):
            post.add(*agent.encoder.factors(ep.transitions))
        out.append(ep)
    return out


def context_eval(
    source: TaskSource,
    agent: FewShotAgent,
    cfg: TrainConfig,
    *,
    context_source: str,
    episodes: int,
    seed: int,
    labels: list[str] | None = None,
    tasks_per_label: int | None = None,
) -> FewShotReport:
    """The context-shift measurement (training/algos/offline_pearl/finetune.py's module
    doc): per test task, K context episodes from `context_source` (`cfg.finetune`), then
    `episodes` with z = the posterior mean."""
    ft = cfg.finetune
    env = source.make_env()
    hz = env_control_hz(env)
    rng = np.random.default_rng(seed)
    per: dict[str, tuple[list[EpisodeResult], list[EpisodeResult]]] = {}
    for task in select_test_tasks(source, labels, tasks_per_label):
        label = source.task_label(task)
        evals, ctxs = per.setdefault(label, ([], []))
        env.set_task(task)
        post = new_posterior(agent)
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
            ep = mean_z_episode(env, agent, post, rng, hz, cfg.max_episode_steps, ft.sample_actions)
            evals.append(ep)
    env.close()
    rows = [task_result(label, *per[label]) for label in sorted(per)]
    protocol = {
        "context_source": context_source,
        "context_episodes": ft.context_episodes,
        "eval_episodes_per_task": episodes,
        "tasks_per_label": tasks_per_label,
        "seed": seed,
        "use_latent": agent.encoder is not None,
        "sample_actions": ft.sample_actions,
    }
    return FewShotReport(rows, protocol)


ConditionedPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(obs, descriptor) -> the deterministic action of a policy told its task (torch or ONNX)."""


def conditioned_eval(
    source: TaskSource,
    policy: ConditionedPolicy,
    episodes: int,
    seed: int,
    *,
    max_steps: int | None = None,
    protocol: dict[str, Any] | None = None,
    descriptor: str = "onehot",
    tasks: Sequence[Any] | None = None,
) -> FewShotReport:
    """A policy told its task: `episodes` episodes per task, no exploration (nothing to
    infer). `descriptor` onehot: on the source's train tasks, task i told its one-hot id
    (e_i of size len(train_tasks); a one-hot names train tasks only); descriptor: on
    `tasks` (default the train tasks; held-out test tasks too: zero-shot), each told its
    descriptor (`TaskSource.describe`). One report row per task."""
    if descriptor == "onehot":
        if tasks is not None:
            raise ValueError("a one-hot id names train tasks only; tasks cannot be given")
        tasks = source.train_tasks
        told = list(np.eye(len(tasks), dtype=np.float32))
    else:
        tasks = list(source.train_tasks if tasks is None else tasks)
        told = [source.describe(t) for t in tasks]
    rows = _told_rows(
        source,
        tasks,
        lambda i, env: functools.partial(_told, policy, told[i]),
        episodes,
        seed,
        max_steps,
    )
    what = (
        "train (each told by its one-hot id)"
        if descriptor == "onehot"
        else "each told its task descriptor (TaskSource.describe)"
    )
    return FewShotReport(rows, _told_info(what, episodes, seed, source, protocol))


def _told_rows(
    source: TaskSource,
    tasks: Sequence[Any],
    act_for: Callable[[int, Any], Callable[[np.ndarray], np.ndarray]],
    episodes: int,
    seed: int,
    max_steps: int | None,
    final_success: bool = False,
) -> list[TaskResult]:
    """One report row per task i of `tasks`: `episodes` episodes from task i's own stream on
    a fresh env (as few_shot_task_env), acting by `act_for(i, env)`. `final_success`: a
    success is `is_success` at the episode's last step (goal reaching) instead of at any."""
    rows = []
    for i, task in enumerate(tasks):
        rng = task_rng(seed, i)
        env = source.make_env()
        try:
            control_hz = env_control_hz(env)
            env.set_task(task)
            act = act_for(i, env)
            eps = [
                run_rollout(env, act, int(rng.integers(2**31)), max_steps=max_steps)
                for _ in range(episodes)
            ]
        finally:
            env.close()
        row = _told_row(source.task_label(task), eps, control_hz)
        if final_success:
            row.successes = sum(bool(ep.infos[-1].get("is_success")) for ep in eps)
        rows.append(row)
    return rows


def _told_info(
    tasks: str, episodes: int, seed: int, source: TaskSource, protocol: dict[str, Any] | None
) -> dict[str, Any]:
    """The protocol block of a told policy's report."""
    return {
        "tasks": tasks,
        "eval_episodes": episodes,
        "explore_episodes": 0,
        "seed": seed,
        "seeds": "per task: task_rng(seed, train task index)",
        "env_kind": source.kind,
        **(protocol or {}),
    }


def _told(policy: ConditionedPolicy, descriptor: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """`policy`'s action for `obs` told `descriptor`."""
    return policy(obs, descriptor)


def _told_row(label: str, episodes: list[Any], control_hz: float) -> TaskResult:
    """One report row from a task's episodes (training.common.rollout Episodes)."""
    rets = [ep.ret for ep in episodes]
    firsts = [ep.first_success for ep in episodes if ep.first_success is not None]
    peaks = [
        max((float(i.get("peak_force", 0.0)) for i in ep.infos), default=0.0) for ep in episodes
    ]
    return TaskResult(
        label=label,
        successes=len(firsts),
        episodes=len(episodes),
        mean_return=float(np.mean(rets)),
        mean_time_to_insert=float(np.mean(firsts)) / control_hz if firsts else None,
        peak_force=max(peaks),
        mean_peak_force=float(np.mean(peaks)),
        safety_violations=sum(bool(ep.infos[-1].get("safety_violation")) for ep in episodes),
        mean_steps=float(np.mean([ep.steps for ep in episodes])),
        explore_successes=0,
        explore_episodes=0,
        std_return=float(np.std(rets)),
    )


def goal_eval(
    source: TaskSource,
    policy: ConditionedPolicy,
    episodes: int,
    seed: int,
    *,
    max_steps: int | None = None,
    protocol: dict[str, Any] | None = None,
) -> FewShotReport:
    """A goal-conditioned policy on a goal env (training/common/goals.py `FlatGoalEnv`):
    `episodes` episodes per train task (Fetch and the point: one task; insertion: each
    train plug), each with the goal the env draws, the policy told it as its descriptor:
    `policy(observation, desired_goal)`. Success (HER's measure): the goal reached at the
    episode's last step. One report row per train task."""

    def act_for(i: int, env: Any) -> Callable[[np.ndarray], np.ndarray]:
        layout = env.layout

        def act(flat: np.ndarray) -> np.ndarray:
            obs, _, desired = layout.split(np.asarray(flat, np.float32))
            return policy(obs, desired)

        return act

    rows = _told_rows(
        source, source.train_tasks, act_for, episodes, seed, max_steps, final_success=True
    )
    info = _told_info("train (each episode told its goal)", episodes, seed, source, protocol)
    return FewShotReport(rows, {**info, "success": "the goal reached at the episode's last step"})
