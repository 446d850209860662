"""The zshot runtime wire protocol (docs/PROTOCOL.md) and `RuntimeClient`, its Python client.

Transport: ZeroMQ, ROUTER on the server, DEALER on each client. A message is

    frame 0   header, 36 bytes, little-endian: magic "ZSHT", version u16, type u16,
              session u64, seq u64, send time i64 (ns), flags u32
    frame 1.. payload: raw little-endian float32 arrays (or the few fixed binary fields
              listed per message type; JSON only in hello and reload)

Replies echo the request's session and seq; their type is the request type | 0x8000, or
0xFFFF (ERROR: frame 1 = u32 code, frame 2 = UTF-8 message). Pydantic validates JSON only at
handshake; nothing on the per-step path allocates more than the numpy arrays it returns.

This module is what `hardware_bridge` imports from `runtime`: numpy, pyzmq and pydantic only.
"""

from __future__ import annotations

import enum
import json
import struct
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import zmq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "FLAG_STOCHASTIC",
    "HEADER",
    "HIST_EDGES_US",
    "MAGIC",
    "PROTOCOL_VERSION",
    "REPLY_BIT",
    "STATS_FIELDS",
    "ErrorCode",
    "Header",
    "HelloReply",
    "HelloRequest",
    "MsgType",
    "PosteriorState",
    "ProtocolError",
    "RuntimeClient",
    "RuntimeErrorReply",
    "RuntimeTimeout",
    "RuntimeUnavailable",
    "pack_header",
    "unpack_header",
]

MAGIC = b"ZSHT"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<4sHHQQqI")  # magic, version, type, session, seq, send_ns, flags
assert HEADER.size == 36
REPLY_BIT = 0x8000
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

# STEP request flag: draw the policy's `noise` input from N(0, I) (a stochastic action)
# instead of zeros (the deterministic action).
FLAG_STOCHASTIC = 0x1


class MsgType(enum.IntEnum):
    """Request types; a reply's type is `type | REPLY_BIT`, an error reply's is ERROR."""

    HELLO = 1
    STEP = 2
    OBSERVE = 3
    RESET_TASK = 4
    RESET_EPISODE = 5
    SET_MODE = 6
    GET_STATE = 7
    RELOAD = 8
    STATS = 9
    BYE = 10
    ERROR = 0xFFFF


class ErrorCode(enum.IntEnum):
    """Codes carried by ERROR replies (docs/PROTOCOL.md lists when each is sent)."""

    BAD_HEADER = 1
    BAD_VERSION = 2
    UNKNOWN_TYPE = 3
    BAD_FRAMES = 4
    BAD_PAYLOAD = 5
    NON_FINITE = 6
    UNKNOWN_SESSION = 7
    STALE_SEQUENCE = 8
    TOO_MANY_SESSIONS = 9
    HANDSHAKE_MISMATCH = 10
    BAD_ARTIFACT = 11
    TOO_LARGE = 12
    BUSY = 13
    INTERNAL = 99


# STATS reply frame 1: float64 values in this order. Latencies are the server's service
# time (request received -> reply handed to ZeroMQ) for the asking session, in microseconds.
STATS_FIELDS: tuple[str, ...] = (
    "requests",
    "errors",
    "steps",
    "context_count",
    "mean_us",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "max_us",
)
# STATS reply frame 2: uint64 histogram counts; bin k holds [edge[k-1], edge[k]) µs, bin 0
# is < edge[0], the last bin is >= edge[-1]. Edges: 2^(k/8) µs, k = 0..160 (1 µs .. ~1 s),
# i.e. 9 % wide bins, so percentiles read off it are within 9 %.
HIST_EDGES_US: tuple[float, ...] = tuple(2.0 ** (k / 8.0) for k in range(161))


class ProtocolError(ValueError):
    """A message that does not follow the protocol; carries the error code to reply with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Header(NamedTuple):
    """Decoded header frame (a NamedTuple: built per message, so it must be cheap)."""

    version: int
    msg_type: int
    session: int
    seq: int
    send_ns: int
    flags: int


def pack_header(
    msg_type: int, session: int, seq: int, flags: int = 0, send_ns: int | None = None
) -> bytes:
    """Encode a header frame (36 bytes) with this protocol's magic and version."""
    return HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        msg_type,
        session,
        seq,
        time.time_ns() if send_ns is None else send_ns,
        flags,
    )


def unpack_header(frame: bytes) -> Header:
    """Decode and check a header frame; raises `ProtocolError` (BAD_HEADER / BAD_VERSION)."""
    if len(frame) != HEADER.size:
        raise ProtocolError(
            ErrorCode.BAD_HEADER, f"header frame is {len(frame)} bytes, expected {HEADER.size}"
        )
    magic, version, msg_type, session, seq, send_ns, flags = HEADER.unpack(frame)
    if magic != MAGIC:
        raise ProtocolError(ErrorCode.BAD_HEADER, f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.BAD_VERSION,
            f"protocol version {version} not supported (server speaks {PROTOCOL_VERSION})",
        )
    return Header(version, msg_type, session, seq, send_ns, flags)


class _Json(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HelloRequest(_Json):
    """HELLO payload (JSON): what the client expects; the server refuses a mismatch."""

    protocol_version: int = PROTOCOL_VERSION
    obs_dim: int | None = Field(None, ge=1)
    act_dim: int | None = Field(None, ge=1)
    artifact_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    client: str = Field("", max_length=200)
    """Free text for the server's log (robot name, bridge version)."""


class HelloReply(BaseModel):
    """HELLO and RELOAD reply payload (JSON): the session and the artifact it is served by.

    Unknown keys are ignored: a newer server may add keys without a protocol version bump.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: int = Field(ge=1)
    protocol_version: int
    obs_dim: int
    act_dim: int
    latent_dim: int
    transition_dim: int
    obs_names: list[str]
    action_names: list[str]
    action_low: list[float]
    action_high: list[float]
    control_hz: float
    artifact_sha256: str
    artifact_name: str
    mode: Literal["explore", "exploit"]
    update: Literal["step", "episode"]


@dataclass(frozen=True)
class PosteriorState:
    """GET_STATE reply: the session's posterior over z and the z its policy uses now."""

    mean: npt.NDArray[np.float32]
    var: npt.NDArray[np.float32]
    z: npt.NDArray[np.float32]
    count: int


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


MODES = {"exploit": 0, "explore": 1}
UPDATES = {"episode": 0, "step": 1}


def f32_frame(a: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """`a` as a contiguous little-endian float32 array: a payload frame (zmq sends its buffer;
    no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype="<f4")


class RuntimeClient:
    """DEALER client of `zshot serve` with a per-request deadline.

    Not thread-safe (one ZeroMQ socket): give each thread its own client. After a missed
    deadline the next request works normally; the late reply is recognised by its sequence
    number and dropped. A missed deadline after `reconnect_after_s` without any reply closes
    and reopens the socket (dropping anything queued); the session is kept. Deadlines are
    detected with zmq_poll, whose resolution is 1 ms: a timeout fires up to 1 ms late.
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
    ) -> None:
        """Connect to `endpoint` (e.g. tcp://127.0.0.1:5555). With CurveZMQ give the server's
        public key and this client's (public, secret) key pair, both Z85 bytes."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if (server_public_key is None) != (client_keys is None):
            raise ValueError("CurveZMQ needs both server_public_key and client_keys")
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.reconnect_after_s = reconnect_after_s
        self._server_key = server_public_key
        self._client_keys = client_keys
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket[bytes] | None = None
        self._poller = zmq.Poller()
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
        if self._server_key is not None and self._client_keys is not None:
            sock.curve_serverkey = self._server_key
            sock.curve_publickey, sock.curve_secretkey = self._client_keys
        sock.connect(self.endpoint)
        self._sock = sock
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)

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
        if self._sock is not None and self.session_id and exc_type is None:
            try:
                self.bye()
            except (RuntimeTimeout, RuntimeUnavailable, RuntimeErrorReply):
                pass  # closing anyway; the server expires idle sessions
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
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        self._seq += 1
        seq = self._seq
        sid = self.session_id if session is None else session
        frames: list[Any] = [
            pack_header(msg_type, sid, seq, flags),
            *payload,
        ]
        try:
            sock.send_multipart(frames, zmq.NOBLOCK, copy=True)
        except zmq.Again:
            # No completed connection yet (IMMEDIATE): wait for one until the deadline.
            try:
                if not sock.poll(max(0, int((deadline - time.monotonic()) * 1000)), zmq.POLLOUT):
                    raise zmq.Again()
                sock.send_multipart(frames, zmq.NOBLOCK, copy=True)
            except zmq.Again:
                raise RuntimeUnavailable(
                    f"no connection to {self.endpoint} within {timeout * 1000:.0f} ms "
                    "(server down, or CurveZMQ keys refused)"
                ) from None
        while True:
            left_ms = (deadline - time.monotonic()) * 1000.0
            if left_ms <= 0 or not self._poller.poll(max(1, int(left_ms + 0.999))):
                if time.monotonic() < deadline:
                    continue
                if time.monotonic() - self._last_reply > self.reconnect_after_s:
                    # Nothing heard for a while: the connection may be half-dead (peer
                    # rebooted, NAT dropped it). A fresh socket also drops queued requests.
                    self.reconnect()
                raise RuntimeTimeout(
                    f"{msg_type.name} seq {seq}: no reply from {self.endpoint} "
                    f"within {timeout * 1000:.1f} ms"
                )
            try:
                reply = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue  # spurious wake-up
            if len(reply[0]) != HEADER.size:
                continue  # not a zshot header; ignore
            magic, _, r_type, _, r_seq, _, _ = HEADER.unpack(reply[0])
            if r_seq != seq or magic != MAGIC:
                continue  # the late reply to an earlier, timed-out request
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

    # -- messages ---------------------------------------------------------------------
    def hello(
        self,
        *,
        obs_dim: int | None = None,
        act_dim: int | None = None,
        artifact_sha256: str | None = None,
        client: str = "",
        timeout_s: float | None = None,
    ) -> HelloReply:
        """Open a session. Given dims or hash, the server refuses a mismatching artifact."""
        req = HelloRequest(
            obs_dim=obs_dim, act_dim=act_dim, artifact_sha256=artifact_sha256, client=client
        )
        t = max(self.timeout_s, 1.0) if timeout_s is None else timeout_s
        out = self._request(MsgType.HELLO, [req.model_dump_json().encode()], t, session=0)
        info = _parse_hello_reply(out)
        self.session_id = info.session_id
        self.info = info
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
        return the action [act_dim] for `obs` [obs_dim]."""
        payload: list[Any] = [f32_frame(obs)]
        if transition is not None:
            payload.append(f32_frame(transition))
        out = self._request(MsgType.STEP, payload, timeout_s, FLAG_STOCHASTIC if stochastic else 0)
        return np.frombuffer(out[0], dtype="<f4").copy()

    def observe(self, transitions: npt.ArrayLike, *, timeout_s: float | None = None) -> int:
        """Add transitions [n, obs+act+1+obs] (or one [obs+act+1+obs]) to the context;
        returns the context count."""
        arr = np.asarray(transitions, dtype="<f4")
        t = max(self.timeout_s, 1.0) if timeout_s is None else timeout_s
        out = self._request(MsgType.OBSERVE, [f32_frame(arr)], t)
        return int(U64.unpack(out[0])[0])

    def reset_task(self) -> None:
        """Posterior back to the prior (a new task); also starts a new episode."""
        self._request(MsgType.RESET_TASK, [])

    def reset_episode(self) -> None:
        """New episode: posterior kept; explore draws a new z, exploit takes the mean."""
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
        """The session's posterior mean and variance, the z in use, and the context count."""
        out = self._request(MsgType.GET_STATE, [])
        if len(out) != 4:
            raise RuntimeErrorReply(ErrorCode.BAD_FRAMES, f"GET_STATE reply has {len(out)} frames")
        mean, var, z = (np.frombuffer(f, dtype="<f4").copy() for f in out[:3])
        return PosteriorState(mean=mean, var=var, z=z, count=int(U64.unpack(out[3])[0]))

    def reload(self, artifact_dir: str, *, timeout_s: float | None = None) -> HelloReply:
        """Serve this session from another artifact (same obs/act dims), posterior reset to
        its prior. Call between episodes; the session and its settings are kept."""
        t = max(self.timeout_s, 30.0) if timeout_s is None else timeout_s
        out = self._request(MsgType.RELOAD, [str(artifact_dir).encode()], t)
        info = _parse_hello_reply(out)
        self.info = info
        return info

    def stats(self) -> dict[str, float]:
        """Service-time statistics of this session (µs), counts, and the histogram
        (`hist_<upper edge µs>` keys, see HIST_EDGES_US)."""
        out = self._request(MsgType.STATS, [])
        values = np.frombuffer(out[0], dtype="<f8")
        result = {k: float(v) for k, v in zip(STATS_FIELDS, values, strict=False)}
        if len(out) > 1:
            counts = np.frombuffer(out[1], dtype="<u8")
            edges = [*HIST_EDGES_US, float("inf")]
            for edge, c in zip(edges, counts, strict=False):
                if c:
                    result[f"hist_lt_{edge:.4g}us"] = float(c)
        return result

    def bye(self) -> None:
        """End the session (the server forgets it)."""
        self._request(MsgType.BYE, [])
        self.session_id = 0


def _parse_hello_reply(frames: list[bytes]) -> HelloReply:
    if len(frames) != 1:
        raise RuntimeErrorReply(ErrorCode.BAD_FRAMES, f"hello reply has {len(frames)} frames")
    try:
        return HelloReply.model_validate(json.loads(frames[0]))
    except (ValueError, ValidationError) as exc:
        raise RuntimeErrorReply(ErrorCode.BAD_PAYLOAD, f"bad hello reply: {exc}") from None
