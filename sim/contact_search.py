"""`ContactSpiralPolicy`: the spiral search with memory (`sim.spiral.MemorySpiralPolicy`) whose
yaw search reads the contact torque (issue #17's search teacher; BENCHMARKS.md `## contact cues
for the yaw search`).

What it adds, from signals a robot measures (the wrist's torque about z, its own commanded
yaw, and the time), never from the task:

- **yaw admittance while pressing in**: once the pins have dropped (partly) into their
  cavities, the socket's walls push the plug's pins sideways and the wrist feels a torque
  about z whose sign is the side the socket's yaw is on (measured by `bench/search_cues.py
  probe`); the yaw target follows it, `yaw_admittance` deg per N·m per control step
  (at most `yaw_step_max`), so a plug that went in at a wrong yaw turns towards the right one;
- **torque-led wiggle**: a stalled press-in steps its yaw first to the side the torque points
  to (the memory spiral alternates, + first);
- **yaw bounds from stalls**: a stall at yaw Y with torque sign s says the socket's yaw is on
  side s of Y; the task keeps an interval of yaws consistent with every such cue (each
  widened by `cue_margin`), and the next search pass takes the first yaw offset of the
  cycle not yet tried that lies in it (none left: the others, then a new cycle).

Everything else (the spiral, its memory of success poses, the distrust of a stale memory) is
the memory spiral's, with the same defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.config import InsertionEnvConfig
from sim.insertion import OBS_INDEX
from sim.spiral import MemorySpiralParams, MemorySpiralPolicy

__all__ = ["ContactSpiralParams", "ContactSpiralPolicy"]


@dataclass
class ContactSpiralParams(MemorySpiralParams):
    """The memory spiral's tuning plus the contact-torque cues (N·m, deg)."""

    torque_deadband: float = 0.003
    """N·m; a torque about z smaller than this says nothing about yaw (face friction)."""
    yaw_admittance: float = 10.0
    """deg of yaw target per N·m of torque about z, per control step, while pressing in
    (0: off)."""
    yaw_step_max: float = 0.5
    """deg; the largest yaw-target change per control step from the admittance."""
    torque_wiggle: bool = True
    """A stalled press-in wiggles to the torque's side first (False: + first, as the memory
    spiral)."""
    yaw_bounds: bool = True
    """Keep the interval of socket yaws consistent with the stalls' torque signs and search
    its yaw offsets first (False: the memory spiral's cycle)."""
    cue_margin: float = 0.5
    """deg; each stall's bound is widened by this (the clearance lets a pin stall a little
    past the right yaw)."""


class ContactSpiralPolicy(MemorySpiralPolicy):
    """The memory spiral with a yaw search led by the contact torque (module docstring).

    Same memory API: `reset_task`, `reset_episode`, `act`, `end_episode`. It reads the
    observation (pose relative to the believed socket, velocity, wrench), its own commanded
    pose and the success signal, as the memory spiral does.
    """

    params: ContactSpiralParams

    def __init__(
        self, config: InsertionEnvConfig | None = None, params: ContactSpiralParams | None = None
    ) -> None:
        self._torque_ref = (config or InsertionEnvConfig()).torque_ref
        super().__init__(config, params or ContactSpiralParams())

    def reset_task(self) -> None:
        """Forget the task, its yaw cues included."""
        self.yaw_lo = -math.inf
        """deg; the socket's yaw is believed above this (relative to the search centre)."""
        self.yaw_hi = math.inf
        """deg; ... and below this."""
        self.cues: list[tuple[float, float]] = []
        """(yaw deg, torque N·m) at each stall of this task."""
        self.pass_yaws: dict[int, float] = {}
        """The yaw offset chosen for each search pass of the current cycle."""
        self.tried: set[float] = set()
        super().reset_task()

    def reset_episode(self) -> None:
        """A new attempt: the torque average restarts; cues and bounds stay."""
        self.tz = 0.0
        self.stall_sign = 1.0
        super().reset_episode()
        if self.passes == 0:  # the spiral starts from its centre: a new cycle of yaw offsets
            self._new_cycle()

    def _new_cycle(self) -> None:
        self.pass_yaws = {}
        self.tried = set()

    def _reentry_fails(self) -> None:
        """As the memory spiral; a search restarted from its centre starts a new yaw cycle."""
        super()._reentry_fails()
        if self.passes == 0:
            self._new_cycle()

    # ------------------------------------------------------------------ hooks

    def _torque(self, o: np.ndarray) -> float:
        """N·m; the wrist's torque about z."""
        return float(o[OBS_INDEX["tz"]]) * self._torque_ref

    def _pressing(self, o: np.ndarray) -> None:
        """Average the torque; follow it with the yaw target (admittance)."""
        prm = self.params
        tz = self._torque(o)
        self.tz = 0.5 * self.tz + 0.5 * tz
        if prm.yaw_admittance > 0 and abs(tz) > prm.torque_deadband:
            step = float(np.clip(prm.yaw_admittance * tz, -prm.yaw_step_max, prm.yaw_step_max))
            self.insert_yaw += step

    def _wiggle_side(self) -> float:
        """The first wiggle of a stall goes to the torque's side (and records the cue)."""
        prm = self.params
        if self.wiggles == 1:
            sign = 0.0 if abs(self.tz) <= prm.torque_deadband else math.copysign(1.0, self.tz)
            self.stall_sign = sign if sign and prm.torque_wiggle else 1.0
            if sign:
                self._cue(self.stall_yaw, sign)
        return self.stall_sign if self.wiggles % 2 else -self.stall_sign

    def _cue(self, yaw: float, sign: float) -> None:
        """A stall at `yaw` (deg, absolute) with torque `sign`: narrow the yaw interval."""
        prm = self.params
        self.cues.append((yaw, sign * abs(self.tz)))
        rel = yaw - self.centre[2]
        if sign > 0:
            lo = rel - prm.cue_margin
            if lo < self.yaw_hi:  # a cue that contradicts the others is not applied
                self.yaw_lo = max(self.yaw_lo, lo)
        else:
            hi = rel + prm.cue_margin
            if hi > self.yaw_lo:
                self.yaw_hi = min(self.yaw_hi, hi)

    @property
    def yaw_offset(self) -> float:
        """deg; the current pass's yaw offset: the first untried offset of the cycle inside
        the cue interval (then the others), chosen once per pass."""
        offs = self.params.yaw_offsets
        if not offs:
            return 0.0
        if not self.params.yaw_bounds:
            return offs[self.passes % len(offs)]
        if self.passes in self.pass_yaws:
            return self.pass_yaws[self.passes]
        if len(self.tried) >= len(set(offs)):
            self.tried = set()
        untried = [v for v in offs if v not in self.tried]
        inside = [v for v in untried if self.yaw_lo <= v <= self.yaw_hi]
        choice = (inside or untried)[0]
        self.tried.add(choice)
        self.pass_yaws[self.passes] = choice
        return choice
