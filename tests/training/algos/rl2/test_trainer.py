"""RL² end to end on the point tasks: a smoke run from the committed config, its resume
bit for bit, the trainer's trials feeding the policy what the few-shot agent (and so the
runtime) feeds it, the `recurrent` export (onnxruntime against torch), the runtime serving
the torch policy's actions with its hidden state kept by RESET_EPISODE and cleared by
RESET_TASK, `zshot eval` of the artifact and of the run agreeing, and `zshot trials
--robot sim-locomotion` driving an RL² artifact of cheetah-vel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import ROOT, assert_resume_is_bit_for_bit
from tests.training.recurrent_helpers import assert_runtime_follows_agent
from training.algos.rl2.agent import rl2_agent
from training.algos.rl2.networks import RL2Nets
from training.algos.rl2.trainer import RL2Trainer
from training.common.rollout import run_episode
from training.config import TrainConfig
from training.registry import agent_of, export_run, load_run
from zshot.config import load_config

CONFIG = ROOT / "configs" / "train" / "rl2_point.yaml"


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 3 iterations of 8 trials on a 16-wide GRU."""
    base = {
        "iterations": 3,
        "eval_every": 0,
        "checkpoint_every": 1,
        "rl2.trials_per_iteration": 8,
        "rl2.stats_trials": 2,
        "rl2.gru_hidden": 16,
        "ppo.hidden": [16],
        "eval.max_tasks": 2,
    }
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("rl2") / "run"
    trainer = RL2Trainer(smoke_config(), run_dir)
    report = trainer.run(progress=False)
    assert report is not None and trainer.updates == 3
    assert report.protocol["explore_episodes"] == 1
    return run_dir


@pytest.mark.slow
def test_a_smoke_run_trains_logs_and_reads_back(smoke_run: Path) -> None:
    history = json.loads((smoke_run / "history.json").read_text())
    assert len(history) == 3 and history[-1]["counters/updates"] == 3
    for h in history:
        assert np.isfinite(h["loss/policy"]) and np.isfinite(h["loss/value"])
        assert h["train/return_first"] < 0 and h["train/return_last"] < 0  # -distance
    # 8 trials x 2 episodes x at most 20 steps per iteration, after 2 statistics trials
    assert history[-1]["counters/env_steps"] <= (3 * 8 + 2) * 2 * 20
    assert (smoke_run / "eval.json").is_file() and any((smoke_run / "tb").iterdir())
    run = load_run(smoke_run)
    assert run.algorithm.name == "rl2" and isinstance(run.nets, RL2Nets)
    assert run.algorithm.artifact_kind == "recurrent"
    assert agent_of(run).hidden_dim == 16  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_resumed_run_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = smoke_config(iterations=2, **{"rl2.trials_per_iteration": 4, "rl2.bptt": 7})
    whole, second = assert_resume_is_bit_for_bit(RL2Trainer, cfg, tmp_path)
    assert whole.env_steps == second.env_steps


def test_trials_feed_the_policy_what_the_few_shot_agent_feeds_it(tmp_path: Path) -> None:
    """A deterministic trial of the trainer and the run's `RecurrentAgent` driven through
    evaluation's hooks (reset_task, reset_episode, act, observe) on the same task and reset
    seeds take the same actions: the hidden state and (a, r, done) run across the trial's
    episodes in both, and the agent is what the runtime serves (test_recurrent_export)."""
    trainer = RL2Trainer(smoke_config(), tmp_path / "run")
    trainer._obs_stats()
    task = trainer.source.train_tasks[3]
    state = trainer.rng.bit_generator.state
    (trial,) = trainer.run_trials([task], stochastic=False)
    trainer.rng.bit_generator.state = state
    seeds = [int(trainer.rng.integers(2**31)) for _ in range(2)]  # drawn at episode starts
    agent = rl2_agent(trainer.nets, trainer.cfg)
    env = trainer.source.make_env()
    env.set_task(task)
    agent.reset_task()
    actions, returns, lengths = [], [], []
    zero = np.zeros(2, np.float32)
    for seed in seeds:
        agent.reset_episode()

        def act(obs: np.ndarray) -> np.ndarray:
            a = agent.act(np.asarray(obs, np.float32), np.zeros(1, np.float32), zero)
            actions.append(a)
            return a

        ep = run_episode(env, act, seed, on_step=agent.observe)
        returns.append(ep.ret)
        lengths.append(ep.steps)
    np.testing.assert_allclose(np.stack(actions), np.tanh(trial.u), atol=1e-5)
    np.testing.assert_allclose(returns, trial.episode_returns, atol=1e-4)
    # done = 1 exactly at the second episode's first step; its last (a, r) are the first's
    assert np.flatnonzero(trial.done[:, 0]).tolist() == [lengths[0]]
    np.testing.assert_allclose(trial.last_action[lengths[0]], actions[lengths[0] - 1], atol=1e-6)
    assert trial.reward[lengths[0], 0] == pytest.approx(trial.rewards[lengths[0] - 1])


@pytest.fixture(scope="module")
def artifact(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl2-art") / "artifact"
    art, errors = export_run(smoke_run, out)
    assert max(errors.values()) <= 1e-5
    m = art.manifest
    assert (m.kind, m.hidden_dim, m.training["algorithm"]) == ("recurrent", 16, "rl2")
    return out


@pytest.mark.slow
def test_the_runtime_serves_the_torch_policy_across_episodes_and_tasks(
    smoke_run: Path, artifact: Path
) -> None:
    run = load_run(smoke_run)
    agent = rl2_agent(run.nets, run.cfg)
    (first, second), _ = assert_runtime_follows_agent(artifact, agent, episodes=(5, 4, 3))
    np.testing.assert_allclose(np.stack(first), np.stack(second), atol=1e-5)


@pytest.mark.slow
def test_zshot_eval_of_the_artifact_and_of_the_run_agree(
    smoke_run: Path, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zshot.cli import main as zshot

    reports = []
    for target, backend in ((artifact, "onnxruntime (recurrent)"), (smoke_run, "torch")):
        out = tmp_path / f"{backend[:4]}.json"
        args = ["eval", str(target), "--explore", "2", "--episodes", "1", "--max-tasks", "3"]
        assert zshot([*args, "--seed", "5", "--json", str(out)]) == 0
        assert capsys.readouterr().out.startswith(backend)
        reports.append(json.loads(out.read_text())["tasks"])
    for a, b in zip(*reports, strict=True):
        assert a["label"] == b["label"] and a["successes"] == b["successes"]
        assert a["mean_return"] == pytest.approx(b["mean_return"], abs=1e-3)
        assert a["explore_mean_return"] == pytest.approx(b["explore_mean_return"], abs=1e-3)


@pytest.mark.slow
def test_zshot_trials_drive_an_rl2_artifact_of_cheetah_vel(tmp_path: Path) -> None:
    """The robot path: a (barely trained) RL² run of the committed cheetah-vel config,
    exported, served by `zshot serve` and driven by `zshot trials --robot sim-locomotion`
    (adaptation then evaluation episodes of one task, the hidden state kept between them)."""
    from hardware_bridge.cli import start_runtime, trials_main

    sets = {
        "iterations": 1,
        "max_minutes": None,
        "max_episode_steps": 10,
        "rl2.trials_per_iteration": 2,
        "rl2.stats_trials": 1,
        "rl2.gru_hidden": 8,
        "rl2.bptt": 6,
        "ppo.hidden": [8],
        "eval.max_tasks": 1,
    }
    cfg = load_config(
        TrainConfig,
        ROOT / "configs" / "train" / "rl2_cheetah_vel.yaml",
        [f"{k}={json.dumps(v)}" for k, v in sets.items()],
    )
    RL2Trainer(cfg, tmp_path / "run").run(progress=False)
    art, _ = export_run(tmp_path / "run", tmp_path / "art")
    assert (art.manifest.kind, art.manifest.obs_dim, art.manifest.act_dim) == ("recurrent", 17, 6)
    proc, endpoint = start_runtime(tmp_path / "art")
    try:
        out = tmp_path / "out"
        rc = trials_main(
            ["--robot", "sim-locomotion", "--runtime", endpoint, "--plugs", "test/2",
             "--adapt-episodes", "1", "--eval-episodes", "1", "--out", str(out),
             "--quiet", "--set", "watchdog.deadline_fraction=1.0"]
        )  # fmt: skip
        assert rc == 0
        row = json.loads((out / "trials.json").read_text())["plugs"][0]
        assert row["completed"] and [e["steps"] for e in row["episodes"]] == [200, 200]
        assert not any(e["aborted"] or e["misses"] for e in row["episodes"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_zshot_export_prints_the_step_graphs_parity(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zshot.cli import main as zshot

    assert zshot(["export", str(smoke_run), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("step.onnx")]
    assert "(recurrent) hidden, obs, last_action, reward, done, noise -> next_hidden" in line
    assert "onnxruntime vs torch max |err| next_hidden" in line
    assert (tmp_path / "a" / "step.onnx").is_file()
    assert zshot(["export", str(smoke_run), "--out", str(tmp_path / "a")]) == 2  # no --force
    assert "--force" in capsys.readouterr().err


@pytest.mark.slow
def test_zshot_collect_drives_the_recurrent_policy(
    smoke_run: Path, artifact: Path, tmp_path: Path
) -> None:
    """A collection's policy behaviour from the run (torch) and from its artifact
    (onnxruntime) alike: the same actions, the state kept over a task's episodes (each
    step told its action and reward) and cleared for another task; a dataset collects."""
    from training.collect import PolicyBehaviour, collect_dataset
    from training.common.agents import RecurrentAgent
    from training.common.datasets import load_dataset
    from training.config import CollectConfig

    behs = [
        PolicyBehaviour(str(src), 2, 2, np.random.default_rng(0)) for src in (smoke_run, artifact)
    ]
    for task, done in (("a", 0.0), ("a", 1.0), ("b", 0.0)):  # done: the next step's input
        for b in behs:
            b.reset(task)
        for b in behs:
            assert isinstance(b.agent, RecurrentAgent) and b.agent.done == done
            if task == "b":  # a new task: the state is cleared
                assert not b.agent.hidden.any()
        obs = np.array([0.3, -0.2], np.float32)
        for _ in range(3):
            acts = [b.act(obs) for b in behs]
            np.testing.assert_allclose(acts[0], acts[1], atol=1e-5)
            for b, a in zip(behs, acts, strict=True):
                b.observe(np.concatenate([obs, a, [-0.5], obs]).astype(np.float32))
        hidden = [b.agent.hidden.copy() for b in behs]  # type: ignore[attr-defined]
        np.testing.assert_allclose(hidden[0], hidden[1], atol=1e-5)
    cfg = CollectConfig.model_validate(
        {
            "env": "point",
            "num_tasks": 2,
            "episodes_per_task": 2,
            "mix": {"scripted": 0, "random": 0, "policy": 1},
            "policy_run": str(artifact),
        }
    )
    m = collect_dataset(cfg, tmp_path / "d", progress=False)
    assert m["behaviours"]["policy"]["episodes"] == 4
    assert load_dataset(tmp_path / "d").behaviours == ["policy"]
