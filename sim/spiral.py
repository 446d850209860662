"""The scripted industrial baselines. `SpiralSearchPolicy`: approach, Archimedean spiral search
under a downward force, insert. It sees only the observation (pose relative to the *believed* socket and the
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

`MemorySpiralPolicy` is the stronger industrial baseline, spiral search *with memory* (issue
16): the script an integrator writes for a cell that inserts one part into one socket over and
over. It too sees only the observation, plus its own commanded pose and each episode's
success signal, and keeps a per-task memory (`reset_task`, `reset_episode`, `act`,
`end_episode`): after a success the next episodes go to where the plug went in; until then
the search also covers yaw (one offset per pass) and resumes each episode where the last
stopped. Re-entries that fail, or success poses that scatter, tell it the socket moves
between episodes: it stops trusting the memory and searches from the mean success pose. `zshot eval spiral-memory` runs it in the few-shot protocol (BENCHMARKS.md
`## spiral search with memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.config import InsertionEnvConfig
from sim.insertion import OBS_DIM, OBS_INDEX, twist_action

__all__ = ["MemorySpiralParams", "MemorySpiralPolicy", "SpiralParams", "SpiralSearchPolicy"]


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


@dataclass
class MemorySpiralParams:
    """Tuning of the spiral search with memory (mm, N, deg, control steps)."""

    contact_force: float = 2.0
    """N of upward contact force that counts as touching the socket face."""
    search_force: float = 8.0
    """N pressed down during the spiral and while pecking."""
    insert_force: float = 20.0
    """N pressed down once the pins have dropped in."""
    pitch: float = 0.4
    """mm between spiral turns."""
    max_radius: float = 3.0
    """mm; a pass ends here and the next starts from the centre with the next yaw offset."""
    search_speed: float = 11.0
    """mm/s along the spiral."""
    yaw_dither: float = 0.5
    """deg; amplitude of a slow yaw oscillation about the pass's yaw offset while searching."""
    dither_period: float = 0.6
    """s; its period."""
    pass_turn: float = 0.618
    """Turns by which each pass is rotated from the last: its arms fall a `pass_turn`
    fraction of a pitch outside the last pass's (0.5: between them)."""
    yaw_offsets: tuple[float, ...] = (0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0)
    """deg; one per full pass of the spiral, cycled."""
    box: float = math.inf
    """mm; half-width of the square about the believed socket that the search covers: the
    task search's arcs outside it are skipped (the prior's support is a square, ±2 mm per
    axis, where the disc of `max_radius` covers 1.8 times its area; inf: the whole disc)."""
    drop: float = 0.6
    """mm below the face's contact height that counts as 'in the cavities'."""
    approach_speed: float = 18.0
    """mm/s descent towards the face."""
    lower_speed: float = 6.0
    """mm/s descent over the last `hover` mm (and onto a remembered pose)."""
    hover: float = 1.0
    """mm above the face where the plug moves sideways between searches and pecks."""
    settle_tol: float = 0.03
    """mm of lateral error (and mm/s of speed, x 10) at which a hover counts as settled."""
    friction_prior: float = 0.35
    """Friction coefficient assumed until one is measured (typical of plastic on plastic)."""
    friction_smoothing: float = 0.5
    """Weight of the newest measurement in the friction estimate (exponential average)."""
    friction_growth: float = 1.15
    """Factor on the friction estimate per control step while the plug sticks (moves at
    under half the search speed): the measured force is then below the friction."""
    path_gain: float = 0.5
    """Extra lateral setpoint offset per mm of the plug's distance from its spiral point."""
    float_gain: float = 0.3
    """mm of lateral target offset per N of measured lateral contact force while pressing in."""
    stall_steps: int = 3
    """Control steps without `stall_depth` of progress that count as a stall."""
    stall_depth: float = 0.3
    """mm of descent expected per `stall_steps` while pressing in."""
    wiggle: float = 0.5
    """deg; while a press-in stalls, yaw steps to alternating sides of where it stalled, the
    amplitude growing by this each pair of steps (pins of different lengths: the longest
    is in its cavity, the others still need the right yaw)."""
    wiggle_max: float = 3.0
    """deg; the largest wiggle amplitude; past it the press-in is abandoned."""
    skip: float = 1.0
    """mm along the spiral past an abandoned press-in before the search resumes."""
    memory: bool = True
    """Remember success poses and re-enter there, and resume the search where the last
    episode stopped (False: the same scripted search without memory, every episode from the
    start of its spiral, like the plain spiral)."""
    distrust_after: int = 2
    """Failed re-entries (episodes whose re-entry at the remembered pose did not go in, though
    the plug may have gone in later by the search) after which the task's memory is not
    trusted: the socket moves between episodes (0: never distrust on failures)."""
    trust_spread: float = 0.25
    """mm; the memory is not trusted either once the task's success poses scatter by more
    than this (RMS distance from their mean, two successes or more; inf: never)."""
    reentry_fallback: bool = True
    """When the re-entry fails within an episode, the full search starts again from its
    centre and first pass (False: it resumes where it stopped)."""
    average_memory: bool = True
    """Remember the mean of the task's success poses (each sits somewhere inside the
    clearance; their mean nearer the middle), not only the last one."""
    local_pitch: float = 0.15
    """mm; pitch of the local spiral around a remembered pose, after the pecks."""
    local_radius: float = 0.5
    """mm; the local spiral's extent."""
    local_speed: float = 4.0
    """mm/s along the local spiral."""
    local_yaws: tuple[float, ...] = (0.0, 0.75, -0.75)
    """deg around the remembered yaw, one per pass of the local spiral (empty: none)."""
    peck_radii: tuple[float, ...] = ()
    """mm; rings of peck points around a remembered pose (after the pose itself)."""
    peck_points: int = 6
    """Peck points per ring."""
    peck_steps: int = 2
    """Control steps pressed at each yaw of a peck."""
    peck_yaws: tuple[float, ...] = (0.0, 1.0, -1.0)
    """deg around the remembered yaw, in turn while pressed at one peck point."""


class MemorySpiralPolicy:
    """Spiral search with memory: the industrial script an integrator writes for a cell that
    inserts the same part into the same socket many times.

    It reads only the observation (pose relative to the *believed* socket, velocity, wrist
    wrench), its own commanded pose (integrated from its commands, as a robot controller's
    setpoint is known) and each episode's success signal; it never sees the task.

    Memory API, per task (one socket, one plug, one hidden error):
    - `reset_task()`: forget everything (new plug or socket);
    - `reset_episode()`: a new attempt at the same task (memory kept);
    - `act(obs)`: the next normalised twist;
    - `end_episode(success, final_obs)`: the episode's outcome; after a success its final
      pose (pins in their cavities) joins the task's success poses, whose mean is the
      remembered pose.

    Episode without a remembered pose: descend at the search's current point and spiral
    under `search_force` (0.4 mm pitch out to 3 mm), resuming where the last episode stopped;
    one yaw offset per full pass, cycling `yaw_offsets` (0, +1, -1, +2, -2, +3, -3 deg), with
    a small yaw dither about it, each pass turned by `pass_turn` so its arms fall between the
    last pass's. The lateral setpoint leads the spiral point along its tangent by the
    damping and by the friction estimated from the wrench (sliding: |F_xy| / F_z; sticking:
    the estimate grows), so the plug follows the path instead of lagging millimetres behind.
    Once the pins drop by `drop`, press in with `insert_force`, floating sideways on the
    measured contact force; when the descent stalls, yaw steps to alternating sides of the
    stall yaw with a growing amplitude (the longest pin is in, the others need the yaw); past
    `wiggle_max` the press-in is abandoned and the search moves on.

    Episode with a remembered pose (the mean of the task's success poses): hover above it,
    settle, lower and press there (`peck_yaws` in turn); then pecks on rings of points
    around it (`peck_radii`; none by default, they measured worse) and a local spiral around
    it (`local_pitch`, `local_radius`, one `local_yaws` offset per pass), since a success
    pose can sit a clearance or more off the true one; then (the re-entry failed) the task's
    full search from its start, in the same episode (`reentry_fallback`).

    When the memory goes stale (the socket moves between episodes, which the script is never
    told): after `distrust_after` episodes whose re-entry failed, or once the task's success
    poses scatter by more than `trust_spread` (RMS), the memory is not trusted for the rest
    of the task: no re-entry; every episode searches from the start of a spiral centred on
    the mean success pose (its yaw offsets about the mean yaw). `memory=False`: the search
    alone, each episode from the start of its spiral (`zshot eval spiral-memory-off`).
    """

    def __init__(
        self, config: InsertionEnvConfig | None = None, params: MemorySpiralParams | None = None
    ) -> None:
        self.config = config or InsertionEnvConfig()
        self.params = params or MemorySpiralParams()
        cfg = self.config
        self._k = cfg.stiffness / 1000.0  # N/mm
        self._d_over_k = 2 * cfg.damping_ratio * math.sqrt(cfg.effective_mass / cfg.stiffness)
        self._vmax = cfg.max_lin_speed * 1000.0  # mm/s at |action| = 1
        self._wmax = math.degrees(cfg.max_yaw_rate)  # deg/s at |action| = 1
        self._dt = cfg.control_dt
        self.reset_task()

    # ------------------------------------------------------------------ memory API

    def reset_task(self) -> None:
        """Forget the task: no remembered pose, the search restarts from its first pass."""
        self.memory: tuple[float, float, float] | None = None
        """(x mm, y mm, yaw deg) where the plug went in, relative to the believed socket."""
        self.successes: list[tuple[float, float, float]] = []
        """The final poses of this task's successful episodes."""
        self.trusted = True
        """False once the success poses scatter beyond `trust_spread`."""
        self.centre = (0.0, 0.0, 0.0)
        """(x mm, y mm, yaw deg) around which the task's search runs: the believed socket,
        or the mean success pose once the memory is not trusted."""
        self.reentry_failures = 0
        """Episodes of this task whose re-entry at the remembered pose failed."""
        self.z_face = math.nan
        """The plug's z (mm) when its pins touch the socket face (measured at first contact)."""
        self.theta = 0.0
        self.passes = 0
        self.mu = self.params.friction_prior  # friction coefficient (estimate)
        self.reset_episode()

    def reset_episode(self) -> None:
        """A new attempt at the same task: the memory and the search position stay."""
        self.phase = "start"
        self.reentry_failed = False  # this episode's re-entry failed (fell back to the search)
        if not self.params.memory or not self.trusted:
            self.theta, self.passes = 0.0, 0
        self.cmd = np.zeros(3)
        self.cmd_yaw = 0.0
        self.goal = (0.0, 0.0, 0.0)  # x, y, yaw of the current transit
        self.after = "search"  # phase entered on contact at the end of a transit
        self.settled = False  # a peck's hover has settled over its point
        self.pecks = self._peck_points() if self.memory is not None and self.trusted else []
        self.reentering = bool(self.pecks)  # this episode starts by re-entering
        self.local = False  # searching the local spiral around the remembered pose
        self.dither_t = 0.0
        self.ltheta = 0.0
        self.lpasses = 0
        self.count = 0
        self.z_hist: list[float] = []
        self.wiggles = 0  # yaw wiggles since the press-in stalled
        self.insert_yaw = 0.0  # deg, the yaw target while pressing in
        self.from_phase = "search"  # the phase that found the cavities
        self.stall_yaw = 0.0  # deg, the yaw where it stalled
        self.last = np.zeros(OBS_DIM)

    def end_episode(self, success: bool, final_obs: np.ndarray | None = None) -> None:
        """The episode's outcome: after a success the final pose joins the memory; a
        re-entry that did not go in counts against trusting it."""
        prm = self.params
        if self.reentering and (self.reentry_failed or not success):
            self.reentry_failures += 1
            if 0 < prm.distrust_after <= self.reentry_failures:
                self._distrust()
        if not success or not prm.memory:
            return
        o = np.asarray(final_obs if final_obs is not None else self.last, dtype=np.float64)
        pose = (
            float(o[OBS_INDEX["x_mm"]]),
            float(o[OBS_INDEX["y_mm"]]),
            float(o[OBS_INDEX["yaw_deg"]]),
        )
        self.successes.append(pose)
        poses = np.asarray(self.successes)
        mean = tuple(float(v) for v in poses.mean(axis=0))
        self.memory = mean if self.params.average_memory else pose  # type: ignore[assignment]
        d = poses[:, :2] - poses[:, :2].mean(axis=0)
        if len(poses) >= 2 and math.sqrt(np.mean(np.sum(d * d, axis=1))) > prm.trust_spread:
            self.trusted = False
        if not self.trusted:  # the search runs around the mean success pose
            self._distrust()

    def _distrust(self) -> None:
        """The socket moves between episodes: no more re-entry at the remembered pose; each
        episode's search starts from its centre, the mean success pose."""
        self.trusted = False
        if self.successes:
            self.centre = tuple(float(v) for v in np.mean(self.successes, axis=0))  # type: ignore[assignment]

    STATE_DIM = 8
    """Length of `state_features()`."""
    MEMORY_DIM = 5
    """Its first MEMORY_DIM entries are the memory; the rest are the search's progress."""

    def state_features(self) -> np.ndarray:
        """What the script carries between steps and episodes, as numbers (float32, shape
        (STATE_DIM,)): [re-entering memory in use, remembered x/2 mm, y/2 mm, yaw/3 deg,
        memory trusted, the search's current point x/2 mm, y/2 mm, yaw/3 deg]. All of it is a
        function of what a robot measured (the observations, its setpoints, the successes):
        a target for a student's hidden state, never a privileged input."""
        mem = self.memory if self.memory is not None and self.trusted else None
        mx, my, myaw = mem if mem is not None else (0.0, 0.0, 0.0)
        sx, sy, syaw = self._spiral_point()
        return np.array(
            [
                float(mem is not None),
                mx / 2,
                my / 2,
                myaw / 3,
                float(self.trusted),
                sx / 2,
                sy / 2,
                syaw / 3,
            ],
            dtype=np.float32,
        )

    @property
    def yaw_offset(self) -> float:
        """deg; the yaw offset of the current spiral pass."""
        offs = self.params.yaw_offsets
        return offs[self.passes % len(offs)] if offs else 0.0

    # ------------------------------------------------------------------ control

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for this observation (normalised twist, float32, shape (ACT_DIM,))."""
        o = np.asarray(obs, dtype=np.float64)
        self.last = o
        pos = o[[OBS_INDEX["x_mm"], OBS_INDEX["y_mm"], OBS_INDEX["z_mm"]]]
        yaw = o[OBS_INDEX["yaw_deg"]]
        if self.phase == "start":  # the setpoint starts where the plug is (the env's reset)
            self.cmd = pos.copy()
            self.cmd_yaw = yaw
            if self.pecks:
                self._transit(self.pecks.pop(0), "peck")
            else:
                self._transit(self._spiral_point(), "search")
        target, target_yaw = self._step(o, pos, yaw)
        return self._command(target, target_yaw)

    def _step(self, o: np.ndarray, pos: np.ndarray, yaw: float) -> tuple[np.ndarray, float]:
        prm, cfg = self.params, self.config
        fz = o[OBS_INDEX["fz"]] * cfg.force_ref
        f_xy = o[[OBS_INDEX["fx"], OBS_INDEX["fy"]]] * cfg.force_ref
        contact = fz > prm.contact_force
        if contact and not math.isfinite(self.z_face):
            self.z_face = float(pos[2])
        dropped = math.isfinite(self.z_face) and pos[2] < self.z_face - prm.drop
        if self.phase in ("transit", "search", "peck") and dropped:
            self.from_phase = self.phase if self.phase != "transit" else self.after
            self.phase = "insert"
            self.z_hist = []
            self.wiggles = 0
            self.insert_yaw = self.cmd_yaw

        if self.phase == "transit":
            gx, gy, gyaw = self.goal
            err = math.hypot(gx - pos[0], gy - pos[1])
            speed = float(np.linalg.norm(o[[OBS_INDEX["vx_mm_s"], OBS_INDEX["vy_mm_s"]]]))
            if self.after == "search":  # the spiral is force-controlled: near is enough
                near = err < 10 * prm.settle_tol
            else:  # a peck must land where it aims: settled once, it lowers
                self.settled = self.settled or (
                    err < prm.settle_tol and speed < 10 * prm.settle_tol
                )
                near = self.settled
            if not math.isfinite(self.z_face):  # first descent of the task: until contact
                if contact:
                    self.phase = self.after
                    self.count = 0
                else:
                    return np.array([gx, gy, self.cmd[2] - prm.approach_speed * self._dt]), gyaw
            elif near and contact:
                self.phase = self.after
                self.count = 0
            else:
                hover = self.z_face + prm.hover
                z = self.cmd[2]
                if not near:  # lift to (or descend to) the hover height and move there
                    z = max(hover, z - prm.approach_speed * self._dt)
                elif z > hover:
                    z = max(hover - 1e-3, z - prm.approach_speed * self._dt)
                else:
                    z = z - prm.lower_speed * self._dt
                return np.array([gx, gy, z]), gyaw

        if self.phase == "search":
            speed = float(np.linalg.norm(o[[OBS_INDEX["vx_mm_s"], OBS_INDEX["vy_mm_s"]]]))
            return self._search(pos, f_xy, fz, speed)

        if self.phase == "peck":
            self.count += 1
            if self.count > prm.peck_steps * max(1, len(prm.peck_yaws)):
                if self.pecks:
                    self._transit(self.pecks.pop(0), "peck")
                else:  # pecks spent: the local spiral if there is one, then the search
                    self._pecks_spent()
                return self._step(o, pos, yaw)
            gx, gy, gyaw = self.goal
            if prm.peck_yaws:
                gyaw += prm.peck_yaws[(self.count - 1) // prm.peck_steps]
            return np.array([gx, gy, pos[2] - prm.search_force / self._k]), gyaw

        # insert: press down, float sideways on the contact force, wiggle yaw on a stall
        self.z_hist.append(float(pos[2]))
        n = prm.stall_steps
        if len(self.z_hist) > n and self.z_hist[-1 - n] - self.z_hist[-1] < prm.stall_depth:
            if self.wiggles == 0:
                self.stall_yaw = self.cmd_yaw
            self.wiggles += 1
            amp = prm.wiggle * ((self.wiggles + 1) // 2)
            if amp > prm.wiggle_max:  # not the cavities after all: give up, go on searching
                self._abandon()
                return self._step(o, pos, yaw)
            self.insert_yaw = self.stall_yaw + self._wiggle_side() * amp
            self.z_hist = []
        self._pressing(o)
        xy = pos[:2] + prm.float_gain * f_xy
        return np.array([xy[0], xy[1], pos[2] - prm.insert_force / self._k]), self.insert_yaw

    def _wiggle_side(self) -> float:
        """+1 or -1: the side of the stall yaw that this wiggle steps to (alternating, the
        first to +)."""
        return 1.0 if self.wiggles % 2 else -1.0

    def _pressing(self, o: np.ndarray) -> None:
        """Called at every press-in step with the observation (a hook; nothing here)."""

    def _abandon(self) -> None:
        """A press-in that stalled through every wiggle: lift and carry on with the next peck
        or further along the spiral."""
        if self.from_phase == "peck":
            if self.pecks:
                self._transit(self.pecks.pop(0), "peck")
            else:
                self._pecks_spent()
            return
        self._advance(self.params.skip)
        self._transit(self._spiral_point(), "search")

    def _pecks_spent(self) -> None:
        """The pecks at the remembered pose did not go in: the local spiral if there is one,
        else the re-entry has failed."""
        self.local = bool(self.params.local_yaws) and self.memory is not None
        if not self.local:
            self._reentry_fails()
        self._transit(self._spiral_point(), "search")

    def _reentry_fails(self) -> None:
        """The re-entry at the remembered pose failed in this episode (`end_episode` counts
        it): with `reentry_fallback` the full search starts again from its centre."""
        self.reentry_failed = True
        if self.params.reentry_fallback:
            self.theta, self.passes = 0.0, 0

    def _spiral(self) -> tuple[float, float, float, float, float]:
        """(centre x, centre y, pitch, max radius, speed) of the spiral in use: the task's
        search around the believed socket, or the local one around the remembered pose."""
        prm = self.params
        if self.local and self.memory is not None:
            mx, my, _ = self.memory
            return mx, my, prm.local_pitch, prm.local_radius, prm.local_speed
        return self.centre[0], self.centre[1], prm.pitch, prm.max_radius, prm.search_speed

    def _advance(self, arc: float) -> bool:
        """Move `arc` mm along the spiral in use; True when that ends a pass (the next pass
        starts from the centre with the next yaw offset)."""
        _, _, pitch, radius, _ = self._spiral()
        b = pitch / (2 * math.pi)  # r = b·θ
        if self.local:
            self.ltheta += arc / max(b * self.ltheta, pitch)
            if b * self.ltheta <= radius:
                return False
            self.ltheta = 0.0
            self.lpasses += 1
            if self.lpasses >= len(self.params.local_yaws):  # local search spent
                self.local = False
                self._reentry_fails()
            return True
        self.theta += arc / max(b * self.theta, pitch)
        while b * self.theta <= radius and not self._in_box():  # skip the arc outside
            self.theta += 0.05 / max(b * self.theta, pitch)
        if b * self.theta <= radius:
            return False
        self.theta = 0.0
        self.passes += 1
        return True

    def _search(
        self, pos: np.ndarray, f_xy: np.ndarray, fz: float, speed: float
    ) -> tuple[np.ndarray, float]:
        prm = self.params
        _, _, pitch, _, v = self._spiral()
        if self._advance(v * self._dt):
            self._transit(self._spiral_point(), "search")
            return self.cmd.copy(), self.cmd_yaw
        gx, gy, gyaw = self._spiral_point()
        if prm.yaw_dither > 0:  # between the passes' yaw offsets
            self.dither_t += self._dt
            gyaw += prm.yaw_dither * math.sin(2 * math.pi * self.dither_t / prm.dither_period)
        b = pitch / (2 * math.pi)
        th = self.ltheta if self.local else self.theta
        # direction of travel along the spiral (d/dθ of (bθ cos θ, bθ sin θ))
        c, s = math.cos(th + self._phase), math.sin(th + self._phase)
        r = b * th
        tangent = np.array([b * c - r * s, b * s + r * c])
        tangent /= max(float(np.linalg.norm(tangent)), 1e-9)
        if fz > prm.contact_force:
            if speed > 0.5 * v:  # sliding: the lateral force is the friction
                a = prm.friction_smoothing
                self.mu = (1 - a) * self.mu + a * float(np.linalg.norm(f_xy)) / fz
            else:  # sticking: the friction is more than the force that failed to move it
                self.mu = min(self.mu * prm.friction_growth, 1.5)
        friction = self.mu * prm.search_force
        lead = tangent * (v * self._d_over_k + friction / self._k)
        lead += prm.path_gain * (np.array([gx, gy]) - pos[:2])
        z = pos[2] - prm.search_force / self._k
        return np.array([gx + lead[0], gy + lead[1], z]), gyaw

    def _in_box(self) -> bool:
        """Whether the task search's current point lies in the `box` square."""
        x, y, _ = self._spiral_point()
        return max(abs(x), abs(y)) <= self.params.box

    @property
    def _phase(self) -> float:
        """rad; the rotation of the current pass (`pass_turn` per pass)."""
        if self.local:
            return 0.0
        return 2 * math.pi * ((self.passes * self.params.pass_turn) % 1.0)

    def _spiral_point(self) -> tuple[float, float, float]:
        cx, cy, pitch, _, _ = self._spiral()
        b = pitch / (2 * math.pi)
        if self.local and self.memory is not None:
            th = self.ltheta
            yaw = self.memory[2] + self.params.local_yaws[self.lpasses]
        else:
            th, yaw = self.theta, self.centre[2] + self.yaw_offset
        r = b * th
        ang = th + self._phase
        return (cx + r * math.cos(ang), cy + r * math.sin(ang), yaw)

    def _peck_points(self) -> list[tuple[float, float, float]]:
        assert self.memory is not None
        mx, my, myaw = self.memory
        pts = [(mx, my, myaw)]
        n = self.params.peck_points
        for ring, rad in enumerate(self.params.peck_radii):
            for k in range(n):
                ang = 2 * math.pi * (k + 0.5 * ring) / n
                pts.append((mx + rad * math.cos(ang), my + rad * math.sin(ang), myaw))
        return pts

    def _transit(self, goal: tuple[float, float, float], after: str) -> None:
        self.phase = "transit"
        self.settled = False
        self.goal = goal
        self.after = after

    def follow(self, executed: np.ndarray, commanded: np.ndarray) -> None:
        """The arm was sent `executed` instead of the `commanded` action `act` returned (a
        driver other than this script, or noise on it): the setpoint moves by the
        difference, as the arm's setpoint follows what it was sent."""
        d = np.clip(np.asarray(executed, np.float64), -1.0, 1.0) - np.asarray(commanded)
        self.cmd = self.cmd + d[:3] * self._vmax * self._dt
        self.cmd_yaw += float(d[3]) * self._wmax * self._dt

    def _command(self, target: np.ndarray, target_yaw: float) -> np.ndarray:
        """The twist that moves the commanded pose to the target within the speed limits;
        the commanded pose advances by what was commanded (as the arm's setpoint does)."""
        v = np.clip((target - self.cmd) / self._dt, -self._vmax, self._vmax)
        w = float(np.clip((target_yaw - self.cmd_yaw) / self._dt, -self._wmax, self._wmax))
        a = np.zeros(4, dtype=np.float32)
        a[:3] = v / self._vmax
        a[3] = w / self._wmax
        a = np.clip(a, -1.0, 1.0)
        self.cmd = self.cmd + a[:3].astype(np.float64) * self._vmax * self._dt
        self.cmd_yaw += float(a[3]) * self._wmax * self._dt
        return a
