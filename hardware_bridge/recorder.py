"""Crash-safe trial recorder: every step to a write-ahead log, every episode to an HDF5 file.

Per step, one fixed-size record (float64 fields + CRC32) is appended to the episode's
write-ahead log `episode_NNNNNN.wal` with a single unbuffered `os.write`, and fsync'd every
`fsync_every` steps. A kill -9 cannot lose what `os.write` already handed to the kernel (the
page cache outlives the process); fsync additionally guards against power loss. At episode
end the episode is written as `episode_NNNNNN.h5.tmp`, fsync'd, renamed over
`episode_NNNNNN.h5` (os.replace is atomic), the directory fsync'd, and only then the log
deleted. So at any instant each episode exists as a complete .h5 or as a log that
`recover()` turns into one: a kill loses at most the step in flight and never corrupts a file.

Episode files use Minari's layout, the format `zshot collect` writes (docs/INTERFACES.md):

    episode_N/observations        [T+1, obs_dim] float32   (s_0 .. s_T)
    episode_N/actions             [T, act_dim]   float32   (the action *sent*, after safety)
    episode_N/commanded_actions   [T, act_dim]   float32   (the runtime's, NaN: no reply)
    episode_N/rewards             [T]            float64
    episode_N/terminations        [T]            bool
    episode_N/truncations         [T]            bool
    episode_N/infos/{timestamps, t_monotonic, latency_s, flags, z_mean, z_var, wrench}
    episode_N attrs: id, total_steps, task (JSON), plug, mode, recovered, summary (JSON)
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import numpy.typing as npt

from hardware_bridge.config import RecorderConfig
from hardware_bridge.loop import StepRecord

__all__ = [
    "RecordedDataset",
    "Recorder",
    "RecordingError",
    "load_recordings",
    "recover",
]

WAL_MAGIC = b"ZSHTWAL1"
FORMAT = "zshot-recording"
FORMAT_VERSION = 1
_EPISODE_RE = re.compile(r"^episode_(\d{6,})\.(h5|wal)$")
_INDEX_RE = re.compile(r"^episode_(\d{6,})\.(h5|wal|wal\.corrupt)$")  # indices in use
CORRUPT_SUFFIX = ".corrupt"
_U32 = struct.Struct("<I")


class RecordingError(ValueError):
    """A recording is corrupt, truncated or not a zshot recording; the message names the file."""


@dataclass(frozen=True)
class _Layout:
    """Field sizes of one WAL record: all float64, then a u32 CRC of those bytes."""

    obs_dim: int
    act_dim: int
    latent_dim: int

    @property
    def n_floats(self) -> int:
        o, a, z = self.obs_dim, self.act_dim, self.latent_dim
        # t_wall, t_mono, obs, commanded, sent, reward, term, trunc, next_obs, z_mean, z_var,
        # latency, flags, wrench[6]
        return 2 + o + a + a + 3 + o + z + z + 2 + 6

    @property
    def record_bytes(self) -> int:
        return self.n_floats * 8 + 4

    def pack(self, s: StepRecord) -> bytes:
        row = np.concatenate(
            [
                [s.t_wall, s.t_mono],
                np.asarray(s.obs, dtype=np.float64).reshape(self.obs_dim),
                np.asarray(s.commanded, dtype=np.float64).reshape(self.act_dim),
                np.asarray(s.sent, dtype=np.float64).reshape(self.act_dim),
                [s.reward, float(s.terminated), float(s.truncated)],
                np.asarray(s.next_obs, dtype=np.float64).reshape(self.obs_dim),
                _fit(s.z_mean, self.latent_dim),
                _fit(s.z_var, self.latent_dim),
                [s.latency_s, float(s.flags)],
                np.asarray(s.wrench, dtype=np.float64).reshape(6),
            ]
        ).astype("<f8")
        body = row.tobytes()
        return body + _U32.pack(zlib.crc32(body))

    def columns(self, rows: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[Any]]:
        """[T, n_floats] -> named columns."""
        o, a, z = self.obs_dim, self.act_dim, self.latent_dim
        cuts = {}
        i = 0
        for name, width in (
            ("t_wall", 1),
            ("t_mono", 1),
            ("obs", o),
            ("commanded", a),
            ("sent", a),
            ("reward", 1),
            ("terminated", 1),
            ("truncated", 1),
            ("next_obs", o),
            ("z_mean", z),
            ("z_var", z),
            ("latency", 1),
            ("flags", 1),
            ("wrench", 6),
        ):
            col = rows[:, i : i + width]
            cuts[name] = col[:, 0] if width == 1 and name not in ("obs", "next_obs") else col
            i += width
        return cuts


def _fit(x: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    """x as [n] float64, NaN-padded (z is unknown when the runtime never answered)."""
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    out = np.full(n, np.nan)
    out[: min(n, v.size)] = v[:n]
    return out


def _fsync_dir(path: Path) -> None:
    """Make a rename/creation in `path` durable (POSIX; a no-op where dirs cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Recorder:
    """Records episodes into a directory; implements the loop's StepSink.

    Opening a directory recovers any write-ahead log a crash left behind (`recover`): the
    next run into a directory finishes what a killed one left. A log too damaged to read
    (bad magic, unreadable header) is renamed `episode_N.wal.corrupt` (kept, never read
    again, listed in `quarantined`) so that it cannot stop later runs.
    """

    def __init__(
        self, directory: str | Path, config: RecorderConfig | None = None, *, latent_dim: int = 0
    ) -> None:
        """`latent_dim`: size of z recorded per step (0: taken from the first step)."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg = config or RecorderConfig()
        self.latent_dim = latent_dim
        self.quarantined: list[Path] = []
        self.recovered = recover(self.dir, self.cfg, quarantine=self.quarantined)
        self.next_index = _next_index(self.dir)
        self._fd: int | None = None
        self._layout: _Layout | None = None
        self._meta: dict[str, Any] | None = None
        self._rows: list[bytes] = []
        self._index = -1
        self._since_sync = 0
        self.written: list[Path] = []

    # -- StepSink ---------------------------------------------------------------------------
    def begin_episode(self, meta: dict[str, Any]) -> None:
        """Start an episode; `meta` (JSON-serialisable: task, plug, mode, ...) goes into attrs."""
        if self._meta is not None:
            raise RuntimeError("Recorder.begin_episode: the previous episode was not ended")
        json.dumps(meta)  # fail now, not at the end of the episode
        self._meta = dict(meta)
        self._index = self.next_index
        self.next_index += 1
        self._rows = []
        self._layout = None

    def record(self, step: StepRecord) -> None:
        """Append one step to the log (one write; fsync every `fsync_every` steps)."""
        if self._meta is None:
            raise RuntimeError("Recorder.record: no episode begun")
        if self._layout is None:
            latent = self.latent_dim or int(np.asarray(step.z_mean).size)
            self._layout = _Layout(int(np.asarray(step.obs).size), int(step.sent.size), latent)
            self._open_wal(self._layout, self._meta)
        assert self._fd is not None
        rec = self._layout.pack(step)
        os.write(self._fd, rec)
        self._rows.append(rec)
        self._since_sync += 1
        if self.cfg.fsync_every and self._since_sync >= self.cfg.fsync_every:
            os.fsync(self._fd)
            self._since_sync = 0

    def end_episode(self, summary: dict[str, Any]) -> Path | None:
        """Write the episode file atomically and drop its log; returns its path (None: no steps)."""
        if self._meta is None:
            raise RuntimeError("Recorder.end_episode: no episode begun")
        meta, layout, rows = self._meta, self._layout, self._rows
        self._meta, self._layout, self._rows = None, None, []
        if layout is None:
            return None  # nothing was recorded (e.g. the runtime was down at episode start)
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        data = np.frombuffer(b"".join(r[:-4] for r in rows), dtype="<f8").reshape(
            len(rows), layout.n_floats
        )
        path = _write_episode(
            self.dir, self._index, layout, data, meta, summary, False, self.cfg.compression
        )
        _wal_path(self.dir, self._index).unlink()
        _fsync_dir(self.dir)
        self.written.append(path)
        return path

    def close(self) -> None:
        """End an unfinished episode (summary marked 'closed') and release the log."""
        if self._meta is not None:
            self.end_episode({"closed_before_end": True})

    def _open_wal(self, layout: _Layout, meta: dict[str, Any]) -> None:
        header = json.dumps(
            {
                "obs_dim": layout.obs_dim,
                "act_dim": layout.act_dim,
                "latent_dim": layout.latent_dim,
                "meta": meta,
            }
        ).encode()
        path = _wal_path(self.dir, self._index)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, WAL_MAGIC + _U32.pack(len(header)) + header)
        os.fsync(fd)
        _fsync_dir(self.dir)
        self._fd = fd
        self._since_sync = 0


def _wal_path(d: Path, index: int) -> Path:
    return d / f"episode_{index:06d}.wal"


def _h5_path(d: Path, index: int) -> Path:
    return d / f"episode_{index:06d}.h5"


def _next_index(d: Path) -> int:
    found = [int(m.group(1)) for p in d.iterdir() if (m := _INDEX_RE.match(p.name))]
    return max(found) + 1 if found else 0


def _write_episode(
    d: Path,
    index: int,
    layout: _Layout,
    rows: npt.NDArray[np.float64],
    meta: dict[str, Any],
    summary: dict[str, Any],
    recovered: bool,
    compression: str | None,
) -> Path:
    """Write [T, n_floats] rows as episode file `index`: tmp name, fsync, os.replace."""
    c = layout.columns(rows)
    final = _h5_path(d, index)
    tmp = final.with_name(final.name + ".tmp")
    kw: dict[str, Any] = {"compression": compression} if compression else {}
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["total_episodes"] = 1
        f.attrs["total_steps"] = len(rows)
        g = f.create_group(f"episode_{index}")
        obs = np.concatenate([c["obs"], c["next_obs"][-1:]], axis=0).astype(np.float32)
        g.create_dataset("observations", data=obs, **kw)
        g.create_dataset("actions", data=c["sent"].astype(np.float32), **kw)
        g.create_dataset("commanded_actions", data=c["commanded"].astype(np.float32), **kw)
        g.create_dataset("rewards", data=c["reward"], **kw)
        g.create_dataset("terminations", data=c["terminated"] > 0.5, **kw)
        g.create_dataset("truncations", data=c["truncated"] > 0.5, **kw)
        infos = g.create_group("infos")
        infos.create_dataset("timestamps", data=c["t_wall"])
        infos.create_dataset("t_monotonic", data=c["t_mono"])
        infos.create_dataset("latency_s", data=c["latency"])
        infos.create_dataset("flags", data=c["flags"].astype(np.int32))
        infos.create_dataset("z_mean", data=c["z_mean"].astype(np.float32))
        infos.create_dataset("z_var", data=c["z_var"].astype(np.float32))
        infos.create_dataset("wrench", data=c["wrench"].astype(np.float32))
        g.attrs["id"] = index
        g.attrs["total_steps"] = len(rows)
        g.attrs["recovered"] = recovered
        g.attrs["task"] = json.dumps(meta.get("task", {}))
        g.attrs["plug"] = str(meta.get("plug", meta.get("task", {}).get("plug", "")))
        g.attrs["mode"] = str(meta.get("mode", ""))
        g.attrs["meta"] = json.dumps(meta)
        g.attrs["summary"] = json.dumps(summary)
        f.flush()
        # h5py closes the file at the end of the block; fsync its bytes before the rename.
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(d)
    return final


def _read_wal(path: Path) -> tuple[_Layout, dict[str, Any], npt.NDArray[np.float64]]:
    """Header and every intact record of a log (a torn last record is dropped)."""
    raw = path.read_bytes()
    if len(raw) < len(WAL_MAGIC) + 4 or not raw.startswith(WAL_MAGIC):
        raise RecordingError(f"{path}: not a zshot write-ahead log (bad magic)")
    n = _U32.unpack_from(raw, len(WAL_MAGIC))[0]
    start = len(WAL_MAGIC) + 4
    try:
        header = json.loads(raw[start : start + n])
        layout = _Layout(int(header["obs_dim"]), int(header["act_dim"]), int(header["latent_dim"]))
        if layout.obs_dim < 1 or layout.act_dim < 1 or layout.latent_dim < 0:
            raise ValueError(f"dims {layout} out of range")
        meta = header.get("meta", {})
        if not isinstance(meta, dict):
            raise TypeError("meta is not a mapping")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordingError(f"{path}: unreadable log header ({exc})") from None
    body = raw[start + n :]
    size = layout.record_bytes
    good: list[bytes] = []
    for i in range(len(body) // size):
        rec = body[i * size : (i + 1) * size]
        if zlib.crc32(rec[:-4]) != _U32.unpack(rec[-4:])[0]:
            break  # a torn write: nothing after it can be trusted
        good.append(rec[:-4])
    rows = np.frombuffer(b"".join(good), dtype="<f8").reshape(len(good), layout.n_floats)
    return layout, dict(meta), rows


def recover(
    directory: str | Path,
    config: RecorderConfig | None = None,
    *,
    quarantine: list[Path] | None = None,
) -> list[Path]:
    """Turn every write-ahead log a crash left in `directory` into an episode file.

    Leftover `*.h5.tmp` files (a crash mid-write) are removed: their log still exists. A log
    whose episode file already exists (a crash between rename and unlink) is just removed.
    Returns the episode files written. The recovered episode ends at its last intact step,
    marked truncated, with attrs recovered=True. An unreadable log raises RecordingError,
    unless `quarantine` is given: then it is renamed `*.wal.corrupt` and appended to it.
    """
    d = Path(directory)
    cfg = config or RecorderConfig()
    for tmp in d.glob("episode_*.h5.tmp"):
        tmp.unlink()
    written: list[Path] = []
    for wal in sorted(d.glob("episode_*.wal")):
        m = _EPISODE_RE.match(wal.name)
        if m is None:
            continue
        index = int(m.group(1))
        if _h5_path(d, index).exists():
            wal.unlink()
            continue
        try:
            layout, meta, rows = _read_wal(wal)
        except RecordingError:
            if quarantine is None:
                raise
            aside = wal.with_name(wal.name + CORRUPT_SUFFIX)
            os.replace(wal, aside)
            quarantine.append(aside)
            continue
        if len(rows):
            rows = rows.copy()
            last = layout.columns(rows)
            if not (last["terminated"][-1] > 0.5 or last["truncated"][-1] > 0.5):
                # Column views share memory with `rows`: mark the cut as a truncation.
                trunc_col = 2 + layout.obs_dim + 2 * layout.act_dim + 2
                rows[-1, trunc_col] = 1.0
            summary = {"recovered": True, "steps": len(rows)}
            written.append(
                _write_episode(d, index, layout, rows, meta, summary, True, cfg.compression)
            )
        wal.unlink()
    _fsync_dir(d)
    return written


class RecordedDataset(NamedTuple):
    """Recorded transitions, episodes concatenated in file order. N transitions in all."""

    observations: npt.NDArray[np.float32]  # [N, obs_dim]
    actions: npt.NDArray[np.float32]  # [N, act_dim] (sent)
    rewards: npt.NDArray[np.float64]  # [N]
    next_observations: npt.NDArray[np.float32]  # [N, obs_dim]
    terminations: npt.NDArray[np.bool_]  # [N]
    truncations: npt.NDArray[np.bool_]  # [N]
    episode_ids: npt.NDArray[np.int64]  # [N]
    episodes: list[dict[str, Any]]  # per episode: id, file, plug, mode, task, recovered, steps


def load_recordings(path: str | Path) -> RecordedDataset:
    """Every episode in a recording directory (or one HDF5 file) as transition arrays.

    Raises RecordingError naming the file for anything corrupt, truncated or missing, and
    when a directory still holds an unrecovered log (open it with `Recorder` or `recover`).
    """
    p = Path(path)
    if p.is_dir():
        wals = sorted(p.glob("episode_*.wal"))
        if wals:
            raise RecordingError(
                f"{p}: holds unrecovered write-ahead logs ({', '.join(w.name for w in wals)}); "
                "the next `zshot trials --record DIR` recovers them, or call "
                "hardware_bridge.recorder.recover(DIR)"
            )
        files = sorted(f for f in p.glob("*.h5") if f.is_file())
        if not files:
            raise RecordingError(f"{p}: no episode files (*.h5)")
    elif p.is_file():
        files = [p]
    else:
        raise RecordingError(f"{p}: no such recording file or directory")

    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in RecordedDataset._fields[:7]}
    episodes: list[dict[str, Any]] = []
    dims: tuple[int, int] | None = None
    for f in files:
        try:
            h5 = h5py.File(f, "r")
        except OSError as exc:
            raise RecordingError(f"{f}: not a readable HDF5 file ({exc})") from None
        with h5:
            groups = sorted(
                (k for k in h5.keys() if k.startswith("episode_")),
                key=lambda k: int(k.split("_", 1)[1]) if k.split("_", 1)[1].isdigit() else -1,
            )
            if not groups:
                raise RecordingError(f"{f}: holds no episode_N groups")
            for name in groups:
                ep = _read_episode(f, h5[name])
                obs, act = ep["observations"], ep["actions"]
                if dims is None:
                    dims = (obs.shape[1], act.shape[1])
                elif dims != (obs.shape[1], act.shape[1]):
                    raise RecordingError(
                        f"{f}/{name}: obs/act dims {(obs.shape[1], act.shape[1])} differ from "
                        f"the first episode's {dims}"
                    )
                t = act.shape[0]
                eid = len(episodes)
                parts["observations"].append(obs[:-1])
                parts["next_observations"].append(obs[1:])
                parts["actions"].append(act)
                parts["rewards"].append(ep["rewards"])
                parts["terminations"].append(ep["terminations"])
                parts["truncations"].append(ep["truncations"])
                parts["episode_ids"].append(np.full(t, eid, dtype=np.int64))
                attrs = h5[name].attrs
                episodes.append(
                    {
                        "id": eid,
                        "file": str(f),
                        "group": name,
                        "steps": t,
                        "plug": str(attrs.get("plug", "")),
                        "mode": str(attrs.get("mode", "")),
                        "task": json.loads(attrs.get("task", "{}")),
                        "recovered": bool(attrs.get("recovered", False)),
                    }
                )
    return RecordedDataset(
        observations=np.concatenate(parts["observations"]).astype(np.float32),
        actions=np.concatenate(parts["actions"]).astype(np.float32),
        rewards=np.concatenate(parts["rewards"]).astype(np.float64),
        next_observations=np.concatenate(parts["next_observations"]).astype(np.float32),
        terminations=np.concatenate(parts["terminations"]).astype(bool),
        truncations=np.concatenate(parts["truncations"]).astype(bool),
        episode_ids=np.concatenate(parts["episode_ids"]),
        episodes=episodes,
    )


def _read_episode(f: Path, g: Any) -> dict[str, npt.NDArray[Any]]:
    """The Minari datasets of one episode group, shape-checked."""
    out: dict[str, npt.NDArray[Any]] = {}
    for key in ("observations", "actions", "rewards", "terminations", "truncations"):
        if key not in g:
            raise RecordingError(f"{f}/{g.name}: missing dataset {key!r}")
        try:
            out[key] = np.asarray(g[key][()])
        except (OSError, ValueError) as exc:
            raise RecordingError(f"{f}/{g.name}/{key}: unreadable ({exc})") from None
    t = out["actions"].shape[0] if out["actions"].ndim == 2 else -1
    if t < 0 or out["observations"].ndim != 2 or out["observations"].shape[0] != t + 1:
        raise RecordingError(
            f"{f}/{g.name}: observations {out['observations'].shape} and actions "
            f"{out['actions'].shape} do not form an episode (need [T+1, obs] and [T, act])"
        )
    for key in ("rewards", "terminations", "truncations"):
        if out[key].shape != (t,):
            raise RecordingError(f"{f}/{g.name}/{key}: shape {out[key].shape}, expected ({t},)")
    return out
