"""Recurrent distillation from the spiral search with memory (training/algos/rdistill/):
bc_loss trains the policy only and ignores padding, the shadow teacher's setpoint follows
the executed action, a trial's recorded inputs are exactly what the GRU saw when it drove,
and a smoke run from the committed config exports a `recurrent` artifact that the runtime
serves as the torch policy acts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.spiral import MemorySpiralPolicy
from tests.training.recurrent_helpers import assert_runtime_follows_agent
from training.algos.rdistill.trainer import (
    RDistillTrainer,
    ShadowTeacher,
    Trial,
    bc_loss,
    hold_last_action_at_zero,
    run_trial,
    trial_batch,
)
from training.algos.rl2.agent import rl2_agent
from training.algos.rl2.networks import RL2Nets
from training.config import TrainConfig
from training.registry import export_run, load_run
from zshot.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[4]
CONFIG = ROOT / "configs" / "train" / "rdistill_insertion.yaml"
OBS, ACT = 18, 4


def smoke_config(**over: object) -> TrainConfig:
    """The committed config cut to 2 rounds of 2 two-episode trials, a 16-wide GRU."""
    base = {
        "rdistill.rounds": 2,
        "rdistill.trials_per_round": 2,
        "rdistill.episodes_per_trial": 2,
        "rdistill.updates_per_round": 3,
        "rdistill.batch_trials": 2,
        "rdistill.probe_trials": 1,
        "rdistill.profiles": ["hard", "known"],
        "rl2.gru_hidden": 16,
        "ppo.hidden": [16],
        "eval.max_tasks": 2,
        "eval.explore_episodes": 1,
        "eval.eval_episodes": 1,
    }
    sets = [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()]
    return load_config(TrainConfig, CONFIG, sets)


def _trial(T: int, seed: int) -> Trial:
    g = np.random.default_rng(seed)
    f = lambda d: g.normal(size=(T, d)).astype(np.float32)  # noqa: E731
    done = np.zeros((T, 1), np.float32)
    done[T // 2] = 1.0
    labels = np.clip(f(ACT), -1, 1)
    state = f(MemorySpiralPolicy.STATE_DIM)
    return Trial(
        f(OBS), np.clip(f(ACT), -1, 1), f(1), done, labels, state, (True,), 0, True, "hard"
    )


def _nets() -> RL2Nets:
    torch.manual_seed(0)
    return RL2Nets(OBS, ACT, 16, [16])


def test_bc_loss_trains_the_policy_only() -> None:
    nets = _nets()
    batch = trial_batch([_trial(9, 0), _trial(5, 1)])
    bc_loss(nets, batch, 0.05).backward()
    assert all(
        p.grad is not None and float(p.grad.abs().sum()) > 0 for p in nets.policy.parameters()
    )
    assert all(p.grad is None for p in nets.value.parameters())


def test_bc_loss_ignores_the_padding_of_shorter_trials() -> None:
    nets = _nets()
    long, short = _trial(9, 0), _trial(5, 1)
    batch = trial_batch([long, short])
    assert batch["mask"].sum(1).tolist() == [9.0, 5.0]
    base = float(bc_loss(nets, batch, 0.05).detach())
    junk = {k: v.clone() for k, v in batch.items()}
    for key in ("obs", "labels", "last_action"):
        junk[key][1, 5:] = 7.0  # the padding only
    assert float(bc_loss(nets, junk, 0.05).detach()) == pytest.approx(base, rel=1e-6)
    junk["labels"][1, 4] += 0.5  # a real step
    assert float(bc_loss(nets, junk, 0.05).detach()) != pytest.approx(base, rel=1e-6)


def test_bc_loss_is_zero_only_at_the_labels_and_the_std() -> None:
    nets = _nets()
    batch = trial_batch([_trial(6, 2)])
    with torch.no_grad():
        h0 = torch.zeros(1, nets.hidden_dim)
        _, mean, _ = nets.policy.sequence(
            h0, batch["obs"], batch["last_action"], batch["reward"], batch["done"]
        )
        batch["labels"] = torch.tanh(mean)
        nets.policy.log_std.fill_(math.log(0.05))
    assert float(bc_loss(nets, batch, 0.05).detach()) == pytest.approx(0.0, abs=1e-10)
    assert float(bc_loss(nets, batch, 0.2).detach()) > 0


def test_the_memory_loss_trains_the_gru_and_its_head_not_the_action_head() -> None:
    """The memory term's gradient (the loss with it minus the loss without) reaches the
    GRU and the memory head; the policy's action head and log-std get none of it."""
    batch = trial_batch([_trial(9, 0), _trial(5, 1)])
    grads = []
    for coef in (0.0, 0.7):
        nets = _nets()
        head = torch.nn.Linear(16, MemorySpiralPolicy.STATE_DIM)
        torch.manual_seed(1)
        torch.nn.init.normal_(head.weight)
        bc_loss(nets, batch, 0.05, head, coef).backward()
        grads.append(
            (
                {n: p.grad.clone() for n, p in nets.policy.named_parameters()},
                head.weight.grad,
            )
        )
    (g0, h0), (g1, h1) = grads
    assert h0 is None and h1 is not None and float(h1.abs().sum()) > 0
    changed = {n for n in g0 if not torch.allclose(g0[n], g1[n], atol=1e-9)}
    assert changed and all(not n.startswith("head.") and n != "log_std" for n in changed)
    assert {"gru.weight_ih_l0", "gru.weight_hh_l0"} <= changed


def test_the_memory_loss_is_zero_at_the_teachers_state_and_masks_padding() -> None:
    nets = _nets()
    head = torch.nn.Linear(16, MemorySpiralPolicy.STATE_DIM)
    long, short = _trial(9, 0), _trial(5, 1)
    batch = trial_batch([long, short])
    with torch.no_grad():
        hs, _, _ = nets.policy.sequence(
            torch.zeros(2, 16), batch["obs"], batch["last_action"], batch["reward"], batch["done"]
        )
        batch["teacher_state"] = head(hs)
    base = float(bc_loss(nets, batch, 0.05).detach())
    assert float(bc_loss(nets, batch, 0.05, head, 2.0).detach()) == pytest.approx(base, rel=1e-6)
    batch["teacher_state"][1, 5:] += 3.0  # the padding only
    assert float(bc_loss(nets, batch, 0.05, head, 2.0).detach()) == pytest.approx(base, rel=1e-6)
    batch["teacher_state"][1, 4] += 3.0  # a real step
    assert float(bc_loss(nets, batch, 0.05, head, 2.0).detach()) > base + 1e-3


def test_the_teachers_state_holds_the_success_pose_until_the_task_changes() -> None:
    from sim.config import InsertionEnvConfig
    from sim.spiral import OBS_INDEX

    teacher = ShadowTeacher(InsertionEnvConfig())
    fresh = teacher.state()
    assert fresh.shape == (MemorySpiralPolicy.STATE_DIM,) and fresh[0] == 0 and fresh[4] == 1
    final = np.zeros(OBS, np.float32)
    final[OBS_INDEX["x_mm"]], final[OBS_INDEX["y_mm"]], final[OBS_INDEX["yaw_deg"]] = 1.0, -0.5, 2.4
    teacher.policy.end_episode(True, final)
    teacher.policy.reset_episode()
    np.testing.assert_allclose(teacher.state()[:4], [1.0, 0.5, -0.25, 0.8], atol=1e-6)
    teacher.policy.reset_task()
    np.testing.assert_array_equal(teacher.state(), fresh)


def test_a_student_that_ignores_its_last_action_never_learns_to_read_it() -> None:
    """ignore_last_action: after Adam steps of bc_loss the GRU's weights on a_{t-1} are still
    exactly zero, so the policy's actions do not change with the last action it is fed."""
    nets = _nets()
    hold_last_action_at_zero(nets)
    opt = torch.optim.Adam(nets.policy.parameters(), lr=1e-2)
    batch = trial_batch([_trial(9, 0), _trial(5, 1)])
    for _ in range(5):
        opt.zero_grad()
        bc_loss(nets, batch, 0.05).backward()
        opt.step()
    w = nets.policy.gru.weight_ih_l0
    assert torch.count_nonzero(w[:, OBS : OBS + ACT]) == 0 and torch.count_nonzero(w[:, :OBS]) > 0
    other = {**batch, "last_action": torch.rand_like(batch["last_action"])}
    with torch.no_grad():
        outs = [
            nets.policy.sequence(
                torch.zeros(2, 16), b["obs"], b["last_action"], b["reward"], b["done"]
            )[1]
            for b in (batch, other)
        ]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


@given(
    action=st.lists(st.floats(-3.0, 3.0), min_size=4, max_size=4),
    fz=st.floats(0.0, 1.0),
)
@settings(max_examples=30, deadline=None)
def test_the_teachers_setpoint_follows_the_executed_action(action: list[float], fz: float) -> None:
    from sim.config import InsertionEnvConfig

    cfg = InsertionEnvConfig()
    teacher = ShadowTeacher(cfg)
    obs = np.zeros(OBS, np.float32)
    obs[2] = 5.0  # mm above the believed socket
    label = teacher.label(obs)
    after_label = teacher.policy.cmd.copy(), teacher.policy.cmd_yaw
    executed = np.asarray(action)
    teacher.executed(executed)
    d = np.clip(executed, -1, 1) - label
    vmax, dt = cfg.max_lin_speed * 1000.0, cfg.control_dt
    np.testing.assert_allclose(teacher.policy.cmd, after_label[0] + d[:3] * vmax * dt, atol=1e-9)
    assert teacher.policy.cmd_yaw == pytest.approx(
        after_label[1] + d[3] * math.degrees(cfg.max_yaw_rate) * dt, abs=1e-9
    )
    # executing the label itself leaves the teacher where its own command put it
    teacher.label(obs)
    cmd = teacher.policy.cmd.copy()
    teacher.executed(teacher._label)
    np.testing.assert_allclose(teacher.policy.cmd, cmd, atol=0)


def test_a_bad_teacher_field_is_named() -> None:
    from sim.config import InsertionEnvConfig

    with pytest.raises(ValueError, match="rdistill.teacher: .*pich"):
        ShadowTeacher(InsertionEnvConfig(), {"pich": 0.4})


def test_rdistill_is_for_the_insertion_env_only(tmp_path: Path) -> None:
    cfg = load_config(
        TrainConfig, ROOT / "configs" / "train" / "rl2_point.yaml", ['algo="rdistill"']
    )
    with pytest.raises(ValueError, match="only env 'insertion'"):
        RDistillTrainer(cfg, tmp_path)


def _replay(nets: RL2Nets, trial: Trial) -> np.ndarray:
    """The student's action at every step of `trial`, its recorded inputs replayed through
    the GRU from a zero state."""
    b = trial_batch([trial])
    with torch.no_grad():
        _, mean, _ = nets.policy.sequence(
            torch.zeros(1, nets.hidden_dim), b["obs"], b["last_action"], b["reward"], b["done"]
        )
    return np.tanh(mean[0].numpy())


def _student_trial(
    trainer: RDistillTrainer,
    seed: int,
    episodes: int,
    student_steps: float = 1.0,
    teacher_episodes: int = 0,
) -> Trial:
    """A trial of the student on the run's first `hard` train task, in a fresh env of its
    profile (the run's envs are closed once it ends)."""
    env = trainer.source.make_env()
    try:
        return run_trial(
            env,
            trainer.tasks["hard"][0],
            trainer.teacher,
            trainer.nets,
            np.random.default_rng(seed),
            episodes,
            student_steps=student_steps,
            teacher_episodes=teacher_episodes,
        )
    finally:
        env.close()


@pytest.fixture(scope="module", params=[False, True], ids=["gru", "success-memory"])
def smoke_run(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[Path, RDistillTrainer]:
    """The smoke run, without and with rl2.success_memory and rl2.commanded_pose (the
    student's recurrent state then also carries where the last successful episode ended and
    the setpoint)."""
    run_dir = tmp_path_factory.mktemp("rdistill") / "run"
    memory = {"rl2.success_memory": request.param, "rl2.commanded_pose": request.param}
    trainer = RDistillTrainer(smoke_config(**memory), run_dir)
    report = trainer.run(progress=False)
    assert report is not None and trainer.updates == 6
    return run_dir, trainer


@pytest.mark.slow
def test_a_students_trial_records_what_its_gru_saw(smoke_run: tuple[Path, RDistillTrainer]) -> None:
    """Replaying a student-driven trial's recorded inputs through the GRU from a zero state
    gives back the actions it executed (recorded as the next step's last_action): the
    training inputs are the inference inputs, done flags and episode boundaries included."""
    _, trainer = smoke_run
    trial = _student_trial(trainer, 3, 3)
    T = len(trial.obs)
    starts = np.flatnonzero(trial.done[:, 0]).tolist()
    assert len(starts) == 2 and trial.done[0, 0] == 0 and not trial.by_teacher
    assert np.all(trial.last_action[0] == 0) and trial.reward[0, 0] == 0
    executed = _replay(trainer.nets, trial)[: T - 1]
    np.testing.assert_allclose(executed, trial.last_action[1:], atol=1e-5)
    assert np.all(np.abs(trial.labels) <= 1.0)


@pytest.mark.slow
def test_a_mixed_trial_executes_the_student_or_the_teacher_step_by_step(
    smoke_run: tuple[Path, RDistillTrainer],
) -> None:
    """student_steps = 0.5: every executed action (the next step's last_action) is either
    the label the teacher gave in that state or the student's action there (replayed through
    the GRU), and both occur."""
    _, trainer = smoke_run
    trial = _student_trial(trainer, 5, 2, student_steps=0.5)
    student = _replay(trainer.nets, trial)[:-1]
    executed, labels = trial.last_action[1:], trial.labels[:-1]
    is_student = np.all(np.abs(executed - student) <= 1e-5, axis=1)
    is_teacher = np.all(np.abs(executed - labels) <= 1e-6, axis=1)
    assert np.all(is_student | is_teacher)
    assert is_student.sum() > 0 and (is_teacher & ~is_student).sum() > 0


@pytest.mark.slow
def test_the_teacher_drives_the_first_episodes_then_the_student(
    smoke_run: tuple[Path, RDistillTrainer],
) -> None:
    """teacher_episodes = 1: episode 1 executes the teacher's labels exactly, episode 2 the
    student's actions, which replaying the recorded inputs through the GRU gives back (its
    state followed the teacher's episode)."""
    _, trainer = smoke_run
    trial = _student_trial(trainer, 5, 2, teacher_episodes=1)
    (second,) = np.flatnonzero(trial.done[:, 0]).tolist()
    executed = trial.last_action[1:]
    np.testing.assert_array_equal(executed[:second], trial.labels[:second])
    student = _replay(trainer.nets, trial)[:-1]
    np.testing.assert_allclose(executed[second:], student[second:], atol=1e-5)
    assert not np.allclose(executed[second:], trial.labels[second:-1], atol=1e-3)
    assert not trial.by_teacher


@pytest.mark.slow
def test_a_smoke_run_logs_checkpoints_and_reads_back(
    smoke_run: tuple[Path, RDistillTrainer],
) -> None:
    run_dir, trainer = smoke_run
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["iteration"] for h in history] == [0, 1] and history[-1]["updates"] == 6
    assert (
        history[0]["beta"] == 1.0 and history[0]["student_success"] is None
    )  # no student trial (NaN -> null)
    assert all(np.isfinite(h["bc_loss"]) for h in history)
    assert history[0]["teacher_success_hard"] is not None  # round 0: the teacher drives
    # a probe trial per round is the student's, measured and never aggregated
    assert all(h["probe_success"] is not None for h in history)
    assert len(trainer.trials) == 4 and all(t.by_teacher for t in trainer.trials[:2])
    assert history[-1]["env_steps"] == sum(len(t.obs) for t in trainer.trials)
    for name in ("curves.png", "eval.json", "config.yaml"):
        assert (run_dir / name).is_file(), name
    run = load_run(run_dir)
    assert run.algorithm.name == "rdistill" and isinstance(run.nets, RL2Nets)
    assert run.algorithm.artifact_kind == "recurrent"
    with pytest.raises(ValueError, match="does not resume"):
        RDistillTrainer(smoke_config(), run_dir).load_checkpoint()


@pytest.mark.slow
def test_the_success_memory_recalls_where_the_teachers_plug_went_in(
    smoke_run: tuple[Path, RDistillTrainer],
) -> None:
    """A teacher trial in `known` (every episode inserts): replayed through the student's
    networks, from the second episode on the recurrent state holds the pose of the first
    episode's last step, which lies on the task's true socket (the privileged check a test
    may make). Without the memory the state has no such part."""
    _, trainer = smoke_run
    memory = trainer.nets.policy.memory
    if memory is None:
        assert trainer.nets.hidden_dim == 16
        return
    src = trainer.sources["known"]
    env = src.make_env()
    try:
        task = trainer.tasks["known"][0]
        trial = run_trial(env, task, trainer.teacher, None, np.random.default_rng(2), 2)
    finally:
        env.close()
    assert trial.successes == (True, True)
    (second,) = np.flatnonzero(trial.done[:, 0]).tolist()
    b = trial_batch([trial])
    with torch.no_grad():
        hs, _, _ = trainer.nets.policy.sequence(
            torch.zeros(1, trainer.nets.hidden_dim),
            b["obs"],
            b["last_action"],
            b["reward"],
            b["done"],
        )
    state = hs[0, :, 16:].numpy()
    cols = list(memory.pose_columns)
    assert np.all(state[:second, 0] == 0) and np.all(state[second:, 0] == 1)
    np.testing.assert_array_equal(
        state[second:, 1:4],
        np.repeat(trial.obs[second - 1 : second, cols], len(trial.obs) - second, 0),
    )
    # the commanded pose restarts at the measured pose at each episode's start
    cmd_cols = list(memory.command_columns)
    for t in (0, second):
        np.testing.assert_allclose(state[t, 8:12], trial.obs[t, cmd_cols], atol=1e-6)
    # `known`: the believed socket is the true one, and the plug went in there
    assert np.hypot(*trial.obs[second - 1, cols[:2]]) < 1.0


@pytest.mark.slow
def test_the_export_matches_and_the_runtime_serves_it(
    smoke_run: tuple[Path, RDistillTrainer], tmp_path: Path
) -> None:
    run_dir, _ = smoke_run
    art, errors = export_run(run_dir, tmp_path / "artifact")
    assert max(errors.values()) <= 1e-5
    m = art.manifest
    run = load_run(run_dir)
    memory = run.nets.policy.memory
    H = 16 + (memory.STATE_DIM if memory is not None else 0)
    assert (m.kind, m.hidden_dim, m.training["algorithm"]) == ("recurrent", H, "rdistill")
    # every episode ends in a success's reward: the state's memory (if any) is then set
    # in the runtime as in the torch agent
    agent = rl2_agent(run.nets, run.cfg)
    assert_runtime_follows_agent(tmp_path / "artifact", agent, episodes=(4, 3), final_reward=10.0)
    if memory is not None:
        assert agent.hidden[16] == 1.0  # has memory: the first episode's success was seen
        stated = m.training["success_memory"]
        assert stated["state_columns"] == [16, H] and len(stated["state"]) == H - 16
        assert stated["state"][:2] == ["has_memory", "memory_x_mm"]
        assert stated["state"][-1] == "command_yaw_deg" and stated["command_step"][0] == 2.0


# ---------------------------------------------------------------------- the RL phase


def _rl_config(**over: object) -> TrainConfig:
    """The smoke config with an RL phase: 1 round, then 2 PPO iterations of 2 trials (the
    first a value warm-up), 30-step BPTT chunks, 2 anchor steps."""
    base: dict[str, object] = {
        "rdistill.rounds": 1,
        "rdistill.probe_trials": 0,
        "rdistill.rl_iterations": 2,
        "rdistill.rl_trials": 2,
        "rdistill.rl_value_warmup": 1,
        "rdistill.rl_bptt": 30,
        "rdistill.rl_bc_updates": 2,
        "rdistill.rl_std": 0.2,
    }
    return smoke_config(**{**base, **over})


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_the_value_warm_up_trains_the_critic_only_then_ppo_moves_the_policy(
    tmp_path: Path,
) -> None:
    """The first PPO iteration (warm-up) leaves every policy weight as it was and moves the
    value function, whose output bias starts at the batch's mean discounted return (the
    scaled rewards'); the next moves the policy. The std reset is applied at the start."""
    trainer = RDistillTrainer(_rl_config(), tmp_path / "run")
    trainer.step_round()
    policy0, value0 = _params(trainer.nets.policy), _params(trainer.nets.value)
    row = trainer.rl_iteration()
    assert row["phase"] == "rl" and row["value_warmup"] and math.isnan(row["bc_loss"])
    assert _same(policy0[1:], _params(trainer.nets.policy)[1:])  # all but log_std (first)
    np.testing.assert_allclose(trainer.nets.policy.log_std.detach().exp().numpy(), 0.2, rtol=1e-6)
    assert not _same(value0, _params(trainer.nets.value))
    assert row["loss_value"] > 0 and row["rl_violations"] == 0
    assert row["rl_return"] < 0  # every step costs until the plug is in: raw, not scaled
    policy1 = _params(trainer.nets.policy)
    row = trainer.rl_iteration()
    assert not row["value_warmup"] and np.isfinite(row["bc_loss"]) and row["ppo_approx_kl"] != 0
    assert not _same(policy1, _params(trainer.nets.policy))
    assert trainer.iteration == 3 and row["iteration"] == 2


@pytest.mark.slow
def test_an_rl_run_writes_its_rows_and_starts_another_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    """A run with an RL phase logs one history row per round and per PPO iteration, plots,
    exports a `recurrent` artifact; `init_from` its run dir starts identical networks
    (rounds 0: the RL phase alone), a run dir of other networks is refused by name."""
    first = tmp_path / "first"
    trainer = RDistillTrainer(_rl_config(), first)
    trainer.run()
    history = json.loads((first / "history.json").read_text())
    assert [h.get("phase", "bc") for h in history] == ["bc", "rl", "rl"]
    assert all(h["rl_success_hard"] is not None for h in history[1:])
    assert (first / "curves.png").is_file()
    art, errors = export_run(first, tmp_path / "artifact")
    assert art.manifest.kind == "recurrent" and max(errors.values()) <= 1e-5

    again = RDistillTrainer(
        _rl_config(**{"rdistill.rounds": 0, "rdistill.init_from": str(first)}), tmp_path / "b"
    )
    mine, theirs = trainer.nets.state_dict(), again.nets.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    row = again.rl_iteration()  # the anchor needs teacher trials: collected at the start
    assert row["iteration"] == 0 and len(again.trials) == 2 and again.trials[0].by_teacher

    with pytest.raises(ValueError, match="rdistill.init_from: .*does not fit"):
        RDistillTrainer(
            _rl_config(**{"rdistill.init_from": str(first), "rl2.gru_hidden": 8}), tmp_path / "c"
        )


def test_the_rl_phase_alone_needs_a_run_to_start_from(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rounds 0 needs rdistill.init_from"):
        RDistillTrainer(smoke_config(**{"rdistill.rounds": 0}), tmp_path)
    missing = {"rdistill.rounds": 0, "rdistill.init_from": str(tmp_path / "none")}
    with pytest.raises(ValueError, match="rdistill.init_from: .*no checkpoint"):
        RDistillTrainer(smoke_config(**missing), tmp_path / "run")


@pytest.mark.slow
def test_the_selection_scores_the_same_trials_and_keeps_the_best_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select_score is a function of the networks alone (the same tasks and reset seeds at
    every call, in envs of its own), its copy is a snapshot (later steps do not move it),
    and a run with rl_select_every ends with the best-scoring networks; PPO's trajectory is
    the one of a run without the selection."""
    sel = {"rdistill.rl_select_every": 1, "rdistill.rl_select_trials": 2}
    trainer = RDistillTrainer(_rl_config(**sel), tmp_path / "s")
    trainer.step_round()
    envs, trainer.envs = trainer.envs, {}  # it scores in envs of its own, never PPO's
    first, again = trainer.select_score(), trainer.select_score()
    trainer.envs = envs
    assert {k: v for k, v in first.items() if k != "seconds"} == {
        k: v for k, v in again.items() if k != "seconds"
    }
    assert set(first) >= {"score", "select_success_hard", "select_success_known"}
    assert len(trainer.select_tasks["hard"]) == 2
    snap = {k: v.clone() for k, v in trainer.nets.state_dict().items()}
    trainer.rl_iteration()
    trainer.rl_iteration()
    assert trainer.best is not None and trainer.best[1] == 0  # ties keep the earlier
    assert trainer.restore_best() == 0
    assert all(torch.equal(snap[k], v) for k, v in trainer.nets.state_dict().items())

    # a whole run: scripted scores, the second of three is the best
    scores = iter([0.2, 0.9, 0.5])
    kept: dict[int, dict[str, torch.Tensor]] = {}
    real = RDistillTrainer.select_score

    def scripted(self: RDistillTrainer) -> dict[str, object]:
        kept[self.rl_done] = {k: v.clone() for k, v in self.nets.state_dict().items()}
        row = real(self)  # the row it appended to self.selections
        row["score"] = next(scores)
        best = max(self.selections, key=lambda r: r["score"])
        self.best = (best["score"], best["rl_iteration"], kept[best["rl_iteration"]])
        row["best_rl_iteration"] = best["rl_iteration"]
        return row

    monkeypatch.setattr(RDistillTrainer, "select_score", scripted)
    run = RDistillTrainer(_rl_config(**sel), tmp_path / "run")
    run.run()
    rows = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert [r["rl_iteration"] for r in rows] == [0, 1, 2]
    assert rows[-1]["best_rl_iteration"] == 1
    end = run.nets.state_dict()
    assert all(torch.equal(kept[1][k], end[k]) for k in end)
    assert not all(torch.equal(kept[2][k], end[k]) for k in end)
    saved = load_run(tmp_path / "run")
    assert all(torch.equal(kept[1][k], v) for k, v in saved.nets.state_dict().items())

    monkeypatch.undo()
    plain = RDistillTrainer(_rl_config(), tmp_path / "plain")
    plain.run()
    ppo_keys = ("rl_return", "rl_success", "loss_value", "ppo_approx_kl", "env_steps")
    theirs = [h for h in plain.history if h.get("phase") == "rl"]
    mine = [h for h in run.history if h.get("phase") == "rl"]
    assert [[h[k] for k in ppo_keys] for h in mine] == [[h[k] for k in ppo_keys] for h in theirs]
    assert all(torch.equal(kept[2][k], v) for k, v in plain.nets.state_dict().items())


def test_a_profile_listed_twice_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"rdistill.profiles: \['hard'\] listed more than once"):
        smoke_config(**{"rdistill.profiles": ["hard", "known", "hard"]})
