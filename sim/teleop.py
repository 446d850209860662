"""A demonstrator that is told where the socket is: the sim's stand-in for a person
teleoperating the robot with the socket in view.

The ODA paper (Zhao et al. 2022, arXiv 2110.04276) trains from "demonstrations and trials"
of the prior tasks and adapts to a new task from a few demonstrations of it. A person
demonstrating an insertion sees the socket, so the demonstration goes to the *true* socket,
not the believed one; the spiral search (sim.spiral) does not know it and has to search.
`TeleopDemonstrator` is that person: it reads the hidden task (`dx`, `dy`, `dyaw`), servoes
the plug over the true socket and aligns its yaw while lowering it to just above the
socket face, then presses it in under a bounded downward force. Everything it outputs is an
action in the env's normalised twist space, so `zshot collect` and the fine-tuning context
record it like any other behaviour (with action noise added there, as for the spiral).

It is only a demonstrator: a policy must never read the task. Without noise it inserts all
90 test tasks of the 9 named plugs (seed 0; tests/sim/test_teleop.py checks a sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.config import InsertionEnvConfig
from sim.insertion import OBS_INDEX, twist_action
from sim.tasks import InsertionTask

__all__ = ["TeleopDemonstrator", "TeleopParams"]


@dataclass
class TeleopParams:
    """Tuning of the demonstrator (mm, N, s, rad)."""

    xy_gain: float = 4.0
    """1/s; x, y error (mm) to commanded speed (mm/s)."""
    yaw_gain: float = 3.0
    """1/s; yaw error (rad) to commanded yaw rate (rad/s)."""
    aligned_xy: float = 1.0
    """mm; lateral error below which the plug is lowered (the chamfers and the compliant
    controller centre the rest; 0.3 mm made noisy demonstrations hover: about 11/90 held-out
    tasks at noise 0.3 against about 70/90 at 1 mm, unseeded trial runs)."""
    aligned_yaw: float = 0.03
    """rad; yaw error below which the plug is lowered into the socket."""
    approach_speed: float = 15.0
    """mm/s descent while no contact force is felt."""
    insert_force: float = 15.0
    """N pressed down once in contact."""
    contact_force: float = 1.0
    """N of upward force that counts as contact."""
    force_gain: float = 1.0
    """mm/s per N of force error (admittance)."""


class TeleopDemonstrator:
    """Servo over the true socket, align yaw, press in. `reset(task)` then `act(obs)`."""

    def __init__(
        self, config: InsertionEnvConfig | None = None, params: TeleopParams | None = None
    ) -> None:
        self.config = config or InsertionEnvConfig()
        self.params = params or TeleopParams()
        self.task: InsertionTask | None = None

    def reset(self, task: InsertionTask) -> None:
        """A new episode on `task` (the demonstrator sees its hidden socket pose)."""
        if not isinstance(task, InsertionTask):
            raise TypeError(f"TeleopDemonstrator needs an InsertionTask, not {type(task).__name__}")
        self.task = task

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The next normalised twist (float32, shape (ACT_DIM,))."""
        if self.task is None:
            raise RuntimeError("TeleopDemonstrator.act before reset(task)")
        prm, cfg, t = self.params, self.config, self.task
        o = np.asarray(obs, dtype=np.float64)
        ex = t.dx * 1000.0 - o[OBS_INDEX["x_mm"]]
        ey = t.dy * 1000.0 - o[OBS_INDEX["y_mm"]]
        eyaw = t.dyaw - math.radians(o[OBS_INDEX["yaw_deg"]])
        fz = o[OBS_INDEX["fz"]] * cfg.force_ref  # N, upward when pressing down
        vz = 0.0
        if math.hypot(ex, ey) < prm.aligned_xy and abs(eyaw) < prm.aligned_yaw:
            if fz > prm.contact_force:
                vz = -prm.force_gain * (prm.insert_force - fz) - 2.0
            else:
                vz = -prm.approach_speed
        return twist_action(
            cfg, np.array([prm.xy_gain * ex, prm.xy_gain * ey, vz]), prm.yaw_gain * eyaw
        )
