"""The shared pieces of recurrent policies (training/common/agents.py `RecurrentAgent`,
training/common/onnx_export.py `export_recurrent`): the inputs each step gets across
episodes and tasks, the export's parity with torch, the ONNX agent against the torch one,
and the runtime serving the torch agent's actions (state kept by RESET_EPISODE, cleared by
RESET_TASK)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tests.training.conftest import tiny_config
from tests.training.recurrent_helpers import assert_runtime_follows_agent
from training.common.agents import OnnxRecurrentAgent, RecurrentAgent, torch_step
from training.common.networks import ObsNormaliser
from training.common.onnx_export import RecurrentStepGraph, export_recurrent

OBS, ACT, H = 2, 2, 5  # the point task's sizes


class TinyCore(nn.Module):
    """A GRU cell over (normalised obs, last action, reward, done) and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.normaliser = ObsNormaliser(OBS)
        self.cell = nn.GRUCell(OBS + ACT + 2, H)
        self.head = nn.Linear(H, ACT)
        self.log_std = nn.Parameter(torch.full((ACT,), -0.5))

    def step(
        self, hidden: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.cat([self.normaliser(obs), last_action, reward, done], dim=-1)
        h = self.cell(x, hidden)
        mean = self.head(h)
        return h, mean, self.log_std.expand_as(mean)


def tiny_step(seed: int = 0) -> RecurrentStepGraph:
    torch.manual_seed(seed)
    core = TinyCore()
    core.normaliser.set_stats(torch.tensor([0.2, 0.5]), torch.tensor([0.4, 0.3]))
    return RecurrentStepGraph(core, -np.ones(ACT, np.float32), np.ones(ACT, np.float32))


class Recorder:
    """A step function that records its inputs; next_hidden = hidden + 1."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, ...]] = []

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(tuple(x.copy() for x in inputs))
        return inputs[0] + 1.0, np.full((1, ACT), 0.25, np.float32)


def test_each_step_gets_the_previous_action_reward_and_done_of_its_trial() -> None:
    rec = Recorder()
    agent = RecurrentAgent(rec, OBS, ACT, H, initial_hidden=np.full(H, 0.5))
    z, noise = np.zeros(1, np.float32), np.zeros(ACT, np.float32)

    def row(r: float) -> np.ndarray:
        return np.array([0, 0, 0.1, -0.2, r, 0, 0], np.float32)  # (s, a, r, s')

    agent.reset_task()
    agent.reset_episode()  # the task's first episode: done stays 0
    agent.act(np.zeros(OBS), z, noise)
    agent.observe(row(1.0))
    agent.act(np.zeros(OBS), z, noise)
    agent.observe(row(2.0))
    agent.reset_episode()  # the next episode: hidden and (a, r) kept, done = 1 once
    agent.act(np.zeros(OBS), z, noise)
    agent.observe(row(3.0))
    agent.act(np.zeros(OBS), z, noise)
    agent.reset_task()  # a new task: all back to the start
    agent.reset_episode()
    agent.act(np.zeros(OBS), z, noise)
    hidden = [float(c[0][0, 0]) for c in rec.calls]
    reward = [float(c[3][0, 0]) for c in rec.calls]
    done = [float(c[4][0, 0]) for c in rec.calls]
    assert hidden == [0.5, 1.5, 2.5, 3.5, 0.5]
    assert reward == [0.0, 1.0, 2.0, 3.0, 0.0]
    assert done == [0.0, 0.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(rec.calls[2][2], [[0.1, -0.2]])  # the last episode's a
    np.testing.assert_array_equal(rec.calls[4][2], np.zeros((1, ACT)))


def test_a_snapshot_restores_the_state_so_an_episode_can_be_run_without_changing_the_next() -> None:
    rec = Recorder()
    agent = RecurrentAgent(rec, OBS, ACT, H)
    z, noise = np.zeros(1, np.float32), np.zeros(ACT, np.float32)
    agent.reset_episode()
    agent.act(np.zeros(OBS), z, noise)
    agent.observe(np.array([0, 0, 0.3, 0.4, 2.0, 0, 0], np.float32))
    state = agent.snapshot()
    agent.reset_episode()  # an episode run from the snapshot: state moves on
    agent.act(np.zeros(OBS), z, noise)
    agent.observe(np.array([0, 0, -1, -1, 9.0, 0, 0], np.float32))
    agent.restore(state)
    agent.hidden += 100.0  # the restored arrays are copies: the snapshot stays as taken
    agent.restore(state)
    agent.reset_episode()
    agent.act(np.zeros(OBS), z, noise)
    last = rec.calls[-1]
    assert float(last[0][0, 0]) == 1.0  # hidden after one step, not two
    np.testing.assert_allclose(last[2], [[0.3, 0.4]])
    assert (float(last[3][0, 0]), float(last[4][0, 0])) == (2.0, 1.0)  # r kept, done = 1


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recurrent") / "artifact"
    step = tiny_step()
    norm = step.core.normaliser
    art, errors = export_recurrent(
        step,
        tiny_config(),
        out,
        obs_mean=norm.mean,
        obs_std=norm.std,
        hidden_dim=H,
        name="tiny-recurrent",
        algorithm="test",
        run_dir=out.parent,
        counters={"iteration": 0, "updates": 0, "env_steps": 0},
        extra={"note": "a test core"},
    )
    assert set(errors) == {"next_hidden", "action"} and max(errors.values()) <= 1e-5
    m = art.manifest
    assert (m.kind, m.hidden_dim, m.obs_dim, m.act_dim) == ("recurrent", H, OBS, ACT)
    assert m.training["note"] == "a test core" and m.training["algorithm"] == "test"
    assert m.obs_normalisation is not None and m.obs_normalisation.mean == pytest.approx([0.2, 0.5])
    return out


@pytest.mark.slow
def test_an_existing_artifact_is_kept_without_force(artifact: Path) -> None:
    step = tiny_step()
    with pytest.raises(FileExistsError, match="--force"):
        export_recurrent(
            step,
            tiny_config(),
            artifact,
            obs_mean=step.core.normaliser.mean,
            obs_std=step.core.normaliser.std,
            hidden_dim=H,
            name="x",
            algorithm="test",
            run_dir=artifact.parent,
            counters={"iteration": 0, "updates": 0, "env_steps": 0},
        )


@pytest.mark.slow
def test_the_onnx_agent_acts_as_the_torch_agent_over_tasks_and_episodes(artifact: Path) -> None:
    onnx_agent = OnnxRecurrentAgent(artifact)
    torch_agent = RecurrentAgent(torch_step(tiny_step()), OBS, ACT, H)
    rng = np.random.default_rng(3)
    z = np.zeros(1, np.float32)
    for _task in range(2):
        for agent in (onnx_agent, torch_agent):
            agent.reset_task()
        for _ in range(3):
            for agent in (onnx_agent, torch_agent):
                agent.reset_episode()
            for t in range(5):
                obs = rng.normal(size=OBS).astype(np.float32)
                noise = rng.normal(size=ACT).astype(np.float32) * (t % 2)
                got = onnx_agent.act(obs, z, noise)
                want = torch_agent.act(obs, z, noise)
                np.testing.assert_allclose(got, want, atol=1e-5)
                row = np.concatenate([obs, got, [rng.normal()], obs]).astype(np.float32)
                onnx_agent.observe(row)
                torch_agent.observe(row)
        np.testing.assert_allclose(onnx_agent.hidden, torch_agent.hidden, atol=1e-5)
    assert np.abs(onnx_agent.hidden).max() > 1e-3  # the state moved


def test_an_artifact_of_another_kind_is_refused(tmp_path: Path) -> None:
    from tests.runtime.kinds_fixture import make_kind_artifact

    make_kind_artifact(tmp_path / "w", "weights")
    with pytest.raises(ValueError, match="not a recurrent one"):
        OnnxRecurrentAgent(tmp_path / "w")


@pytest.mark.slow
def test_the_runtime_serves_the_torch_agent_and_resets_it_per_task(artifact: Path) -> None:
    agent = RecurrentAgent(torch_step(tiny_step()), OBS, ACT, H)
    (first, second), obs = assert_runtime_follows_agent(artifact, agent, episodes=(4, 3, 2))
    # the same inputs give the same actions after RESET_TASK: the state was cleared
    np.testing.assert_allclose(np.stack(first), np.stack(second), atol=1e-5)
    # the state carried across RESET_EPISODE matters: episode 2's first observation
    # (step 4) from a fresh state gives another action than the served one
    fresh = RecurrentAgent(torch_step(tiny_step()), OBS, ACT, H)
    fresh.reset_task()
    fresh.reset_episode()
    alone = fresh.act(obs[4], np.zeros(1, np.float32), np.zeros(ACT, np.float32))
    assert np.abs(alone - first[4]).max() > 1e-4
