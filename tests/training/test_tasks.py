"""TaskSource (training/tasks.py): whether an env family has a success notion is explicit."""

from __future__ import annotations

from training.tasks import TaskSource, make_task_source
from training.toy_env import PointGoalEnv, point_tasks

from .conftest import tiny_config


def test_has_success_follows_the_metric() -> None:
    point = make_task_source(tiny_config())
    assert point.metric == "success" and point.has_success  # PointGoalEnv sets is_success
    tasks = point_tasks(2, 0, "t")
    assert TaskSource("x", tasks, tasks, PointGoalEnv).has_success  # the default
    assert not TaskSource("x", tasks, tasks, PointGoalEnv, metric="return").has_success
