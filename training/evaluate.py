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
as the runtime does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from runtime.posterior import NaturalPosterior
from training.common.tasks import TaskSource, env_control_hz
from training.config import EvalConfig
from zshot.jsonio import write_json


class FewShotAgent(Protocol):
    """What evaluation needs from a trained model."""

    latent_dim: int
    use_latent: bool
    prior_in_posterior: bool

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) raw (s, a, r, s') rows -> mu (N, L), var (N, L)."""
        ...

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """obs (obs_dim,), z (L,), noise (act_dim,) -> action (act_dim,); noise 0: deterministic."""
        ...


class Posterior(NaturalPosterior):
    """q(z | c) exactly as the robot's runtime keeps it (`runtime.posterior`), so evaluation
    in Python and on the robot share one implementation.

    `prior_in_posterior=False` gives PEARL's original product over the context factors
    alone (no N(0, I) factor; the prior itself when the context is empty).
    """

    def __init__(self, latent_dim: int, prior_in_posterior: bool = True) -> None:
        super().__init__(np.zeros(latent_dim), np.ones(latent_dim))
        self.prior_in_posterior = prior_in_posterior

    @property
    def var(self) -> np.ndarray:
        """Posterior variance (L,)."""
        if self.prior_in_posterior:
            return 1.0 / self.precision
        prec = self.precision_sum
        return 1.0 / np.where(prec > 0, prec, 1.0)

    @property
    def mean(self) -> np.ndarray:
        """Posterior mean (L,)."""
        if self.prior_in_posterior:
            return self.eta / self.precision
        if self.count == 0:
            return np.zeros(self.latent_dim)
        return self.eta_sum * self.var


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
    """One episode; z from the posterior ("sample" once, or "mean"); returns its transitions.

    With `update_every_step` the posterior is updated in place after every step and z is
    recomputed (its mean); otherwise the caller adds `transitions` when it chooses.
    """
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    if hasattr(agent, "reset_episode"):  # scripted baselines keep per-episode state
        agent.reset_episode()
    act_dim = env.action_space.shape[0]
    z = _latent(agent, posterior, rng, z_mode)
    ret, peak, steps, success, t_insert, violation = 0.0, 0.0, 0, False, None, False
    rows = []
    while True:
        noise = rng.standard_normal(act_dim) if stochastic_policy else np.zeros(act_dim)
        action = agent.act(np.asarray(obs, np.float32), z, noise.astype(np.float32))
        next_obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        ret += float(reward)
        peak = max(peak, float(info.get("peak_force", 0.0)))
        violation = violation or bool(info.get("safety_violation", False))
        row = np.concatenate([obs, action, [reward], next_obs]).astype(np.float32)
        rows.append(row)
        if info.get("is_success") and not success:
            success, t_insert = True, steps / control_hz
        if update_every_step and agent.use_latent:
            posterior.add(*agent.factors(row[None]))
            z = posterior.mean.astype(np.float32)
        obs = next_obs
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            break
    if hasattr(agent, "end_episode"):  # scripted baselines with memory learn from the outcome
        agent.end_episode(success, np.asarray(obs, np.float32))
    transitions = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    return EpisodeResult(ret, success, steps, t_insert, peak, violation, transitions)


def _latent(
    agent: FewShotAgent, post: Posterior, rng: np.random.Generator, mode: str
) -> np.ndarray:
    if not agent.use_latent:
        return np.zeros(agent.latent_dim, np.float32)  # SAC without context: z fixed at 0
    z = post.sample(rng) if mode == "sample" else post.mean
    return z.astype(np.float32)


@dataclass
class PlugResult:
    """Aggregated evaluation episodes of one plug (over its test tasks)."""

    plug: str
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


def _time_cell(p: PlugResult) -> str:
    """Mean time to success (s) of a report row, "-" without successes."""
    return f"{p.mean_time_to_insert:.2f}" if p.mean_time_to_insert is not None else "-"


@dataclass
class FewShotReport:
    """Per-plug results plus the protocol that produced them."""

    plugs: list[PlugResult]
    protocol: dict[str, Any]

    @property
    def success_rate(self) -> float:
        """Successes / episodes over all plugs."""
        n = sum(p.episodes for p in self.plugs)
        return sum(p.successes for p in self.plugs) / n if n else 0.0

    def table(self) -> str:
        """The per-plug table people read: insertion's (time to insert, peak force, force-limit
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
            max([22, *(len(p.plug) for p in self.plugs)]),
            [("t_success[s]", 12, _time_cell), ("steps", 6, lambda p: f"{p.mean_steps:.0f}")],
        )

    def _success_rows(
        self, label: str, width: int, columns: list[tuple[str, int, Callable[[PlugResult], str]]]
    ) -> str:
        """label | success | return | the given columns (header, width, cell), then "all"."""
        head = f"{label:<{width}} {'success':>9} {'return':>9}" + "".join(
            f" {h:>{n}}" for h, n, _ in columns
        )
        lines = [head, "-" * len(head)]
        for p in self.plugs:
            lines.append(
                f"{p.plug:<{width}} {f'{p.successes}/{p.episodes}':>9} {p.mean_return:>9.2f}"
                + "".join(f" {cell(p):>{n}}" for _, n, cell in columns)
            )
        n = sum(p.episodes for p in self.plugs)
        s = sum(p.successes for p in self.plugs)
        lines.append(f"{'all':<{width}} {f'{s}/{n}':>9}")
        return "\n".join(lines)

    def return_table(self) -> str:
        """Per task label: evaluation return (mean, std over episodes), the exploration
        episodes' mean return and length; success is not a locomotion figure."""
        w = max([30, *(len(p.plug) for p in self.plugs)])  # terrain labels can be long
        head = (
            f"{'tasks':<{w}} {'episodes':>8} {'return':>9} {'std':>8} {'explore ret':>11} "
            f"{'steps':>6}"
        )
        lines = [head, "-" * len(head)]
        for p in self.plugs:
            # no exploration episodes (K = 0, online mode): "-", not nan
            explore = p.explore_mean_return
            explore_s = f"{explore:>11.2f}" if np.isfinite(explore) else f"{'-':>11}"
            lines.append(
                f"{p.plug:<{w}} {p.episodes:>8} {p.mean_return:>9.2f} {p.std_return:>8.2f} "
                f"{explore_s} {p.mean_steps:>6.0f}"
            )
        n = sum(p.episodes for p in self.plugs)
        lines.append(f"{'all':<{w}} {n:>8} {self.mean_return:>9.2f}")
        return "\n".join(lines)

    @property
    def mean_return(self) -> float:
        """Mean evaluation return over every episode of every label."""
        n = sum(p.episodes for p in self.plugs)
        return sum(p.mean_return * p.episodes for p in self.plugs) / n if n else float("nan")

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "protocol": self.protocol,
            "success_rate": self.success_rate,
            "mean_return": self.mean_return,
            "plugs": [asdict(p) for p in self.plugs],
        }

    def write_json(self, path: str | Path) -> None:
        """Write `to_json()` to `path` as strict JSON (NaN as null)."""
        write_json(path, self.to_json())


def plug_result(label: str, eps: list[EpisodeResult], explore: list[EpisodeResult]) -> PlugResult:
    """One report row from a plug's evaluation episodes and its exploration episodes."""
    ttis = [e.time_to_insert for e in eps if e.time_to_insert is not None]
    return PlugResult(
        plug=label,
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


def few_shot_eval(
    source: TaskSource,
    agent: FewShotAgent,
    cfg: EvalConfig,
    seed: int,
    *,
    plugs: list[str] | None = None,
    max_steps: int | None = None,
) -> FewShotReport:
    """Run the few-shot protocol on the source's test tasks (optionally only `plugs`)."""
    tasks = list(source.test_tasks)
    if plugs:
        known = sorted({source.task_label(t) for t in tasks})
        unknown = sorted(set(plugs) - set(known))
        if unknown:
            raise ValueError(f"--plugs: {unknown} not among the test plugs {known}")
        tasks = [t for t in tasks if source.task_label(t) in plugs]
    if cfg.tasks_per_plug is not None:
        seen: dict[str, int] = {}
        kept = []
        for t in tasks:
            label = source.task_label(t)
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= cfg.tasks_per_plug:
                kept.append(t)
        tasks = kept
    if cfg.max_tasks is not None:
        tasks = tasks[: cfg.max_tasks]
    if not tasks:
        raise ValueError("no test tasks to evaluate")
    env = source.make_env()
    control_hz = env_control_hz(env)
    rng = np.random.default_rng(seed)
    online = cfg.mode == "online"
    per_plug: dict[str, dict[str, list]] = {}
    for task in tasks:
        label = source.task_label(task)
        acc = per_plug.setdefault(label, {"eval": [], "explore": []})
        env.set_task(task)
        if hasattr(agent, "reset_task"):  # a scripted baseline's memory is per task
            agent.reset_task()
        post = Posterior(agent.latent_dim, agent.prior_in_posterior)
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
            if not online and agent.use_latent and len(ep.transitions):
                post.add(*agent.factors(ep.transitions))
            acc["explore"].append(ep)
        for _ in range(cfg.eval_episodes):
            acc["eval"].append(
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
            )
    env.close()
    rows = []
    for label in sorted(per_plug):
        eps: list[EpisodeResult] = per_plug[label]["eval"]
        exp: list[EpisodeResult] = per_plug[label]["explore"]
        rows.append(plug_result(label, eps, exp))
    protocol = {
        "mode": cfg.mode,
        "explore_episodes": cfg.explore_episodes,
        "eval_episodes_per_task": cfg.eval_episodes,
        "tasks": len(tasks),
        "seed": seed,
        "use_latent": agent.use_latent,
        "metric": getattr(source, "metric", "success"),
        "env_kind": getattr(source, "kind", "insertion"),
    }
    return FewShotReport(rows, protocol)


class TorchAgent:
    """A training run's networks behind the `FewShotAgent` interface."""

    def __init__(self, nets: Any, use_latent: bool, prior_in_posterior: bool) -> None:
        import torch

        self._torch = torch
        self.nets = nets
        self.latent_dim = int(nets.latent_dim)
        self.use_latent = use_latent
        self.prior_in_posterior = prior_in_posterior

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-transition factors from the torch encoder (float64 for the accumulation)."""
        with self._torch.no_grad():
            mu, var = self.nets.encoder(
                self._torch.as_tensor(transitions, dtype=self._torch.float32)
            )
        return mu.numpy().astype(np.float64), var.numpy().astype(np.float64)

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """tanh(mean + std * noise) from the torch policy."""
        t = self._torch
        with t.no_grad():
            a, _ = self.nets.policy.sample(
                t.as_tensor(obs, dtype=t.float32)[None],
                t.as_tensor(z, dtype=t.float32)[None],
                t.as_tensor(noise, dtype=t.float32)[None],
            )
        return a[0].numpy()


class OnnxAgent:
    """An exported artifact run through onnxruntime (the numbers the robot gets)."""

    def __init__(self, artifact_dir: str | Path) -> None:
        import onnxruntime as ort

        from runtime.artifact import load_artifact

        self.artifact = load_artifact(artifact_dir, check_graphs=True)
        m = self.artifact.manifest
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(
            str(self.artifact.encoder_path), opts, providers=providers
        )
        self.policy = ort.InferenceSession(
            str(self.artifact.policy_path), opts, providers=providers
        )
        self.latent_dim = m.latent_dim
        self.use_latent = bool(m.training.get("use_latent", True))
        self.prior_in_posterior = bool(m.training.get("prior_in_posterior", True))

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-transition factors from encoder.onnx."""
        mu, var = self.encoder.run(["mu", "var"], {"transition": transitions.astype(np.float32)})
        return mu.astype(np.float64), var.astype(np.float64)

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Action from policy.onnx."""
        (a,) = self.policy.run(
            ["action"],
            {
                "obs": obs.astype(np.float32)[None],
                "z": z.astype(np.float32)[None],
                "noise": noise.astype(np.float32)[None],
            },
        )
        return a[0]


class SpiralAgent:
    """The scripted spiral-search baseline (sim.spiral) in the same protocol.

    It has no latent: exploration episodes change nothing, so its figures are those of
    N independent attempts per task.
    """

    latent_dim = 1
    use_latent = False
    prior_in_posterior = True

    def __init__(self, sim_config: Any) -> None:
        from sim.spiral import SpiralSearchPolicy

        self.policy = SpiralSearchPolicy(sim_config)

    def reset_episode(self) -> None:
        """Restart the spiral."""
        self.policy.reset()

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unused (no latent)."""
        raise NotImplementedError("the spiral baseline has no encoder")

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The spiral's next twist."""
        return np.asarray(self.policy.act(obs), np.float32)


class MemorySpiralAgent(SpiralAgent):
    """The spiral search with memory (sim.spiral.MemorySpiralPolicy) in the same protocol.

    Its memory is per task: `reset_task` at each new test task, `end_episode` after every
    episode (exploration and evaluation alike, as an integrator's script keeps learning).
    """

    def __init__(self, sim_config: Any, *, memory: bool = True) -> None:
        from sim.spiral import MemorySpiralParams, MemorySpiralPolicy

        params = MemorySpiralParams(memory=memory)  # memory=False: the search alone
        self.policy = MemorySpiralPolicy(sim_config, params)  # type: ignore[assignment]

    def reset_task(self) -> None:
        """A new task: forget the remembered pose and the search position."""
        self.policy.reset_task()  # type: ignore[attr-defined]

    def reset_episode(self) -> None:
        """A new attempt at the same task (memory kept)."""
        self.policy.reset_episode()  # type: ignore[attr-defined]

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        """Tell the script how the episode ended (a success is remembered)."""
        self.policy.end_episode(success, final_obs)  # type: ignore[attr-defined]
