"""The meta-RL comparison (issue 21): RL², MAML, VariBAD, PEARL and the no-context baseline,
each trained for one equal wall-clock budget on one core, then their adaptation curves on
the held-out test tasks: the return after k = 0, 1, .., K adaptation episodes, mean over
the test tasks, per method and seed.

    python bench/meta_compare.py FAMILY [--methods rl2,maml,varibad,pearl,nocontext]
        [--seeds 0,1] [--minutes 2.5] [--out runs/meta_compare/FAMILY] [--max-tasks 10]
        [--k 3] [--ood TERRAIN_YAML] [--config METHOD=TRAIN_YAML ...] [--set KEY=VALUE ...]
        [--png docs/img/meta_compare_FAMILY.png] [--table FILE.md]

FAMILY is cheetah-vel, cheetah-dir, ant-dir or cheetah-terrain (the held-out terrains;
each method's config below, `FAMILIES`), or any other name with every method's train
config given by `--config METHOD=PATH` (insertion `hard`: an insertion config per method
plus `--set profile=hard`). It resumes: a run dir OUT/METHOD-sSEED that holds `train.json` is
not trained again, a curve OUT/METHOD-sSEED/curve-TEST.json not measured again, so the
work can be split into jobs of a few runs each (`--methods`, `--seeds`), and the last call
(all methods) writes the table and the PNG from what is there. Where the test set has a
success signal (insertion), a second table splits the successes by task label (the plug):
x/N per label at each k, pooled over the seeds (`per_label_table`).

Training: `python -m zshot train CONFIG --set seed=S --set max_minutes=M` in a subprocess,
one thread (`torch_threads: 1`, OMP/MKL 1), `iterations` set out of reach so the wall
clock stops every run (each trainer checks `max_minutes` after an iteration: a run ends
with the first iteration past the budget), no periodic evaluation (the budget is all
training) and a one-task final evaluation. `train.json` records the env steps, updates and
iterations the run got, its wall clock and the CPU seconds of the process.

What "after k episodes" means (the test task's episodes, each from its own reset seed,
`task_rng(--seed, task index)`; actions are the policy's mean unless said otherwise):

- rl2, varibad: episode k itself, the hidden state (VariBAD: the belief) carried from
  episodes 0..k-1 as the runtime keeps it across RESET_EPISODE (`RecurrentAgent`);
- pearl: an episode with z = the posterior mean of the k exploration episodes before it
  (each explored with z ~ the posterior so far: posterior sampling, as `zshot eval`'s
  episodic protocol; k = 0: the prior mean); the evaluation episodes stay out of the context;
- maml: an episode of the policy after one inner policy-gradient step (the run's inner
  loss and step size, `zshot adapt`'s `adapted_params`) on the first k of K episodes sampled
  from the meta-policy (the gradient needs the policy's own samples; k = 0: the meta-policy);
- nocontext: the same SAC policy (z = 0) in every episode: flat up to episode noise.

The agents are the project's torch agents (`training.registry.agent_of`, what `zshot eval
RUN` drives) and the run's own MAML networks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.mt10_table import save_figure
from zshot.config import PROFILE_NAMES as PROFILES

METHODS = ("rl2", "maml", "varibad", "pearl", "nocontext")

MEANING = {
    "rl2": "episode k, GRU state carried from episodes 0..k-1",
    "maml": "mean-action episode after 1 inner PG step on k sampled episodes",
    "varibad": "episode k, belief (GRU state) carried from episodes 0..k-1",
    "pearl": "z = posterior mean of k exploration episodes (z ~ posterior)",
    "nocontext": "the same policy (z = 0) every episode",
}

# method -> (train config, extra --set overrides)
FAMILIES: dict[str, dict[str, tuple[str, list[str]]]] = {
    fam: {
        "rl2": (f"configs/train/rl2_{stem}.yaml", []),
        "maml": (f"configs/train/maml_{stem}.yaml", []),
        "varibad": (f"configs/train/varibad_{stem}.yaml", []),
        "pearl": (f"configs/train/{stem}.yaml", []),
        "nocontext": (f"configs/train/{stem}.yaml", ["use_latent=false"]),
    }
    for fam, stem in (
        ("cheetah-vel", "cheetah_vel"),
        ("cheetah-dir", "cheetah_dir"),
        ("ant-dir", "ant_dir"),
    )
}

# the held-out terrains (cheetah-terrain: 10 test terrains outside the 40 training ones):
# RL², MAML and VariBAD with their cheetah-vel settings on that task family; PEARL and
# domain randomisation (no context) with their own terrain config
FAMILIES["cheetah-terrain"] = {
    m: (config, [*sets, "terrain_config=configs/terrain/cheetah_terrain.yaml"])
    for m, (config, sets) in FAMILIES["cheetah-vel"].items()
    if m in ("rl2", "maml", "varibad")
}
FAMILIES["cheetah-terrain"]["pearl"] = ("configs/train/cheetah_terrain.yaml", [])
FAMILIES["cheetah-terrain"]["nocontext"] = (
    "configs/train/cheetah_terrain.yaml",
    ["use_latent=false"],
)

# every run: the wall clock stops it, no periodic evaluation, a cheap final one
COMMON_SETS = [
    "iterations=1000000",
    "eval_every=0",
    "checkpoint_every=1000000",
    "torch_threads=1",
    "eval.max_tasks=1",
    "eval.explore_episodes=1",
    "eval.eval_episodes=1",
]
METHOD_SETS = {"maml": ["maml.eval_tasks=1", "maml.eval_steps=0"]}


class CompareError(Exception):
    """A problem reported in one line (exit 2)."""


@dataclass
class Curve:
    """One run's adaptation curve on one test set: per row (a test task's measured episode,
    `episodes` rows per task) the return (and success) after k episodes, k = `ks`
    (None: 0..K, as curves measured before `ks` existed)."""

    method: str
    seed: int
    test: str
    labels: list[str]  # per row
    returns: list[list[float]]  # (rows, measured k)
    successes: list[list[bool]]
    has_success: bool
    train: dict[str, Any]  # train.json: env_steps, updates, iterations, wall_s, cpu_s
    still: float | None = None  # *-vel: the return of zero torque on the same tasks
    ks: list[int] | None = None
    episodes: int = 1  # measured episodes per test task at each k
    times: list[list[float | None]] | None = None  # time to insert (s), per row and k
    violations: list[list[bool]] | None = None  # ended by the force limit, per row and k

    @property
    def k_values(self) -> list[int]:
        """The k of the columns."""
        return list(range(len(self.returns[0]))) if self.ks is None else list(self.ks)

    @property
    def mean(self) -> np.ndarray:
        """Mean return over the rows at each measured k."""
        return np.asarray(self.returns, float).mean(0)

    @property
    def success_rate(self) -> np.ndarray:
        """Success rate over the rows at each measured k."""
        return np.asarray(self.successes, float).mean(0)

    def report(self, k: int) -> dict[str, Any]:
        """The episodes after k adaptation episodes as an evaluation report
        (bench/profiles_table.py reads it): per label successes / episodes, the mean time to
        insert of the successes, the force-limit endings."""
        if k not in self.k_values:
            raise CompareError(f"{self.method}-s{self.seed} {self.test}: k = {k} not measured")
        col = self.k_values.index(k)
        rows: dict[str, dict[str, Any]] = {}
        times: dict[str, list[float]] = {}
        for i, label in enumerate(self.labels):
            r = rows.setdefault(label, {"label": label, "successes": 0, "episodes": 0,
                                        "safety_violations": 0})  # fmt: skip
            r["episodes"] += 1
            if self.successes[i][col]:
                r["successes"] += 1
                t = self.times[i][col] if self.times is not None else None
                if t is not None:
                    times.setdefault(label, []).append(t)
            if self.violations is not None and self.violations[i][col]:
                r["safety_violations"] += 1
        for label, r in rows.items():
            ts = times.get(label)
            r["mean_time_to_insert"] = float(np.mean(ts)) if ts else None
        return {"method": self.method, "seed": self.seed, "test": self.test, "k": k,
                "tasks": list(rows.values())}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


# ---------------------------------------------------------------- the curves
@dataclass
class Rows:
    """What was measured: per row (a test task's j-th measured episode; `episodes` rows per
    task, task-major) and measured k (a column), the episode's return, success, time to
    insert (s, None without one) and whether the env's force limit ended it."""

    returns: list[list[float]]
    successes: list[list[bool]]
    times: list[list[float | None]]
    violations: list[list[bool]]


def _over_tasks(source: Any, tasks: Sequence[Any], seed: int, one_task: Any) -> Rows:
    """`one_task(env, rng, hz) -> [[EpisodeResult] * episodes per measured k]` on each task,
    its env set to it, its random stream `task_rng(seed, task index)`; rows task-major (one
    per measured episode of a task)."""
    from training.common.rollout import task_rng
    from training.common.tasks import env_control_hz

    rows = Rows([], [], [], [])
    for i, task in enumerate(tasks):
        env = source.make_env()
        try:
            env.set_task(task)
            cols = one_task(env, task_rng(seed, i), env_control_hz(env))
        finally:
            env.close()
        for eps in zip(*cols, strict=True):  # the j-th measured episode at each k
            rows.returns.append([float(e.ret) for e in eps])
            rows.successes.append([bool(e.success) for e in eps])
            rows.times.append([e.time_to_insert for e in eps])
            rows.violations.append([bool(e.safety_violation) for e in eps])
    return rows


def _episode(
    env: Any,
    agent: Any,
    post: Any,
    rng: np.random.Generator,
    hz: float,
    max_steps: int | None,
    z_mode: str = "mean",
    stochastic: bool = False,
) -> Any:
    """One episode through `training.evaluate.run_episode` (the context left to the caller)."""
    from training.evaluate import run_episode

    return run_episode(
        env,
        agent,
        post,
        rng,
        z_mode=z_mode,
        update_every_step=False,
        control_hz=hz,
        max_steps=max_steps,
        stochastic_policy=stochastic,
    )


def _ks(k_max: int, ks: Sequence[int] | None) -> list[int]:
    """The measured k: `ks` (each in 0..k_max), or every k of 0..k_max."""
    out = list(range(k_max + 1)) if ks is None else sorted(set(ks))
    if not out or out[0] < 0 or out[-1] > k_max:
        raise CompareError(f"measured k {list(ks or [])} must lie in 0..{k_max} (--k)")
    return out


def agent_curve(
    source: Any,
    agent: Any,
    tasks: Sequence[Any],
    k_max: int,
    seed: int,
    max_steps: int | None,
    episodes: int = 1,
    ks: Sequence[int] | None = None,
) -> Rows:
    """The curve of a `FewShotAgent` at each measured k (`ks`, default 0..k_max), `episodes`
    measured episodes each. With a context encoder (PEARL): posterior-mean episodes after k
    posterior-sampling exploration episodes (the measured ones stay out of the context).
    Without one (recurrent agents, no context): the episodes after k episodes of the task,
    the agent's per-task state kept across episodes (`reset_episode`), reset per task
    (`reset_task`); each of the `episodes` starts from the state after k episodes
    (`snapshot` / `restore`: the measured ones do not add to the state), the first of them
    is the task's episode k (which the next k's state follows); an unmeasured k runs that
    one episode only."""
    from training.common.agents import new_posterior

    measured = _ks(k_max, ks)

    def one_task(env: Any, rng: np.random.Generator, hz: float) -> list[list[Any]]:
        agent.reset_task()
        post = new_posterior(agent)
        cols: list[list[Any]] = []
        for k in range(k_max + 1):
            if agent.encoder is not None:
                if k in measured:
                    cols.append(
                        [_episode(env, agent, post, rng, hz, max_steps) for _ in range(episodes)]
                    )
                if k < k_max:
                    ex = _episode(env, agent, post, rng, hz, max_steps, z_mode="sample")
                    if len(ex.transitions):
                        post.add(*agent.encoder.factors(ex.transitions))
                continue
            if k not in measured:  # the task's episode k only: the next k's state follows it
                _episode(env, agent, post, rng, hz, max_steps)
                continue
            start = agent.snapshot() if hasattr(agent, "snapshot") else None
            col = [_episode(env, agent, post, rng, hz, max_steps)]  # the task's episode k
            if start is not None and episodes > 1:
                after = agent.snapshot()
                for _ in range(episodes - 1):
                    agent.restore(start)
                    col.append(_episode(env, agent, post, rng, hz, max_steps))
                agent.restore(after)
            else:  # no per-task state to keep apart
                col += [_episode(env, agent, post, rng, hz, max_steps) for _ in range(episodes - 1)]
            cols.append(col)
        return cols

    return _over_tasks(source, tasks, seed, one_task)


class ParamsAgent:
    """A MAML policy with given parameters as a `FewShotAgent`: mean + std * noise (noise
    0: the mean action); no context, no per-episode state."""

    latent_dim = 1
    encoder = None

    def __init__(self, policy: Any, params: Any) -> None:
        self.policy, self.params = policy, params

    def reset_task(self) -> None:
        """Nothing to forget."""

    def reset_episode(self) -> None:
        """Nothing to restart."""

    def observe(self, row: np.ndarray) -> None:
        """Nothing to read."""

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        """Nothing to learn."""

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The policy's action for `obs` (raw: the env clips it)."""
        import torch

        from training.algos.maml.networks import forward_with

        with torch.no_grad():
            mean, log_std = forward_with(self.policy, self.params, torch.as_tensor(obs)[None])
            a = mean[0] + log_std.exp() * torch.as_tensor(noise)
        return np.asarray(a.numpy(), np.float32)


def maml_curve(
    source: Any,
    nets: Any,
    cfg: Any,
    tasks: Sequence[Any],
    k_max: int,
    seed: int,
    max_steps: int | None,
    episodes: int = 1,
    ks: Sequence[int] | None = None,
) -> Rows:
    """The curve of a MAML run: per task, K = k_max episodes sampled from the meta-policy;
    at each measured k (`ks`, default 0..k_max), one inner step from theta on the first k of
    them (`adapted_params`, the run's inner loss and `maml.inner_lr`) and `episodes`
    episodes of the adapted policy's mean action."""
    from training.algos.maml.adapt import adapted_params
    from training.common.agents import Posterior

    theta = nets.policy.detached_params()
    o, a = nets.obs_dim, nets.act_dim
    meta = ParamsAgent(nets.policy, theta)
    measured = _ks(k_max, ks)

    def one_task(env: Any, rng: np.random.Generator, hz: float) -> list[list[Any]]:
        sampled: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        cols: list[list[Any]] = []
        for k in range(k_max + 1):
            if k in measured:
                params = (
                    theta
                    if k == 0
                    else adapted_params(nets, cfg, theta, sampled, cfg.maml.inner_lr)
                )
                agent = ParamsAgent(nets.policy, params)
                cols.append(
                    [
                        _episode(env, agent, Posterior(1), rng, hz, max_steps)
                        for _ in range(episodes)
                    ]
                )
            if k < k_max:
                t = _episode(
                    env, meta, Posterior(1), rng, hz, max_steps, stochastic=True
                ).transitions
                sampled.append((t[:, :o], t[:, o : o + a], t[:, o + a].astype(np.float64)))
        return cols

    return _over_tasks(source, tasks, seed, one_task)


def task_source_for(cfg: Any, ood: str | None) -> Any:
    """The task source of a run's config, or with `ood` (a terrain config) its test tasks
    from that file; CompareError unless its train tasks are the run's own."""
    from training.common.tasks import make_task_source

    source = make_task_source(cfg)
    if ood is None:
        return source
    if cfg.env != "terrain":
        raise CompareError(f"--ood needs a terrain run, not env {cfg.env!r}")
    other = make_task_source(cfg.model_copy(update={"terrain_config": ood}))
    if [t.model_dump() for t in other.train_tasks] != [t.model_dump() for t in source.train_tasks]:
        raise CompareError(
            f"--ood {ood}: its train tasks differ from the run's ({cfg.terrain_config}); "
            "an out-of-distribution test set must keep the train section"
        )
    return other


def still_return(source: Any, tasks: Sequence[Any]) -> float | None:
    """A `*-vel` family's return of standing still (zero torque: -|0 - v_target| per step,
    no control cost) on `tasks`, as bench/terrain_curve.py reports it; None otherwise."""
    if source.kind != "terrain" or not str(tasks[0].family).endswith("-vel"):
        return None
    steps = source.env_info["terrain_config"]["max_steps"]
    return float(-steps * np.mean([abs(t.target_velocity) for t in tasks]))


def measure(run_dir: Path, method: str, seed: int, test: str, ood: str | None, args: Any) -> Curve:
    """Load a trained run and measure its curve on the test set `test`: the run's own
    test tasks, `ood`'s, or (insertion) `test` a benchmark profile other than the run's,
    the same test tasks drawn in that profile."""
    from training.common.tasks import select_test_tasks
    from training.registry import agent_of, load_run

    run = load_run(run_dir)
    cfg = run.cfg
    if test in PROFILES:
        if cfg.env != "insertion":
            raise CompareError(f"--profiles needs an insertion run, not env {cfg.env!r}")
        cfg = cfg.model_copy(update={"profile": test})
    source = task_source_for(cfg, ood)
    tasks = select_test_tasks(source, None, args.tasks_per_label, args.max_tasks)
    ks = _ks(args.k, args.ks)
    if run.algorithm.name == "maml":
        rows = maml_curve(
            source, run.nets, cfg, tasks, args.k, args.seed, cfg.max_episode_steps,
            args.episodes, ks,
        )  # fmt: skip
    else:
        rows = agent_curve(
            source, agent_of(run), tasks, args.k, args.seed, cfg.max_episode_steps,
            args.episodes, ks,
        )  # fmt: skip
    train = json.loads((run_dir / "train.json").read_text())
    labels = [source.task_label(t) for t in tasks for _ in range(args.episodes)]
    still = still_return(source, tasks)
    return Curve(
        method, seed, test, labels, rows.returns, rows.successes, bool(source.has_success),
        train, still, ks, args.episodes, rows.times, rows.violations,
    )  # fmt: skip


# ---------------------------------------------------------------- training
def train(run_dir: Path, config: str, sets: list[str], seed: int, minutes: float) -> None:
    """One run in a subprocess on one thread; train.json with what it got."""
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run (no train.json): start it again
    cmd = [sys.executable, "-m", "zshot", "train", config, "--run-dir", str(run_dir)]
    cmd.append("--no-progress")
    for s in [*sets, f"seed={seed}", f"max_minutes={minutes}"]:
        cmd += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    log = run_dir.with_name(run_dir.name + ".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise CompareError(f"training {run_dir.name} failed (exit {rc}): {tail[0]} (see {log})")
    import torch

    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    info = {
        "config": config,
        "sets": sets,
        "seed": seed,
        "max_minutes": minutes,
        "iterations": int(state["iteration"]),
        "env_steps": int(state["env_steps"]),
        "updates": int(state["updates"]),
        "train_seconds": float(state.get("train_seconds", 0.0)),
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "load_after": os.getloadavg()[0],
    }
    (run_dir / "train.json").write_text(json.dumps(info, indent=1))


# ---------------------------------------------------------------- table and figure
def _same_ks(rows: list[Curve], test: str) -> list[int]:
    ks = rows[0].k_values
    if any(c.k_values != ks for c in rows):
        raise CompareError(f"{test}: the curves were measured at different k; measure again")
    return ks


def table(curves: list[Curve], test: str) -> str:
    """Markdown: per method, the mean return after k episodes (mean over seeds, each
    seed's mean over test tasks in brackets), k = K minus k = 0, and what each run got."""
    rows = [c for c in curves if c.test == test]
    if not rows:
        raise CompareError(f"no curves for test set {test!r}")
    methods = [m for m in METHODS if any(c.method == m for c in rows)]
    methods += sorted({c.method for c in rows} - set(methods))
    ks = _same_ks(rows, test)
    episodes = rows[0].episodes
    n_tasks = len(rows[0].returns) // episodes
    gain_head = f"k = {ks[-1]} - k = {ks[0]}" if len(ks) > 1 else "gain"
    head = "| method | " + " | ".join(f"k = {k}" for k in ks)
    head += f" | {gain_head} | env steps | iterations | CPU s | after k episodes |"
    lines = [head, "|---|" + "---:|" * (len(ks) + 4) + "---|"]
    for m in methods:
        cs = sorted((c for c in rows if c.method == m), key=lambda c: c.seed)
        means = np.stack([c.mean for c in cs])  # (seeds, measured k)
        cells = []
        for i in range(len(ks)):
            per_seed = " / ".join(f"{x:.1f}" for x in means[:, i])
            cells.append(f"{means[:, i].mean():.1f} ({per_seed})")
        gain = means[:, -1] - means[:, 0]
        cells.append(f"{gain.mean():+.1f}" if len(ks) > 1 else "-")
        cells.append(" / ".join(f"{c.train['env_steps']:,}" for c in cs))
        cells.append(" / ".join(str(c.train["iterations"]) for c in cs))
        cells.append(" / ".join(f"{c.train['cpu_s']:.0f}" for c in cs))
        cells.append(MEANING.get(m, ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if cs[0].has_success:
            rates = np.stack([c.success_rate for c in cs]).mean(0)
            lines.append(
                f"| {m} success | " + " | ".join(f"{x:.2f}" for x in rates) + " | | | | | |"
            )
    seeds = sorted({c.seed for c in rows})
    still = {c.seed: c.still for c in rows if c.still is not None}
    if still:
        per_seed = " / ".join(f"{still[s]:.1f}" for s in sorted(still))
        lines.append(
            f"| standing still (zero torque) | {np.mean(list(still.values())):.1f} "
            f"({per_seed}) |" + " |" * (len(ks) + 4)
        )
    per = f" x {episodes} episodes" if episodes > 1 else ""
    lines.append("")
    lines.append(
        f"Mean return over {n_tasks} test tasks{per} ({test}) after k adaptation episodes; "
        f"mean over seeds {', '.join(map(str, seeds))} (each seed's in brackets, the seed "
        "also draws the tasks); env steps / iterations / CPU seconds per seed."
    )
    return "\n".join(lines)


def per_label_table(curves: list[Curve], test: str) -> str:
    """Markdown: per label (insertion: the plug) and method, the successes after each
    measured k as "x0 · x1 · .. · xK / N", pooled over the seeds (N = that label's test
    tasks times the measured episodes per task, summed over the seeds), and an `all` row;
    "" when the test set has no success signal."""
    rows = [c for c in curves if c.test == test and c.has_success]
    if not rows:
        return ""
    methods = [m for m in METHODS if any(c.method == m for c in rows)]
    methods += sorted({c.method for c in rows} - set(methods))
    labels = list(dict.fromkeys(label for c in rows for label in c.labels))
    ks = _same_ks(rows, test)

    def cell(method: str, label: str | None) -> str:
        wins = [
            row
            for c in rows
            if c.method == method
            for lab, row in zip(c.labels, c.successes, strict=True)
            if label is None or lab == label
        ]
        if not wins:
            return "-"
        counts = np.asarray(wins, int).sum(0)
        return " · ".join(str(int(x)) for x in counts) + f" / {len(wins)}"

    lines = [
        "| label | " + " | ".join(methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for label in [*labels, None]:
        name = "all" if label is None else label
        lines.append(f"| {name} | " + " | ".join(cell(m, label) for m in methods) + " |")
    seeds = sorted({c.seed for c in rows})
    episodes = rows[0].episodes
    per = "one episode" if episodes == 1 else f"{episodes} episodes"
    lines.append("")
    lines.append(
        f"Successes after k = {', '.join(map(str, ks))} adaptation episodes "
        f"({test}), {per} per test task at each k, pooled over seeds "
        f"{', '.join(map(str, seeds))}: {' · '.join(f'x{k}' for k in ks)} / N, N = the plug's test "
        "tasks times the episodes times the seeds."
    )
    return "\n".join(lines)


def plot(curves: list[Curve], tests: list[str], path: Path, title: str) -> None:
    """One panel per test set: mean return against k per method, the seeds' range as bars;
    where the test set has a success signal (insertion), a second panel of the success rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(test, "return") for test in tests]
    panels += [(t, "success") for t in tests if any(c.test == t and c.has_success for c in curves)]
    panels.sort(key=lambda p: tests.index(p[0]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (test, what) in zip(axes[0], panels, strict=True):
        rows = [c for c in curves if c.test == test]
        for m in [m for m in METHODS if any(c.method == m for c in rows)]:
            means = np.stack(
                [c.mean if what == "return" else c.success_rate for c in rows if c.method == m]
            )
            mid = means.mean(0)
            ks = np.asarray(rows[0].k_values)
            err = np.stack([mid - means.min(0), means.max(0) - mid])
            ax.errorbar(ks, mid, yerr=err, marker="o", capsize=3, label=m)
            ax.set_xticks(ks)
        still = [c.still for c in rows if c.still is not None and c.method == rows[0].method]
        if still and what == "return":
            ax.axhline(float(np.mean(still)), color="grey", ls="--", label="standing still")
        ax.set_xlabel("adaptation episodes k")
        ax.set_ylabel("mean return" if what == "return" else "success rate")
        ax.set_title(f"{title}: {test}" + ("" if what == "return" else ", success"))
        ax.legend(fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------- the command
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/meta_compare.py", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    p.add_argument("family", help=f"{', '.join(FAMILIES)} or another name with --config")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--minutes", type=float, default=2.5, help="wall-clock budget per run")
    p.add_argument("--out", type=Path, help="default runs/meta_compare/FAMILY")
    p.add_argument("--max-tasks", type=int, default=10, help="test tasks per run")
    p.add_argument(
        "--tasks-per-label",
        type=int,
        help="at most this many test tasks per label first (insertion: per plug)",
    )
    p.add_argument("--k", type=int, default=3, help="adaptation episodes (curve k = 0..K)")
    p.add_argument("--ks", help="measure only these k (comma-separated, in 0..K; default all)")
    p.add_argument(
        "--episodes", type=int, default=1, help="measured episodes per test task at each k"
    )
    p.add_argument(
        "--profiles",
        help="insertion: measure in these benchmark profiles (known,oda,hard), each its own "
        "test set named by the profile, instead of the run's own ('test')",
    )
    p.add_argument(
        "--reports",
        action="store_true",
        help="write each curve's episodes after each measured k as an evaluation report, "
        "OUT/METHOD-sSEED/report-TEST-kK.json (bench/profiles_table.py reads them)",
    )
    p.add_argument("--seed", type=int, default=12345, help="the test episodes' reset seeds")
    p.add_argument("--ood", help="also measure on this terrain config's test tasks ('ood')")
    p.add_argument("--config", action="append", default=[], metavar="METHOD=PATH")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets")
    p.add_argument("--png", type=Path)
    p.add_argument("--table", type=Path, help="write the markdown tables here too")
    p.add_argument("--train-only", action="store_true", help="train, measure nothing")
    return p


def _configs(args: Any) -> dict[str, tuple[str, list[str]]]:
    configs = dict(FAMILIES.get(args.family, {}))
    for item in args.config:
        method, sep, path = item.partition("=")
        if not sep or method not in METHODS:
            raise CompareError(f"--config {item!r}: want METHOD=PATH, METHOD one of {METHODS}")
        configs[method] = (path, ["use_latent=false"] if method == "nocontext" else [])
    return configs


def _ints(text: str, flag: str) -> list[int]:
    try:
        out = [int(s) for s in text.split(",")]
    except ValueError:
        raise CompareError(f"{flag} {text!r}: want comma-separated integers") from None
    if not out or any(s < 0 for s in out):
        raise CompareError(f"{flag} {text!r}: want non-negative integers")
    return out


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        methods = [m for m in args.methods.split(",") if m]
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise CompareError(f"--methods: unknown {bad}; known: {', '.join(METHODS)}")
        seeds = _ints(args.seeds, "--seeds")
        for flag, v in (
            ("--minutes", args.minutes),
            ("--max-tasks", args.max_tasks),
            ("--tasks-per-label", 1 if args.tasks_per_label is None else args.tasks_per_label),
        ):
            if not v > 0:
                raise CompareError(f"{flag} must be positive, got {v}")
        if args.k < 0:
            raise CompareError(f"--k must be >= 0, got {args.k}")
        if args.episodes < 1:
            raise CompareError(f"--episodes must be positive, got {args.episodes}")
        args.ks = None if args.ks is None else _ks(args.k, _ints(args.ks, "--ks"))
        profiles = [p for p in (args.profiles or "").split(",") if p]
        bad = [p for p in profiles if p not in PROFILES]
        if bad:
            raise CompareError(f"--profiles: unknown {bad}; profiles: {', '.join(PROFILES)}")
        if profiles and args.ood:
            raise CompareError("--profiles and --ood: one kind of test set at a time")
        if args.ood is not None and not Path(args.ood).is_file():
            raise CompareError(f"--ood {args.ood}: no such file")
        configs = _configs(args)
        missing = [m for m in methods if m not in configs]
        if missing:
            raise CompareError(
                f"family {args.family!r}: no config for {missing}; give --config METHOD=PATH"
            )
        out = args.out or Path("runs/meta_compare") / args.family
        tests = profiles or ["test", *(["ood"] if args.ood else [])]
        curves: list[Curve] = []
        for m in methods:
            config, sets = configs[m]
            for s in seeds:
                run_dir = out / f"{m}-s{s}"
                if not (run_dir / "train.json").is_file():
                    print(f"train {run_dir} ({config}, {args.minutes:g} min)", flush=True)
                    train(
                        run_dir,
                        config,
                        [*COMMON_SETS, *METHOD_SETS.get(m, []), *sets, *args.sets],
                        s,
                        args.minutes,
                    )
                if args.train_only:
                    continue
                for test in tests:
                    path = run_dir / f"curve-{test}.json"
                    if not path.is_file():
                        t0 = time.perf_counter()
                        c = measure(run_dir, m, s, test, args.ood if test == "ood" else None, args)
                        path.write_text(json.dumps(c.to_json(), indent=1))
                        print(f"measured {path} in {time.perf_counter() - t0:.0f} s", flush=True)
                    data = json.loads(path.read_text())
                    if "still" not in data:  # measured before the reference was added
                        from training.common.tasks import select_test_tasks
                        from training.registry import load_run

                        cfg = load_run(run_dir).cfg
                        source = task_source_for(cfg, args.ood if test == "ood" else None)
                        data["still"] = still_return(
                            source,
                            select_test_tasks(source, None, args.tasks_per_label, args.max_tasks),
                        )
                        path.write_text(json.dumps(data, indent=1))
                    curve = Curve(**data)
                    if args.reports:
                        for k in curve.k_values:
                            report = run_dir / f"report-{test}-k{k}.json"
                            report.write_text(json.dumps(curve.report(k), indent=1))
                    curves.append(curve)
    except CompareError as exc:
        print(f"meta_compare: {exc}", file=sys.stderr)
        return 2
    if args.train_only:
        return 0
    text = "\n\n".join(
        f"### {args.family}: {t}\n\n{table(curves, t)}"
        + (f"\n\nPer plug:\n\n{split}" if (split := per_label_table(curves, t)) else "")
        for t in tests
    )
    print(text)
    if args.table:
        args.table.write_text(text + "\n")
    if args.png:
        plot(curves, tests, args.png, args.family)
        print(f"saved {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
