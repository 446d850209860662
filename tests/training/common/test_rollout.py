"""The one episode loop (training/common/rollout.py) and its worker's seeding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.common.rollout import Episode, RolloutWorker, run_episode, task_rng
from training.common.toy_env import PointGoalEnv, point_tasks


class NoisyActor:
    """Draws a per-episode offset in begin_episode and per-step noise, from `rng`."""

    def __init__(self) -> None:
        self.rng: np.random.Generator | None = None
        self.offset = np.zeros(2)
        self.ended: list[int] = []

    def begin_episode(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.offset = rng.uniform(-0.5, 0.5, 2)

    def act(self, obs: np.ndarray) -> np.ndarray:
        assert self.rng is not None
        return np.clip(self.offset + 0.3 * self.rng.standard_normal(2), -1, 1).astype(np.float32)

    def end_episode(self, episode: Episode) -> None:
        self.ended.append(episode.steps)


def test_episode_holds_what_the_env_produced() -> None:
    env = PointGoalEnv(point_tasks(1, 0, "t")[0])
    rows: list[np.ndarray] = []
    ep = run_episode(env, lambda obs: np.array([0.2, -0.1], np.float32), 7, on_step=rows.append)
    assert ep.seed == 7 and ep.steps == env.max_steps and len(ep.obs) == ep.steps + 1
    assert ep.truncated[-1] and not ep.terminated.any()
    np.testing.assert_array_equal(np.stack(rows), ep.transitions())
    again = PointGoalEnv(point_tasks(1, 0, "t")[0])
    obs, _ = again.reset(seed=7)
    np.testing.assert_array_equal(ep.obs[0], obs)
    assert ep.ret == pytest.approx(float(ep.rewards.sum()))


def test_max_steps_truncates_the_episode() -> None:
    env = PointGoalEnv(point_tasks(1, 0, "t")[0])
    ep = run_episode(env, lambda obs: np.zeros(2, np.float32), 0, max_steps=3)
    assert ep.steps == 3 and ep.truncated.tolist() == [False, False, True]


def test_worker_runs_whole_episodes_to_a_step_budget() -> None:
    worker = RolloutWorker(PointGoalEnv, max_steps=6)
    actor = NoisyActor()
    eps = worker.run(point_tasks(1, 0, "t")[0], actor, np.random.default_rng(0), num_steps=10)
    assert [e.steps for e in eps] == [6, 6] and actor.ended == [6, 6]
    with pytest.raises(ValueError, match="exactly one"):
        worker.run(point_tasks(1, 0, "t")[0], actor, np.random.default_rng(0))


def _episodes(order: list[int], per_task: bool) -> dict[int, list[np.ndarray]]:
    tasks = point_tasks(3, 0, "t")
    worker = RolloutWorker(PointGoalEnv)
    shared = np.random.default_rng(5)
    out = {}
    for i in order:
        rng = task_rng(5, i) if per_task else shared
        eps = worker.run(tasks[i], NoisyActor(), rng, num_episodes=2)
        out[i] = [e.transitions() for e in eps]
    return out


def test_per_task_streams_make_episodes_independent_of_the_order() -> None:
    a, b = _episodes([0, 1, 2], True), _episodes([2, 0, 1], True)
    for i in range(3):
        for x, y in zip(a[i], b[i], strict=True):
            np.testing.assert_array_equal(x, y)
    # one run-wide stream (what the in-process callers keep for bit-identical runs) does not
    shared_a, shared_b = _episodes([0, 1, 2], False), _episodes([2, 0, 1], False)
    assert not np.array_equal(shared_a[0][0], shared_b[0][0])


def test_task_rng_rounds_are_streams_of_their_own() -> None:
    draws = {r: task_rng(3, 1, r).random() for r in (None, 1, 2)}
    assert len(set(draws.values())) == 3
    assert task_rng(3, 1, 2).random() == draws[2]
    with pytest.raises(ValueError, match="round must be >= 1"):
        task_rng(3, 1, 0)  # it would be the round-less stream (seed sequences pad with 0)


_BUILDS = """
import resource, sys
from training.common.rollout import RolloutWorker, retain_freed_memory
from training.common.tasks import make_task_source
from training.config import CollectConfig
from zshot.config import load_config
retained = retain_freed_memory() if sys.argv[1] == "1" else None
cfg = load_config(CollectConfig, "configs/collect/insertion.yaml", [])
source = make_task_source(cfg.as_train_config())
RolloutWorker(source.make_env).close()  # the first env's memory is new either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    RolloutWorker(source.make_env).close()
print(retained, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


@pytest.mark.slow
def test_retained_memory_stops_each_fresh_insertion_env_faulting_its_pages_in() -> None:
    root = Path(__file__).resolve().parents[3]

    def faults(retain: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _BUILDS, retain],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        ).stdout.split()
        return out[-2], int(out[-1])

    retained, with_it = faults("1")
    if retained != "True":
        pytest.skip("not glibc: retain_freed_memory changes nothing here")
    _, without = faults("0")
    assert without > 2000, f"{without} page faults per env build without: nothing to show"
    assert with_it < 500, f"{with_it} page faults per env build with the memory retained"
