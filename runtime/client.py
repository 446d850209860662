"""`RuntimeClient`: the Python client of `zshot serve` (the wire format is runtime.protocol,
the specification docs/PROTOCOL.md).

This is what `hardware_bridge` imports from `runtime`: numpy, pyzmq and pydantic only.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq
from pydantic import ValidationError

from runtime.protocol import (
    ARTIFACT_KINDS,
    FLAG_STOCHASTIC,
    HEADER,
    HIST_EDGES_US,
    MAGIC,
    MODES,
    PROTOCOL_VERSION,
    REPLY_BIT,
    STATS_FIELDS,
    U32,
    U64,
    UPDATES,
    ArtifactKind,
    ErrorCode,
    HelloReply,
    HelloRequest,
    MsgType,
    endpoint_problem,
    f32_frame,
    raw_send,
)

__all__ = [
    "PosteriorState",
    "RuntimeClient",
    "RuntimeErrorReply",
    "RuntimeTimeout",
    "RuntimeUnavailable",
]


def _empty() -> npt.NDArray[np.float32]:
    return np.zeros(0, np.float32)


@dataclass(frozen=True)
class PosteriorState:
    """GET_STATE reply: the session's posterior over z and the z its policy uses now
    (kind posterior; empty arrays for the other kinds), the transitions received since
    the task began, the artifact's kind and its per-kind state (recurrent: the hidden
    state; conditioned: the descriptor; posterior and weights: empty)."""

    mean: npt.NDArray[np.float32]
    var: npt.NDArray[np.float32]
    z: npt.NDArray[np.float32]
    count: int
    kind: ArtifactKind = "posterior"
    state: npt.NDArray[np.float32] = field(default_factory=_empty)


class RuntimeTimeout(TimeoutError):
    """No reply before the deadline. The client stays usable: a late reply is dropped."""


class RuntimeErrorReply(RuntimeError):
    """The server answered with an ERROR reply."""

    def __init__(self, code: int, message: str) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        super().__init__(f"{name}: {message}")
        self.code = code
        self.message = message


class RuntimeUnavailable(ConnectionError):
    """No connection to the server could carry the request (none is up, or the handshake,
    e.g. CurveZMQ authentication, never completed)."""


MAX_TIMEOUT_S = 86_400.0  # a deadline beyond a day is a unit error, not a deadline
_POLL_SLICE_MS = 1000  # longest single wait (keeps the C-level timeout in range)
_NOBLOCK_MORE = zmq.NOBLOCK | zmq.SNDMORE
_F4 = np.dtype("<f4")
MAX_BUSY_POLL_US = 100_000.0  # a busy-poll window beyond 0.1 s is a unit error


def _timeout(value: float, what: str = "timeout_s") -> float:
    """A deadline in seconds: finite, > 0 and at most MAX_TIMEOUT_S (ValueError otherwise)."""
    t = float(value)
    if not (math.isfinite(t) and 0 < t <= MAX_TIMEOUT_S):
        raise ValueError(f"{what} must be in (0, {MAX_TIMEOUT_S:.0f}] s, got {value}")
    return t


def _bad_reply(what: str) -> RuntimeErrorReply:
    return RuntimeErrorReply(ErrorCode.BAD_PAYLOAD, f"malformed reply: {what}")


class RuntimeClient:
    """DEALER client of `zshot serve` with a per-request deadline.

    Not thread-safe (one ZeroMQ socket): give each thread its own client. After a missed
    deadline the next request works normally; the late reply is recognised by its sequence
    number and dropped. A missed deadline after `reconnect_after_s` without any reply closes
    and reopens the socket (dropping anything queued); the session is kept. Deadlines are
    ZeroMQ receive timeouts, whose resolution is 1 ms: a timeout fires up to 1 ms late.

    Every reply is checked before it is used: a malformed one (wrong frame count or size)
    raises `RuntimeErrorReply` (BAD_PAYLOAD), like an error reply, never anything else.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 0.1,
        server_public_key: bytes | None = None,
        client_keys: tuple[bytes, bytes] | None = None,
        reconnect_after_s: float = 1.0,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        busy_poll_us: float = 0.0,
    ) -> None:
        """Connect to `endpoint` (e.g. tcp://127.0.0.1:5555). With CurveZMQ give the server's
        public key and this client's (public, secret) key pair, both Z85 bytes.

        `busy_poll_us` > 0: after each request, poll for the reply without sleeping for up
        to this long (bounded by the deadline) before a blocking receive. It saves the
        wake-up of a sleeping thread when the reply comes within the window, and burns
        that thread's core meanwhile (docs/PROTOCOL.md "Client busy-poll"). 0: off."""
        problem = endpoint_problem(endpoint)
        if problem is not None:
            raise ValueError(problem)
        self.timeout_s = _timeout(timeout_s)
        spin = float(busy_poll_us)
        if not (math.isfinite(spin) and 0 <= spin <= MAX_BUSY_POLL_US):
            raise ValueError(
                f"busy_poll_us must be in [0, {MAX_BUSY_POLL_US:g}], got {busy_poll_us}"
            )
        self._spin_s = spin / 1e6
        if (server_public_key is None) != (client_keys is None):
            raise ValueError("CurveZMQ needs both server_public_key and client_keys")
        self.endpoint = endpoint
        self.reconnect_after_s = reconnect_after_s
        self._server_key = server_public_key
        self._client_keys = client_keys
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket[bytes] | None = None
        self._rcvtimeo = -2
        self._seq = 0
        self._last_reply = time.monotonic()
        self.session_id = 0
        self.info: HelloReply | None = None
        self._connect()

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # IMMEDIATE: queue only on completed connections, so a request made while the
        # server is down fails now (RuntimeUnavailable) instead of running seconds later.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 20)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        try:
            if self._server_key is not None and self._client_keys is not None:
                sock.curve_serverkey = self._server_key
                sock.curve_publickey, sock.curve_secretkey = self._client_keys
            sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise RuntimeUnavailable(f"cannot connect to {self.endpoint}: {exc}") from None
        self._sock = sock
        self._rcvtimeo = -2

    def reconnect(self) -> None:
        """Close and reopen the socket (drops queued requests and replies); keeps the session."""
        if self._sock is not None:
            self._sock.close(linger=0)
        self._connect()
        self._last_reply = time.monotonic()

    def close(self) -> None:
        """Close the socket (without saying bye; see `bye`)."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Say bye (best effort, also when leaving on an exception) and close."""
        self.bye_quietly()
        self.close()

    # -- one round trip ---------------------------------------------------------------
    def _request(
        self,
        msg_type: MsgType,
        payload: list[Any],
        timeout_s: float | None = None,
        flags: int = 0,
        session: int | None = None,
    ) -> list[bytes]:
        sock = self._sock
        if sock is None:
            raise RuntimeUnavailable("client is closed")
        timeout = self.timeout_s if timeout_s is None else _timeout(timeout_s)
        deadline = time.monotonic() + timeout
        self._seq += 1
        seq = self._seq
        sid = self.session_id if session is None else session
        head = HEADER.pack(MAGIC, PROTOCOL_VERSION, msg_type, sid, seq, time.time_ns(), flags)
        try:
            self._send(sock, head, payload)
        except zmq.Again:
            # No completed connection yet (IMMEDIATE): wait for one until the deadline.
            try:
                while not sock.poll(self._wait_ms(deadline), zmq.POLLOUT):
                    if time.monotonic() >= deadline:
                        raise zmq.Again()
                self._send(sock, head, payload)
            except zmq.Again:
                raise RuntimeUnavailable(
                    f"no connection to {self.endpoint} within {timeout * 1000:.0f} ms "
                    "(server down, or CurveZMQ keys refused)"
                ) from None
        # Frames (copy=False) carry their own `more` flag: no getsockopt(RCVMORE) system
        # call per frame (~1 µs each; the `rcvmore` attribute costs more still).
        recv = sock.recv
        spin_until = min(deadline, time.monotonic() + self._spin_s) if self._spin_s else 0.0
        while True:
            if spin_until:
                # Busy-poll window (busy_poll_us): no sleep, so no wake-up to wait for.
                try:
                    frame = recv(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    if time.monotonic() >= spin_until:
                        spin_until = 0.0  # the window is over: block from now on
                    continue
            else:
                # A blocking receive with a timeout: one wake-up per reply (no poll first).
                left_ms = (deadline - time.monotonic()) * 1000.0
                if left_ms <= 0:
                    if time.monotonic() - self._last_reply > self.reconnect_after_s:
                        # Nothing heard for a while: the connection may be half-dead (peer
                        # rebooted, NAT dropped it). A fresh socket also drops queued requests.
                        self.reconnect()
                    raise RuntimeTimeout(
                        f"{msg_type.name} seq {seq}: no reply from {self.endpoint} "
                        f"within {timeout * 1000:.1f} ms"
                    )
                ms = max(1, min(_POLL_SLICE_MS, int(left_ms + 0.999)))
                if ms != self._rcvtimeo:
                    sock.setsockopt(zmq.RCVTIMEO, ms)
                    self._rcvtimeo = ms
                try:
                    frame = recv(copy=False)
                except zmq.Again:
                    continue
            first = frame.bytes
            reply = [first]
            while frame.more:
                frame = recv(copy=False)
                reply.append(frame.bytes)
            if len(first) != HEADER.size:
                continue  # not a zshot header; ignore
            magic, _, r_type, _, r_seq, _, _ = HEADER.unpack(first)
            if r_seq != seq or magic != MAGIC:
                # The late reply to an earlier, timed-out request; an error about a header
                # the server could not read (seq 0) is answered to the request just sent.
                if not (r_seq == 0 and magic == MAGIC and r_type == MsgType.ERROR):
                    continue
            self._last_reply = time.monotonic()
            if r_type == MsgType.ERROR:
                code = U32.unpack(reply[1])[0] if len(reply) > 1 and len(reply[1]) == 4 else 0
                text = reply[2].decode("utf-8", "replace") if len(reply) > 2 else ""
                raise RuntimeErrorReply(code, text)
            if r_type != (msg_type | REPLY_BIT):
                raise RuntimeErrorReply(
                    ErrorCode.BAD_HEADER, f"reply type {r_type:#x} to {msg_type.name}"
                )
            return reply[1:]

    @staticmethod
    def _send(sock: zmq.Socket[bytes], head: bytes, payload: list[Any]) -> None:
        if not payload:
            raw_send(sock, head, zmq.NOBLOCK)
            return
        raw_send(sock, head, _NOBLOCK_MORE)  # all parts or none: a message is atomic
        last = len(payload) - 1
        for i, frame in enumerate(payload):
            raw_send(sock, frame, zmq.NOBLOCK if i == last else _NOBLOCK_MORE)

    @staticmethod
    def _wait_ms(deadline: float) -> int:
        left_ms = (deadline - time.monotonic()) * 1000.0
        return max(1, min(_POLL_SLICE_MS, int(left_ms + 0.999)))

    def _width(self, name: str) -> int | None:
        return None if self.info is None else int(getattr(self.info, name))

    # -- messages ---------------------------------------------------------------------
    def hello(
        self,
        *,
        obs_dim: int | None = None,
        act_dim: int | None = None,
        artifact_sha256: str | None = None,
        kind: ArtifactKind | None = None,
        client: str = "",
        timeout_s: float | None = None,
    ) -> HelloReply:
        """Open a session. Given dims, hash or kind, the server refuses a mismatching
        artifact; the reply's `kind` (and `descriptor_dim`) says how to drive it.

        A session this client had open before is closed (BYE, best effort) once the new one
        is open, so re-handshaking after a fault never leaves sessions behind on the server.
        """
        req = HelloRequest(
            obs_dim=obs_dim,
            act_dim=act_dim,
            artifact_sha256=artifact_sha256,
            kind=kind,
            client=client,
        )
        t = max(self.timeout_s, 1.0) if timeout_s is None else timeout_s
        out = self._request(MsgType.HELLO, [req.model_dump_json().encode()], t, session=0)
        info = _parse_hello_reply(out)
        old = self.session_id
        self.session_id = info.session_id
        self.info = info
        if old and old != info.session_id:
            self._bye(old, min(self.timeout_s, 0.5))
        return info

    def step(
        self,
        obs: npt.ArrayLike,
        transition: npt.ArrayLike | None = None,
        *,
        timeout_s: float | None = None,
        stochastic: bool = False,
    ) -> npt.NDArray[np.float32]:
        """One round trip: add `transition` (s, a, r, s') to the context if given, then
        return the action [act_dim] for `obs` [obs_dim]. (Kind recurrent: the transition's
        a and r are the step's last_action and reward; docs/PROTOCOL.md `## Artifact
        kinds`.)"""
        payload: list[Any] = [f32_frame(obs)]
        if transition is not None:
            payload.append(f32_frame(transition))
        out = self._request(MsgType.STEP, payload, timeout_s, FLAG_STOCHASTIC if stochastic else 0)
        act_dim = self._width("act_dim")
        if len(out) != 1 or (len(out[0]) != 4 * act_dim if act_dim else len(out[0]) % 4 != 0):
            sizes = [len(f) for f in out]
            raise _bad_reply(f"STEP reply frames {sizes} bytes, expected [{4 * (act_dim or 1)}]")
        # A writable array of its own: frombuffer over a bytearray copy, one numpy call
        # (frombuffer(bytes).copy() is two); the dtype object positional is a cheaper call.
        return np.frombuffer(bytearray(out[0]), _F4)

    def observe(self, transitions: npt.ArrayLike, *, timeout_s: float | None = None) -> int:
        """Add transitions [n, obs+act+1+obs] (or one [obs+act+1+obs]) to the context;
        returns the context count."""
        arr = np.asarray(transitions, dtype="<f4")
        t = max(self.timeout_s, 1.0) if timeout_s is None else timeout_s
        out = self._request(MsgType.OBSERVE, [f32_frame(arr)], t)
        return _u64_reply(out, "OBSERVE")

    def reset_task(self, descriptor: npt.ArrayLike | None = None) -> None:
        """A new task; also starts a new episode. Posterior: back to the prior; recurrent:
        hidden state back to its initial value; conditioned: `descriptor` [descriptor_dim]
        is the new task's (required there: without one, STEP answers NO_TASK)."""
        self._request(MsgType.RESET_TASK, [] if descriptor is None else [f32_frame(descriptor)])

    def reset_episode(self) -> None:
        """New episode on the same task. Posterior kept (explore draws a new z, exploit
        takes the mean); recurrent: hidden state kept, the next step gets done = 1."""
        self._request(MsgType.RESET_EPISODE, [])

    def set_mode(self, mode: str, update: str = "episode") -> None:
        """mode: "explore" (z ~ posterior, drawn per episode) or "exploit" (z = mean);
        update: "step" (z follows every new transition) or "episode" (z changes only at
        episode boundaries)."""
        if mode not in MODES or update not in UPDATES:
            raise ValueError(
                f"mode must be one of {sorted(MODES)} and update one of {sorted(UPDATES)}, "
                f"got {mode!r}, {update!r}"
            )
        self._request(MsgType.SET_MODE, [bytes([MODES[mode], UPDATES[update]])])

    def get_state(self) -> PosteriorState:
        """The session's posterior mean and variance and the z in use (kind posterior),
        the context count, the kind and its state (recurrent: hidden; conditioned:
        descriptor)."""
        out = self._request(MsgType.GET_STATE, [])
        sizes = [len(f) for f in out]
        if (
            len(out) != 6
            or len(out[3]) != 8
            or len(out[4]) != 1
            or out[4][0] >= len(ARTIFACT_KINDS)
            or len({sizes[0], sizes[1], sizes[2]}) != 1
            or sizes[0] % 4
            or sizes[5] % 4
        ):
            raise _bad_reply(f"GET_STATE reply frames {sizes} bytes")
        kind = ARTIFACT_KINDS[out[4][0]]
        latent = self._width("latent_dim")
        if self.info is not None and (kind != self.info.kind or sizes[0] != 4 * (latent or 0)):
            raise _bad_reply(f"GET_STATE reply frames {sizes} bytes for kind {kind}")
        mean, var, z, state = (np.frombuffer(out[i], dtype="<f4").copy() for i in (0, 1, 2, 5))
        return PosteriorState(
            mean=mean, var=var, z=z, count=int(U64.unpack(out[3])[0]), kind=kind, state=state
        )

    def reload(self, artifact_dir: str, *, timeout_s: float | None = None) -> HelloReply:
        """Serve this session from another artifact (same obs/act dims and kind; e.g. kind
        weights: adapted weights exported on a workstation), its state reset as by
        reset_task (a conditioned session keeps its descriptor). Call between episodes; the
        session and its settings are kept."""
        t = max(self.timeout_s, 30.0) if timeout_s is None else timeout_s
        out = self._request(MsgType.RELOAD, [str(artifact_dir).encode()], t)
        info = _parse_hello_reply(out)
        self.info = info
        return info

    def stats(self) -> dict[str, float]:
        """Service-time statistics of this session (µs), counts, the served kind (`kind`:
        its index in ARTIFACT_KINDS), and the histogram (`hist_<upper edge µs>` keys, see
        HIST_EDGES_US)."""
        out = self._request(MsgType.STATS, [])
        if not out or len(out[0]) != 8 * len(STATS_FIELDS):
            raise _bad_reply(f"STATS reply frames {[len(f) for f in out]} bytes")
        values = np.frombuffer(out[0], dtype="<f8")
        result = {k: float(v) for k, v in zip(STATS_FIELDS, values, strict=True)}
        if len(out) > 1 and len(out[1]) == 8 * (len(HIST_EDGES_US) + 1):
            counts = np.frombuffer(out[1], dtype="<u8")
            edges = [*HIST_EDGES_US, float("inf")]
            for edge, c in zip(edges, counts, strict=True):
                if c:
                    result[f"hist_lt_{edge:.4g}us"] = float(c)
        return result

    def bye(self) -> None:
        """End the session (the server forgets it)."""
        self._request(MsgType.BYE, [])
        self.session_id = 0

    def bye_quietly(self, timeout_s: float = 0.2) -> bool:
        """Say bye if a session is open, ignoring every failure (exit paths, signal
        handlers); returns whether the server confirmed it."""
        sid = self.session_id
        if not sid or self._sock is None:
            return False
        self.session_id = 0
        return self._bye(sid, timeout_s)

    def _bye(self, sid: int, timeout_s: float) -> bool:
        try:
            self._request(MsgType.BYE, [], timeout_s, session=sid)
        except (RuntimeTimeout, RuntimeUnavailable, RuntimeErrorReply, ValueError):
            return False
        return True


def _u64_reply(frames: list[bytes], what: str) -> int:
    if len(frames) != 1 or len(frames[0]) != 8:
        raise _bad_reply(f"{what} reply frames {[len(f) for f in frames]} bytes, expected [8]")
    return int(U64.unpack(frames[0])[0])


def _parse_hello_reply(frames: list[bytes]) -> HelloReply:
    if len(frames) != 1:
        raise RuntimeErrorReply(ErrorCode.BAD_FRAMES, f"hello reply has {len(frames)} frames")
    try:
        return HelloReply.model_validate(json.loads(frames[0]))
    except (ValueError, ValidationError) as exc:
        raise RuntimeErrorReply(ErrorCode.BAD_PAYLOAD, f"bad hello reply: {exc}") from None
