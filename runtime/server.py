"""The runtime server: a ZeroMQ ROUTER answering actions, one state per session (a posterior
over z, a recurrent hidden state, or a task descriptor: the artifact's kind says which).

One thread runs the loop (receive -> handle -> send); onnxruntime calls are batch-1 and
take tens of microseconds, so a worker pool would add more latency than it removes. The only
slow request, RELOAD, loads the new artifact on a helper thread and is answered when it is
ready, so other robots keep getting actions meanwhile.

Robustness rule: nothing a peer sends may raise out of `_handle`; every request that reaches
Python gets exactly one reply (an ERROR reply with a code when it was bad). Messages larger
than `max_message_bytes` are dropped by libzmq (ZMQ_MAXMSGSIZE), which also disconnects
that peer; they never reach Python.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MethodType
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq
from pydantic import ValidationError

from runtime.artifact import ArtifactError
from runtime.config import ServeConfig
from runtime.flood import PeerGuard, wire_bytes
from runtime.model import LoadedModel
from runtime.posterior import REJECTED, NaturalPosterior
from runtime.protocol import (
    ARTIFACT_KINDS,
    FLAG_STOCHASTIC,
    HIST_EDGES_US,
    PROTOCOL_VERSION,
    REPLY_BIT,
    STATS_FIELDS,
    U32,
    U64,
    ErrorCode,
    Header,
    HelloReply,
    HelloRequest,
    MsgType,
    ProtocolError,
    endpoint_problem,
    pack_header,
    raw_send,
    unpack_header,
)

__all__ = [
    "LatencyHistogram",
    "RuntimeServer",
    "SecurityError",
    "Session",
    "apply_scheduling",
    "is_loopback",
]

log = logging.getLogger("zshot.runtime")

F32 = npt.NDArray[np.float32]
MAX_PAYLOAD_FRAMES = 2  # the most any request carries (STEP with a transition)
MAX_JSON_BYTES = 64 * 1024  # a hello is ~200 bytes; anything near this is not a hello
RELOAD_REFUSED = "reload refused (the server's log says why)"
_EDGES_US = list(HIST_EDGES_US)
KIND_CODE = {k: i for i, k in enumerate(ARTIFACT_KINDS)}
_F4 = np.dtype("<f4")


class SecurityError(RuntimeError):
    """The server would listen beyond loopback without authentication, or keys are bad."""


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address or the `lo` interface."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or not rest:
        return False
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    host = host.split(";")[-1]  # "tcp://src;dst" form: the address bound is the last one
    host = host.strip("[]")
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name, a hostname: not provably loopback


def apply_scheduling(cfg: ServeConfig) -> None:
    """Apply `cpu_affinity` and `sched_fifo_priority` to the calling thread (Linux, pid 0).

    Threads created afterwards (ZeroMQ's I/O thread) inherit both, so `zshot serve` calls
    this before creating its ZeroMQ context; failures are logged, not fatal.
    """
    if cfg.cpu_affinity is not None:
        try:
            os.sched_setaffinity(0, cfg.cpu_affinity)
        except (OSError, AttributeError) as exc:
            log.warning("cpu_affinity %s not applied: %s", cfg.cpu_affinity, exc)
    if cfg.sched_fifo_priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(cfg.sched_fifo_priority))
            log.info("serving thread runs SCHED_FIFO priority %d", cfg.sched_fifo_priority)
        except (OSError, AttributeError) as exc:
            log.warning(
                "sched_fifo_priority %d not applied (needs Linux and CAP_SYS_NICE): %s",
                cfg.sched_fifo_priority,
                exc,
            )


class LatencyHistogram:
    """Log-binned service-time histogram (bins in HIST_EDGES_US) with exact mean and max."""

    __slots__ = ("counts", "max_us", "n", "total_us")

    def __init__(self) -> None:
        """Empty histogram."""
        self.counts = [0] * (len(_EDGES_US) + 1)
        self.n = 0
        self.total_us = 0.0
        self.max_us = 0.0

    def record(self, us: float) -> None:
        """Add one service time in microseconds."""
        self.counts[bisect.bisect_right(_EDGES_US, us)] += 1
        self.n += 1
        self.total_us += us
        if us > self.max_us:
            self.max_us = us

    def percentile(self, q: float) -> float:
        """Upper edge of the bin holding the q-th percentile (capped at the max seen)."""
        if self.n == 0:
            return 0.0
        rank = q / 100.0 * self.n
        seen = 0
        for k, c in enumerate(self.counts):
            seen += c
            if c and seen >= rank:
                edge = _EDGES_US[k] if k < len(_EDGES_US) else self.max_us
                return min(edge, self.max_us)
        return self.max_us


class Session:
    """One robot's state: its model, its kind's state (posterior over z and the z in use;
    recurrent hidden state and the previous step's action, reward and done; task
    descriptor), mode and counters."""

    def __init__(
        self,
        sid: int,
        model: LoadedModel,
        cfg: ServeConfig,
        rng: np.random.Generator,
        now: float,
        seq: int,
        peer: str = "",
        key: str | None = None,
    ) -> None:
        """A fresh session at the prior, in the config's default mode; `peer` names who
        opened it (a CurveZMQ key, else the connection), `key` the CurveZMQ key if any."""
        self.sid = sid
        self.peer = peer
        self.key = key
        self.model = model
        self.rng = rng
        self.mode = cfg.default_mode
        self.update = cfg.default_update
        self.descriptor: F32 | None = None  # kind conditioned: set by RESET_TASK
        self.init_state()
        self.last_seq = seq
        self.last_seen = now
        self.requests = 0
        self.errors = 0
        self.steps = 0
        self.hist = LatencyHistogram()
        self.reloading = False

    def init_state(self) -> None:
        """The kind's state at a task's start (the descriptor is not touched)."""
        model = self.model
        self.kind = model.kind
        self.posterior = NaturalPosterior(model.prior_mean, model.prior_var)
        self.z: F32 = np.zeros((1, model.latent_dim), np.float32)
        self.transitions = 0  # received since the task began (kinds without a posterior)
        # Kind recurrent: the step graph's state and inputs from the previous transition.
        self.hidden: F32 = model.initial_hidden.copy()
        self.last_action: F32 = np.zeros((1, model.act_dim), np.float32)
        self.reward: F32 = np.zeros((1, 1), np.float32)
        self.done: F32 = np.zeros((1, 1), np.float32)
        self.stepped = False  # a STEP ran since the task began
        self.refresh_z()

    @property
    def count(self) -> int:
        """Transitions received since the task began (the posterior's context count)."""
        return self.posterior.count if self.kind == "posterior" else self.transitions

    def new_episode(self) -> None:
        """RESET_EPISODE: z recomputed; a recurrent step next sees done = 1 if this task
        has run a step already."""
        self.refresh_z()
        if self.stepped:
            self.done[0, 0] = 1.0

    def take_transitions(self, rows: F32) -> None:
        """Kinds without a posterior: count rows [n, T]; the last one's action and reward
        are a recurrent step's next last_action and reward."""
        self.transitions += int(rows.shape[0])
        o, a = self.model.obs_dim, self.model.act_dim
        self.last_action = rows[-1:, o : o + a].copy()
        self.reward = rows[-1:, o + a : o + a + 1].copy()

    def refresh_z(self) -> None:
        """z for the policy: a posterior draw (explore) or the posterior mean (exploit)."""
        if self.model.latent_dim == 0:
            return  # not kind posterior: no z
        if self.mode == "explore":
            self.z = self.posterior.sample(self.rng).astype(np.float32).reshape(1, -1)
        else:
            # A fresh [1, L] array each time: get-state and the policy never see it change
            # under them, and a reload may change L.
            self.z = self.posterior.mean_row()

    def add_factors(self, mu: F32, var: F32) -> None:
        """Multiply factors [n, L] into the posterior; z follows at once if update == step."""
        try:
            if mu.shape[0] == 1:
                self.posterior.add_one(mu, var)  # per-step path
            else:
                self.posterior.add(mu, var)
        except ValueError as exc:  # the model misbehaved on finite input; state unchanged
            raise self.rejected(str(exc)) from None
        if self.update == "step":
            self.refresh_z()

    def rejected(self, why: str) -> ProtocolError:
        """The error for a factor the posterior refused (the state is unchanged)."""
        return ProtocolError(
            ErrorCode.INTERNAL, f"{why} (artifact {self.model.sha256[:12]}…); context unchanged"
        )

    def set_model(self, model: LoadedModel) -> None:
        """Swap the artifact (of the same kind); the old posterior lives in the old
        encoder's latent space (a hidden state in the old network's), so the state starts
        as a task's does; a descriptor is kept."""
        self.model = model
        self.init_state()


@dataclass
class _PendingReload:
    future: Future[LoadedModel]
    ident: bytes
    sid: int
    seq: int
    t0_ns: int


Handler = Callable[[Session, Header, list[bytes], bytes], "list[bytes] | None"]


class RuntimeServer:
    """ROUTER server for one artifact (sessions may RELOAD others)."""

    def __init__(
        self,
        model: LoadedModel,
        cfg: ServeConfig | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        """Serve `model` with `cfg`; call `bind()` then `serve_forever()` (or `start()`)."""
        self.cfg = cfg or ServeConfig()
        self.model = model
        self._models: dict[str, LoadedModel] = {model.sha256: model}
        self._own_ctx = context is None
        self.ctx = context or zmq.Context()
        self.sock: zmq.Socket[bytes] | None = None
        self.endpoint = ""
        self.sessions: dict[int, Session] = {}
        self._session_number = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._auth: object | None = None
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zshot-reload")
        self._pending: list[_PendingReload] = []
        self._guard: PeerGuard | None = None
        self._curve = False
        self._allowed: frozenset[str] | None = None  # CurveZMQ keys (Z85) served now
        self._allowed_mtime: float | None = None
        self._reload_admins: frozenset[str] = frozenset()
        self._next_watch = 0.0
        self.requests = 0
        self.errors = 0
        self._handlers: dict[int, Handler] = {
            MsgType.STEP: self._on_step,
            MsgType.OBSERVE: self._on_observe,
            MsgType.RESET_TASK: self._on_reset_task,
            MsgType.RESET_EPISODE: self._on_reset_episode,
            MsgType.SET_MODE: self._on_set_mode,
            MsgType.GET_STATE: self._on_get_state,
            MsgType.RELOAD: self._on_reload,
            MsgType.STATS: self._on_stats,
            MsgType.BYE: self._on_bye,
        }

    # -- socket -----------------------------------------------------------------------
    def bind(self, endpoint: str | None = None) -> str:
        """Bind the ROUTER socket (CurveZMQ if configured); returns the bound endpoint.

        Refuses (SecurityError) to bind beyond loopback without CurveZMQ unless
        `insecure` is set. `tcp://127.0.0.1:*` binds a free port.
        """
        cfg = self.cfg
        ep = endpoint or cfg.bind
        problem = endpoint_problem(ep, bind=True)
        if problem is not None:
            raise ValueError(problem)
        curve = cfg.curve_secret_key is not None
        if not curve and not is_loopback(ep) and not cfg.insecure:
            raise SecurityError(
                f"refusing to bind {ep}: beyond loopback the runtime needs CurveZMQ "
                "(curve_secret_key + curve_allowed_clients; `zshot keys generate` makes keys) "
                "or an explicit --insecure on an isolated network"
            )
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, cfg.max_message_bytes)
        sock.setsockopt(zmq.RCVTIMEO, max(1, int(cfg.poll_interval_s * 1000)))
        try:
            if curve:
                self._setup_curve(sock)
            guard = PeerGuard(sock, cfg.max_peer_buffer_bytes, curve=curve)
            try:
                sock.bind(ep)
            except BaseException:
                guard.close()
                raise
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise SecurityError(f"cannot bind {ep}: {exc}") from None
        except BaseException:
            sock.close(linger=0)
            raise
        self._guard = guard
        self._curve = curve
        self.sock = sock
        last = sock.getsockopt(zmq.LAST_ENDPOINT)
        self.endpoint = last.decode() if isinstance(last, bytes) else str(last)
        log.info(
            "serving %s (%s, sha256 %s…) on %s%s",
            self.model.artifact.manifest.name,
            ",".join(self.model.providers),
            self.model.sha256[:12],
            self.endpoint,
            " with CurveZMQ" if curve else "",
        )
        return self.endpoint

    def _setup_curve(self, sock: zmq.Socket[bytes]) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        cfg = self.cfg
        assert cfg.curve_secret_key is not None
        key_path = Path(cfg.curve_secret_key)
        if not key_path.is_file():
            raise SecurityError(f"curve_secret_key {key_path}: no such file")
        try:
            public, secret = zmq.auth.load_certificate(key_path)
        except (ValueError, OSError) as exc:
            raise SecurityError(f"curve_secret_key {key_path}: not a key file: {exc}") from None
        if secret is None:
            raise SecurityError(
                f"curve_secret_key {key_path} holds only a public key; give the *.key_secret file"
            )
        allowed = cfg.curve_allowed_clients
        if allowed is None or not Path(allowed).is_dir():
            raise SecurityError(
                f"curve_allowed_clients {allowed!r}: need a directory of client public keys "
                "(*.key); without an allow-list any client could connect"
            )
        if not list(Path(allowed).glob("*.key")):
            log.warning(
                "curve_allowed_clients %s holds no *.key files: nobody can connect", allowed
            )
        auth = ThreadAuthenticator(self.ctx, log=logging.getLogger("zshot.runtime.auth"))
        auth.start()
        self._auth = auth
        self.reload_allow_list()
        if cfg.reload_clients is not None:
            self._reload_admins = _public_keys(Path(cfg.reload_clients), "reload_clients")
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    def reload_allow_list(self) -> None:
        """(Re)read `curve_allowed_clients`: new keys may connect from now on; sessions of
        removed keys are closed and their connections get no reply to anything.

        `zshot serve` calls it on SIGHUP; the serving loop also calls it when the directory
        changes (its mtime, checked once a second).
        """
        allowed = self.cfg.curve_allowed_clients
        if self._auth is None or allowed is None:
            return
        path = Path(allowed)
        try:
            mtime = path.stat().st_mtime
            keys = _public_keys(path, "curve_allowed_clients")
        except (OSError, SecurityError) as exc:
            log.warning("allow-list %s not re-read: %s", allowed, exc)
            return
        self._auth.configure_curve(domain="*", location=str(path))  # type: ignore[attr-defined]
        removed = [s for s in self.sessions.values() if s.key is not None and s.key not in keys]
        for sess in removed:
            del self.sessions[sess.sid]
        if self._allowed is not None and (removed or keys != self._allowed):
            log.info(
                "allow-list %s re-read: %d keys; %d session(s) of removed keys closed",
                allowed,
                len(keys),
                len(removed),
            )
        self._allowed, self._allowed_mtime = keys, mtime

    def request_allow_list_reload(self) -> None:
        """Re-read the allow-list on the serving thread within a second (signal-safe)."""
        self._allowed_mtime = None
        self._next_watch = 0.0

    def _watch_allow_list(self) -> None:
        allowed = self.cfg.curve_allowed_clients
        if self._auth is None or allowed is None:
            return
        try:
            mtime = Path(allowed).stat().st_mtime
        except OSError:
            return
        if mtime != self._allowed_mtime:
            self.reload_allow_list()

    # -- loop -------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Answer requests until `stop()`; never raises on bad input."""
        sock = self.sock
        if sock is None:
            raise RuntimeError("bind() first")
        apply_scheduling(self.cfg)
        # Bad factors (var 0, NaN) are detected and answered with an error reply; numpy's
        # floating-point warnings about them would only clutter the log.
        with np.errstate(all="ignore"):
            self._loop(sock)

    def _loop(self, sock: zmq.Socket[bytes]) -> None:
        perf = time.perf_counter_ns
        guard = self._guard
        curve = self._curve
        check_ns = int(self.cfg.flood_check_s * 1e9)
        if guard is not None:
            timeout_ms = min(self.cfg.poll_interval_s, self.cfg.flood_check_s) * 1000
            sock.setsockopt(zmq.RCVTIMEO, max(1, int(timeout_ms)))
        next_housekeeping = perf() + 1_000_000_000  # ns; at least once a second
        next_check = 0
        keep = MAX_PAYLOAD_FRAMES + 2  # header + payload + one more to name the excess
        recv = sock.recv
        send = MethodType(raw_send, sock)  # without pyzmq's Python wrapper (protocol.py)
        SNDMORE = zmq.SNDMORE
        while not self._stop.is_set():
            try:
                first = recv(copy=False)  # the peer's identity (a Frame: its metadata)
            except zmq.Again:
                if guard is not None:
                    guard.check()
                    next_check = perf() + check_ns
                self._housekeeping()
                continue
            except zmq.ZMQError:
                if self._stop.is_set():
                    break
                raise
            t0 = perf()
            ident = first.bytes
            frames = [ident]
            dropped = 0
            wire = 0
            # Frame by frame: the excess of a message with too many frames is dropped
            # without a copy (libzmq holds the message already; PeerGuard bounds that).
            # Each zmq.Frame carries its own `more` flag: no getsockopt(RCVMORE) system
            # call per frame (~1 µs each; the `rcvmore` attribute costs more still).
            frame = first
            while frame.more:
                frame = recv(copy=False)
                if len(frames) <= keep:
                    frames.append(frame.bytes)
                else:
                    dropped += 1
                wire += wire_bytes(len(frame), curve)
            if guard is not None:
                guard.consumed(first.get(zmq.SRCFD), wire)
            key = str(first.get("User-Id")) if curve else None
            reply, sess = self._handle(frames, ident, dropped, key)
            if reply is not None:
                try:
                    # Part by part: send_multipart's checks cost more than the sends.
                    send(ident, SNDMORE)
                    last = len(reply) - 1
                    for i, part in enumerate(reply):
                        send(part, 0 if i == last else SNDMORE)
                except zmq.ZMQError as exc:  # e.g. the peer vanished; never stop serving
                    log.warning("reply to a peer not sent: %s", exc)
                else:
                    if sess is not None:
                        sess.hist.record((perf() - t0) / 1000.0)
            # The flood check after the reply, not before the handler: it polls the monitor
            # and reads every connection's kernel counters (two system calls each), which
            # must not delay the answer to this request (BENCHMARKS.md, issue 19 item 10).
            if guard is not None and t0 >= next_check:
                next_check = t0 + check_ns
                guard.check()
            if self._pending:
                self._finish_reloads()
            if t0 > next_housekeeping:  # busy servers expire idle sessions too
                next_housekeeping = t0 + 1_000_000_000
                self._housekeeping()

    def start(self) -> threading.Thread:
        """Run `serve_forever` on a daemon thread (tests, embedded demos)."""
        if self.sock is None:
            self.bind()
        t = threading.Thread(target=self.serve_forever, name="zshot-runtime", daemon=True)
        t.start()
        self._thread = t
        return t

    def stop(self) -> None:
        """Stop the loop (within one poll interval) and release sockets and threads."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._loader.shutdown(wait=True, cancel_futures=True)
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
        if self._auth is not None:
            self._auth.stop()  # type: ignore[attr-defined]
            self._auth = None
        if self._own_ctx:
            self.ctx.term()

    def _housekeeping(self) -> None:
        if self._pending:
            self._finish_reloads()
        now = time.monotonic()
        if now >= self._next_watch:
            self._next_watch = now + 1.0
            self._watch_allow_list()
        idle = self.cfg.session_idle_s
        for sid in [s.sid for s in self.sessions.values() if now - s.last_seen > idle]:
            log.info("session %x expired after %.0f s idle", sid, idle)
            del self.sessions[sid]

    # -- dispatch ---------------------------------------------------------------------
    def _handle(
        self, frames: list[bytes], ident: bytes, dropped: int = 0, key: str | None = None
    ) -> tuple[list[bytes] | None, Session | None]:
        """Reply frames (without the identity) for one request; None = answered later or
        not at all (a CurveZMQ key removed from the allow-list). `dropped`: frames of the
        message not kept; `key`: the sender's CurveZMQ public key (Z85), if any."""
        if key is not None and self._allowed is not None and key not in self._allowed:
            return None, None  # authenticated before its key was removed: not served
        self.requests += 1
        sid = seq = 0
        sess: Session | None = None
        try:
            if len(frames) < 2:
                raise ProtocolError(ErrorCode.BAD_FRAMES, "empty message: no header frame")
            head = unpack_header(frames[1])
            sid, seq = head.session, head.seq
            payload = frames[2:]
            if len(payload) > MAX_PAYLOAD_FRAMES:
                raise ProtocolError(
                    ErrorCode.BAD_FRAMES,
                    f"{len(payload) + dropped} payload frames; no message has more than "
                    f"{MAX_PAYLOAD_FRAMES}",
                )
            if head.msg_type == MsgType.HELLO:
                return self._on_hello(head, payload, key or ident.hex(), key), None
            handler = self._handlers.get(head.msg_type)
            if handler is None:
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {head.msg_type}")
            sess = self.sessions.get(sid)
            if sess is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_SESSION,
                    f"unknown session {sid:#x} (expired, ended, or the server restarted): "
                    "send hello",
                )
            if seq <= sess.last_seq:
                raise ProtocolError(
                    ErrorCode.STALE_SEQUENCE,
                    f"seq {seq} is not after this session's last seq {sess.last_seq}",
                )
            sess.last_seq = seq
            sess.last_seen = time.monotonic()
            sess.requests += 1
            body = handler(sess, head, payload, ident)
            if body is None:
                return None, sess
            return [pack_header(head.msg_type | REPLY_BIT, sid, seq), *body], sess
        except ProtocolError as exc:
            return self._error(sess, sid, seq, exc.code, exc.message), sess
        except Exception as exc:  # a bug or an onnxruntime failure: answer, keep serving
            log.exception("internal error handling a request")
            return self._error(sess, sid, seq, ErrorCode.INTERNAL, f"internal error: {exc}"), sess

    def _error(
        self, sess: Session | None, sid: int, seq: int, code: ErrorCode, message: str
    ) -> list[bytes]:
        self.errors += 1
        if sess is not None:
            sess.errors += 1
        log.debug("error reply %s to session %x seq %d: %s", code.name, sid, seq, message)
        return [pack_header(MsgType.ERROR, sid, seq), U32.pack(code), message[:1000].encode()]

    # -- handlers ---------------------------------------------------------------------
    def _on_hello(
        self, head: Header, payload: list[bytes], peer: str = "", key: str | None = None
    ) -> list[bytes]:
        if len(payload) != 1:
            raise ProtocolError(
                ErrorCode.BAD_FRAMES, f"hello has {len(payload)} payload frames, expected 1 (JSON)"
            )
        if len(payload[0]) > MAX_JSON_BYTES:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"hello JSON is {len(payload[0])} bytes")
        try:
            req = HelloRequest.model_validate_json(payload[0])
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()
            )
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, f"bad hello: {problems}") from None
        m = self.model
        if req.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.BAD_VERSION,
                f"client protocol {req.protocol_version}, server speaks {PROTOCOL_VERSION}",
            )
        mismatch = []
        if req.obs_dim is not None and req.obs_dim != m.obs_dim:
            mismatch.append(f"obs_dim {req.obs_dim} != served {m.obs_dim}")
        if req.act_dim is not None and req.act_dim != m.act_dim:
            mismatch.append(f"act_dim {req.act_dim} != served {m.act_dim}")
        if req.artifact_sha256 is not None and req.artifact_sha256 != m.sha256:
            mismatch.append(
                f"artifact sha256 {req.artifact_sha256[:12]}… != served {m.sha256[:12]}…"
            )
        if req.kind is not None and req.kind != m.kind:
            mismatch.append(f"kind {req.kind} != served {m.kind}")
        if mismatch:
            raise ProtocolError(ErrorCode.HANDSHAKE_MISMATCH, "; ".join(mismatch))
        self._make_room(peer)
        sid = 0
        while sid == 0 or sid in self.sessions:
            sid = secrets.randbits(63) | 1  # odd, never 0: 0 means "no session" in headers
        self._session_number += 1
        seed = None if self.cfg.seed is None else self.cfg.seed + self._session_number
        sess = Session(
            sid, m, self.cfg, np.random.default_rng(seed), time.monotonic(), head.seq, peer, key
        )
        self.sessions[sid] = sess
        log.info("session %x opened by %r (%d open)", sid, req.client, len(self.sessions))
        return [pack_header(MsgType.HELLO | REPLY_BIT, sid, head.seq), self._hello_json(sess)]

    def _make_room(self, peer: str) -> None:
        """Session policy for a hello from `peer`: a peer holding max_sessions_per_peer
        loses its longest-idle session; a full server closes its longest-idle session if
        that one is idle for evict_idle_s, and refuses the hello otherwise."""
        cfg = self.cfg
        own = [s for s in self.sessions.values() if s.peer == peer]
        if len(own) >= cfg.max_sessions_per_peer:
            self._evict(min(own, key=lambda s: s.last_seen), "max_sessions_per_peer")
        if len(self.sessions) >= cfg.max_sessions:
            self._housekeeping()
        if len(self.sessions) >= cfg.max_sessions:
            idlest = min(self.sessions.values(), key=lambda s: s.last_seen)
            idle = time.monotonic() - idlest.last_seen
            if idle < cfg.evict_idle_s:
                raise ProtocolError(
                    ErrorCode.TOO_MANY_SESSIONS,
                    f"{len(self.sessions)} sessions open (max_sessions), the idlest idle "
                    f"{idle:.1f} s < evict_idle_s {cfg.evict_idle_s:g}; say bye from unused ones",
                )
            self._evict(idlest, "max_sessions")

    def _evict(self, sess: Session, why: str) -> None:
        del self.sessions[sess.sid]
        log.info(
            "session %x closed for a new one (%s; idle %.1f s)",
            sess.sid,
            why,
            time.monotonic() - sess.last_seen,
        )

    def _hello_json(self, sess: Session) -> bytes:
        m = sess.model.artifact.manifest
        return (
            HelloReply(
                session_id=sess.sid,
                protocol_version=PROTOCOL_VERSION,
                obs_dim=m.obs_dim,
                act_dim=m.act_dim,
                latent_dim=m.latent_dim,
                transition_dim=m.transition_dim,
                obs_names=m.obs_names,
                action_names=m.action_names,
                action_low=m.action_low,
                action_high=m.action_high,
                control_hz=m.control_hz,
                artifact_sha256=sess.model.sha256,
                artifact_name=m.name,
                mode=sess.mode,
                update=sess.update,
                kind=m.kind,
                hidden_dim=m.hidden_dim or 0,
                descriptor_dim=m.descriptor_dim or 0,
                **_training_facts(m.training),
            )
            .model_dump_json()
            .encode()
        )

    def _on_step(self, s: Session, head: Header, payload: list[bytes], ident: bytes) -> list[bytes]:
        n = len(payload)
        if n != 1 and n != 2:
            raise ProtocolError(
                ErrorCode.BAD_FRAMES,
                f"step has {n} payload frames, expected 1 (obs) or 2 (obs, transition)",
            )
        m = s.model
        if s.kind != "posterior":
            return self._step_other(s, head, payload)
        # Validate everything before touching the posterior: a bad obs must not leave the
        # transition half-applied.
        obs = _f32_row(payload[0], m.obs_dim, "obs")
        if n == 2:
            tr = _f32_row(payload[1], m.transition_dim, "transition")
            if m.fused is not None and s.update == "step" and s.mode == "exploit":
                return self._step_fused(s, head, obs, tr)
            mu, var = m.encode(tr)  # [1, L] each: one encoder call, O(1) in context length
            s.add_factors(mu, var)
        noise = (
            s.rng.standard_normal((1, m.act_dim)).astype(np.float32)
            if head.flags & FLAG_STOCHASTIC
            else None
        )
        action = m.act(obs, s.z, noise)
        if not _all_finite(action.reshape(-1)):
            raise ProtocolError(ErrorCode.INTERNAL, "the policy produced a non-finite action")
        s.steps += 1
        return [action.tobytes()]

    def _step_fused(self, s: Session, head: Header, obs: F32, tr: F32) -> list[bytes]:
        """STEP with a transition, exploit mode, update per step, on an artifact with the
        fused graph: encoder, posterior update and policy in one onnxruntime call; the same
        state, reply and errors as the unfused path (tests/runtime/test_fused_step.py)."""
        m = s.model
        post = s.posterior
        prec, eta = post.rows()
        noise = saved = None
        if head.flags & FLAG_STOCHASTIC:
            # Unfused, a rejected factor fails before the noise draw: so must this one.
            saved = s.rng.bit_generator.state
            noise = s.rng.standard_normal((1, m.act_dim)).astype(np.float32)
        nprec, neta, z, ok, action = m.fused_step(obs, tr, prec, eta, noise)
        if not ok[0, 0]:
            if saved is not None:
                s.rng.bit_generator.state = saved
            raise s.rejected(REJECTED)
        post.set_rows(nprec, neta)
        s.z = z  # the new posterior mean as float32 [1, L], as refresh_z makes it
        if not _all_finite(action.reshape(-1)):
            raise ProtocolError(ErrorCode.INTERNAL, "the policy produced a non-finite action")
        s.steps += 1
        return [action.tobytes()]

    def _step_other(self, s: Session, head: Header, payload: list[bytes]) -> list[bytes]:
        """STEP of the kinds without a posterior (recurrent, conditioned, weights)."""
        m = s.model
        obs = _f32_rows(payload[0], m.obs_dim, "obs", single=True)
        tr = None
        if len(payload) == 2:
            tr = _f32_rows(payload[1], m.transition_dim, "transition", single=True)
        noise = (
            s.rng.standard_normal((1, m.act_dim)).astype(np.float32)
            if head.flags & FLAG_STOCHASTIC
            else None
        )
        hidden = None
        if s.kind == "recurrent":
            o, a = m.obs_dim, m.act_dim
            last_action = s.last_action if tr is None else tr[:, o : o + a].copy()
            reward = s.reward if tr is None else tr[:, o + a : o + a + 1].copy()
            hidden, action = m.step(s.hidden, obs, last_action, reward, s.done, noise)
            if not _all_finite(hidden.reshape(-1)):
                raise ProtocolError(
                    ErrorCode.INTERNAL, "the step graph produced a non-finite hidden state"
                )
        elif s.kind == "conditioned":
            if s.descriptor is None:
                raise ProtocolError(
                    ErrorCode.NO_TASK,
                    "conditioned artifact: send RESET_TASK with the task descriptor "
                    f"({m.descriptor_dim} float32) before STEP",
                )
            action = m.act_plain(obs, s.descriptor, noise)
        else:
            action = m.act_plain(obs, None, noise)
        if not _all_finite(action.reshape(-1)):
            raise ProtocolError(ErrorCode.INTERNAL, "the policy produced a non-finite action")
        # Everything succeeded: commit (a failed step leaves the session as it was).
        if tr is not None:
            s.take_transitions(tr)
        if hidden is not None:
            s.hidden = hidden
            s.done[0, 0] = 0.0
            s.stepped = True
        s.steps += 1
        return [action.tobytes()]

    def _on_observe(
        self, s: Session, head: Header, payload: list[bytes], ident: bytes
    ) -> list[bytes]:
        if len(payload) != 1:
            raise ProtocolError(
                ErrorCode.BAD_FRAMES, f"observe has {len(payload)} payload frames, expected 1"
            )
        m = s.model
        rows = _f32_rows(payload[0], m.transition_dim, "transitions", single=False)
        if s.kind != "posterior":
            s.take_transitions(rows)
            return [U64.pack(s.transitions)]
        chunk = self.cfg.encode_chunk
        mus, variances = [], []
        for i in range(0, rows.shape[0], chunk):
            mu, var = m.encode(rows[i : i + chunk])
            mus.append(mu)
            variances.append(var)
        # Add all chunks at once, after every encoder call succeeded: all or nothing.
        s.add_factors(np.concatenate(mus), np.concatenate(variances))
        return [U64.pack(s.posterior.count)]

    def _on_reset_task(
        self, s: Session, head: Header, payload: list[bytes], ident: bytes
    ) -> list[bytes]:
        m = s.model
        descriptor = None
        if s.kind == "conditioned":
            if len(payload) > 1:
                raise ProtocolError(
                    ErrorCode.BAD_FRAMES,
                    f"reset-task has {len(payload)} payload frames, expected 1 (the descriptor)",
                )
            if payload:
                descriptor = _f32_rows(payload[0], m.descriptor_dim, "descriptor", single=True)
                descriptor = descriptor.copy()
        elif payload:
            raise ProtocolError(
                ErrorCode.BAD_FRAMES,
                f"reset-task takes a descriptor frame only for a conditioned artifact (this "
                f"one is {s.kind}); got {len(payload)} payload frames",
            )
        if s.kind == "posterior":
            s.posterior.reset()
            s.refresh_z()
        else:
            s.init_state()
        s.descriptor = descriptor
        return []

    def _on_reset_episode(
        self, s: Session, head: Header, payload: list[bytes], ident: bytes
    ) -> list[bytes]:
        _no_payload(payload, "reset-episode")
        s.new_episode()
        return []

    def _on_set_mode(
        self, s: Session, head: Header, payload: list[bytes], ident: bytes
    ) -> list[bytes]:
        if len(payload) != 1 or len(payload[0]) != 2:
            raise ProtocolError(
                ErrorCode.BAD_PAYLOAD,
                "set-mode takes one 2-byte frame: mode (0 exploit, 1 explore), update (0 episode, 1 step)",
            )
        mode, update = payload[0][0], payload[0][1]
        if mode > 1 or update > 1:
            raise ProtocolError(
                ErrorCode.BAD_PAYLOAD, f"set-mode bytes ({mode}, {update}) out of range 0..1"
            )
        s.mode = "explore" if mode else "exploit"
        s.update = "step" if update else "episode"
        s.refresh_z()
        return []

    def _on_get_state(
        self, s: Session, head: Header, payload: list[bytes], ident: bytes
    ) -> list[bytes]:
        _no_payload(payload, "get-state")
        p = s.posterior
        state = b""
        if s.kind == "recurrent":
            state = s.hidden.astype("<f4").tobytes()
        elif s.kind == "conditioned" and s.descriptor is not None:
            state = s.descriptor.astype("<f4").tobytes()
        return [
            p.mean.astype("<f4").tobytes(),
            p.var.astype("<f4").tobytes(),
            s.z.astype("<f4").tobytes(),
            U64.pack(s.count),
            bytes([KIND_CODE[s.kind]]),
            state,
        ]

    def _on_stats(
        self, s: Session, head: Header, payload: list[bytes], ident: bytes
    ) -> list[bytes]:
        _no_payload(payload, "stats")
        h = s.hist
        values = {
            "requests": s.requests,
            "errors": s.errors,
            "steps": s.steps,
            "context_count": s.count,
            "mean_us": h.total_us / h.n if h.n else 0.0,
            "p50_us": h.percentile(50),
            "p90_us": h.percentile(90),
            "p99_us": h.percentile(99),
            "p999_us": h.percentile(99.9),
            "max_us": h.max_us,
            "kind": KIND_CODE[s.kind],
        }
        return [
            np.array([values[k] for k in STATS_FIELDS], "<f8").tobytes(),
            np.array(h.counts, "<u8").tobytes(),
        ]

    def _on_bye(self, s: Session, head: Header, payload: list[bytes], ident: bytes) -> list[bytes]:
        _no_payload(payload, "bye")
        del self.sessions[s.sid]
        log.info("session %x said bye (%d open)", s.sid, len(self.sessions))
        return []

    # -- reload -----------------------------------------------------------------------
    def _on_reload(self, s: Session, head: Header, payload: list[bytes], ident: bytes) -> None:
        if len(payload) != 1 or not 0 < len(payload[0]) <= 4096:
            raise ProtocolError(
                ErrorCode.BAD_PAYLOAD, "reload takes one frame: the artifact path (UTF-8)"
            )
        if s.reloading:
            raise ProtocolError(ErrorCode.BUSY, "a reload for this session is already running")
        try:
            path = payload[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(ErrorCode.BAD_PAYLOAD, "reload path is not UTF-8") from None
        cfg = self.cfg
        why = None
        if cfg.reload_root is None:
            why = "RELOAD is off (serve config reload_root unset)"
        elif self._curve and s.key not in self._reload_admins:
            why = f"client key {s.key} is not in reload_clients"
        if why is not None:
            log.warning("session %x: %s: %s", s.sid, RELOAD_REFUSED, why)
            raise ProtocolError(ErrorCode.BAD_ARTIFACT, RELOAD_REFUSED)
        s.reloading = True
        fut = self._loader.submit(self._load_model, path)
        self._pending.append(_PendingReload(fut, ident, s.sid, head.seq, time.perf_counter_ns()))
        return None

    def _load_model(self, path: str) -> LoadedModel:
        # Runs on the loader thread. Resolve the path (symlinks too) and keep it under the
        # root; hash the files (cheap) before building onnxruntime sessions (not cheap), and
        # reuse a model another session already loaded.
        from runtime.artifact import load_artifact

        assert self.cfg.reload_root is not None
        root = Path(self.cfg.reload_root).resolve()
        target = Path(path).resolve()
        if not target.is_relative_to(root):
            raise ArtifactError(f"{path[:200]!r} is not under reload_root {root}")
        artifact = load_artifact(target)
        cached = self._models.get(artifact.sha256)
        if cached is not None:
            return cached
        return LoadedModel(artifact, self.cfg)

    def _finish_reloads(self) -> None:
        sock = self.sock
        still: list[_PendingReload] = []
        for p in self._pending:
            if not p.future.done():
                still.append(p)
                continue
            sess = self.sessions.get(p.sid)
            if sess is None:
                continue  # said bye or expired while loading
            sess.reloading = False
            try:
                model = p.future.result()
                old = sess.model
                if (model.obs_dim, model.act_dim) != (old.obs_dim, old.act_dim):
                    raise ArtifactError(
                        f"artifact has obs_dim {model.obs_dim}, act_dim {model.act_dim}; "
                        f"this session's robot has {old.obs_dim}, {old.act_dim}"
                    )
                if (model.kind, model.descriptor_dim) != (old.kind, old.descriptor_dim):
                    raise ArtifactError(
                        f"artifact is of kind {model.kind} (descriptor_dim "
                        f"{model.descriptor_dim}); this session drives kind {old.kind} "
                        f"(descriptor_dim {old.descriptor_dim})"
                    )
                self._models[model.sha256] = model
                sess.set_model(model)
                self._prune_models()
                log.info(
                    "session %x reloaded %s (sha256 %s…)",
                    sess.sid,
                    model.artifact.root,
                    model.sha256[:12],
                )
                reply = [
                    pack_header(MsgType.RELOAD | REPLY_BIT, p.sid, p.seq),
                    self._hello_json(sess),
                ]
            except Exception as exc:  # every refusal gets the same reply: no file probing
                log.warning(
                    "session %x: %s: %s",
                    p.sid,
                    RELOAD_REFUSED,
                    f"{type(exc).__name__}: {exc}"[:500],
                )
                reply = self._error(sess, p.sid, p.seq, ErrorCode.BAD_ARTIFACT, RELOAD_REFUSED)
            if sock is not None:
                sock.send_multipart([p.ident, *reply])
                sess.hist.record((time.perf_counter_ns() - p.t0_ns) / 1000.0)
        self._pending = still

    def _prune_models(self) -> None:
        used = {s.model.sha256 for s in self.sessions.values()} | {self.model.sha256}
        for sha in [k for k in self._models if k not in used]:
            del self._models[sha]


# -- frame helpers ------------------------------------------------------------------------
def _public_keys(directory: Path, what: str) -> frozenset[str]:
    """Z85 public keys of the `*.key` files in `directory` (as ZAP reports User-Id)."""
    import zmq.auth

    if not directory.is_dir():
        raise SecurityError(f"{what} {directory}: not a directory of public keys (*.key)")
    keys = set()
    for f in sorted(directory.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(f)
        except (ValueError, OSError) as exc:
            log.warning("%s: %s is not a key file (%s); skipped", what, f, exc)
            continue
        keys.add(public.decode("ascii"))
    return frozenset(keys)


def _f32_rows(frame: bytes, width: int, what: str, *, single: bool) -> F32:
    """A payload frame as float32 [1, width] (single) or [n, width]; checks size and finiteness."""
    nbytes = len(frame)
    row = 4 * width
    if single:
        if nbytes != row:
            raise ProtocolError(
                ErrorCode.BAD_PAYLOAD,
                f"{what} frame is {nbytes} bytes, expected {row} ({width} float32)",
            )
    elif nbytes == 0 or nbytes % row:
        raise ProtocolError(
            ErrorCode.BAD_PAYLOAD,
            f"{what} frame is {nbytes} bytes, not a positive multiple of {row} "
            f"({width} float32 per row)",
        )
    flat = np.frombuffer(frame, _F4)
    if not _all_finite(flat):
        raise ProtocolError(ErrorCode.NON_FINITE, f"{what} contains NaN or Inf")
    return flat.reshape(-1, width)


def _f32_row(frame: bytes, width: int, what: str) -> F32:
    """`_f32_rows(single=True)` on STEP's per-step path: the same checks and errors, one
    call fewer (the slow path, any failure, is `_f32_rows` itself)."""
    if len(frame) == 4 * width:
        flat = np.frombuffer(frame, _F4)  # a dtype object, positional: half the call's cost
        s = float(flat.dot(flat))
        if s - s == 0:
            return flat.reshape(1, width)
    return _f32_rows(frame, width, what, single=True)


def _all_finite(flat: F32) -> bool:
    """True if every entry of the 1-D array is finite; one BLAS call on the fast path."""
    s = float(flat.dot(flat))  # NaN/Inf -> non-finite; so can |x| > 1e19 (overflow)
    if s - s == 0:
        return True
    return bool(np.isfinite(flat).all())  # overflow or a real NaN/Inf: decide exactly


def _no_payload(payload: list[bytes], what: str) -> None:
    if payload:
        raise ProtocolError(
            ErrorCode.BAD_FRAMES, f"{what} takes no payload frames, got {len(payload)}"
        )


def _training_facts(training: dict[str, Any]) -> dict[str, Any]:
    """What the HELLO reply tells a client from the manifest's free-form `training` mapping
    (HelloReply `plug_descriptor_version`, `goal_epsilon`); an entry of the wrong type is
    left out (None), as one an older exporter never wrote."""
    version = training.get("plug_descriptor_version")
    goal = training.get("goal")
    eps: Any = goal.get("epsilon") if isinstance(goal, dict) else None
    number = isinstance(eps, int | float) and not isinstance(eps, bool)
    return {
        "plug_descriptor_version": version
        if isinstance(version, int) and not isinstance(version, bool)
        else None,
        "goal_epsilon": float(eps) if number and math.isfinite(eps) and eps > 0 else None,
    }


def describe(model: LoadedModel) -> str:
    """One paragraph about the served artifact for the server's log."""
    m = model.artifact.manifest
    sizes = {
        "latent_dim": m.latent_dim,
        "hidden_dim": m.hidden_dim,
        "descriptor_dim": m.descriptor_dim,
    }
    return json.dumps(
        {
            "name": m.name,
            "kind": m.kind,
            "obs_dim": m.obs_dim,
            "act_dim": m.act_dim,
            **{k: v for k, v in sizes.items() if v},
            "control_hz": m.control_hz,
            "sha256": model.sha256,
            "providers": model.providers,
        }
    )
