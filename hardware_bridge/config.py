"""Hardware-bridge configuration: limits and rates are data, never literals in code.

`TrialsConfig` is the root (files under `configs/trials/` validate against it); the safety
limits, watchdog, recorder and robot-adapter settings are sections of it so one YAML file
describes a whole trial session.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator, model_validator

from zshot.config import ProfileName, StrictModel
from zshot.reward import RewardConfig

__all__ = [
    "LocomotionLimits",
    "LocomotionRobotConfig",
    "RecorderConfig",
    "SafetyLimits",
    "SimRobotConfig",
    "TrialsConfig",
    "URConfig",
    "WatchdogConfig",
]


class _Finite(StrictModel):
    """A config whose floats must be finite: a limit of inf is no limit, NaN never compares."""

    model_config = ConfigDict(allow_inf_nan=False)


class SafetyLimits(_Finite):
    """What may reach the robot, in SI units, in the frame of the *believed* socket pose.

    The workspace box is given relative to the socket (x, y centred on it, z up from the
    socket's top face). Every command the safety layer returns keeps the TCP inside it for
    the next control period, under the speed limits, and (unless braking for the box, a
    hold or a retract) within the per-step change limits.
    """

    workspace_low: tuple[float, float, float] = (-0.03, -0.03, -0.03)
    """Lower corner of the allowed TCP box [m] relative to the believed socket frame."""
    workspace_high: tuple[float, float, float] = (0.03, 0.03, 0.08)
    """Upper corner of the allowed TCP box [m]."""
    max_lin_speed: float = Field(default=0.05, gt=0, le=1.0)
    """Max translational speed |v| [m/s] (norm of vx, vy, vz)."""
    max_ang_speed: float = Field(default=0.5, gt=0, le=6.3)
    """Max rotational speed |w| [rad/s] (norm of wx, wy, wz)."""
    max_lin_delta: float = Field(default=0.02, gt=0)
    """Max change of the translational command per control step [m/s per step]."""
    max_ang_delta: float = Field(default=0.25, gt=0)
    """Max change of the rotational command per control step [rad/s per step]."""
    max_force: float = Field(default=40.0, gt=0)
    """|F| above this [N] -> stop and retract (the episode ends, marked aborted)."""
    max_torque: float = Field(default=4.0, gt=0)
    """|T| above this [N m] -> stop and retract."""
    retract_speed: float = Field(default=0.01, gt=0)
    """Speed of the retract move straight up, away from the socket [m/s]."""
    retract_steps: int = Field(default=5, ge=0, le=1000)
    """Control periods spent retracting after a force stop before holding still."""

    @model_validator(mode="after")
    def _box_is_a_box(self) -> SafetyLimits:
        for axis, lo, hi in zip("xyz", self.workspace_low, self.workspace_high, strict=True):
            if not lo < hi:
                raise ValueError(f"workspace_low.{axis}={lo} must be < workspace_high.{axis}={hi}")
        if self.retract_speed > self.max_lin_speed:
            raise ValueError(
                f"retract_speed={self.retract_speed} exceeds max_lin_speed={self.max_lin_speed}"
            )
        return self


class WatchdogConfig(_Finite):
    """Deadlines on the runtime's replies and what happens when they are missed."""

    deadline_fraction: float = Field(default=0.5, gt=0, le=1.0)
    """Reply deadline as a fraction of the control period (10 Hz, 0.5 -> 50 ms)."""
    max_consecutive_misses: int = Field(default=3, ge=1, le=1000)
    """K: this many missed deadlines in a row -> stop the robot and abort the episode."""
    reconnect_timeout_s: float = Field(default=5.0, ge=0, le=3600)
    """After an abort for runtime loss, how long to wait for the runtime to return."""
    reconnect_poll_s: float = Field(default=0.25, gt=0)
    """Interval between handshake attempts while waiting for the runtime."""


class RecorderConfig(_Finite):
    """The crash-safe recorder."""

    fsync_every: int = Field(default=10, ge=0, le=10_000)
    """fsync the write-ahead log every this many steps (0: never). A kill -9 loses nothing
    already written whatever this is (the page cache outlives the process); fsync guards
    against power loss. One fsync costs ~3 ms on the dev machine (bench/bridge_overhead.py),
    so the default bounds power-loss exposure to 10 steps (1 s at 10 Hz) for ~0.3 ms/step."""
    compression: str | None = Field(default=None, pattern="^(gzip|lzf)$")
    """HDF5 dataset compression of episode files (None: fastest, largest)."""


class SimRobotConfig(_Finite):
    """SimRobot: the PyBullet insertion env behind the Robot protocol."""

    sim_config: str | None = None
    """Path of a configs/sim/*.yaml overriding the env defaults (None: defaults)."""
    profile: ProfileName | None = None
    """Insertion benchmark profile (sim.config.PROFILES; `zshot trials --profile`); it wins
    over the socket-error keys of `sim_config`. None: the sim config's values (default hard)."""
    test_tasks: bool = True
    """Sample the hidden task parameters from the family's held-out test split."""


class LocomotionLimits(_Finite):
    """What may reach a legged robot's joints, in normalised action units (fraction of each
    joint's torque limit, the env's Box(-1, 1)). Non-finite or mis-shaped commands and
    readings are held (zero torque) whatever these are."""

    max_action: float = Field(default=1.0, gt=0, le=1.0)
    """|a_i| at most this: a torque cap below the motors' rating (e.g. 0.8 on new ground)."""
    max_action_delta: float | None = Field(default=None, gt=0, le=2.0)
    """Max change of any joint's command per control step (None: no rate limit)."""


class LocomotionRobotConfig(_Finite):
    """LocomotionRobot: the PyBullet terrain env (`sim.terrain.TerrainEnv`) behind the Robot
    protocol, with its joint-space safety limits."""

    terrain_config: str | None = None
    """Path of a configs/terrain/*.yaml (relative to the cwd or the repository root; None:
    the cheetah-vel defaults). Use the artifact's training config so the dims match.
    Which split a trial runs is named per entry of `plugs`: 'test', 'train', 'test/3'."""
    limits: LocomotionLimits = Field(default_factory=LocomotionLimits)


class URConfig(_Finite):
    """Universal Robots via ur_rtde (extra `robot`)."""

    host: str = "192.168.1.10"
    """Robot controller address."""
    rtde_frequency: float = Field(default=500.0, gt=0, le=500.0)
    """RTDE frequency [Hz] (e-Series: 500, CB3: 125)."""
    socket_position: tuple[float, float, float] = (0.4, 0.0, 0.1)
    """Believed socket position in the robot base frame [m] (top face centre)."""
    socket_yaw: float = 0.0
    """Believed socket yaw about base z [rad]."""
    start_offset: tuple[float, float, float] = (0.0, 0.0, 0.03)
    """Start pose of each episode relative to the socket [m] (above it)."""
    start_speed: float = Field(default=0.05, gt=0, le=0.25)
    """moveL speed [m/s] used to reach the start pose."""
    acceleration: float = Field(default=0.25, gt=0, le=2.0)
    """Cartesian acceleration [m/s^2] for speedL / speedStop."""
    mode: str = Field(default="speed", pattern="^(speed|servo)$")
    """speed: speedL twist commands; servo: servoL to pose + twist * period."""
    servo_lookahead_s: float = Field(default=0.1, ge=0.03, le=0.2)
    servo_gain: float = Field(default=300.0, ge=100, le=2000)
    protective_stop_force: float = Field(default=60.0, gt=0)
    """|F| above this [N] in a reading triggers the controller's protective stop."""
    force_limit: float = Field(default=40.0, gt=0)
    """|F| above this [N] ends the episode as a force-limit violation (the reward's, as the
    sim's `force_limit`; keep it below protective_stop_force)."""
    insertion_depth: float = Field(default=0.01, gt=0)
    """Success when the pin tips are this far below the socket top face [m] (the plug spec's
    success depth) within the reward's success radius and yaw of the believed socket."""
    reward: RewardConfig = Field(default_factory=RewardConfig)
    """The reward's weights (zshot.reward): keep the training sim's (manifest env.reward)."""
    action_scale_lin: float = Field(default=0.02, gt=0)
    """m/s per unit of a normalised linear action (must match the sim used in training)."""
    action_scale_ang: float = Field(default=0.2, gt=0)
    """rad/s per unit of a normalised angular action."""
    max_steps: int = Field(default=100, ge=1)
    """Episode time limit in control steps."""
    control_hz: float = Field(default=10.0, ge=0.1, le=500)
    """The robot's control rate (the loop may be configured to another; see TrialsConfig)."""
    tcp_to_tip: float = Field(default=0.015, ge=0, le=0.2)
    """Distance from the TCP (plug origin, as in the sim) down to the pin tips [m]."""


class TrialsConfig(_Finite):
    """A few-shot trial session: which plugs, how many episodes, where the runtime is."""

    runtime: str = "tcp://127.0.0.1:5555"
    """Endpoint of the zshot runtime."""
    server_public_key: str | None = None
    """CurveZMQ: the runtime's public key file (NAME.key, from `zshot keys generate`)."""
    client_secret_key: str | None = None
    """CurveZMQ: this bridge's key pair file (NAME.key_secret); its NAME.key goes into the
    runtime's allow-list directory. Both keys or neither."""
    robot: str = Field(default="sim", pattern="^(sim|sim-locomotion|mock|ur)$")
    """Which Robot adapter: sim (PyBullet insertion), sim-locomotion (PyBullet terrain
    locomotion; `plugs` then names task splits or ids: test, train, test/3), mock (tests),
    ur (Universal Robots via ur_rtde)."""
    plugs: list[str] = Field(default_factory=lambda: ["US-AC-plug", "EU-AC-plug", "Metal-peg-rd"])
    adapt_episodes: int = Field(default=3, ge=0, le=100)
    """K exploration episodes (posterior sampling) before evaluation."""
    eval_episodes: int = Field(default=10, ge=1, le=10_000)
    """N evaluation episodes with z = posterior mean."""
    tasks_per_plug: int = Field(default=1, ge=1, le=1000)
    """Hidden tasks per plug: plug i runs tasks seed + i, ..., seed + i + T - 1 of its split,
    each from the prior (K adaptation + N evaluation episodes); its row sums them (T·N)."""
    seed: int = 0
    control_hz: float | None = Field(default=None, ge=0.1, le=1000)
    """Control rate [Hz] of the loop; None: the robot's (its adapter's config). The loop's
    rate and deadlines never come from the runtime: a runtime whose artifact announces
    another rate at handshake is refused."""
    realtime: bool | None = None
    """Pace the loop at control_hz. None: yes for real robots, no for sim/mock (a sim step
    is one simulated period whatever the wall clock; deadlines still apply)."""
    update: str = Field(default="episode", pattern="^(step|episode)$")
    """When the runtime's posterior absorbs new transitions (runtime set_mode `update`).
    Left unset with robot sim-locomotion it is "step" (continuous adaptation, as RMA)."""
    sample_actions: bool = False
    """Ask the runtime for actions sampled from the policy (the STEP flag `stochastic`) instead
    of its mean action, in every episode. On tight fits the noise lets a plug stuck on the
    socket face find the hole (BENCHMARKS.md `## offline` r7, in sim); the safety layer bounds
    sampled actions like any other."""
    task_descriptors: dict[str, list[float]] = Field(default_factory=dict)
    """Task descriptor per entry of `plugs` (`zshot trials --task-descriptor PLUG=v1,v2,..`),
    sent with each task's RESET_TASK. Required for every plug when the runtime serves a
    `conditioned` artifact (each of its HELLO `descriptor_dim` values: a one-hot task id, a
    plug descriptor, a goal); refused with any other kind."""
    plug_descriptors: bool = False
    """`zshot trials --plug-descriptors`: the task descriptors (those not given) are the
    plugs' spec descriptors (zshot/plug_descriptor.py); the runtime's artifact must report the
    same `plug_descriptor_version` at HELLO, else the trials are refused (exit 2)."""
    goal_descriptors: bool = False
    """`zshot trials --goal-descriptors`: each plug's task descriptor (unless given) is its
    inserted pose as a goal (zshot/plug_descriptor.py `plug_inserted_goal`) with the ε the
    runtime's goal-conditioned artifact reports at HELLO (`goal_epsilon`); refused (exit 2)
    when the artifact is not a goal artifact."""
    record: str | None = None
    """Directory for recordings (None: do not record)."""
    safety: SafetyLimits = Field(default_factory=SafetyLimits)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    sim: SimRobotConfig = Field(default_factory=SimRobotConfig)
    locomotion: LocomotionRobotConfig = Field(default_factory=LocomotionRobotConfig)
    ur: URConfig = Field(default_factory=URConfig)

    @field_validator("runtime")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        from runtime.protocol import endpoint_problem

        problem = endpoint_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _one_descriptor_source(self) -> TrialsConfig:
        if self.plug_descriptors and self.goal_descriptors:
            raise ValueError(
                "plug_descriptors and goal_descriptors exclude each other (an artifact is told "
                "a plug descriptor or a goal, not both)"
            )
        return self

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> TrialsConfig:
        if (self.server_public_key is None) != (self.client_secret_key is None):
            raise ValueError(
                "CurveZMQ needs both server_public_key and client_secret_key (or neither)"
            )
        return self

    @model_validator(mode="after")
    def _locomotion_updates_per_step(self) -> TrialsConfig:
        # A legged robot adapts while it walks: its posterior follows every step unless the
        # config asks otherwise explicitly.
        if self.robot == "sim-locomotion" and "update" not in self.model_fields_set:
            self.update = "step"
        if self.robot == "sim-locomotion" and "plugs" not in self.model_fields_set:
            self.plugs = ["test/0", "test/1", "test/2"]  # plug names mean nothing to it
        return self
