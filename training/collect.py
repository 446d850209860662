"""`zshot collect CONFIG --out DATASET`: multi-task offline datasets from the sim.

Per train task of the family (the held-out plugs are never visited), `episodes_per_task`
episodes split between behaviour policies by `mix` (largest-remainder rounding):

- scripted: the industrial expert with Gaussian action noise. Insertion: `sim.spiral`'s
  spiral search; point: a go-to-goal controller that is told the hidden goal (a
  demonstrator, as a human teaching a robot knows where the socket is);
- teleop: a demonstrator told the hidden task, as a person teleoperating with the socket in
  view (insertion: `sim.teleop`, servo over the true socket then press in; point: the same
  go-to-goal as "scripted"), with Gaussian action noise `teleop_noise`: the "demonstrations"
  of the ODA paper's prior tasks;
- random: uniform actions, low-pass filtered;
- policy: a (partially) trained PEARL run (`policy_run`), stochastic actions: the
  "partially trained" data of the ODA paper. `policy_latent` picks its z per episode:
  "prior" draws z ~ N(0, I) every episode; "posterior" is PEARL's own posterior sampling
  (z ~ q(z | the transitions of its earlier episodes on this task), the prior for the
  first), so later episodes of a task adapt as the trained policy does at test time.

The dataset is a Minari dataset (training/common/minari_format.py, docs/OFFLINE.md): `minari`
opens it, and training/common/datasets.py reads it as it reads robot recordings (which `zshot
dataset export` turns into the same layout); each episode's metadata names its behaviour
(`mode`) and its task with the hidden parameters (`task_json`, `task/<param>`).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec
from tqdm import tqdm

from runtime.artifact import MANIFEST_NAME, load_artifact
from training.behaviours import (
    Behaviour,
    BehaviourActor,
    RandomBehaviour,
    ScriptedBehaviour,
    TeleopBehaviour,
)
from training.common.agents import FewShotAgent, OnnxAgent, OnnxRecurrentAgent, new_posterior
from training.common.checkpoint import CHECKPOINT
from training.common.datasets import MANIFEST, write_manifest
from training.common.minari_format import (
    MinariFormatError,
    MinariWriter,
    dataset_id_for,
    find_data_dir,
    resolve_out,
    space_json,
)
from training.common.parallel import add_workers_arguments, run_ordered, workers_error
from training.common.rollout import Episode, RolloutWorker, retain_freed_memory, task_rng
from training.common.tasks import make_task_source
from training.config import CollectConfig
from training.registry import agent_of, load_run
from zshot.config import add_profile_argument, add_set_argument, load_config, profile_override

BEHAVIOURS = ("scripted", "random", "policy", "teleop")


def split_episodes(n: int, mix: dict[str, float]) -> dict[str, int]:
    """n episodes split by the fractions in `mix` (largest remainder; sums to n exactly)."""
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("mix fractions must sum to > 0")
    quota = {k: n * v / total for k, v in mix.items()}
    counts = {k: int(np.floor(q)) for k, q in quota.items()}
    left = n - sum(counts.values())
    for k in sorted(quota, key=lambda k: (counts[k] - quota[k], k))[:left]:
        counts[k] += 1
    return counts


def _load_policy_agent(path: Path) -> tuple[FewShotAgent, tuple[int, int]]:
    """A run dir (checkpoint.pt) or an exported artifact dir (manifest.json) as an agent,
    with its (obs_dim, act_dim)."""
    if (path / CHECKPOINT).is_file():
        run = load_run(path)
        run.nets.eval()
        # Batch-1 forward passes: more intra-op threads only spin-wait on a shared machine.
        torch.set_num_threads(run.cfg.torch_threads)
        dims = run.state["dims"]
        return agent_of(run), (int(dims["obs"]), int(dims["act"]))
    if (path / MANIFEST_NAME).is_file():
        kind = load_artifact(path).manifest.kind
        onnx = OnnxRecurrentAgent(path) if kind == "recurrent" else OnnxAgent(path)
        m = onnx.artifact.manifest
        return onnx, (m.obs_dim, m.act_dim)
    raise ValueError(
        f"policy_run {path}: neither a training run ({CHECKPOINT}) nor an exported "
        f"artifact ({MANIFEST_NAME}) is there"
    )


class PolicyBehaviour:
    """A (partially) trained PEARL policy: z per episode from the prior or the task's
    posterior, stochastic actions.

    `source` is a training run dir (checkpoint.pt, run in torch) or an exported artifact
    dir (manifest.json + ONNX graphs, run in onnxruntime as on the robot), so a collection
    can use the model a site already deploys without its training run.
    """

    def __init__(
        self,
        source: str,
        obs_dim: int,
        act_dim: int,
        rng: np.random.Generator,
        latent: str = "prior",
    ) -> None:
        if latent not in ("prior", "posterior"):
            raise ValueError(f"policy latent must be 'prior' or 'posterior', not {latent!r}")
        self.agent, dims = _load_policy_agent(Path(source))
        if dims != (obs_dim, act_dim):
            raise ValueError(f"policy_run {source}: dims {dims} differ from the env's")
        self.act_dim = act_dim
        self.latent_dim = int(self.agent.latent_dim)
        self.use_latent = self.agent.encoder is not None
        self.latent_mode = latent
        self.posterior = new_posterior(self.agent)
        self.task: Any = None
        self.rng = rng
        self.z = np.zeros(self.latent_dim, np.float32)
        self.z_var = np.zeros(self.latent_dim)

    def reset(self, task: Any) -> None:
        """Draw the episode's z: from the prior, or from the posterior over this task's
        earlier episodes (zeros without a latent)."""
        L = self.latent_dim
        if task is not self.task:
            self.task, self.posterior = task, new_posterior(self.agent)
            self.agent.reset_task()  # a recurrent policy's state is per task
        self.agent.reset_episode()
        if not self.use_latent:
            self.z, self.z_var = np.zeros(L, np.float32), np.zeros(L)
            return
        if self.latent_mode == "posterior":
            mean, var = self.posterior.mean, self.posterior.var
        else:
            mean, var = np.zeros(L), np.ones(L)
        self.z = (mean + np.sqrt(var) * self.rng.standard_normal(L)).astype(np.float32)
        self.z_var = np.asarray(var, np.float64)

    def end_episode(self, transitions: np.ndarray) -> None:
        """Add the episode's (s, a, r, s') rows to the task's posterior ("posterior" mode)."""
        enc = self.agent.encoder
        if self.latent_mode == "posterior" and enc is not None and len(transitions):
            self.posterior.add(*enc.factors(transitions))

    def observe(self, row: np.ndarray) -> None:
        """Each step's (s, a, r, s') row (a recurrent policy's next action and reward)."""
        self.agent.observe(row)

    def latent(self) -> tuple[np.ndarray, np.ndarray]:
        """The episode's z and its variance (zeros without a latent)."""
        return self.z, self.z_var

    def act(self, obs: np.ndarray) -> np.ndarray:
        """A stochastic action of the policy."""
        noise = self.rng.standard_normal(self.act_dim).astype(np.float32)
        return self.agent.act(np.asarray(obs, np.float32), self.z, noise)


def env_spec_json(source: Any, env: Any, max_steps: int | None) -> str | None:
    """The gymnasium EnvSpec (JSON) that rebuilds the collection's env, for Minari's
    `recover_environment`; None for a family without one."""
    info = source.env_info
    if source.kind == "insertion":
        entry, kwargs = "sim:make_insertion_env", {"config": info["sim_config"]}
    elif source.kind == "terrain":
        entry, kwargs = "sim.terrain:TerrainEnv", {"config": info["terrain_config"]}
    elif source.kind == "point":
        entry, kwargs = "training.common.toy_env:PointGoalEnv", {}
    else:
        return None
    env_id = str(info.get("env") or f"zshot/{source.kind}")
    if not re.search(r"-v\d+$", env_id):
        env_id += "-v0"
    limit = _env_limit(env)
    if max_steps is not None:
        limit = min(limit, max_steps) if limit else max_steps
    spec = EnvSpec(id=env_id, entry_point=entry, kwargs=kwargs, max_episode_steps=limit)
    return str(spec.to_json())


def _env_limit(env: Any) -> int | None:
    """The env's own episode limit (config.max_steps or max_steps), None if it has none."""
    for owner in (getattr(env, "config", None), env):
        n = getattr(owner, "max_steps", None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def _info_scalars(info: dict[str, Any]) -> dict[str, Any]:
    """The scalar (bool / number) entries of an env's info dict."""
    return {
        k: v
        for k, v in info.items()
        if isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))
    }


def _infos_table(reset_info: dict[str, Any], step_infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Minari's infos: T+1 rows (the reset's info, then each step's) of every scalar key the
    steps report; a key the reset info lacks gets 0 / False / NaN in row 0."""
    if not step_infos:
        return {}
    out: dict[str, Any] = {}
    for key, v0 in _info_scalars(step_infos[0]).items():
        col = [s.get(key, v0) for s in step_infos]
        arr = np.asarray(col)
        first = reset_info.get(key)
        if first is None:
            first = np.nan if arr.dtype.kind == "f" else np.zeros((), arr.dtype)[()]
        out[key] = np.concatenate([np.asarray([first], arr.dtype), arr])
    return out


class EpisodeRows(NamedTuple):
    """One collected episode as the arrays the Minari writer takes: what a worker sends
    back (`TaskCollector.collect_rows`), about half the pickle of an `Episode` with its
    per-step info dicts, and the info table built on the worker, not on the driver."""

    mode: str
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: dict[str, Any]
    """Minari's info table (`_infos_table`) plus the episode's `z_mean` / `z_var` rows."""
    success: bool
    ret: float
    seed: int

    @property
    def steps(self) -> int:
        """Control steps taken."""
        return len(self.actions)


def episode_rows(
    episodes: Sequence[tuple[str, Episode, np.ndarray, np.ndarray]],
) -> list[EpisodeRows]:
    """`TaskCollector.collect`'s (behaviour, episode, z, z_var) as `EpisodeRows`: the info
    table (`_infos_table`) with the episode's z rows."""
    out = []
    for name, ep, z, z_var in episodes:
        infos = _infos_table(ep.reset_info, ep.infos)
        infos["z_mean"] = np.repeat(z[None], ep.steps + 1, 0)
        infos["z_var"] = np.repeat(z_var[None], ep.steps + 1, 0)
        arrays = (ep.obs, ep.actions, ep.rewards, ep.terminated, ep.truncated)
        out.append(EpisodeRows(name, *arrays, infos, ep.success, ep.ret, ep.seed))
    return out


class TaskCollector:
    """The unit a rollout worker runs: its own env and behaviours for `cfg`;
    `collect(i)` plays train task i's episodes (every behaviour's share of the mix, in
    `BEHAVIOURS` order) with every draw from `task_rng(cfg.seed, i)`, so a task's episodes
    are the same whichever worker runs it and in whichever order (a Ray actor's class,
    training/common/parallel.py)."""

    def __init__(self, cfg: CollectConfig) -> None:
        mix = cfg.mix.model_dump()
        if mix["policy"] > 0 and not cfg.policy_run:
            raise ValueError(
                "mix.policy > 0 needs policy_run (a PEARL run dir or an exported artifact dir)"
            )
        self.cfg = cfg
        self.counts = split_episodes(cfg.episodes_per_task, mix)
        retain_freed_memory()  # a fresh env per task: ~5 ms to build instead of ~24
        self.source = make_task_source(cfg.as_train_config())
        self.worker = RolloutWorker(self.source.make_env, cfg.max_episode_steps)  # its spaces
        env = self.worker.env
        self.obs_dim = int(env.observation_space.shape[0])
        self.act_dim = int(env.action_space.shape[0])
        self.policy: PolicyBehaviour | None = None
        self.latent = 1
        if self.counts["policy"] > 0:
            assert cfg.policy_run is not None
            self.policy = PolicyBehaviour(
                cfg.policy_run,
                self.obs_dim,
                self.act_dim,
                np.random.default_rng(cfg.seed),
                latent=cfg.policy_latent,
            )
            self.latent = self.policy.latent_dim

    def collect(self, index: int) -> list[tuple[str, Episode, np.ndarray, np.ndarray]]:
        """Train task `index`'s episodes as (behaviour, episode, z, z_var), in order.

        Each task gets a fresh env (built in ~0.05 s): the insertion env keeps PyBullet
        state across `set_task` (bodies kept or rebuilt), so on a reused env a task's
        episodes would depend on the tasks that worker ran before it."""
        worker = RolloutWorker(self.source.make_env, self.cfg.max_episode_steps)
        try:
            return self._collect(worker, index)
        finally:
            worker.close()

    def collect_rows(self, index: int) -> list[EpisodeRows]:
        """Train task `index`'s episodes (`collect`) as `EpisodeRows`, in order: what
        `zshot collect` writes, with 1 worker and with N."""
        return episode_rows(self.collect(index))

    def _collect(
        self, worker: RolloutWorker, index: int
    ) -> list[tuple[str, Episode, np.ndarray, np.ndarray]]:
        cfg, env = self.cfg, worker.env
        task = self.source.train_tasks[index]
        rng = task_rng(cfg.seed, index)
        behaviours: dict[str, Behaviour] = {
            "scripted": ScriptedBehaviour(env, cfg.scripted_noise, rng),
            "random": RandomBehaviour(self.act_dim, cfg.random_smoothing, rng),
            "teleop": TeleopBehaviour(env, cfg.teleop_noise, rng),
        }
        if self.policy is not None:
            self.policy.rng = rng
            behaviours["policy"] = self.policy
        nan_z = np.full(self.latent, np.nan)
        out: list[tuple[str, Episode, np.ndarray, np.ndarray]] = []
        for name in BEHAVIOURS:
            beh = behaviours.get(name)
            if self.counts[name] == 0 or beh is None:
                continue

            def keep(ep: Episode, name: str = name, beh: Behaviour = beh) -> None:
                z, z_var = beh.latent() or (nan_z, nan_z)
                out.append((name, ep, np.asarray(z, np.float32), np.asarray(z_var, np.float32)))

            worker.run(
                task,
                BehaviourActor(beh, task),
                rng,
                num_episodes=self.counts[name],
                on_episode=keep,
                on_step=self.policy.observe if beh is self.policy else None,
            )
        return out

    def close(self) -> None:
        """Close the env."""
        self.worker.close()


def write_task(
    writer: MinariWriter,
    source: Any,
    ti: int,
    episodes: Sequence[EpisodeRows],
    stats: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """Train task `ti`'s episodes into `writer`, counted into `stats`; its row of the
    manifest's task table."""
    task = source.train_tasks[ti]
    label, task_json = source.task_label(task), task.model_dump(mode="json")
    row: dict[str, Any] = {
        "index": ti,
        "label": label,
        "task": task_json,
        "episodes": {},
        "successes": {},
    }
    for ep in episodes:
        name = ep.mode
        meta = {
            "task": task_json,
            "label": label,
            "mode": name,
            "task_index": ti,
            "success": ep.success,
            "return": ep.ret,
        }
        writer.add_episode(
            ep.obs,
            ep.actions,
            ep.rewards,
            ep.terminated,
            ep.truncated,
            ep.infos,
            meta,
            seed=ep.seed,
        )
        row["episodes"][name] = row["episodes"].get(name, 0) + 1
        row["successes"][name] = row["successes"].get(name, 0) + int(ep.success)
        stats[name]["episodes"] += 1
        stats[name]["successes"] += int(ep.success)
        stats[name]["steps"] += ep.steps
    return row


def collect_dataset(
    cfg: CollectConfig,
    out: str | Path,
    progress: bool | None = None,
    dataset_id: str | None = None,
    *,
    workers: int = 1,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Collect the dataset into `out` (must not hold a dataset yet); returns the manifest.

    `out` becomes a Minari dataset (training/common/minari_format.py) plus zshot's dataset.json;
    `dataset_id` defaults to `dataset_id_for(out)`. progress: a bar on stderr (None: only
    when stderr is a terminal). `workers` > 1: the tasks run on that many Ray actors
    (training/common/parallel.py; `ray_address` or $RAY_ADDRESS for a cluster); the episodes
    are written in task order as they come back, so the dataset is byte for byte the one
    of 1 worker (only the manifest's `seconds` differ).
    """

    out = Path(out)
    if (out / MANIFEST).exists() or find_data_dir(out) is not None or any(out.glob("episode_*.h5")):
        raise ValueError(f"{out} already holds a dataset; choose another --out")
    ds_id = dataset_id_for(out, dataset_id)
    local = TaskCollector(cfg)  # checks the config; 1 worker: it collects too
    source, env = local.source, local.worker.env
    base = {
        "complete": False,
        "config": cfg.model_dump(mode="json"),
        "env": source.env_info,
        "obs_dim": local.obs_dim,
        "act_dim": local.act_dim,
        "dataset_id": ds_id,
    }
    write_manifest(out, base)
    writer = MinariWriter(
        out,
        dataset_id=ds_id,
        observation_space=space_json(env.observation_space),
        action_space=space_json(env.action_space),
        env_spec=env_spec_json(source, env, cfg.max_episode_steps),
    )
    task_rows: list[dict[str, Any]] = []
    stats = {b: {"episodes": 0, "successes": 0, "steps": 0} for b in BEHAVIOURS}
    tasks = source.train_tasks
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=len(tasks) * cfg.episodes_per_task, disable=not show, desc="collect", unit="ep"
    )
    t0 = time.perf_counter()
    done = False
    try:
        results = run_ordered(
            TaskCollector,
            (cfg,),
            "collect_rows",  # arrays, the info table made on the worker
            len(tasks),
            workers=workers,
            ray_address=ray_address,
            local=local,
            in_flight=2,  # a worker starts its next task while this one is written
        )
        for ti, episodes in results:
            row = write_task(writer, source, ti, episodes, stats)
            bar.update(len(episodes))
            task_rows.append(row)
        done = True
    finally:
        bar.close()
        local.close()
        if not done:
            writer.abort()
    used = [b for b in BEHAVIOURS if stats[b]["episodes"]]
    writer.close(
        author="zshot collect",
        algorithm_name="+".join(used),
        description=(
            f"zshot collect on {source.env_info.get('env', source.kind)}: "
            f"{len(task_rows)} tasks x {cfg.episodes_per_task} episodes, behaviours "
            f"{', '.join(used)}; task and hidden parameters in each episode's metadata"
        ),
        zshot={"tasks": len(task_rows), "behaviours": used, "env": source.env_info},
    )
    manifest = {
        **base,
        "complete": True,
        "episodes": sum(s["episodes"] for s in stats.values()),
        "steps": sum(s["steps"] for s in stats.values()),
        "behaviours": stats,
        "tasks": task_rows,
        "seconds": time.perf_counter() - t0,
    }
    write_manifest(out, manifest)
    return manifest


def main(argv: Sequence[str]) -> int:
    """`zshot collect CONFIG (--out DATASET | --dataset-id ID) [--set KEY=VALUE ...]`."""
    p = argparse.ArgumentParser(
        prog="zshot collect",
        description="Collect a multi-task offline dataset (a Minari dataset) from the sim "
        "(configs/collect/).",
    )
    p.add_argument("config", help="YAML under configs/collect/")
    p.add_argument("--out", help="dataset directory to create (default: $MINARI_DATASETS_PATH/ID)")
    p.add_argument(
        "--dataset-id",
        help="Minari dataset id, (namespace/)name-vN (default: from --out; see docs/OFFLINE.md)",
    )
    add_set_argument(p)
    add_profile_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    add_workers_arguments(p)
    args = p.parse_args(list(argv))
    if (err := workers_error(args.workers)) is not None:
        print(f"zshot collect: {err}", file=sys.stderr)
        return 2
    out = resolve_out(args.out, args.dataset_id, p.error)
    overrides = [*args.overrides, *profile_override(args.profile)]
    cfg = load_config(CollectConfig, args.config, overrides)
    try:
        m = collect_dataset(
            cfg,
            out,
            progress=False if args.no_progress else None,
            dataset_id=args.dataset_id,
            workers=args.workers,
            ray_address=args.ray_address,
        )
    except (RuntimeError, ValueError, FileNotFoundError, MinariFormatError) as exc:
        print(f"zshot collect: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {out} (Minari dataset {m['dataset_id']}): {m['episodes']} episodes, "
        f"{m['steps']} steps, {len(m['tasks'])} tasks"
    )
    for name, s in m["behaviours"].items():
        if s["episodes"]:
            print(
                f"  {name:<9} {s['episodes']:>5} episodes, success {s['successes']}/{s['episodes']}"
            )
    return 0
