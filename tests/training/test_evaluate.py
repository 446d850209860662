"""Few-shot evaluation: the protocol's bookkeeping, the posterior, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.algos.pearl.losses import product_of_gaussians
from training.common.agents import AgentBase, Posterior
from training.common.tasks import TaskSource
from training.common.toy_env import PointGoalEnv, PointTask, point_tasks
from training.config import EvalConfig
from training.evaluate import FewShotReport, few_shot_eval
from zshot.cli import main as zshot

from ..conftest import ExportedArtifact


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 12), st.integers(0, 2**31), st.booleans())
def test_incremental_posterior_equals_batch_product(n: int, seed: int, prior: bool) -> None:
    rng = np.random.default_rng(seed)
    mu, var = rng.normal(size=(n, 3)), rng.uniform(0.05, 5, size=(n, 3))
    post = Posterior(3, prior_in_posterior=prior)
    for i in range(n):  # one transition at a time, as the runtime does
        post.add(mu[i : i + 1], var[i : i + 1])
    m, v = product_of_gaussians(torch.from_numpy(mu), torch.from_numpy(var), prior=prior)
    np.testing.assert_allclose(post.mean, m.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(post.var, v.numpy(), rtol=1e-9)
    post.reset()
    np.testing.assert_array_equal(post.mean, np.zeros(3))
    np.testing.assert_array_equal(post.var, np.ones(3))


class UpAgent(AgentBase):
    """Scripted: always heads straight up (reaches the 'up' goal, never the 'right' one).

    It records the z of every step, and its factors put mu at s' with var 1, so the
    posterior is easy to predict (it is its own encoder).
    """

    latent_dim = 3
    prior_in_posterior = True

    def __init__(self) -> None:
        self.factor_calls = 0
        self.zs: list[np.ndarray] = []
        self.encoder = self

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.factor_calls += len(transitions)
        mu = np.concatenate([transitions[:, 5:7], np.ones((len(transitions), 1))], axis=1)
        return mu, np.ones_like(mu)

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        self.zs.append(z.copy())
        return np.array([0.0, 1.0], np.float32)


class ExactStartEnv(PointGoalEnv):
    """No start noise: step counts are exact (the 'up' goal is reached at step 9)."""

    start_noise = 0.0


def _source() -> TaskSource:
    tasks = [
        PointTask(label="up", goal_x=0.0, goal_y=1.0),
        PointTask(label="right", goal_x=0.9, goal_y=0.4),
    ]
    return TaskSource("point", point_tasks(3, 0, "train"), tasks, ExactStartEnv)


def test_protocol_counts_and_table() -> None:
    agent = UpAgent()
    cfg = EvalConfig(explore_episodes=2, eval_episodes=3)
    report = few_shot_eval(_source(), agent, cfg, seed=0)
    # 'up' (1 m away at 0.1 m/step, radius 0.15) succeeds at step 9: 0.9 s at 10 Hz
    assert [p.label for p in report.tasks] == ["right", "up"]
    for p in report.tasks:
        assert p.episodes == 3 and p.explore_episodes == 2
        assert p.peak_force == 0.0
    up = report.tasks[1]
    assert up.successes == 3 and up.explore_successes == 2
    assert up.mean_steps == 9 and report.tasks[0].mean_steps == PointGoalEnv.max_steps
    assert up.safety_violations == 0
    assert up.mean_time_to_insert == pytest.approx(0.9)
    assert report.tasks[0].successes == 0 and report.tasks[0].mean_time_to_insert is None
    assert report.success_rate == 0.5
    # episodic: factors only from the exploration episodes ('up' ends at step 9 when it
    # succeeds, 'right' runs the full 20 steps): 2 * 9 + 2 * 20
    assert agent.factor_calls == 2 * 9 + 2 * PointGoalEnv.max_steps
    table = report.table()
    assert "up" in table and "3/3" in table
    # The toy task's table has no insertion columns (no insertion, no forces).
    assert report.protocol["env_kind"] == "point"
    head = table.splitlines()[0].split()
    assert head == ["task", "success", "return", "t_success[s]", "steps"]
    assert "0.90" in table  # up's time to success
    insertion = FewShotReport(report.tasks, {**report.protocol, "env_kind": "insertion"})
    assert "t_insert[s]" in insertion.table() and "peak F[N]" in insertion.table()
    data = report.to_json()
    assert data["protocol"]["explore_episodes"] == 2 and len(data["tasks"]) == 2
    assert [row["label"] for row in data["tasks"]] == ["right", "up"] and "plugs" not in data
    # the JSON reads back, and so does a report written before the rename ("plugs"/"plug")
    again = FewShotReport.from_json(json.loads(json.dumps(data)))
    assert again.tasks == report.tasks and again.protocol == report.protocol
    old = json.loads(json.dumps(data))
    old["plugs"] = [{"plug": r.pop("label"), **r} for r in old.pop("tasks")]
    assert FewShotReport.from_json(old).tasks == report.tasks


def test_without_exploration_the_posterior_stays_at_the_prior() -> None:
    agent = UpAgent()
    few_shot_eval(_source(), agent, EvalConfig(explore_episodes=0, eval_episodes=2), seed=0)
    assert agent.factor_calls == 0  # episodic mode: eval episodes do not update the posterior
    assert all(np.array_equal(z, np.zeros(3)) for z in agent.zs)  # the prior mean


def test_exploration_samples_z_and_evaluation_uses_the_mean() -> None:
    agent = UpAgent()
    src = _source()
    src.test_tasks = src.test_tasks[:1]  # 'up': explore 9 steps, evaluate 9 steps twice
    few_shot_eval(src, agent, EvalConfig(explore_episodes=1, eval_episodes=2), seed=0)
    explore, evals = agent.zs[:9], agent.zs[9:]
    assert len(evals) == 18
    assert not np.allclose(explore[0], 0.0)  # a sample from the prior, once per episode
    assert all(np.array_equal(z, explore[0]) for z in explore)
    # posterior mean after 9 factors with var 1 and the prior: sum(mu) / 10
    assert evals[0][2] == pytest.approx(9 / 10)
    assert all(np.array_equal(z, evals[0]) for z in evals)


def test_online_mode_updates_every_step() -> None:
    agent = UpAgent()
    src = _source()
    src.test_tasks = src.test_tasks[:1]
    report = few_shot_eval(
        src, agent, EvalConfig(explore_episodes=0, eval_episodes=1, mode="online"), seed=0
    )
    assert agent.factor_calls == 9 and report.protocol["mode"] == "online"
    # z at step t is the posterior mean after t transitions: z[2] = t / (t + 1)
    np.testing.assert_allclose([z[2] for z in agent.zs], [t / (t + 1) for t in range(9)], rtol=1e-6)


def test_tasks_per_label_limits_each_label() -> None:
    src = _source()
    src.test_tasks = [*src.test_tasks, PointTask(label="up", goal_x=0.1, goal_y=1.0)]
    report = few_shot_eval(
        src, UpAgent(), EvalConfig(explore_episodes=0, tasks_per_label=1), seed=0
    )
    assert report.protocol["tasks"] == 2 and all(p.episodes == 1 for p in report.tasks)


def test_eval_config_reads_the_old_tasks_per_plug_key() -> None:
    """`tasks_per_plug` (configs and checkpoints before the rename) is `tasks_per_label`;
    given with the new key (a stored config + `--set eval.tasks_per_plug=N`) it wins."""
    from training.config import TrainConfig
    from zshot.config import ConfigError, override_config

    assert EvalConfig.model_validate({"tasks_per_plug": 3}).tasks_per_label == 3
    assert "tasks_per_plug" not in EvalConfig(tasks_per_label=3).model_dump()
    both = {"tasks_per_label": 2, "tasks_per_plug": 5}
    assert EvalConfig.model_validate(both).tasks_per_label == 5
    cfg = TrainConfig(eval=EvalConfig(tasks_per_label=2))
    assert override_config(cfg, ["eval.tasks_per_plug=4"], "x").eval.tasks_per_label == 4
    with pytest.raises(ConfigError, match="tasks_per_label"):
        override_config(cfg, ["eval.tasks_per_plug=0"], "x")


def test_unknown_label_is_named() -> None:
    with pytest.raises(ValueError, match=r"\['nope'\] not among the test tasks' labels"):
        few_shot_eval(_source(), UpAgent(), EvalConfig(), seed=0, labels=["nope"])


@pytest.mark.slow
def test_eval_cli_on_run_and_artifact(
    trained_run: Path,
    exported_artifact: ExportedArtifact,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    art = exported_artifact.root
    outs = {}
    for target in (trained_run, art):
        js = tmp_path / f"{target.name}.json"
        assert (
            zshot(
                [
                    "eval",
                    str(target),
                    "--tasks",
                    "test-0",
                    "test-1",
                    "-k",
                    "1",
                    "-n",
                    "2",
                    "--json",
                    str(js),
                ]
            )
            == 0
        )
        out = capsys.readouterr().out
        assert "test-0" in out and "/2" in out
        outs[target.name] = json.loads(js.read_text())
    run_res, art_res = outs[trained_run.name], outs[art.name]
    assert (
        run_res["protocol"]["backend"] == "torch"
        and art_res["protocol"]["backend"] == "onnxruntime"
    )
    # Same seed, same protocol: the robot's numbers (onnxruntime) equal the training ones.
    for a, b in zip(run_res["tasks"], art_res["tasks"], strict=True):
        assert a["successes"] == b["successes"]
        assert a["mean_return"] == pytest.approx(b["mean_return"], abs=1e-3)


def test_eval_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zshot(["eval", str(tmp_path)]) == 2
    assert "neither a run dir" in capsys.readouterr().err
    assert zshot(["export", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert zshot(["eval", "spiral"]) == 2
    assert "needs --config" in capsys.readouterr().err


def test_return_table_shows_a_dash_without_exploration_episodes() -> None:
    from training.evaluate import FewShotReport, TaskResult

    def row(label: str, explore: float) -> TaskResult:
        return TaskResult(label, 0, 3, -10.0, None, 0.0, 0.0, 0, 200.0, 0, 0, 1.0, explore)

    table = FewShotReport([row("v0-1", float("nan")), row("v1-2", -12.5)], {}).return_table()
    lines = table.splitlines()
    assert "nan" not in table
    assert lines[2].split()[-2:] == ["-", "200"]
    assert lines[3].split()[-2:] == ["-12.50", "200"]


@pytest.mark.slow
def test_eval_spiral_memory_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`zshot eval spiral-memory` on two plugs x one task: the exploration episodes feed the
    per-task memory (the agent is told each outcome; a new task resets it)."""
    js = tmp_path / "mem.json"
    argv = ["eval", "spiral-memory", "--config", "configs/train/insertion.yaml"]
    argv += ["--plugs", "Car-plug-4p", "US-AC-plug", "--tasks-per-plug", "1"]
    assert zshot([*argv, "-k", "1", "-n", "2", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "spiral-search with memory" in out and "Car-plug-4p" in out
    rep = json.loads(js.read_text())
    assert rep["protocol"]["target"] == "spiral-memory"
    assert [p["label"] for p in rep["tasks"]] == ["Car-plug-4p", "US-AC-plug"]
    assert all(p["episodes"] == 2 and p["explore_episodes"] == 1 for p in rep["tasks"])
    assert zshot(["eval", "spiral-memory"]) == 2
    assert "spiral-memory: needs --config" in capsys.readouterr().err
    off = tmp_path / "off.json"  # the same search with its memory off
    argv[1] = "spiral-memory-off"
    assert zshot([*argv, "-k", "1", "-n", "2", "--json", str(off)]) == 0
    assert "spiral-search with memory off" in capsys.readouterr().out
    rep = json.loads(off.read_text())
    assert rep["protocol"]["target"] == "spiral-memory-off"
    assert all(p["episodes"] == 2 for p in rep["tasks"])
    contact = tmp_path / "contact.json"  # the contact-led yaw search
    argv[1] = "spiral-contact"
    assert zshot([*argv, "-k", "1", "-n", "2", "--json", str(contact)]) == 0
    assert "contact-led yaw" in capsys.readouterr().out
    rep = json.loads(contact.read_text())
    assert rep["protocol"]["target"] == "spiral-contact"
    assert all(p["episodes"] == 2 and p["explore_episodes"] == 1 for p in rep["tasks"])


def test_memory_agent_is_reset_per_task_and_told_each_outcome() -> None:
    from sim.config import InsertionEnvConfig
    from sim.insertion import InsertionEnv
    from sim.tasks import InsertionTask
    from training.behaviours import MemorySpiralAgent

    tasks = [
        InsertionTask(plug="Car-plug-4p", dx=d, task_id=f"t{k}")
        for k, d in enumerate((0.001, -0.001))
    ]
    calls: list[str] = []

    class Recording(MemorySpiralAgent):
        def reset_task(self) -> None:
            calls.append("task")
            super().reset_task()

        def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
            calls.append("end")
            super().end_episode(success, final_obs)

    cfg = InsertionEnvConfig()
    source = TaskSource("insertion", tasks, tasks, lambda: InsertionEnv(cfg))
    few_shot_eval(
        source, Recording(cfg), EvalConfig(explore_episodes=1, eval_episodes=1), 0, max_steps=5
    )
    assert calls == ["task", "end", "end", "task", "end", "end"]


def test_profiles_table_reads_reports_of_both_spellings(tmp_path: Path) -> None:
    """bench/profiles_table.py: new reports ("tasks"/"label") and reports written before the
    rename or by `zshot trials` ("plugs"/"plug") give the same rows."""
    import subprocess
    import sys

    row = {"successes": 3, "episodes": 4, "mean_time_to_insert": 1.5, "safety_violations": 1}
    (tmp_path / "new-p.json").write_text(json.dumps({"tasks": [{"label": "Hex-peg", **row}]}))
    (tmp_path / "old-p.json").write_text(json.dumps({"plugs": [{"plug": "Hex-peg", **row}]}))
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(repo / "bench" / "profiles_table.py"), "--profiles", "p"]
        + [f"{k}={tmp_path}/{k}-{{profile}}.json" for k in ("new", "old")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| Hex-peg | 3/4 (1.5 s) | 3/4 (1.5 s) |" in out
    assert "| force-limit endings | 1 | 1 |" in out
