"""TaskSource (training/common/tasks.py): whether an env family has a success notion is explicit."""

from __future__ import annotations

from tests.training.conftest import tiny_config
from training.common.tasks import TaskSource, make_task_source
from training.common.toy_env import PointGoalEnv, point_tasks


def test_has_success_follows_the_metric() -> None:
    point = make_task_source(tiny_config())
    assert point.metric == "success" and point.has_success  # PointGoalEnv sets is_success
    tasks = point_tasks(2, 0, "t")
    assert TaskSource("x", tasks, tasks, PointGoalEnv).has_success  # the default
    assert not TaskSource("x", tasks, tasks, PointGoalEnv, metric="return").has_success


def test_profile_key_sets_the_socket_error_of_train_and_test_tasks() -> None:
    """`profile` (zshot train/collect/eval --profile) wins over a file's socket-error keys;
    the tasks keep their plug, clearance and friction; the manifest's env names the profile
    and the reward definition."""
    import pytest

    from training.config import TrainConfig

    base = {
        "env": "insertion",
        "train_plugs": ["AU-AC-plug"],
        "sim_overrides": {
            "tasks": {"held_out": ["Metal-peg-sq"], "socket_xy_error": 0.003},
            "episode_socket_xy_error": 0.0,
        },
    }
    custom = make_task_source(TrainConfig.model_validate(base))
    assert custom.env_info["profile"] == "custom"
    assert max(abs(t.dx) for t in custom.test_tasks) > 0.002
    for name, e in (("known", 0.0), ("oda", 0.0), ("hard", 0.002)):
        src = make_task_source(TrainConfig.model_validate({**base, "profile": name}))
        assert src.env_info["profile"] == name
        assert src.env_info["reward"]["definition"] == "zshot.reward.insertion/v1"
        for t in src.train_tasks + src.test_tasks:
            assert abs(t.dx) <= e and abs(t.dy) <= e
        assert [(t.plug, t.clearance) for t in src.test_tasks] == [
            (t.plug, t.clearance) for t in custom.test_tasks
        ]
        env = src.make_env()
        want = 0.001 if name == "oda" else 0.0
        assert env.config.episode_socket_xy_error == pytest.approx(want)
        env.close()


def test_labels_come_from_the_source_kind_or_its_labeler() -> None:
    """No attribute probing: point tasks are labelled by `label`, a source of another kind
    needs its own labeler, and one given wins."""
    import pytest

    tasks = point_tasks(2, 0, "t")
    assert [TaskSource("point", tasks, tasks, PointGoalEnv).task_label(t) for t in tasks] == [
        "t-0",
        "t-1",
    ]
    with pytest.raises(ValueError, match="task source 'x' has no labeler"):
        TaskSource("x", tasks, tasks, PointGoalEnv).task_label(tasks[0])
    own = TaskSource("x", tasks, tasks, PointGoalEnv, labeler=lambda t: f"g{t.goal_x > 0}")
    assert own.task_label(tasks[0]) == f"g{tasks[0].goal_x > 0}"


def test_point_task_reads_its_old_plug_key_and_writes_label() -> None:
    import pytest
    from pydantic import ValidationError

    from training.common.toy_env import PointTask

    old = PointTask.model_validate({"plug": "up", "goal_x": 0.0, "goal_y": 1.0})
    assert old == PointTask(label="up", goal_x=0.0, goal_y=1.0)
    assert old.model_dump() == {"label": "up", "goal_x": 0.0, "goal_y": 1.0, "gain": 1.0}
    with pytest.raises(ValidationError):  # both spellings at once: one is unknown
        PointTask.model_validate({"plug": "a", "label": "b", "goal_x": 0.0, "goal_y": 1.0})


def test_same_tasks_reads_stored_dicts_through_each_tasks_model() -> None:
    from training.common.tasks import same_tasks

    tasks = point_tasks(3, 0, "t")
    new = [t.model_dump(mode="json") for t in tasks]
    old = [{"plug": d["label"], **{k: v for k, v in d.items() if k != "label"}} for d in new]
    assert same_tasks(new, tasks) and same_tasks(old, tasks)
    assert not same_tasks(old[:2], tasks)  # fewer tasks
    assert not same_tasks([*old[:2], {**old[2], "gain": 9.0}], tasks)  # another draw
    assert not same_tasks([*old[:2], {"family": "cheetah-vel"}], tasks)  # another model's
