"""`InsertionEnv`: insert a plug held by a compliant Cartesian controller into a socket whose
pose is known only approximately.

Units. The config and the task are SI. Inside PyBullet one length unit is one **millimetre**
(pins are 1.5-20 mm; Bullet's margins and thresholds are tuned for unit-sized objects, so
metres would put 0.1 mm clearances below its collision margin). With mass in kg and time in s:
force_sim = 1000 · force_N, stiffness N/m is numerically unchanged, torque_sim = 1e6 · N·m.
There is no gravity: the arm's controller compensates the payload, as a real one does.

Controller (per physics step, explicit): the action is a twist (vx, vy, vz, wz) that moves a
target pose; the plug is pulled towards the target by F = K(x_t - x) - D·v, clipped to
`max_force`, and roll/pitch/yaw by τ = K_r·rotvec(q_t q⁻¹) - D_r·ω, clipped to
`max_torque`. The target never runs further than max_force/K ahead of the plug (no wind-up),
so a blocked plug presses with at most `max_force` (plus the momentum of a plug arriving at
`speed_limit`, m·speed_limit/dt = 6 N at the defaults, and up to ~2 N of Bullet's
penetration recovery; tested). The arm's Cartesian speed limit holds on every physics
step: a step that ends faster than `speed_limit` is shortened to speed_limit·dt (0.3 mm at
the defaults).

The controller is scalar Python on floats (no numpy per physics step) and needs 4 PyBullet
calls per physics step besides `stepSimulation`; the contact wrench is not read from
`getContactPoints` but follows from the plug's momentum, which is exact here (see `step`).

Contact tuning (tests/sim/test_env.py): friction anchors on, split impulse off. Resolution:
pins wider than their cavities by 0.3 mm per side (= speed_limit·dt) never got in, in 48
presses at 40-60 N from offset starts; pins only 0.1 mm per side too wide got in on 7 of 48
(one discrete contact step can let a pin dip below a rim by up to 0.3 mm).

Observation (float32, the same 18 entries for every plug, `env.obs_names`): plug pose
relative to the *believed* socket (mm, deg), its velocity (mm/s, deg/s), and the wrist
force/torque: the contact wrench on the plug (world frame, torque about the plug origin),
averaged over the control period's physics steps, divided by force_ref / torque_ref.
`info["peak_force"]` is the largest per-physics-step contact force of the episode (N).
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from sim.config import InsertionEnvConfig
from sim.geometry import box_mesh, prism_mesh, socket_geometry, write_obj
from sim.plugs import PlugSpec, load_plug
from sim.tasks import InsertionTask
from zshot.reward import InsertionLimits, InsertionMeasurement, insertion_reward

__all__ = [
    "ACTION_NAMES",
    "ACT_DIM",
    "OBS_DIM",
    "OBS_INDEX",
    "OBS_NAMES",
    "InsertionEnv",
    "twist_action",
]

MM = 1000.0  # sim length units per metre
OBS_NAMES: tuple[str, ...] = (
    "x_mm", "y_mm", "z_mm", "roll_deg", "pitch_deg", "yaw_deg",
    "vx_mm_s", "vy_mm_s", "vz_mm_s", "wx_deg_s", "wy_deg_s", "wz_deg_s",
    "fx", "fy", "fz", "tx", "ty", "tz",
)  # fmt: skip
ACTION_NAMES: tuple[str, ...] = ("vx", "vy", "vz", "wz")
OBS_DIM = len(OBS_NAMES)
ACT_DIM = len(ACTION_NAMES)
OBS_INDEX: dict[str, int] = {name: k for k, name in enumerate(OBS_NAMES)}
"""Position of each named observation in the vector."""


def twist_action(config: InsertionEnvConfig, v_mm_s: np.ndarray, wz_rad_s: float) -> np.ndarray:
    """The normalised action for a Cartesian twist, the inverse of the env's scaling: x, y, z
    speed (mm/s) over `max_lin_speed`, yaw rate (rad/s) over `max_yaw_rate`, clipped to
    [-1, 1]; float32, shape (ACT_DIM,). For scripted controllers (sim.spiral, sim.teleop)."""
    a = np.zeros(ACT_DIM, dtype=np.float32)
    a[:3] = v_mm_s / (config.max_lin_speed * 1000.0)
    a[3] = wz_rad_s / config.max_yaw_rate
    return np.clip(a, -1.0, 1.0)


# Observation bounds: generous physical limits (the Box is for documentation and check_env).
_OBS_HIGH = np.array(
    [100, 100, 200, 180, 180, 180, 2000, 2000, 2000, 3600, 3600, 3600] + [50.0] * 6,
    dtype=np.float32,
)


def _quat_yaw(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


class InsertionEnv(gym.Env):
    """Gymnasium env: a plug above a socket, a compliant twist controller, hidden socket error."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        config: InsertionEnvConfig | None = None,
        task: InsertionTask | None = None,
        render_mode: str | None = None,
        plug: str | None = None,
    ) -> None:
        self.config = config or InsertionEnvConfig()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        if task is None:
            task = InsertionTask(plug=plug) if plug is not None else InsertionTask()
        self.obs_names: tuple[str, ...] = OBS_NAMES
        self.action_names: tuple[str, ...] = ACTION_NAMES
        self.observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)

        self._cid = p.connect(p.DIRECT)
        self._mesh_dir: str | None = None
        cfg = self.config
        p.setGravity(0, 0, 0, physicsClientId=self._cid)
        p.setPhysicsEngineParameter(
            fixedTimeStep=cfg.physics_dt,
            numSolverIterations=cfg.solver_iterations,
            numSubSteps=0,
            deterministicOverlappingPairs=1,
            # Contact tuning (tests/sim/test_env.py): a plug pressed at 40-60 N chatters
            # (period-2 bounce of ~0.02 mm) and now and then loses every contact for a step;
            # with split impulse on that happened more often (measured before the per-step
            # speed limit: round pins 0.3 mm/side too wide got into their cavities on 6 of 24
            # presses with it on, 0 of 24 with it off).
            useSplitImpulse=0,
            physicsClientId=self._cid,
        )
        self._plug_id = -1
        self._socket_id = -1
        self._built_plug: str | None = None
        self._built_socket: tuple[str, float] | None = None
        self._task = task
        self._socket_pose: tuple[float, float, float] | None = None
        self._step_peak = 0.0
        self._pending: InsertionTask | None = task
        self.build_counts = {"plug": 0, "socket": 0}
        """How many times each body was built (set_task rebuilds only what changed)."""
        self._spec: PlugSpec = load_plug(task.plug)
        self._apply_task()

        # controller gains in sim units (see module docstring)
        m, inertia = cfg.effective_mass, cfg.effective_inertia * MM * MM
        self._K = cfg.stiffness
        self._D = 2 * cfg.damping_ratio * math.sqrt(cfg.stiffness * m)
        self._Kr = cfg.rot_stiffness * MM * MM
        self._Dr = 2 * cfg.damping_ratio * math.sqrt(self._Kr * inertia)
        self._Fmax = cfg.max_force * MM
        self._Tmax = cfg.max_torque * MM * MM
        self._vmax = cfg.max_lin_speed * MM
        self._wmax = cfg.max_yaw_rate
        self._vcap = cfg.speed_limit * MM
        self._dt = cfg.physics_dt
        self._inertia = inertia
        self._ws = cfg.workspace * MM
        self._target = np.zeros(3)
        self._target_yaw = 0.0
        self._steps = 0
        self._peak_force = 0.0
        self._wrench = np.zeros(6)
        self._last_obs = np.zeros(OBS_DIM, dtype=np.float32)
        self._cache: tuple[np.ndarray, tuple[float, float, float], np.ndarray, np.ndarray] | None
        self._cache = None

    # ------------------------------------------------------------------ task handling

    @property
    def task(self) -> InsertionTask:
        """The task in effect (a task passed to `set_task` takes effect at the next reset)."""
        return self._task

    @property
    def plug_spec(self) -> PlugSpec:
        """The spec of the plug in the current task."""
        return self._spec

    def set_task(self, task: InsertionTask) -> None:
        """Switch task; applied at the next `reset()`, rebuilding only the bodies that change."""
        if not isinstance(task, InsertionTask):
            raise TypeError(f"set_task expects an InsertionTask, got {type(task).__name__}")
        self._pending = task

    def _apply_task(self) -> None:
        task = self._pending
        assert task is not None
        self._pending = None
        cid = self._cid
        spec = load_plug(task.plug)
        socket_key = (task.socket_plug or task.plug, round(task.clearance_mm(), 6))
        if self._built_socket != socket_key:
            if self._socket_id >= 0:
                p.removeBody(self._socket_id, physicsClientId=cid)
            self._socket_id = self._build_socket(load_plug(socket_key[0]), socket_key[1])
            self._built_socket = socket_key
            self.build_counts["socket"] += 1
        if self._built_plug != task.plug:
            if self._plug_id >= 0:
                p.removeBody(self._plug_id, physicsClientId=cid)
            self._plug_id = self._build_plug(spec)
            self._built_plug = task.plug
            self.build_counts["plug"] += 1
        mu = task.friction_value()
        for body in (self._plug_id, self._socket_id):
            p.changeDynamics(body, -1, lateralFriction=mu, physicsClientId=cid)
        self._place_socket((task.dx * MM, task.dy * MM, task.dyaw))
        self._task = task
        self._task_dict = task.model_dump()  # info["task"]: dumped once per task, not per step
        self._spec = spec
        self._limits = self.reward_limits()

    def _place_socket(self, pose: tuple[float, float, float]) -> None:
        """Put the socket at (x mm, y mm, yaw rad) in the believed frame (the hidden truth)."""
        if pose != self._socket_pose:
            p.resetBasePositionAndOrientation(
                self._socket_id, (pose[0], pose[1], 0.0), _quat_yaw(pose[2]),
                physicsClientId=self._cid,
            )  # fmt: skip
            self._socket_pose = pose

    def _build_socket(self, spec: PlugSpec, clearance_mm: float) -> int:
        geom = socket_geometry(spec, clearance_mm)
        boxes = geom.boxes
        n = len(boxes)
        kw: dict[str, Any] = dict(
            shapeTypes=[p.GEOM_BOX] * n,
            halfExtents=[b.half for b in boxes],
            radii=[0.0] * n,
            lengths=[0.0] * n,
            fileNames=[""] * n,
            meshScales=[(1.0, 1.0, 1.0)] * n,
            collisionFramePositions=[b.center for b in boxes],
            collisionFrameOrientations=[_quat_yaw(b.yaw) for b in boxes],
            physicsClientId=self._cid,
        )
        col = p.createCollisionShapeArray(**kw)
        vis = -1
        if self.render_mode is not None:
            # One mesh of every box: a visual shape *array* keeps only its first 16 shapes
            # (PyBullet 3.2.7), which drew the cavities after the first few as bare squares
            # or D shapes (their walls missing). The collision boxes above are unchanged.
            verts, faces = box_mesh(boxes)
            vis = p.createVisualShape(
                p.GEOM_MESH,
                fileName=self._mesh_file("socket_vis", verts, faces),
                meshScale=(1.0, 1.0, 1.0),
                physicsClientId=self._cid,
            )
        body = p.createMultiBody(
            0.0, col, vis, useMaximalCoordinates=True, physicsClientId=self._cid
        )
        if vis >= 0:
            p.changeVisualShape(
                body, -1, rgbaColor=(0.8, 0.8, 0.75, 1.0), physicsClientId=self._cid
            )
        p.changeDynamics(body, -1, restitution=0.0, frictionAnchor=1, physicsClientId=self._cid)
        return body

    def _mesh_file(self, kind: str, verts: np.ndarray, faces: list[tuple[int, int, int]]) -> str:
        """An OBJ of a mesh, written once per content into the env's mesh dir."""
        if self._mesh_dir is None:
            self._mesh_dir = tempfile.mkdtemp(prefix="zshot_pins_")
        key = abs(hash((verts.tobytes(), tuple(faces))))
        path = os.path.join(self._mesh_dir, f"{kind}_{key}.obj")
        if not os.path.exists(path):
            write_obj(path, verts, faces)
        return path

    def _pin_mesh_file(self, vertices: np.ndarray) -> str:
        """The collision mesh of a polygon pin: a face list is needed by the obj loader, one
        triangle per side is enough (Bullet takes the convex hull of the vertices anyway)."""
        n = len(vertices) // 2
        faces = [(k, (k + 1) % n, (k + 1) % n + n) for k in range(n)]
        return self._mesh_file("pin", vertices, faces)

    def _build_plug(self, spec: PlugSpec) -> int:
        from sim.geometry import pin_prism_vertices

        types, halves, radii, lengths, files, pos, orn = [], [], [], [], [], [], []
        b = spec.body
        if b.shape == "box":
            assert b.width is not None and b.depth is not None
            types.append(p.GEOM_BOX)
            halves.append((b.width / 2, b.depth / 2, b.height / 2))
            radii.append(0.0)
        else:
            assert b.diameter is not None
            types.append(p.GEOM_CYLINDER)
            halves.append((0.0, 0.0, 0.0))
            radii.append(b.diameter / 2)
        lengths.append(b.height)
        files.append("")
        pos.append((0.0, 0.0, b.height / 2))
        orn.append((0.0, 0.0, 0.0, 1.0))
        for pin in spec.pins:
            if pin.shape == "box":
                assert pin.width is not None and pin.depth is not None
                types.append(p.GEOM_BOX)
                halves.append((pin.width / 2, pin.depth / 2, pin.length / 2))
                radii.append(0.0)
                files.append("")
                pos.append((pin.x, pin.y, -pin.length / 2))
                orn.append(_quat_yaw(math.radians(pin.yaw)))
            elif pin.shape == "cylinder":
                assert pin.diameter is not None
                types.append(p.GEOM_CYLINDER)
                halves.append((0.0, 0.0, 0.0))
                radii.append(pin.diameter / 2)
                files.append("")
                pos.append((pin.x, pin.y, -pin.length / 2))
                orn.append((0.0, 0.0, 0.0, 1.0))
            else:
                types.append(p.GEOM_MESH)
                halves.append((0.0, 0.0, 0.0))
                radii.append(0.0)
                files.append(self._pin_mesh_file(pin_prism_vertices(pin)))
                pos.append((0.0, 0.0, 0.0))
                orn.append((0.0, 0.0, 0.0, 1.0))
            lengths.append(pin.length)
        kw: dict[str, Any] = dict(
            shapeTypes=types,
            halfExtents=halves,
            radii=radii,
            lengths=lengths,
            fileNames=files,
            meshScales=[(1.0, 1.0, 1.0)] * len(types),
            physicsClientId=self._cid,
        )
        col = p.createCollisionShapeArray(
            **kw, collisionFramePositions=pos, collisionFrameOrientations=orn
        )
        vis = -1
        if self.render_mode is not None:
            # Polygon pins: the collision file above has one triangle per side (Bullet takes
            # the hull of its vertices); the renderer draws faces, so it gets a closed,
            # triangulated prism of the same outline instead.
            vis_files = list(files)
            for k, pin in enumerate(spec.pins, start=1):
                if pin.shape not in ("box", "cylinder"):
                    verts, faces = prism_mesh(pin.outline(0.0), 0.0, -pin.length)
                    vis_files[k] = self._mesh_file("pin_vis", verts, faces)
            vis = p.createVisualShapeArray(
                **{**kw, "fileNames": vis_files},
                visualFramePositions=pos,
                visualFrameOrientations=orn,
            )
        cfg = self.config
        body = p.createMultiBody(
            cfg.effective_mass, col, vis,
            basePosition=(0, 0, 100.0),
            useMaximalCoordinates=True,
            physicsClientId=self._cid,
        )  # fmt: skip
        if vis >= 0:
            p.changeVisualShape(
                body, -1, rgbaColor=(0.9, 0.6, 0.15, 1.0), physicsClientId=self._cid
            )
        inertia = cfg.effective_inertia * MM * MM
        p.changeDynamics(
            body, -1,
            # mass must be passed again: for a maximal-coordinates body PyBullet resets it
            # to 0 when only the inertia is changed
            mass=cfg.effective_mass,
            localInertiaDiagonal=(inertia, inertia, inertia),
            linearDamping=0.0, angularDamping=0.0,
            restitution=0.0,
            # friction anchors: without them a plug pressed on one pin crept sideways by
            # 5-8 mm in 5 s (static friction leaking a little every physics step)
            frictionAnchor=1,
            activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING,
            physicsClientId=self._cid,
        )  # fmt: skip
        # Bullet refreshes the world-frame inverse inertia only when it integrates a body: until
        # then it is the shapes' (~100x smaller), so the first control step of a new plug
        # spun it ~100x too fast. One step with the plug at rest, away from the socket, fixes it.
        p.stepSimulation(physicsClientId=self._cid)
        return body

    # ------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: apply a pending task, perturb the start pose (hidden)."""
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        if self._pending is not None:
            self._apply_task()
        cfg = self.config
        rng = self.np_random
        start = np.array(
            [
                rng.uniform(-cfg.start_xy_noise, cfg.start_xy_noise) * MM,
                rng.uniform(-cfg.start_xy_noise, cfg.start_xy_noise) * MM,
                self._spec.max_pin_length
                + (cfg.start_height + rng.uniform(0.0, cfg.start_z_noise)) * MM,
            ]
        )
        yaw = float(rng.uniform(-cfg.start_yaw_noise, cfg.start_yaw_noise))
        # the `oda` profile's fresh, unobserved socket offset; drawn after the start pose, and
        # only when asked for, so the same seed gives the same start in every profile
        e = cfg.episode_socket_xy_error * MM
        ox, oy = (float(rng.uniform(-e, e)), float(rng.uniform(-e, e))) if e > 0 else (0.0, 0.0)
        task = self._task
        self._place_socket((task.dx * MM + ox, task.dy * MM + oy, task.dyaw))
        p.resetBasePositionAndOrientation(
            self._plug_id, start.tolist(), _quat_yaw(yaw), physicsClientId=self._cid
        )
        p.resetBaseVelocity(self._plug_id, (0, 0, 0), (0, 0, 0), physicsClientId=self._cid)
        self._target = start.copy()
        self._target_yaw = yaw
        self._steps = 0
        self._peak_force = 0.0
        self._step_peak = 0.0
        self._wrench = np.zeros(6)
        self._cache = None
        obs = self._observe()
        return obs, self._info(False, False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a normalised twist for one control period (`substeps` physics steps)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(ACT_DIM), -1.0, 1.0)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {action!r}")
        # Everything per physics step is scalar Python on floats: numpy's per-call overhead
        # on 3-vectors (~1-15 us each) used to be most of the step's cost.
        cid, plug, dt = self._cid, self._plug_id, self._dt
        vmax, ws = self._vmax, self._ws
        vx, vy, vz = float(a[0]) * vmax, float(a[1]) * vmax, float(a[2]) * vmax
        w_cmd = float(a[3]) * self._wmax
        K, D, Kr, Dr = self._K, self._D, self._Kr, self._Dr
        Fmax, Tmax, vcap = self._Fmax, self._Tmax, self._vcap
        Fmax2, Tmax2, vcap2 = Fmax * Fmax, Tmax * Tmax, vcap * vcap
        m_dt = self.config.effective_mass / dt
        i_dt = self._inertia / dt
        lead = Fmax / K  # mm: the target may lead the plug by at most this
        lead_yaw = (Tmax / Kr) if Kr > 0 else 0.1
        tx, ty, tz = (float(v) for v in self._target)
        tyaw = self._target_yaw
        world = p.WORLD_FRAME
        get_pose, get_vel = p.getBasePositionAndOrientation, p.getBaseVelocity
        apply_f, apply_t, step_sim = p.applyExternalForce, p.applyExternalTorque, p.stepSimulation
        n = self.config.substeps
        peak2 = 0.0
        # Running sums of the contact wrench over the period (sim units), from momentum: with
        # no gravity, no damping and an isotropic inertia (no gyroscopic term) the only
        # impulses on the plug are the controller's and the contacts', so over a physics step
        # F_c = m·(v1 - v0)/dt - F_applied and τ_c = I·(ω1 - ω0)/dt - τ_applied (v0 after the
        # speed clamp). That is what summing `getContactPoints` forces gives (tested), without
        # reading ~100 contact points from Python every physics step.
        sfx = sfy = sfz = stx = sty = stz = 0.0
        ux = uy = uz = wx = wy = wz = fx = fy = fz = mx = my = mz = px = py = pz = 0.0
        lin, ang = get_vel(plug, physicsClientId=cid)
        for k in range(n + 1):
            if k:
                # contact wrench of the physics step just taken, from the momentum change
                lin, ang = get_vel(plug, physicsClientId=cid)
                cfx = m_dt * (lin[0] - ux) - fx
                cfy = m_dt * (lin[1] - uy) - fy
                cfz = m_dt * (lin[2] - uz) - fz
                sfx += cfx
                sfy += cfy
                sfz += cfz
                stx += i_dt * (ang[0] - wx) - mx
                sty += i_dt * (ang[1] - wy) - my
                stz += i_dt * (ang[2] - wz) - mz
                c2 = cfx * cfx + cfy * cfy + cfz * cfz
                if c2 > peak2:
                    peak2 = c2
                pos, orn = get_pose(plug, physicsClientId=cid)
                ux, uy, uz = lin
                speed2 = ux * ux + uy * uy + uz * uz
                if speed2 > vcap2:
                    # The arm's Cartesian speed limit, on the step just taken: the plug moved
                    # at most speed_limit·dt. Bullet adds F·dt/m to the velocity before it
                    # solves contacts, so a plug whose contact drops out for one step under
                    # 60 N (or that slips off an edge) would travel ~3 mm in 10 ms and land
                    # past a cavity's rim or through a wall; capped, it travels <= 0.3 mm.
                    c = vcap / math.sqrt(speed2)
                    ux, uy, uz = ux * c, uy * c, uz * c
                    x, y, z = pos
                    pos = (px + (x - px) * c, py + (y - py) * c, pz + (z - pz) * c)
                    p.resetBasePositionAndOrientation(plug, pos, orn, physicsClientId=cid)
                    p.resetBaseVelocity(plug, (ux, uy, uz), ang, physicsClientId=cid)
                if k == n:
                    break
            else:
                pos, orn = get_pose(plug, physicsClientId=cid)
                ux, uy, uz = lin
            px, py, pz = pos
            x, y, z = pos
            # move the target with the commanded twist, without wind-up or leaving the workspace
            # (conditional expressions: ~3x cheaper than min/max calls at this rate)
            tx += vx * dt
            tx = x - lead if tx < x - lead else (x + lead if tx > x + lead else tx)
            tx = -ws if tx < -ws else (ws if tx > ws else tx)
            ty += vy * dt
            ty = y - lead if ty < y - lead else (y + lead if ty > y + lead else ty)
            ty = -ws if ty < -ws else (ws if ty > ws else ty)
            tz += vz * dt
            tz = z - lead if tz < z - lead else (z + lead if tz > z + lead else tz)
            qx, qy, qz, qw = orn
            yaw = math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
            tyaw += w_cmd * dt
            err_yaw = (tyaw - yaw + math.pi) % (2 * math.pi) - math.pi
            if err_yaw > lead_yaw:
                tyaw = yaw + lead_yaw
            elif err_yaw < -lead_yaw:
                tyaw = yaw - lead_yaw
            fx = K * (tx - x) - D * ux
            fy = K * (ty - y) - D * uy
            fz = K * (tz - z) - D * uz
            fn2 = fx * fx + fy * fy + fz * fz
            if fn2 > Fmax2:
                c = Fmax / math.sqrt(fn2)
                fx, fy, fz = fx * c, fy * c, fz * c
            # rotation error as a rotation vector, world frame: q_err = q_t · q⁻¹ with
            # q_t = (0, 0, sin(yaw_t/2), cos(yaw_t/2))
            sz, cz = math.sin(tyaw / 2), math.cos(tyaw / 2)
            ex, ey, ez = sz * qy - cz * qx, -cz * qy - sz * qx, sz * qw - cz * qz
            ew = cz * qw + sz * qz
            if ew < 0:
                ex, ey, ez, ew = -ex, -ey, -ez, -ew
            s = math.sqrt(ex * ex + ey * ey + ez * ez)
            g = Kr * 2 * math.atan2(s, ew) / s if s > 1e-12 else 0.0
            wx, wy, wz = ang
            mx = g * ex - Dr * wx
            my = g * ey - Dr * wy
            mz = g * ez - Dr * wz
            tn2 = mx * mx + my * my + mz * mz
            if tn2 > Tmax2:
                c = Tmax / math.sqrt(tn2)
                mx, my, mz = mx * c, my * c, mz * c
            apply_f(plug, -1, (fx, fy, fz), pos, world, physicsClientId=cid)
            apply_t(plug, -1, (mx, my, mz), world, physicsClientId=cid)
            step_sim(physicsClientId=cid)
        self._target = np.array([tx, ty, tz])
        self._target_yaw = tyaw
        lin = (ux, uy, uz)
        self._cache = (
            np.asarray(pos),
            p.getEulerFromQuaternion(orn),
            np.asarray(lin),
            np.asarray(ang),
        )
        # the wrist F/T reading: the contact wrench averaged over the control period (a real
        # sensor is low-pass filtered at about the control rate); N and N·m
        self._wrench = np.array([sfx, sfy, sfz, stx, sty, stz]) / n
        self._wrench[:3] /= MM
        self._wrench[3:] /= MM * MM
        peak = math.sqrt(peak2) / MM
        self._peak_force = max(self._peak_force, peak)
        self._step_peak = peak
        self._steps += 1
        obs = self._observe()
        reward, success, violation = insertion_reward(
            self.config.reward, self.measurement(), self._limits
        )
        terminated = success or violation
        truncated = (not terminated) and self._steps >= self.config.max_steps
        return obs, reward, terminated, truncated, self._info(success, violation)

    def _contact_wrench(self) -> np.ndarray:
        """Contact force (N) and torque about the plug origin (N·m) on the plug, world frame,
        summed over `getContactPoints` (the last physics step). Not used by `step` (which
        gets the same wrench from momentum); kept to check it."""
        pts = p.getContactPoints(bodyA=self._plug_id, physicsClientId=self._cid)
        if not pts:
            return np.zeros(6)
        pos, _ = p.getBasePositionAndOrientation(self._plug_id, physicsClientId=self._cid)
        arr = np.array(
            [(*c[5], *c[7], c[9], c[10], *c[11], c[12], *c[13]) for c in pts], dtype=np.float64
        )
        # columns: posOnA(3) normalOnB(3) fn f1 dir1(3) f2 dir2(3); normal on B points to A.
        # The friction forces f1·dir1, f2·dir2 are reported as acting on B, hence the minus
        # (checked against the momentum change; the old `+` inverted the lateral F/T reading).
        f = arr[:, 6:7] * arr[:, 3:6] - arr[:, 7:8] * arr[:, 8:11] - arr[:, 11:12] * arr[:, 12:15]
        r = arr[:, 0:3] - np.asarray(pos)
        force = f.sum(axis=0) / MM
        torque = np.cross(r, f).sum(axis=0) / (MM * MM)
        return np.concatenate([force, torque])

    def _pose(self) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray, np.ndarray]:
        # read once per control step (observation, success, reward and info all use it);
        # `step` and `reset` clear the cache after moving the plug
        if self._cache is None:
            pos, orn = p.getBasePositionAndOrientation(self._plug_id, physicsClientId=self._cid)
            lin, ang = p.getBaseVelocity(self._plug_id, physicsClientId=self._cid)
            rpy = p.getEulerFromQuaternion(orn)
            self._cache = (np.asarray(pos), rpy, np.asarray(lin), np.asarray(ang))
        return self._cache

    def _observe(self) -> np.ndarray:
        pos, rpy, lin, ang = self._pose()
        cfg = self.config
        w = self._wrench
        obs = np.concatenate(
            [
                pos,
                np.degrees(rpy),
                lin,
                np.degrees(ang),
                w[:3] / cfg.force_ref,
                w[3:] / cfg.torque_ref,
            ]
        ).astype(np.float32)
        np.clip(obs, -_OBS_HIGH, _OBS_HIGH, out=obs)
        self._last_obs = obs
        return obs

    def _errors(self) -> tuple[float, float, float]:
        """(lateral error mm, yaw error rad, insertion depth mm) against the *true* socket of
        this episode. Privileged: for `info` (diagnostics, a critic or teacher), never for the
        observation or the reward."""
        pos, rpy, _, _ = self._pose()
        assert self._socket_pose is not None  # placed by _apply_task in __init__
        sx, sy, syaw = self._socket_pose
        exy = math.hypot(pos[0] - sx, pos[1] - sy)
        eyaw = abs(_wrap(rpy[2] - syaw))
        depth = self._spec.max_pin_length - pos[2]
        return exy, eyaw, depth

    def measurement(self, peak_force_n: float | None = None) -> InsertionMeasurement:
        """What a robot measures now (zshot.reward): pose relative to the *believed* socket,
        insertion depth of the lowest pin tip below the face, the wrist force."""
        pos, rpy, _, _ = self._pose()
        return InsertionMeasurement(
            lateral_m=math.hypot(pos[0], pos[1]) / MM,
            yaw_rad=abs(_wrap(rpy[2])),
            depth_m=(self._spec.max_pin_length - pos[2]) / MM,
            force_n=math.sqrt(sum(f * f for f in self._wrench[:3])),
            peak_force_n=self._step_peak if peak_force_n is None else peak_force_n,
        )

    def reward_limits(self) -> InsertionLimits:
        """The plug's and the env's numbers the reward needs besides the weights."""
        cfg = self.config
        return InsertionLimits(
            success_depth_m=self._spec.effective_success_depth / MM,
            max_steps=cfg.max_steps,
            force_ref_n=cfg.force_ref,
            force_limit_n=cfg.force_limit,
        )

    def _info(self, success: bool, violation: bool) -> dict[str, Any]:
        exy, eyaw, depth = self._errors()
        return {
            "is_success": bool(success),
            "safety_violation": bool(violation),
            "peak_force": float(self._peak_force),
            "task": dict(self._task_dict),
            "insertion_depth_mm": float(depth),
            "lateral_error_mm": float(exy),
            "yaw_error_rad": float(eyaw),
            "elapsed_s": self._steps * self.config.control_dt,
            "socket_pose": self._socket_info(),
        }

    def _socket_info(self) -> np.ndarray:
        """The episode's true socket pose in the believed frame [m, m, rad] (privileged);
        an array, so dataset writers (minari.DataCollector) store it as one."""
        assert self._socket_pose is not None
        x, y, yaw = self._socket_pose
        return np.array([x / MM, y / MM, yaw])

    # ------------------------------------------------------------------ rendering

    def render(self) -> np.ndarray | None:
        """An RGB frame (H, W, 3) uint8 from PyBullet's software renderer (no display)."""
        if self.render_mode != "rgb_array":
            return None
        return self.render_frame()

    def render_frame(
        self, width: int = 480, height: int = 360, yaw: float = 35.0, pitch: float = -30.0
    ) -> np.ndarray:
        """Render the scene from an orbit camera around the socket (mm scene units)."""
        size = max(self._spec.body.half_extent_xy()) * 2 + 2 * self._spec.max_pin_length
        view = p.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=(0, 0, self._spec.max_pin_length / 2),
            distance=size * 1.6, yaw=yaw, pitch=pitch, roll=0, upAxisIndex=2,
            physicsClientId=self._cid,
        )  # fmt: skip
        proj = p.computeProjectionMatrixFOV(
            fov=45, aspect=width / height, nearVal=1.0, farVal=size * 10, physicsClientId=self._cid
        )
        _, _, rgba, _, _ = p.getCameraImage(
            width, height, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=self._cid
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3]

    def close(self) -> None:
        """Disconnect the physics client."""
        if getattr(self, "_cid", -1) >= 0:
            try:
                p.disconnect(physicsClientId=self._cid)
            except p.error:
                pass
            self._cid = -1
        super().close()
