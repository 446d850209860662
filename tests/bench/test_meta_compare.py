"""bench/meta_compare.py without training: the adaptation curves on a fake env with fake
agents whose returns are known in closed form (a recurrent agent's state carried across
episodes, a posterior agent's context from its exploration episodes only, MAML's inner
step), the markdown table and the PNG from fake curves, the out-of-distribution test set's
checks, and the command's one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from bench.meta_compare import (
    CompareError,
    Curve,
    agent_curve,
    main,
    maml_curve,
    per_label_table,
    plot,
    still_return,
    table,
    task_source_for,
)
from tests.training.conftest import ROOT, tiny_config
from training.algos.maml.networks import make_nets
from training.config import TrainConfig
from zshot.config import load_config

STEPS = 3  # per fake episode


class FakeEnv:
    """Reward = the action's first value, 3 steps, success when it is above 2.5."""

    action_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    control_hz = 10.0

    def __init__(self) -> None:
        self.t = 0
        self.episodes = 0

    def set_task(self, task: Any) -> None:
        self.task = task

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        self.t = 0
        self.episodes += 1
        return np.zeros(2, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        a = float(np.asarray(action)[0])
        return np.zeros(2, np.float32), a, False, self.t >= STEPS, {"is_success": a > 2.5}

    def close(self) -> None:
        pass


class FakeSource:
    def __init__(self) -> None:
        self.envs: list[FakeEnv] = []

    def make_env(self) -> FakeEnv:
        self.envs.append(FakeEnv())
        return self.envs[-1]


class Hooks:
    latent_dim = 1
    encoder: Any = None

    def observe(self, row: np.ndarray) -> None:
        pass

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        pass


class MemoryAgent(Hooks):
    """Acts with the number of episodes of the task before this one (its 'hidden state')."""

    def reset_task(self) -> None:
        self.seen = -1

    def snapshot(self) -> int:
        return self.seen

    def restore(self, state: int) -> None:
        self.seen = state

    def reset_episode(self) -> None:
        self.seen += 1

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return np.array([self.seen], np.float32)


class TenEncoder:
    """Every transition says z = 10 with variance 1."""

    prior_in_posterior = True

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(transitions)
        return np.full((n, 1), 10.0), np.ones((n, 1))


class PosteriorAgent(Hooks):
    """Acts with z (its first value)."""

    encoder = TenEncoder()

    def reset_task(self) -> None:
        pass

    def reset_episode(self) -> None:
        pass

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return np.array([z[0]], np.float32)


def test_a_recurrent_agent_s_curve_is_its_episodes_with_the_state_kept_per_task() -> None:
    source = FakeSource()
    rows = agent_curve(source, MemoryAgent(), ["a", "b"], 3, seed=0, max_steps=None)
    # episode k acts with k (the episodes seen), and the second task starts again from 0
    assert rows.returns == [[0.0, 3.0, 6.0, 9.0]] * 2
    assert rows.successes == [[False, False, False, True]] * 2
    assert [e.episodes for e in source.envs] == [4, 4]  # no extra episodes


def test_a_recurrent_agent_s_measured_episodes_each_start_from_the_state_after_k() -> None:
    source = FakeSource()
    rows = agent_curve(source, MemoryAgent(), ["a"], 3, seed=0, max_steps=None, episodes=3)
    # 3 episodes at each k, each acting with k: the measured ones do not add to the state
    assert rows.returns == [[0.0, 3.0, 6.0, 9.0]] * 3
    assert source.envs[0].episodes == 4 * 3
    source = FakeSource()
    rows = agent_curve(
        source, MemoryAgent(), ["a", "b"], 3, seed=0, max_steps=None, episodes=2, ks=[0, 3]
    )
    assert rows.returns == [[0.0, 9.0]] * 4  # task-major: a's 2 rows, then b's
    assert [e.episodes for e in source.envs] == [2 + 1 + 1 + 2] * 2  # k = 1, 2: one each
    assert rows.times == [[None, 1 / FakeEnv.control_hz]] * 4  # success at the first step
    assert rows.violations == [[False, False]] * 4


def test_a_posterior_agent_is_measured_with_the_mean_of_k_exploration_episodes_only() -> None:
    source = FakeSource()
    rows = agent_curve(source, PosteriorAgent(), ["a"], 3, seed=0, max_steps=None)
    # k exploration episodes of 3 transitions of N(10, 1) on the N(0, 1) prior: the mean is
    # 30k / (1 + 3k); the evaluation episodes never enter the context
    want = [STEPS * 30 * k / (1 + 3 * k) for k in range(4)]
    assert rows.returns[0] == pytest.approx(want, rel=1e-5)
    assert source.envs[0].episodes == 4 + 3
    source = FakeSource()
    rows = agent_curve(
        source, PosteriorAgent(), ["a"], 3, seed=0, max_steps=None, episodes=4, ks=[1, 3]
    )
    assert np.asarray(rows.returns) == pytest.approx(np.tile([want[1], want[3]], (4, 1)))
    assert source.envs[0].episodes == 3 + 2 * 4  # 4 more measured at each of 2 k


def _maml(inner_lr: float) -> tuple[Any, TrainConfig]:
    cfg = tiny_config(algo="maml", maml={"hidden": [4], "inner_lr": inner_lr, "init_std": 1.0})
    return make_nets(2, 1, cfg), cfg


def test_maml_s_curve_adapts_from_theta_on_the_first_k_sampled_episodes() -> None:
    import torch

    torch.manual_seed(0)
    nets, cfg = _maml(1e-9)
    source = FakeSource()
    still = maml_curve(source, nets, cfg, ["a"], 3, seed=0, max_steps=None).returns
    # a vanishing step: every k is the meta-policy's mean action again
    assert still[0] == pytest.approx([still[0][0]] * 4, abs=1e-5)
    assert source.envs[0].episodes == 4 + 3  # K sampled episodes + K + 1 measured ones
    nets.policy.mean_net[-1].bias.data.fill_(0.0)
    cfg = cfg.model_copy(update={"maml": cfg.maml.model_copy(update={"inner_lr": 0.5})})
    moved = maml_curve(FakeSource(), nets, cfg, ["a"], 3, seed=0, max_steps=None).returns
    assert moved[0][1:] != pytest.approx(moved[0][:1] * 3, abs=1e-3)  # the step did act
    source = FakeSource()
    few = maml_curve(source, nets, cfg, ["a"], 3, seed=0, max_steps=None, episodes=2, ks=[3])
    # the mean action of one adapted policy: both measured episodes alike, and moved by the step
    assert len(few.returns) == 2 and few.returns[0] == pytest.approx(few.returns[1])
    assert few.returns[0][0] != pytest.approx(still[0][0], abs=1e-3)
    assert source.envs[0].episodes == 3 + 2


def _curve(
    method: str,
    seed: int,
    returns: list[list[float]],
    success: bool = False,
    still: float | None = None,
) -> Curve:
    wins = [[r > 0 for r in row] for row in returns]
    train = {"env_steps": 1000 * (seed + 1), "iterations": 3 + seed, "cpu_s": 150.0}
    return Curve(method, seed, "test", ["t"] * len(returns), returns, wins, success, train, still)


def test_the_table_means_tasks_then_seeds_and_states_what_each_run_got() -> None:
    curves = [
        _curve("pearl", 0, [[1.0, 2.0], [3.0, 4.0]], still=-10.0),  # task means 2, 3
        _curve("pearl", 1, [[3.0, 6.0], [5.0, 6.0]], still=-20.0),  # 4, 6
        _curve("rl2", 0, [[-1.0, 1.0], [-1.0, 1.0]], success=True),
        _curve("rl2", 1, [[-1.0, -1.0], [1.0, 1.0]], success=True),
    ]
    text = table(curves, "test")
    lines = text.splitlines()
    rl2, success, pearl = lines[2], lines[3], lines[4]  # the methods in METHODS order
    assert rl2.startswith("| rl2 | -0.5 (-1.0 / 0.0) | 0.5 (1.0 / 0.0) | +1.0 | 1,000 / 2,000 |")
    assert success.startswith("| rl2 success | 0.25 | 0.75 |")
    assert pearl.startswith("| pearl | 3.0 (2.0 / 4.0) | 4.5 (3.0 / 6.0) | +1.5 |")
    assert "| 3 / 4 | 150 / 150 |" in pearl
    assert lines[5].startswith("| standing still (zero torque) | -15.0 (-10.0 / -20.0) |")
    assert "2 test tasks (test)" in text
    with pytest.raises(CompareError, match="no curves"):
        table(curves, "ood")


def test_the_figure_has_a_panel_per_test_set(tmp_path: Path) -> None:
    curves = [_curve("maml", s, [[1.0, 2.0, 3.0]]) for s in (0, 1)]
    curves += [Curve(**{**c.to_json(), "test": "ood"}) for c in curves]
    plot(curves, ["test", "ood"], tmp_path / "img" / "c.png", "fake")
    from PIL import Image

    with Image.open(tmp_path / "img" / "c.png") as im:
        assert im.size == (1000, 360)
    wins = [Curve(**{**c.to_json(), "has_success": True}) for c in curves[:2]]
    plot(wins, ["test"], tmp_path / "s.png", "fake")  # return and success panels
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (1000, 360)


def test_the_ood_test_set_keeps_the_run_s_train_tasks_and_lies_beyond_them() -> None:
    cfg = load_config(TrainConfig, ROOT / "configs" / "train" / "cheetah_vel.yaml", ["seed=1"])
    own = task_source_for(cfg, None)
    ood = task_source_for(cfg, str(ROOT / "configs" / "terrain" / "cheetah_vel_ood.yaml"))
    assert ood.train_tasks == own.train_tasks
    assert len(ood.test_tasks) == 30
    assert all(3.0 < t.target_velocity <= 4.0 for t in ood.test_tasks)
    assert all(0.0 <= t.target_velocity <= 3.0 for t in own.test_tasks)
    tasks = ood.test_tasks[:4]
    want = -200 * np.mean([t.target_velocity for t in tasks])
    assert still_return(ood, tasks) == pytest.approx(want)
    with pytest.raises(CompareError, match="train tasks differ"):
        task_source_for(cfg, str(ROOT / "configs" / "terrain" / "cheetah_dir.yaml"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cheetah-vel", "--methods", "rl2,ppo"], "unknown ['ppo']"),
        (["cheetah-vel", "--seeds", "0,x"], "--seeds '0,x'"),
        (["cheetah-vel", "--minutes", "0"], "--minutes must be positive"),
        (["cheetah-vel", "--ood", "nope.yaml"], "--ood nope.yaml: no such file"),
        (["insertion"], "no config for ['rl2', 'maml', 'varibad', 'pearl', 'nocontext']"),
        (["cheetah-vel", "--config", "sac=x.yaml"], "want METHOD=PATH"),
        (["cheetah-vel", "--episodes", "0"], "--episodes must be positive"),
        (["cheetah-vel", "--ks", "1,4"], "measured k [1, 4] must lie in 0..3"),
        (["cheetah-vel", "--profiles", "known,easy"], "--profiles: unknown ['easy']"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meta_compare: ") and message in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing trained


def test_the_per_label_table_counts_successes_per_plug_at_each_k_over_seeds() -> None:
    def curve(method: str, seed: int, labels: list[str], wins: list[list[bool]]) -> Curve:
        rets = [[float(w) for w in row] for row in wins]
        return Curve(method, seed, "test", labels, rets, wins, True, {}, None)

    curves = [
        # seed 0: plug A twice, plug B once; seed 1 draws B twice, A once
        curve("rl2", 0, ["A", "A", "B"], [[0, 1, 1], [0, 0, 1], [1, 1, 1]]),
        curve("rl2", 1, ["B", "A", "B"], [[0, 0, 0], [1, 1, 1], [0, 1, 0]]),
        curve("pearl", 0, ["A", "A", "B"], [[0, 0, 0]] * 3),
    ]
    lines = per_label_table(curves, "test").splitlines()
    assert lines[0] == "| label | rl2 | pearl |"  # methods in METHODS order
    assert lines[2] == "| A | 1 · 2 · 3 / 3 | 0 · 0 · 0 / 2 |"
    assert lines[3] == "| B | 1 · 2 · 1 / 3 | 0 · 0 · 0 / 1 |"
    assert lines[4] == "| all | 2 · 4 · 4 / 6 | 0 · 0 · 0 / 3 |"
    assert "pooled over seeds 0, 1" in lines[6]
    assert per_label_table(curves, "ood") == ""  # no such test set
    no_signal = [Curve(**{**c.to_json(), "has_success": False}) for c in curves]
    assert per_label_table(no_signal, "test") == ""  # returns only: no success table


def test_the_final_call_prints_the_per_plug_split_from_the_curves_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for method, seed in (("rl2", 0), ("rl2", 1)):
        run = tmp_path / f"{method}-s{seed}"
        run.mkdir()
        (run / "train.json").write_text("{}")
        c = Curve(method, seed, "test", ["P", "Q"], [[0.0, 1.0], [0.0, 0.0]],
                  [[False, True], [False, False]], True, _curve("x", seed, [[0.0]]).train, None)  # fmt: skip
        (run / "curve-test.json").write_text(json.dumps(c.to_json()))
    argv = ["insertion", "--methods", "rl2", "--config", "rl2=unused.yaml", "--k", "1"]
    assert main([*argv, "--out", str(tmp_path), "--table", str(tmp_path / "t.md")]) == 0
    text = (tmp_path / "t.md").read_text()
    assert "| rl2 success | 0.00 | 0.50 |" in text
    assert "Per plug:" in text and "| P | 0 · 2 / 2 |" in text and "| all | 0 · 2 / 4 |" in text
    assert text.strip() in capsys.readouterr().out


def test_a_curve_s_report_counts_per_plug_after_k_as_profiles_table_reads_it() -> None:
    from bench.profiles_table import _rows

    c = Curve(
        "pearl", 0, "oda", ["P", "P", "Q", "Q"],
        [[0.0, 1.0]] * 4,
        [[False, True], [True, True], [False, False], [False, True]],
        True, {"env_steps": 10, "iterations": 1, "cpu_s": 1.0}, None, [0, 3], 2,
        [[None, 1.0], [0.5, 2.0], [None, None], [None, 4.0]],
        [[False, False], [False, False], [True, False], [False, False]],
    )  # fmt: skip
    assert _rows(c.report(3)) == {
        "P": {"successes": 2, "episodes": 2, "t": 1.5, "violations": 0},
        "Q": {"successes": 1, "episodes": 2, "t": 4.0, "violations": 0},
    }
    assert _rows(c.report(0)) == {
        "P": {"successes": 1, "episodes": 2, "t": 0.5, "violations": 0},
        "Q": {"successes": 0, "episodes": 2, "t": None, "violations": 1},
    }
    with pytest.raises(CompareError, match="k = 1 not measured"):
        c.report(1)
    lines = table([c], "oda").splitlines()
    assert lines[0].startswith("| method | k = 0 | k = 3 | k = 3 - k = 0 |")
    assert "2 test tasks x 2 episodes (oda)" in lines[-1]
    lines = per_label_table([c], "oda").splitlines()
    assert lines[2] == "| P | 1 · 2 / 2 |" and lines[4] == "| all | 1 · 3 / 4 |"
    assert "2 episodes per test task" in lines[-1] and "x0 · x3 / N" in lines[-1]
