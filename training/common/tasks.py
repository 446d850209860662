"""Where training gets its tasks and envs: the insertion sim, the terrain sim or the 2-D toy task.

`TaskSource` is the little that PEARL needs from an env family: train/test task lists, a
way to build an env, a label per task (used to group the eval report: a plug's name on
insertion, a terrain's held-out parameters, the point task's goal name) and
what the exported manifest states about the env. The same PEARL code trains on every
source; only `metric` tells the report whether success or return is the figure to read.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from training.common.goals import FlatGoalEnv
from training.common.rollout import RolloutWorker
from training.common.toy_env import PointGoalEnv, PointReachEnv, point_tasks
from training.config import GOAL_ENVS, TrainConfig
from training.plug_family import plug_paths
from zshot.config import ConfigError, apply_overrides, load_yaml_mapping
from zshot.plug_descriptor import PLUG_DESCRIPTOR_NAMES, plug_descriptor
from zshot.reward import reward_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]


class Task(Protocol):
    """A task: a pydantic model (InsertionTask, TerrainTask, PointTask). Its label, the name
    results are grouped under, comes from its `TaskSource.labeler`."""

    def model_dump(self) -> dict[str, Any]:
        """JSON-able form."""
        ...


def insertion_label(task: Any) -> str:
    """An insertion task's label: its plug's name (a spec file's `name`)."""
    return _label(str(task.plug))


def point_label(task: Any) -> str:
    """A point task's label: its `label` (the goal's name)."""
    return str(task.label)


DEFAULT_LABELERS: dict[str, Callable[[Any], str]] = {
    "insertion": insertion_label,
    "point": point_label,
}
"""`TaskSource.labeler` when none is given, by `TaskSource.kind` (terrain passes its own)."""


@dataclass
class TaskSource:
    """Train and test tasks of one family and a factory for its env."""

    kind: str
    train_tasks: list[Any]
    test_tasks: list[Any]
    make_env: Any  # () -> gym.Env with set_task(task)
    env_info: dict[str, Any] = field(default_factory=dict)
    labeler: Callable[[Any], str] | None = None
    """(task) -> label; None: `DEFAULT_LABELERS[kind]` (a kind without one is refused)."""
    metric: str = "success"
    """The headline figure of the few-shot report: "success" (insertion, point) or
    "return" (locomotion, where no episode "succeeds")."""
    describer: Callable[[Any], list[float]] | None = None
    """(task) -> its task descriptor, computed from what a user has of the task (insertion:
    the plug spec, zshot/plug_descriptor.py; point: the goal); None: the family has none
    (terrain)."""
    descriptor_names: list[str] = field(default_factory=list)
    """A name per descriptor entry (the conditioned artifact's `descriptor_names`)."""

    def describe(self, task: Any) -> np.ndarray:
        """`task`'s descriptor (float32); a ValueError for a family without descriptors."""
        if self.describer is None:
            raise ValueError(f"env {self.kind!r} has no task descriptor (insertion, point do)")
        return np.asarray(self.describer(task), np.float32)

    @property
    def has_success(self) -> bool:
        """Whether the env reports a meaningful `info["is_success"]` (insertion, point: the
        "success" metric). False for locomotion (terrain, metric "return"): progress bars and
        curves then show return instead of a success rate that is always 0."""
        return self.metric == "success"

    def task_label(self, task: Any) -> str:
        """Name used to group results: the source's labeler (terrain: which parameter is
        held out, or the target bin), else its kind's (`DEFAULT_LABELERS`: insertion, the
        plug's name; point, the task's `label`)."""
        labeler = self.labeler or DEFAULT_LABELERS.get(self.kind)
        if labeler is None:
            raise ValueError(f"task source {self.kind!r} has no labeler")
        return str(labeler(task))


def same_tasks(stored: list[Any], tasks: list[Any]) -> bool:
    """Whether `stored` (task dicts as a checkpoint records them) are `tasks`, each read
    back through its own model: a dict written before a field's rename (a point task's
    `plug`, now `label`) compares equal to the task it was written from."""
    if len(stored) != len(tasks):
        return False
    for data, task in zip(stored, tasks, strict=True):
        try:
            again = type(task).model_validate(data)
        except ValueError:  # pydantic's ValidationError: another model's dict
            return False
        if again.model_dump(mode="json") != task.model_dump(mode="json"):
            return False
    return True


def select_test_tasks(
    source: TaskSource,
    labels: list[str] | None = None,
    per_label: int | None = None,
    max_tasks: int | None = None,
    *,
    flag: str = "",
) -> list[Any]:
    """The source's test tasks, optionally only those labelled `labels`, at most
    `per_label` of each label, then at most `max_tasks` in all (in test-task order).
    `flag` prefixes the error for unknown labels (the CLI option that gave them)."""
    tasks = list(source.test_tasks)
    if labels:
        known = sorted({source.task_label(t) for t in tasks})
        unknown = sorted(set(labels) - set(known))
        if unknown:
            raise ValueError(f"{flag}{unknown} not among the test tasks' labels {known}")
        tasks = [t for t in tasks if source.task_label(t) in labels]
    if per_label is not None:
        seen: dict[str, int] = {}
        kept = []
        for t in tasks:
            label = source.task_label(t)
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= per_label:
                kept.append(t)
        tasks = kept
    if max_tasks is not None:
        tasks = tasks[:max_tasks]
    if not tasks:
        raise ValueError("no test tasks selected")
    return tasks


def env_control_hz(env: Any) -> float:
    """The env's control rate: `control_hz` of the env or its config, else 1 / `env.dt`
    (the terrain env's control period, s); 10 Hz if none of them is there."""
    for owner in (env, getattr(env, "config", None), getattr(env, "unwrapped", None)):
        hz = getattr(owner, "control_hz", None)
        if isinstance(hz, (int, float)) and hz > 0:
            return float(hz)
    for owner in (env, getattr(env, "unwrapped", None)):
        dt = getattr(owner, "dt", None)
        if isinstance(dt, (int, float)) and dt > 0:
            return 1.0 / float(dt)
    return 10.0


def make_task_source(cfg: TrainConfig, extra_test_plugs: list[str] | None = None) -> TaskSource:
    """Build the task family named by `cfg.env` with `cfg.seed`. `extra_test_plugs`
    (insertion only): shipped names or spec files to evaluate on as well, held out of
    training and drawn after every other plug (the config's test tasks stay the same)."""
    if extra_test_plugs and cfg.env != "insertion":
        raise ValueError(f"plugs {extra_test_plugs} given, but env {cfg.env!r} has no plugs")
    if cfg.env == "point":
        train = point_tasks(20, cfg.seed, "train")
        test = point_tasks(6, cfg.seed + 10_000, "test")
        source = TaskSource("point", train, test, PointGoalEnv, {"env": "zshot/toy-point"})
        source.describer = point_descriptor
        source.descriptor_names = list(POINT_DESCRIPTOR_NAMES)
    elif cfg.env == "terrain":
        source = _terrain_source(cfg)
    elif cfg.env in GOAL_ENVS:
        source = _goal_source(cfg)
    elif cfg.env == "metaworld_mt10":
        source = _metaworld_source(cfg)
    else:
        source = _insertion_source(cfg, extra_test_plugs or [])
    if cfg.num_train_tasks is not None:
        source.train_tasks = source.train_tasks[: cfg.num_train_tasks]
    return source


def _insertion_sim_data(cfg: TrainConfig) -> dict[str, Any]:
    """`cfg`'s sim_config (if any) with its sim_overrides merged over it."""
    data = load_yaml_mapping(cfg.sim_config) if cfg.sim_config else {}
    return _merge(data, cfg.sim_overrides)


def insertion_sim_config(cfg: TrainConfig, data: dict[str, Any] | None = None) -> Any:
    """`data` (default: `cfg`'s sim_config and sim_overrides, profile and task lists aside)
    validated as a sim.config.InsertionEnvConfig, a bad field named as `cfg`'s. Without
    `data` it builds no task family: what the networks need of the env (the reward, the
    speeds, the control period)."""
    from sim.config import InsertionEnvConfig  # lazy: sim (pybullet) only for insertion

    data = _insertion_sim_data(cfg) if data is None else data
    try:
        return InsertionEnvConfig.model_validate(apply_overrides(data, []))
    except ValueError as exc:
        raise ConfigError(f"sim config ({cfg.sim_config or 'sim_overrides'}): {exc}") from None


def _insertion_source(cfg: TrainConfig, extra_test_plugs: list[str]) -> TaskSource:
    try:
        from sim.config import profile_of, with_profile
        from sim.insertion import InsertionEnv
        from sim.tasks import TaskFamily
    except ImportError as exc:  # lazy: pybullet only for the envs that need it
        raise RuntimeError(f"env 'insertion' needs the sim package: {exc}") from None
    from sim.plugs import NAMED_PLUGS  # lazy with the rest of sim

    data = with_profile(_insertion_sim_data(cfg), cfg.profile)
    train_plugs: list[str] = []
    for name in cfg.train_plugs:
        train_plugs.extend(plug_paths() if name == "family" else [_plug_ref(name)])
    tasks = dict(data.get("tasks") or {})
    held = [_plug_ref(h) for h in (tasks.get("held_out") or list(NAMED_PLUGS))]
    overlap = sorted(set(held) & set(train_plugs))
    if overlap:
        raise ValueError(f"train_plugs include held-out plugs {overlap}")
    tasks.setdefault("include_plugs", [*held, *train_plugs])
    extra = [r for r in (_plug_ref(x) for x in extra_test_plugs) if r not in held]
    if set(extra) & set(train_plugs):
        raise ValueError(f"plugs {sorted(set(extra) & set(train_plugs))} are training plugs")
    tasks["include_plugs"] = [*tasks["include_plugs"], *extra]
    tasks["held_out"] = held + extra
    data["tasks"] = tasks
    sim_cfg = insertion_sim_config(cfg, data)
    family = TaskFamily(sim_cfg, seed=cfg.seed)
    if not family.train_tasks:
        raise ValueError("the task family has no training tasks (every plug is held out)")
    test = [t for t in family.test_tasks if family.is_held_out(t) or not cfg.eval_held_out_only]

    def make_env() -> gym.Env:
        return InsertionEnv(config=sim_cfg)

    info = {
        "env": "zshot/Insertion-v0",
        "sim_config": sim_cfg.model_dump(mode="json"),
        "held_out_plugs": sorted(family.held_out),
        "train_plugs": [_label(p) for p in family.train_plugs],
        "profile": profile_of(sim_cfg),
        # what the context's rewards mean (docs/PROTOCOL.md, Reward): a client sends these
        "reward": reward_manifest(
            sim_cfg.reward,
            cfg.max_episode_steps or sim_cfg.max_steps,
            sim_cfg.force_ref,
            sim_cfg.force_limit,
        ),
    }
    source = TaskSource("insertion", list(family.train_tasks), test, make_env, info)
    source.describer = insertion_descriptor
    source.descriptor_names = list(PLUG_DESCRIPTOR_NAMES)
    return source


FETCH_IDS = {"fetch_reach": "FetchReach-v4", "fetch_push": "FetchPush-v4"}
"""gymnasium-robotics' ids of the Fetch goal envs (TrainConfig.env)."""
GOAL_DIMS = {"point_reach": 2, "insertion_goal": 4, "fetch_reach": 3, "fetch_push": 3}
"""Goal size of each goal env (TrainConfig.env in GOAL_ENVS)."""
OPTIONAL_HINTS = {
    "robotics": "pip install 'zshot[robotics]' (gymnasium-robotics, mujoco)",
    "metaworld": "pip install 'zshot[metaworld]' (metaworld, mujoco)",
}


def goal_dim_of(env: str) -> int:
    """The goal size of goal env `env` (a ValueError for another env)."""
    if env not in GOAL_DIMS:
        raise ValueError(f"env {env!r} is not a goal env; goal envs: {sorted(GOAL_DIMS)}")
    return GOAL_DIMS[env]


def _fetch_env(env_id: str) -> Any:
    """gym.make(env_id) of gymnasium-robotics, imported only here."""
    try:
        # its import prints a note about Adroit envs we never make
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            import gymnasium_robotics
    except ImportError:
        raise RuntimeError(
            f"env {env_id} needs gymnasium-robotics: {OPTIONAL_HINTS['robotics']}"
        ) from None
    gym.register_envs(gymnasium_robotics)
    return gym.make(env_id)


def _goal_source(cfg: TrainConfig) -> TaskSource:
    """A goal env (TrainConfig.env in GOAL_ENVS) flattened by FlatGoalEnv with the sparse
    reward; its train tasks: the insertion family's (insertion_goal) or one task, None."""
    eps = cfg.goal.epsilon
    train: list[Any] = [None]
    if cfg.env == "insertion_goal":
        base = _insertion_source(cfg, [])
        sim_cfg = base.env_info["sim_config"]
        from sim.config import InsertionEnvConfig
        from sim.insertion_goal import InsertionGoalEnv

        config = InsertionEnvConfig.model_validate(sim_cfg)
        fraction = cfg.goal.inserted_fraction

        def make_env() -> gym.Env:
            inner = InsertionGoalEnv(config=config, inserted_fraction=fraction, epsilon=eps or 1.0)
            return FlatGoalEnv(inner, env_id="zshot/InsertionGoal-v0")

        train = list(base.train_tasks)
        env_id = "zshot/InsertionGoal-v0"
        info = {**base.env_info, "env": env_id}
        source = TaskSource("insertion", train, list(train), make_env, info)
    else:
        if cfg.env == "point_reach":
            env_id = "zshot/toy-point-reach"

            def make_env() -> gym.Env:
                return FlatGoalEnv(PointReachEnv(), eps, env_id=env_id)
        else:
            env_id = FETCH_IDS[cfg.env]
            _fetch_env(env_id).close()  # fails here, in one line, without the package

            def make_env() -> gym.Env:
                # FetchReach: the gripper's position; FetchPush: the object's (m, world frame)
                return FlatGoalEnv(_fetch_env(env_id), eps, env_id, ("x_m", "y_m", "z_m"))

        source = TaskSource("goal", train, list(train), make_env, {"env": env_id})
        source.labeler = lambda task: env_id
    source.env_info["goal"] = True
    return source


def _metaworld_source(cfg: TrainConfig) -> TaskSource:
    """Meta-World's MT10 (Yu et al. 2019): one train task per environment, in MT10's order,
    each a `MetaWorldTask` (name, index: which of MT10's 50 goal variations, drawn by
    cfg.seed); the env switches between the 10 (training/common/metaworld_env.py)."""
    try:
        from training.common.metaworld_env import MetaWorldMT10Env, mt10_tasks
    except ImportError:
        raise RuntimeError(
            f"env metaworld_mt10 needs metaworld: {OPTIONAL_HINTS['metaworld']}"
        ) from None
    tasks = mt10_tasks(cfg.seed)
    seed = cfg.seed

    def make_env() -> gym.Env:
        return MetaWorldMT10Env(seed)

    source = TaskSource("metaworld", tasks, list(tasks), make_env, {"env": "metaworld/MT10"})
    source.labeler = lambda task: str(task.name)
    return source


POINT_DESCRIPTOR_NAMES = ("goal_x", "goal_y")


def descriptor_dim(env: str) -> int:
    """The size of env family `env`'s task descriptor (`TaskSource.describer`)."""
    sizes = {"insertion": len(PLUG_DESCRIPTOR_NAMES), "point": len(POINT_DESCRIPTOR_NAMES)}
    if env not in sizes:
        raise ValueError(f"env {env!r} has no task descriptor (known: {', '.join(sizes)})")
    return sizes[env]


def point_descriptor(task: Any) -> list[float]:
    """A point task's descriptor: its goal (x, y), what a user asking for it knows."""
    return [float(task.goal_x), float(task.goal_y)]


def insertion_descriptor(task: Any) -> list[float]:
    """An insertion task's descriptor: its plug spec's (zshot/plug_descriptor.py, the same
    function the robot side computes it with from the spec file)."""
    from sim.plugs import load_plug  # lazy with the rest of sim

    return plug_descriptor(load_plug(str(task.plug)).model_dump(mode="json"))


def _terrain_source(cfg: TrainConfig) -> TaskSource:
    """TerrainTaskFamily(terrain_config + sim_overrides, cfg.seed); the env is TerrainEnv."""
    try:
        from sim.terrain import ENV_IDS, TerrainEnv
        from sim.terrain_config import TerrainEnvConfig
        from sim.terrain_tasks import TerrainTaskFamily
    except ImportError as exc:
        raise RuntimeError(f"env 'terrain' needs the sim package: {exc}") from None

    if cfg.terrain_config is None:  # the config model refuses this; kept for direct callers
        raise ValueError("env 'terrain' needs terrain_config (a configs/terrain/*.yaml path)")
    path = Path(cfg.terrain_config)
    if not path.is_absolute() and not path.is_file() and (REPO_ROOT / path).is_file():
        path = REPO_ROOT / path  # cwd-independent, like plug spec paths
    if not path.is_file():
        raise ValueError(f"terrain_config {cfg.terrain_config!r}: no such file")
    data = _merge(load_yaml_mapping(path), cfg.sim_overrides)
    try:
        terrain_cfg = TerrainEnvConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"terrain config ({cfg.terrain_config}): {exc}") from None
    family = TerrainTaskFamily(terrain_cfg, seed=cfg.seed)
    if not family.test_tasks:
        raise ValueError(
            f"terrain config {cfg.terrain_config}: n_test_tasks is 0 (nothing to evaluate)"
        )

    def make_env() -> gym.Env:
        return TerrainEnv(config=terrain_cfg)

    env_id = next((i for i, f in ENV_IDS.items() if f == terrain_cfg.family), "")
    info = {
        "env": env_id,
        "family": terrain_cfg.family,
        "terrain_config": terrain_cfg.model_dump(mode="json"),
        "held_out": terrain_cfg.heldout,
    }
    source = TaskSource(
        "terrain", list(family.train_tasks), list(family.test_tasks), make_env, info
    )
    source.labeler = lambda task: terrain_label(task, terrain_cfg)
    source.metric = "return"
    return source


def terrain_label(task: Any, config: Any) -> str:
    """Group label of a terrain task in the few-shot report.

    `*-vel`: the 1 m/s bin of the target velocity ("v0-1"); `*-dir`: the heading in degrees
    ("dir180"); terrain families: the parameters outside the training ranges with the side
    ("friction-low+payload-high"), or "in-range" when none is (heldout: inside).
    """
    family = str(task.family)
    if family.endswith("-vel"):
        lo = int(task.target_velocity // 1.0)
        return f"v{lo}-{lo + 1}"
    if family.endswith("-dir"):
        return f"dir{round(math.degrees(float(task.direction))) % 360}"
    out = []
    for name in ("friction", "slope", "roughness", "payload", "motor_strength"):
        rng = config.train.range_of(name)
        value = float(getattr(task, name))
        if value < rng.low:
            out.append(f"{name}-low")
        elif value > rng.high:
            out.append(f"{name}-high")
    return "+".join(out) if out else "in-range"


def _plug_ref(name: str) -> str:
    """A shipped plug name stays a name; a spec path becomes absolute (cwd-independent)."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_absolute():
            path = REPO_ROOT / path if (REPO_ROOT / path).is_file() else path.resolve()
        return str(path)
    return name


def _label(plug: str) -> str:
    """A plug's `name` (a spec file's, as tables and JSON label it)."""
    if plug.endswith((".yaml", ".yml")):
        from sim.tasks import plug_label  # lazy: sim only for insertion's spec files

        return plug_label(plug)
    return plug


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def observation_index(cfg: TrainConfig) -> dict[str, int] | None:
    """Observation name -> column for the env `cfg` names: what belief features
    (`offline.task_features`) read; None for envs without named features."""
    if cfg.env != "insertion":
        return None
    from sim.insertion import OBS_INDEX  # lazy: sim (pybullet) only for insertion

    return dict(OBS_INDEX)


@dataclass
class RunEnv:
    """What an online trainer starts from (`open_run`): its random stream, task source and
    one rollout worker on the source's env, with the env's sizes."""

    rng: np.random.Generator
    source: TaskSource
    worker: RolloutWorker
    obs_dim: int
    act_dim: int
    control_hz: float

    @property
    def env(self) -> Any:
        """The worker's env."""
        return self.worker.env


def open_run(cfg: TrainConfig, who: str) -> RunEnv:
    """Seed a run (torch's threads and generator, Python's `random`, a numpy generator, all
    from cfg.seed, in that order), build its task source and one rollout worker, and check
    the env's action space is the normalised [-1, 1] the tanh policies emit (`who` names the
    trainer in that error)."""
    torch.set_num_threads(cfg.torch_threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    source = make_task_source(cfg)
    worker = RolloutWorker(source.make_env, cfg.max_episode_steps)
    space = worker.env.action_space
    if not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0)):
        raise ValueError(
            f"{who} expects a normalised action space [-1, 1] (docs/INTERFACES.md); "
            f"got low={space.low}, high={space.high}"
        )
    obs_dim = int(worker.env.observation_space.shape[0])
    return RunEnv(rng, source, worker, obs_dim, int(space.shape[0]), env_control_hz(worker.env))
