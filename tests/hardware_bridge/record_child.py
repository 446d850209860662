"""Child process for the kill -9 test: records episodes forever, printing progress.

Prints `STEP <episode> <n>` after each step is recorded and `EPISODE <episode> <path>` after
each episode file is final, flushing each line, so the parent knows what must survive.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from hardware_bridge.config import RecorderConfig, SafetyLimits, WatchdogConfig
from hardware_bridge.loop import ControlLoop, StepRecord
from hardware_bridge.recorder import Recorder
from hardware_bridge.robots.mock import MockRobot
from tests.hardware_bridge.fakes import FakeRuntime


class Announcing(Recorder):
    def begin_episode(self, meta: dict[str, Any]) -> None:
        super().begin_episode(meta)
        self.n = 0

    def record(self, step: StepRecord) -> None:
        super().record(step)
        self.n += 1
        print(f"STEP {self._index} {self.n}", flush=True)

    def end_episode(self, summary: dict[str, Any]) -> Any:
        idx = self._index
        path = super().end_episode(summary)
        print(f"EPISODE {idx} {path}", flush=True)
        return path


def main() -> None:
    out, fsync_every = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    rt = FakeRuntime(action_fn=lambda obs, i: rng.uniform(-1, 1, 4).astype(np.float32))
    rt.hello()
    robot = MockRobot(max_steps=30)
    robot.connect()
    rec = Announcing(out, RecorderConfig(fsync_every=fsync_every), latent_dim=2)
    loop = ControlLoop(
        robot,
        rt,
        safety=SafetyLimits(),
        watchdog=WatchdogConfig(),
        sink=rec,
        latent_dim=2,
        log=lambda m: None,
    )
    for ep in range(10_000):
        robot.set_task("peg", ep)
        loop.run_episode("explore", {"plug": "peg", "task": robot.task})


if __name__ == "__main__":
    main()
