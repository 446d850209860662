"""The scripted industrial baseline: approach, Archimedean spiral search under a downward
force, insert. It sees only the observation (pose relative to the *believed* socket and the
wrist force), like a learned policy, and answers in the env's normalised action space.

Phases:
1. approach: servo x, y, yaw to the believed socket pose while descending until the wrist
   feels contact (|fz| above `contact_force`);
2. search: hold a downward force `search_force` (admittance: vz ∝ force error) while the
   x, y reference runs along r = pitch·θ/2π at `search_speed`; a drop of the plug below the
   contact height by `drop` means the pins found their cavities;
3. insert: push down with `insert_force`, keeping x, y compliant, until the env ends the
   episode (success, violation or time limit).

Yaw is not searched (industrial spirals do not): a socket yaw error larger than the
clearance allows defeats it on multi-pin plugs, which is the gap learned policies must close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.config import InsertionEnvConfig
from sim.insertion import OBS_INDEX, twist_action

__all__ = ["SpiralParams", "SpiralSearchPolicy"]


@dataclass
class SpiralParams:
    """Tuning of the spiral search (mm, N, s)."""

    contact_force: float = 2.0
    """N of upward contact force that ends the approach."""
    search_force: float = 8.0
    """N pressed down during the search."""
    insert_force: float = 20.0
    """N pressed down once the pins have dropped in."""
    pitch: float = 0.4
    """mm between spiral turns."""
    search_speed: float = 8.0
    """mm/s along the spiral."""
    max_radius: float = 3.5
    """mm; the spiral restarts from the centre beyond this."""
    drop: float = 0.8
    """mm below the contact height that counts as 'in the cavity'."""
    approach_speed: float = 15.0
    """mm/s descent before contact."""
    xy_gain: float = 4.0
    """1/s; proportional gain from x, y error (mm) to commanded speed (mm/s)."""
    force_gain: float = 1.0
    """mm/s per N of force error (admittance)."""


class SpiralSearchPolicy:
    """Approach, spiral search under a downward force, insert. `reset()` then `act(obs)`."""

    def __init__(
        self, config: InsertionEnvConfig | None = None, params: SpiralParams | None = None
    ) -> None:
        self.config = config or InsertionEnvConfig()
        self.params = params or SpiralParams()
        self.reset()

    def reset(self) -> None:
        """Forget the episode: back to the approach phase."""
        self.phase = "approach"
        self.z_contact = math.nan
        self.theta = 0.0

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for this observation (normalised twist, float32, shape (ACT_DIM,))."""
        prm, cfg = self.params, self.config
        o = np.asarray(obs, dtype=np.float64)
        x, y, z = o[OBS_INDEX["x_mm"]], o[OBS_INDEX["y_mm"]], o[OBS_INDEX["z_mm"]]
        yaw = math.radians(o[OBS_INDEX["yaw_deg"]])
        fz = o[OBS_INDEX["fz"]] * cfg.force_ref  # N, upward contact force when pressing down
        wz = -yaw * 2.0  # rad/s: hold the believed socket yaw
        dt = cfg.control_dt

        if self.phase == "approach":
            if fz > prm.contact_force:
                self.phase = "search"
                self.z_contact = z
                self.theta = 0.0
            else:
                v = np.array([-prm.xy_gain * x, -prm.xy_gain * y, -prm.approach_speed])
                return twist_action(self.config, v, wz)

        if self.phase == "search":
            if z < self.z_contact - prm.drop:
                self.phase = "insert"
            else:
                b = prm.pitch / (2 * math.pi)  # r = b·θ
                r = b * self.theta
                # advance θ so that the arc length per step is search_speed·dt
                self.theta += prm.search_speed * dt / max(r, prm.pitch)
                r = b * self.theta
                if r > prm.max_radius:
                    self.theta = 0.0
                    r = 0.0
                rx, ry = r * math.cos(self.theta), r * math.sin(self.theta)
                vz = -prm.force_gain * (prm.search_force - fz)
                v = np.array([prm.xy_gain * (rx - x), prm.xy_gain * (ry - y), vz])
                return twist_action(self.config, v, wz)

        # insert: push down with a bounded force, no lateral command (compliance centres it)
        vz = -prm.force_gain * (prm.insert_force - fz) - 2.0
        return twist_action(self.config, np.array([0.0, 0.0, vz]), wz)
