"""What every recurrent (RL², VariBAD) test checks against the runtime: a served `recurrent`
artifact gives a client the actions of the torch policy's `RecurrentAgent`, with the hidden
state kept by RESET_EPISODE and cleared by RESET_TASK in both."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.client import RuntimeClient
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.server import RuntimeServer
from training.common.agents import RecurrentAgent

ATOL = 1e-5


def assert_runtime_follows_agent(
    artifact: Path,
    agent: RecurrentAgent,
    episodes: tuple[int, ...] = (4, 3, 2),
    tasks: int = 2,
    seed: int = 0,
    final_reward: float | None = None,
) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """Serve `artifact` and drive it as the bridge does (STEP t carries the transition of
    period t-1, an episode's last one goes by OBSERVE before RESET_EPISODE) beside `agent`
    driven through evaluation's hooks (reset_task, reset_episode, act, observe), on the
    same observations and rewards; every action and the hidden state after every episode
    must agree. `final_reward`: every episode's last reward (a success's, for a state that
    remembers one; else all are N(0, 1)). Returns each task's actions and the observations
    (the same for every task: only the state differs)."""
    server = RuntimeServer(
        LoadedModel.load(artifact, ServeConfig()), ServeConfig(seed=0, poll_interval_s=0.01)
    )
    server.bind("tcp://127.0.0.1:*")
    server.start()
    client = RuntimeClient(server.endpoint, timeout_s=5.0)
    rng = np.random.default_rng(seed)
    o, a = agent.obs_dim, agent.act_dim
    zero_z, zero_noise = np.zeros(1, np.float32), np.zeros(a, np.float32)
    per_task: list[list[np.ndarray]] = []
    try:
        info = client.hello(kind="recurrent")
        assert info.hidden_dim == agent.hidden_dim
        obs_seq = rng.normal(0.0, 0.5, (sum(episodes) + 1, o)).astype(np.float32)
        rewards = rng.normal(size=sum(episodes)).astype(np.float32)
        if final_reward is not None:
            rewards[np.cumsum(episodes) - 1] = final_reward
        for _ in range(tasks):  # the same inputs for every task: only the state differs
            client.reset_task()
            agent.reset_task()
            np.testing.assert_allclose(client.get_state().state, agent.initial_hidden, atol=0)
            actions: list[np.ndarray] = []
            k = 0
            for n in episodes:
                client.reset_episode()
                agent.reset_episode()
                tr = None
                for _ in range(n):
                    obs = obs_seq[k]
                    got = client.step(obs, tr)
                    want = agent.act(obs, zero_z, zero_noise)
                    np.testing.assert_allclose(got, want, atol=ATOL)
                    tr = np.concatenate([obs, got, [rewards[k]], obs_seq[k + 1]])
                    tr = tr.astype(np.float32)
                    agent.observe(tr)
                    actions.append(got)
                    k += 1
                assert tr is not None and client.observe(tr[None]) > 0
                np.testing.assert_allclose(client.get_state().state, agent.hidden, atol=ATOL)
            per_task.append(actions)
    finally:
        client.close()
        server.stop()
    return per_task, obs_seq
