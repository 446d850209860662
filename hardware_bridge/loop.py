"""The control loop: runtime -> safety layer -> robot, at the configured rate, under a watchdog.

Per period:  read the robot -> ask the runtime for an action (deadline) -> safety filter
-> command (or hold) -> wait for the period's end (real robots) -> read -> record.

- A reply that misses its deadline: hold for that period (zero twist).
- K consecutive misses: stop the robot and abort the episode (`runtime_lost`). Since the
  first miss already holds, a runtime that dies makes the robot stand still within one period.
- Force/torque over threshold: retract straight up for `retract_steps` periods, stop, abort.
- The runtime coming back: `restore_runtime` re-handshakes and replays the context (every
  transition since the last reset_task, kept here) so the posterior is what it was.

The loop talks to the runtime through the `Policy` seam (RuntimeClient satisfies it) so tests
can put fake runtimes behind it. Transport failures are recognised by the exception *bases*
RuntimeClient's errors derive from: TimeoutError, ConnectionError, RuntimeError.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hardware_bridge.config import SafetyLimits, WatchdogConfig
from hardware_bridge.robot import Robot, RobotState
from hardware_bridge.safety import SafeCommand, SafetyFlag, SafetyLayer
from hardware_bridge.watchdog import Watchdog

__all__ = [
    "ControlLoop",
    "EpisodeResult",
    "Policy",
    "PolicyState",
    "StepRecord",
    "StepSink",
]

FloatArray = npt.NDArray[np.float64]
# Errors of a round trip that mean "no usable reply this period" (RuntimeTimeout,
# RuntimeUnavailable and RuntimeErrorReply derive from these).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError, RuntimeError)
OBSERVE_CHUNK = 256  # transitions per OBSERVE message when replaying (~50 KB at 50 floats)


class PolicyState(Protocol):
    """What get_state returns (runtime.client.PosteriorState)."""

    @property
    def mean(self) -> npt.NDArray[np.float32]: ...
    @property
    def var(self) -> npt.NDArray[np.float32]: ...
    @property
    def count(self) -> int: ...


class Policy(Protocol):
    """The runtime as the loop sees it: the subset of RuntimeClient it uses."""

    def hello(
        self,
        *,
        obs_dim: int | None = None,
        act_dim: int | None = None,
        artifact_sha256: str | None = None,
    ) -> Any:
        """Open a (new) session; returns the handshake reply."""
        ...

    def step(
        self,
        obs: npt.ArrayLike,
        transition: npt.ArrayLike | None = None,
        *,
        timeout_s: float | None = None,
        stochastic: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Add `transition` (if given) to the context; return the action for `obs` (sampled
        from the policy with `stochastic`, else its mean action)."""
        ...

    def observe(self, transitions: npt.ArrayLike) -> int:
        """Add transitions [n, transition_dim]; returns the context count."""
        ...

    def reset_task(self, descriptor: npt.ArrayLike | None = None) -> None:
        """A new task: posterior back to the prior (recurrent: hidden state cleared;
        conditioned: `descriptor` is the task's)."""
        ...

    def reset_episode(self) -> None:
        """New episode, posterior kept."""
        ...

    def set_mode(self, mode: str, update: str = "episode") -> None:
        """explore / exploit; posterior update per step or per episode."""
        ...

    def get_state(self) -> PolicyState:
        """Posterior mean/var and context count."""
        ...


@dataclass(frozen=True)
class StepRecord:
    """One control period, as recorded. Arrays are float64 unless stated."""

    t_wall: float  # time.time() at the start of the period [s]
    t_mono: float  # time.monotonic() at the start of the period [s]
    obs: npt.NDArray[np.float32]  # [obs_dim] observation the action was computed for
    commanded: FloatArray  # [act_dim] runtime's action (NaN: no usable reply)
    sent: FloatArray  # [act_dim] what the safety layer let through
    reward: float
    terminated: bool
    truncated: bool
    next_obs: npt.NDArray[np.float32]  # [obs_dim]
    z_mean: FloatArray  # [latent_dim] posterior mean in use (NaN if unknown)
    z_var: FloatArray  # [latent_dim]
    latency_s: float  # runtime round trip (NaN on a miss)
    flags: int  # SafetyFlag bits
    wrench: FloatArray  # [6] at the start of the period


class StepSink(Protocol):
    """Where steps go (the Recorder); the loop calls these in order."""

    def begin_episode(self, meta: dict[str, Any]) -> None:
        """A new episode with its task and mode."""
        ...

    def record(self, step: StepRecord) -> None:
        """One period."""
        ...

    def end_episode(self, summary: dict[str, Any]) -> Any:
        """The episode is over; `summary` is EpisodeResult.as_dict()."""
        ...


@dataclass
class EpisodeResult:
    """Outcome of one episode (one row of data behind the trials table)."""

    steps: int = 0
    success: bool = False
    episode_return: float = 0.0
    duration_s: float = 0.0  # control time: steps / control_hz
    peak_force: float = 0.0  # max |F| seen [N]
    aborted: bool = False
    abort_reason: str = ""
    force_limit: bool = False  # the robot ended the episode on its own force limit
    misses: int = 0  # replies that missed their deadline
    holds: int = 0  # periods the safety layer replaced by a hold
    flags: int = 0  # OR of every step's SafetyFlag bits

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable view."""
        return dict(self.__dict__)


@dataclass
class _Context:
    """Every transition sent to the runtime since its last reset_task: [n, transition_dim]."""

    rows: list[npt.NDArray[np.float32]] = field(default_factory=list)

    def array(self) -> npt.NDArray[np.float32]:
        return np.stack(self.rows) if self.rows else np.zeros((0, 0), dtype=np.float32)


class ControlLoop:
    """Runs episodes of `robot` driven by `policy` through a SafetyLayer and a Watchdog."""

    def __init__(
        self,
        robot: Robot,
        policy: Policy,
        *,
        safety: SafetyLimits,
        watchdog: WatchdogConfig,
        control_hz: float | None = None,
        realtime: bool = False,
        update: str = "episode",
        stochastic: bool = False,
        latent_dim: int = 0,
        sink: StepSink | None = None,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`control_hz` defaults to the robot's; `realtime` paces periods with `sleep`;
        `stochastic` asks the runtime for sampled actions (STEP flag) in every episode."""
        self.robot = robot
        self.policy = policy
        self.control_hz = float(control_hz or robot.control_hz)
        self.period = 1.0 / self.control_hz
        # A robot whose actions are not Cartesian twists (a legged robot's joint torques)
        # brings its own safety layer; every other robot gets the twist/box/force layer.
        make_layer = getattr(robot, "make_safety_layer", None)
        self.safety: SafetyLayer = (
            make_layer(safety, self.control_hz)
            if callable(make_layer)
            else SafetyLayer(safety, robot.action_spec, self.control_hz)
        )
        self.limits = safety
        self.watchdog_cfg = watchdog
        self.watchdog = Watchdog(
            watchdog.deadline_fraction * self.period, watchdog.max_consecutive_misses
        )
        self.realtime = realtime
        self.update = update
        self.stochastic = stochastic
        self.latent_dim = latent_dim
        self.sink = sink
        self.log = log
        self.clock = clock
        self.sleep = sleep
        self.context = _Context()
        self.mode = "explore"
        self.runtime_ok = True
        self.descriptor: npt.NDArray[np.float32] | None = None

    # -- runtime session ----------------------------------------------------------------
    def reset_task(self, descriptor: npt.ArrayLike | None = None) -> None:
        """New task: the runtime's posterior back to the prior (its recurrent state cleared;
        a conditioned artifact told the task's `descriptor`), the local context log too."""
        self.descriptor = None if descriptor is None else np.asarray(descriptor, np.float32)
        self._reset_runtime_task()
        self.context = _Context()

    def _reset_runtime_task(self) -> None:
        if self.descriptor is None:
            self.policy.reset_task()
        else:
            self.policy.reset_task(self.descriptor)

    def restore_runtime(self) -> bool:
        """Wait (up to reconnect_timeout_s) for the runtime; re-handshake and replay the context.

        Returns True when the runtime answers again with the posterior rebuilt from the
        transitions kept here (checked against the runtime's context count).
        """
        cfg = self.watchdog_cfg
        until = self.clock() + cfg.reconnect_timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                # A client that can reopen its socket (RuntimeClient.reconnect) drops whatever
                # the dead connection still queued; the fakes in tests have no socket.
                reopen = getattr(self.policy, "reconnect", None)
                if callable(reopen):
                    reopen()
                self.policy.hello(
                    obs_dim=len(self.robot.obs_names), act_dim=self.robot.action_spec.act_dim
                )
                self._reset_runtime_task()
                ctx = self.context.array()
                count = 0
                for i in range(0, len(ctx), OBSERVE_CHUNK):
                    count = self.policy.observe(ctx[i : i + OBSERVE_CHUNK])
                self.policy.set_mode(self.mode, self.update)
            except TRANSPORT_ERRORS as exc:
                if self.clock() >= until:
                    self.log(
                        f"runtime did not come back within {cfg.reconnect_timeout_s:.1f} s "
                        f"({attempt} handshake attempts; last error: {exc})"
                    )
                    self.runtime_ok = False
                    return False
                self.sleep(cfg.reconnect_poll_s)
                continue
            if len(ctx) and count != len(ctx):
                self.log(
                    f"runtime back, but its context holds {count} transitions after replaying "
                    f"{len(ctx)}"
                )
            else:
                self.log(f"runtime back: new session, {len(ctx)} context transitions replayed")
            self.runtime_ok = True
            self.watchdog.reset()
            return True

    # -- one episode ----------------------------------------------------------------------
    def run_episode(self, mode: str, meta: dict[str, Any] | None = None) -> EpisodeResult:
        """One episode in `mode` (explore|exploit) from the robot's start pose."""
        if mode not in ("explore", "exploit"):
            raise ValueError(f"mode must be explore or exploit, got {mode!r}")
        self.mode = mode
        result = EpisodeResult()
        z_mean, z_var = self._nan_z(), self._nan_z()
        try:
            self.policy.set_mode(mode, self.update)
            self.policy.reset_episode()
            z_mean, z_var = self._posterior()
        except TRANSPORT_ERRORS as exc:
            result.aborted, result.abort_reason = True, f"runtime_lost: at episode start: {exc}"
            self.runtime_ok = False
            self.log(f"episode not started: the runtime did not answer ({exc})")
            return result

        state = self.robot.reset()
        self.safety.reset()
        self.watchdog.reset()
        if self.sink is not None:
            self.sink.begin_episode({**(meta or {}), "mode": mode, "control_hz": self.control_hz})
        transition: npt.NDArray[np.float32] | None = None
        # Transitions the runtime certainly did not get (request refused or never sent, or
        # produced while retracting without asking it); sent in one OBSERVE at episode end.
        # The posterior is a product of Gaussian factors, so late delivery changes nothing.
        undelivered: list[npt.NDArray[np.float32]] = []
        retract_left = -1  # >= 0 while retracting after a force stop
        deadline = self.watchdog.deadline_s
        try:
            for _ in range(self.robot.max_steps):
                t_wall, t0 = time.time(), self.clock()
                peak = _force_norm(state.wrench)
                result.peak_force = max(result.peak_force, peak)
                if state.protective_stop:
                    result.aborted, result.abort_reason = (
                        True,
                        "protective_stop: robot stopped itself",
                    )
                    self.log("the robot's controller made a protective stop; episode aborted")
                    break

                latency = float("nan")
                if retract_left >= 0:
                    if transition is not None:
                        undelivered.append(transition)
                        transition = None
                    safe = self.safety.retract(state)
                else:
                    action: npt.NDArray[np.float32] | None
                    try:
                        action = self.policy.step(
                            state.obs, transition, timeout_s=deadline, stochastic=self.stochastic
                        )
                        latency = self.clock() - t0
                        self.watchdog.reply()
                    except TRANSPORT_ERRORS as exc:
                        action = None
                        if transition is not None and not isinstance(exc, TimeoutError):
                            undelivered.append(transition)  # refused or never sent
                        result.misses += 1
                        tripped = self.watchdog.miss()
                        if tripped:
                            safe = self.safety.hold(SafetyFlag.NO_REPLY | SafetyFlag.RUNTIME_LOST)
                            self.robot.stop()
                            nxt = self.robot.observe()
                            last = self._emit(
                                result, t_wall, t0, state, nxt, safe, latency, z_mean, z_var
                            )
                            if np.all(np.isfinite(last)):
                                self.context.rows.append(last)  # replayed on restore
                            result.aborted = True
                            result.abort_reason = (
                                f"runtime_lost: {self.watchdog.consecutive} consecutive replies "
                                f"missed the {deadline * 1000:.0f} ms deadline (last: {exc})"
                            )
                            self.runtime_ok = False
                            self.log(
                                "runtime not answering: robot stopped, episode aborted "
                                f"({result.abort_reason})"
                            )
                            break
                    # A timed-out request may still have reached the runtime, so the
                    # transition it carried counts as delivered (no resend: no duplicates);
                    # if the runtime died, restore_runtime replays the local log anyway.
                    transition = None
                    safe = self.safety.filter(action, state)
                    if safe.flags & SafetyFlag.FORCE_STOP:
                        retract_left = self.limits.retract_steps
                        self.log(
                            f"force/torque limit: |F| = {peak:.1f} N (max "
                            f"{self.limits.max_force:.1f}); retracting"
                        )
                        result.aborted, result.abort_reason = (
                            True,
                            (f"force_limit: |F| = {peak:.1f} N > {self.limits.max_force:.1f} N"),
                        )
                if safe.flags.holds:
                    result.holds += 1
                    self.robot.hold()
                else:
                    self.robot.command(safe.sent)
                if self.realtime:
                    left = t0 + self.period - self.clock()
                    if left > 0:
                        self.sleep(left)
                nxt = self.robot.observe()
                transition = self._emit(
                    result, t_wall, t0, state, nxt, safe, latency, z_mean, z_var
                )
                if np.all(np.isfinite(transition)):
                    self.context.rows.append(transition)
                else:
                    transition = None  # a faulty reading must not reach the posterior
                state = nxt
                if self.update == "step" and not safe.flags.holds and retract_left < 0:
                    z_mean, z_var = self._posterior_or(z_mean, z_var)
                if retract_left >= 0:
                    retract_left -= 1
                    if retract_left < 0:
                        self.robot.stop()
                        break
                    continue
                if nxt.success:
                    result.success = True
                if nxt.terminated and nxt.info.get("safety_violation"):
                    result.force_limit = True
                if nxt.terminated or nxt.truncated:
                    break
            # The last transition never rode on a step request: hand it over now, with any
            # the runtime did not get during the episode.
            if transition is not None:
                undelivered.append(transition)
            if undelivered and self.runtime_ok:
                try:
                    self.policy.observe(np.stack(undelivered))
                except TRANSPORT_ERRORS as exc:
                    self.log(
                        f"could not send {len(undelivered)} transitions at episode end ({exc})"
                    )
        finally:
            if not result.aborted:
                self.robot.hold()
            result.duration_s = result.steps / self.control_hz
            if self.sink is not None:
                self.sink.end_episode(result.as_dict())
        return result

    # -- helpers ----------------------------------------------------------------------------
    def _emit(
        self,
        result: EpisodeResult,
        t_wall: float,
        t0: float,
        state: RobotState,
        nxt: RobotState,
        safe: SafeCommand,
        latency: float,
        z_mean: FloatArray,
        z_var: FloatArray,
    ) -> npt.NDArray[np.float32]:
        """Account and record one period; returns its transition (s, a_sent, r, s') float32."""
        flags = int(safe.flags)
        if nxt.protective_stop:
            flags |= int(SafetyFlag.PROTECTIVE_STOP)
        result.steps += 1
        result.flags |= flags
        result.episode_return += float(nxt.reward)
        result.peak_force = max(
            result.peak_force, _force_norm(nxt.wrench), float(nxt.info.get("peak_force", 0.0))
        )
        if self.sink is not None:
            self.sink.record(
                StepRecord(
                    t_wall=t_wall,
                    t_mono=t0,
                    obs=state.obs,
                    commanded=safe.commanded,
                    sent=safe.sent,
                    reward=float(nxt.reward),
                    terminated=bool(nxt.terminated),
                    truncated=bool(nxt.truncated),
                    next_obs=nxt.obs,
                    z_mean=z_mean,
                    z_var=z_var,
                    latency_s=latency,
                    flags=flags,
                    wrench=np.asarray(state.wrench, dtype=np.float64),
                )
            )
        return np.concatenate([state.obs, safe.sent, [nxt.reward], nxt.obs]).astype(np.float32)

    def _nan_z(self) -> FloatArray:
        return np.full(self.latent_dim, np.nan)

    def _posterior(self) -> tuple[FloatArray, FloatArray]:
        st = self.policy.get_state()
        mean = np.asarray(st.mean, dtype=np.float64)
        if not self.latent_dim:
            self.latent_dim = mean.shape[0]
        return mean, np.asarray(st.var, dtype=np.float64)

    def _posterior_or(self, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
        try:
            return self._posterior()
        except TRANSPORT_ERRORS:
            return mean, var


def _force_norm(wrench: npt.ArrayLike) -> float:
    """|F| [N] of a wrench [6]; 0 for a non-finite reading (the safety layer flags those)."""
    fx, fy, fz = (float(v) for v in np.asarray(wrench).reshape(-1)[:3])
    f = math.sqrt(fx * fx + fy * fy + fz * fz)
    return f if math.isfinite(f) else 0.0
