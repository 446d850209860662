"""Adapting an offline PEARL run to a new task: context first, gradients when far from data.

The ODA recipe (Zhao et al. 2022, sec. IV): on a new plug, (1) infer z from a little context
(contextual adaptation, no gradient), and if that does not solve the task (2) fine-tune the
networks online on the task's own trials with the same offline losses (losses.py).

- the measurement of the context shift is `training.evaluate.context_eval`: per test task,
  the posterior is built from K episodes of either the noisy scripted expert ("scripted":
  demonstrations, as the behaviour data was gathered) or the policy's own posterior-sampling
  exploration ("own": PEARL's protocol); then N episodes with z = posterior mean. The gap
  between the two is the cost of the mismatch between behaviour and test-time context.
- `finetune_task`: K context episodes, then up to `max_episodes` online episodes with
  z = posterior mean; when the first `far_window` of them succeed less than `far_threshold`
  the task is far from the data and each further episode is followed by
  `updates_per_episode` offline-PEARL gradient steps. As in ODA (and AWAC's offline-to-online
  fine-tuning) the offline data stays in the batches: each step's meta-batch is the new task
  (its online buffer) plus `offline_tasks_per_batch` tasks of the run's offline dataset
  (`offline.dataset`), built as the offline trainer builds them (`mixed_batch`); 0 is the
  task's own buffer alone (T = 1). After each gradient phase the networks can be exported to
  a new artifact and the runtime told to RELOAD it (`on_artifact`), so the robot runs the
  fine-tuned policy from its next episode.

CLI (training/cli.py `finetune_main`): `python -m training.finetune RUN --context both -n 10`
(context-shift table) and `python -m training.finetune RUN --finetune LABEL [--artifacts DIR
--runtime ADDR]`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.algos.offline_pearl.losses import offline_update, sample_offline_batch
from training.algos.offline_pearl.networks import OfflinePearlNets
from training.algos.offline_pearl.trainer import ALGORITHM
from training.algos.pearl.agent import TorchAgent
from training.algos.pearl.export import export_posterior
from training.algos.pearl.losses import PearlOptimizers
from training.behaviours import demo_noise
from training.common.agents import new_posterior
from training.common.batches import MetaBatch, assemble_batch, concat_batches
from training.common.datasets import DatasetError, OfflineDataset, load_dataset
from training.common.replay import MultiTaskReplayBuffer
from training.common.tasks import TaskSource, env_control_hz
from training.config import TrainConfig
from training.evaluate import EpisodeResult, gather_context, mean_z_episode


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


def load_finetune_dataset(cfg: TrainConfig, obs_dim: int, act_dim: int) -> OfflineDataset:
    """The run's offline dataset (`cfg.offline.dataset`) for fine-tuning batches.

    Raises ValueError (training.common.datasets.DatasetError for unreadable data) naming the path,
    and saying how to fine-tune without it.
    """
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
) -> MetaBatch:
    """One fine-tuning meta-batch: row 0 the new task (buffer task 0), then
    `cfg.finetune.offline_tasks_per_batch` distinct dataset tasks (training/algos/offline_pearl/losses.py's
    sampling, `cfg.offline.context_sampling` included); `cfg.batch_size` transitions and
    `cfg.context_size` context rows per task (`cfg` is the fine-tuning config, whose
    batch_size is finetune.batch_size)."""
    ft = cfg.finetune
    new_task = np.array([0])
    online = assemble_batch(
        buf, buf.sample_context, new_task, cfg.batch_size, cfg.context_size, rng
    )
    k = ft.offline_tasks_per_batch
    if k == 0 or dataset is None:
        return online
    tasks = data_rng.choice(len(dataset.tasks), size=k, replace=False)
    return concat_batches(online, sample_offline_batch(dataset, cfg, data_rng, tasks))


def finetune_task(
    nets: OfflinePearlNets,
    cfg: TrainConfig,
    source: TaskSource,
    task: Any,
    seed: int,
    *,
    artifact_dir: str | Path | None = None,
    on_artifact: Callable[[Path], None] | None = None,
    dataset: OfflineDataset | None = None,
) -> tuple[FinetuneResult, OfflinePearlNets]:
    """Contextual adaptation, then gradient fine-tuning if far from the data (module doc).

    `nets` are not modified (a copy is fine-tuned and returned). With `artifact_dir`, each
    gradient phase is exported to `artifact_dir/vNNN` and passed to `on_artifact` (e.g. a
    RuntimeClient's reload) before the next episode. The offline data mixed into the
    gradient steps (`finetune.offline_tasks_per_batch` > 0) is `dataset` if given, else
    `cfg.offline.dataset`, loaded (and refused with a ValueError naming it) before the first
    episode.
    """
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
    post = new_posterior(agent)
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
            if online and agent.encoder is not None:
                post.add(*agent.encoder.factors(ep.transitions))

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
        stochastic = grad or ft.sample_actions
        ep = mean_z_episode(env, agent, post, rng, hz, cfg.max_episode_steps, stochastic)
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
                batch = mixed_batch(buf, dataset, ft_cfg, rng, data_rng)
                offline_update(batch, nets, optimizers, ft_cfg)
                updates += 1
            # The encoder moved: rebuild the posterior from its context transitions.
            post.reset()
            if agent.encoder is not None:
                post.add(*agent.encoder.factors(np.concatenate(rows)))
            if artifact_dir is not None:
                out = Path(artifact_dir) / f"v{len(result.artifacts):03d}"
                export_posterior(
                    nets,
                    cfg,
                    out,
                    name=f"zshot-pearl-finetuned-{out.name}",
                    algorithm=ALGORITHM,
                    run_dir=out,
                    counters={"iteration": updates, "updates": updates, "env_steps": 0},
                )
                result.artifacts.append(str(out))
                if on_artifact is not None:
                    on_artifact(out)
    for _ in range(ft.final_episodes):
        ep = mean_z_episode(env, agent, post, rng, hz, cfg.max_episode_steps, ft.sample_actions)
        result.final_successes += int(ep.success)
        result.final_episodes += 1
    env.close()
    return result, nets
