"""Minari datasets: what `zshot collect` and `zshot dataset export` write, and a reader.

The layout is Minari's own (hdf5 storage, format of Minari 0.5), written with h5py and
json only, so writing and reading need neither the `minari` package nor jax:

    ROOT/data/metadata.json     total_episodes, total_steps, data_format "hdf5",
                                observation_space, action_space (Minari's space JSON),
                                env_spec (gymnasium EnvSpec JSON), dataset_id,
                                minari_version, author, description, ..., "zshot": {...}
    ROOT/data/main_data.hdf5    episode_0 .. episode_{N-1}, each:
        observations [T+1, obs]   actions [T, act]   rewards [T]
        terminations [T]          truncations [T]    infos/<key> [T+1, ...]
        attrs: id, total_steps, seed, task_json (the task, JSON: lossless),
               task/<param> (the hidden parameters, flattened so that Minari's
               get_episode_metadata returns them as metadata["task"]), plug, mode, ...

`minari.load_dataset(ID)` finds ROOT at `$MINARI_DATASETS_PATH/ID`; `minari.MinariDataset`
opens `ROOT/data`. `read_minari` reads any dataset in that layout with Box spaces, its own
or one written by Minari (`DataCollector`, `create_dataset_from_buffers`): the task of an
episode is `task_json`, else the `task/...` metadata, else the `infos/task/...` a zshot env
reports at every step (docs/OFFLINE.md).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5a, h5d, h5p, h5s, h5t

from zshot.jsonio import write_json

DATA_DIR = "data"
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
MINARI_LAYOUT_VERSION = "0.5.0"
"""`minari_version` written into metadata.json: the Minari release whose hdf5 layout this is
(every Minari 0.5.x lists it in `supported_dataset_versions`; a test checks it)."""

_NAME_RE = re.compile(r"[^-_\w]+")
_ID_RE = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")


class MinariFormatError(ValueError):
    """A Minari dataset is missing, corrupt or not readable here; the message names the file."""


def box_space_json(low: Any, high: Any, dtype: str = "float32") -> str:
    """A Box space as Minari's `serialize_space` writes it."""
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    return json.dumps(
        {
            "type": "Box",
            "dtype": dtype,
            "shape": list(lo.shape),
            "low": lo.tolist(),
            "high": hi.tolist(),
        }
    )


def space_json(space: Any) -> str:
    """A gymnasium Box as Minari's space JSON (the only space kind zshot envs have)."""
    if type(space).__name__ != "Box":
        raise MinariFormatError(f"only Box spaces are written, not {type(space).__name__}")
    return box_space_json(space.low, space.high, str(space.dtype))


def valid_dataset_id(dataset_id: str) -> bool:
    """Whether `dataset_id` has Minari's form `(namespace/)name-vN`."""
    return bool(_ID_RE.match(dataset_id))


def minari_root_dir() -> Path:
    """Where `minari.load_dataset` looks: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def dataset_id_for(root: Path, dataset_id: str | None = None) -> str:
    """The dataset id of a dataset written at `root`.

    An explicit id must have Minari's form. Otherwise: the path under
    $MINARI_DATASETS_PATH when `root` lies there (so `minari.load_dataset(id)` finds it),
    else "zshot/<dir name>" with "-v0" appended unless the name ends in -vN.
    """
    if dataset_id is not None:
        if not valid_dataset_id(dataset_id):
            raise MinariFormatError(
                f"dataset id {dataset_id!r} is not of Minari's form (namespace/)name-vN"
            )
        return dataset_id
    try:
        rel = root.resolve().relative_to(minari_root_dir().resolve()).as_posix()
    except ValueError:
        rel = ""
    if rel and rel != "." and valid_dataset_id(rel):
        return rel
    name = _NAME_RE.sub("_", root.resolve().name).strip("_") or "dataset"
    if not re.search(r"-v\d+$", name):
        name += "-v0"
    return f"zshot/{name}"


def resolve_out(out: str | None, dataset_id: str | None, error: Any) -> Path:
    """The dataset root of a command's `--out` / `--dataset-id` (`error`: the parser's
    `error`, which exits 2 with its message): --out, else $MINARI_DATASETS_PATH/ID."""
    if out is None and dataset_id is None:
        error("give --out DIR or --dataset-id ID (or both)")
    if dataset_id is not None and not valid_dataset_id(dataset_id):
        error(f"--dataset-id {dataset_id!r}: not of Minari's form (namespace/)name-vN")
    return Path(out) if out else minari_root_dir() / str(dataset_id)


def find_data_dir(path: Path) -> Path | None:
    """The Minari data dir of `path` (ROOT or ROOT/data), or None when it is not one."""
    for d in (path / DATA_DIR, path):
        if (d / METADATA_FILE).is_file() or (d / MAIN_FILE).is_file():
            return d
    return None


def _attr(value: Any) -> Any:
    """`value` as an HDF5 attribute, or None where HDF5 has no equivalent (None, mixed lists)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and value:
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            return arr
    return None


def flatten_metadata(meta: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metadata as `a/b` attribute keys (Minari's convention); unstorable values dropped."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metadata(value, name + "/"))
        elif (v := _attr(value)) is not None:
            out[name] = v
    return out


def write_json_atomic(path: Path, body: dict[str, Any]) -> None:
    """Write `body` as strict JSON to `path`: temp file, fsync, rename; mode 0644."""
    write_json(path, body, indent=1)


class MinariWriter:
    """Appends episodes to ROOT/data/main_data.hdf5; `close` writes metadata.json.

    metadata.json is written last, so an interrupted write leaves a dataset that Minari does
    not open ("No data found") and `read_minari` refuses, never one that looks complete.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        dataset_id: str,
        observation_space: str,
        action_space: str,
        env_spec: str | None = None,
        compression: str | None = None,
    ) -> None:
        """`observation_space`, `action_space`: Minari space JSON (`space_json`)."""
        self.root = Path(root)
        self.data_dir = self.root / DATA_DIR
        if (self.data_dir / METADATA_FILE).exists() or (self.data_dir / MAIN_FILE).exists():
            raise MinariFormatError(f"{self.data_dir} already holds a Minari dataset")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.dataset_id = dataset_id
        self.spaces = (observation_space, action_space)
        self.env_spec = env_spec
        self.kw: dict[str, Any] = {"compression": compression} if compression else {}
        self.file = h5py.File(self.data_dir / MAIN_FILE, "w", track_order=True)
        # h5py's dataset creation properties for a plain array: no times, no attribute order
        self._dcpl = h5p.create(h5p.DATASET_CREATE)
        self._dcpl.set_obj_track_times(False)
        self._dcpl.set_attr_creation_order(0)
        self._types: dict[tuple[str, str, bool], Any] = {}
        self.episodes = 0
        self.steps = 0

    def add_episode(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
        infos: Mapping[str, np.ndarray],
        metadata: Mapping[str, Any],
        seed: int | None = None,
    ) -> int:
        """Write one episode (observations [T+1], the rest [T], infos [T+1]); returns its id."""
        t = int(np.asarray(actions).shape[0])
        if np.asarray(observations).shape[0] != t + 1:
            raise MinariFormatError(
                f"episode of {t} steps needs {t + 1} observations, got "
                f"{np.asarray(observations).shape[0]}"
            )
        g = self.file.create_group(f"episode_{self.episodes}")
        put, put_attr = self._put_dataset, self._put_attr
        put(g, "observations", np.asarray(observations, np.float32))
        put(g, "actions", np.asarray(actions, np.float32))
        put(g, "rewards", np.asarray(rewards, np.float64))
        put(g, "terminations", np.asarray(terminations, bool))
        put(g, "truncations", np.asarray(truncations, bool))
        ig = g.create_group("infos")
        for key, value in infos.items():
            arr = np.asarray(value)
            if arr.shape[:1] != (t + 1,):
                raise MinariFormatError(f"infos/{key}: {arr.shape[:1]} rows, need {t + 1}")
            put(ig, key, arr)
        put_attr(g, "id", self.episodes)
        put_attr(g, "total_steps", t)
        if seed is not None:
            put_attr(g, "seed", int(seed))
        meta = dict(metadata)
        task = meta.pop("task", None)
        if isinstance(task, Mapping):
            put_attr(g, "task_json", json.dumps(task, sort_keys=True))
            for key, value in flatten_metadata(task, "task/").items():
                put_attr(g, key, value)
        for key, value in meta.items():
            if isinstance(value, Mapping):
                put_attr(g, key, json.dumps(value, sort_keys=True))
            elif (v := _attr(value)) is not None:
                put_attr(g, key, v)
        self.file.flush()
        self.episodes += 1
        self.steps += t
        return self.episodes - 1

    # The episode's arrays and attributes through h5py's low-level calls: the same HDF5 calls,
    # and the same bytes (tests/training/common/test_minari_format.py), as `create_dataset` and
    # `attrs[name] = ...` without their per-call Python (argument checks, property lists and
    # types made anew every time): 20-30 % less CPU per episode in `zshot collect`'s driver
    # (bench/collect_profile.py; BENCHMARKS.md "Ray collection at 2 workers (issue 22, branch
    # rayeff2)").
    # Anything else (filters, other dtypes) goes through h5py's own calls.

    low_level = True
    """False: every array and attribute through h5py's high-level calls (the reference)."""

    def _put_dataset(self, group: h5py.Group, name: str, arr: np.ndarray) -> None:
        """`group.create_dataset(name, data=arr)`."""
        plain = arr.ndim and arr.dtype.kind in "biuf" and "/" not in name  # "/": h5py's groups
        if self.kw or not self.low_level or not plain:
            group.create_dataset(name, data=arr, **self.kw)
            return
        arr = np.asarray(arr, order="C")
        space = h5s.create_simple(arr.shape)
        dset = h5d.create(
            group.id, name.encode(), self._type(arr.dtype, True), space, dcpl=self._dcpl
        )
        dset.write(h5s.ALL, h5s.ALL, arr)
        dset.close()

    def _put_attr(self, group: h5py.Group, name: str, value: Any) -> None:
        """`group.attrs[name] = value`."""
        if isinstance(value, str):
            data = np.asarray(value, dtype=h5py.string_dtype())
        else:
            data = np.asarray(value, order="C")
            if data.dtype.kind not in "biuf":
                data = None
        if data is None or not self.low_level:
            group.attrs[name] = value
            return
        key = name.encode()
        if h5a.exists(group.id, key):
            h5a.delete(group.id, key)
        space = h5s.create_simple(data.shape)
        attr = h5a.create(group.id, key, self._type(data.dtype, True), space)
        try:
            attr.write(data, mtype=self._type(data.dtype, False))
        except BaseException:  # as h5py: no half-written attribute left behind
            attr.close()
            h5a.delete(group.id, key)
            raise
        attr.close()

    def _type(self, dtype: np.dtype[Any], logical: bool) -> Any:
        """h5py's HDF5 type of `dtype`, made once per dtype (its metadata included: h5py's
        variable-length strings are an object dtype with metadata, which == ignores)."""
        key = (dtype.str, repr(dtype.metadata), logical)
        tid = self._types.get(key)
        if tid is None:
            tid = self._types[key] = h5t.py_create(dtype, logical=logical)
        return tid

    def close(self, **metadata: Any) -> Path:
        """Close the HDF5 file and write metadata.json (extra keys: author, description, ...)."""
        self.file.close()
        size = sum(f.stat().st_size for f in self.data_dir.iterdir() if f.is_file())
        body: dict[str, Any] = {
            "total_episodes": self.episodes,
            "total_steps": self.steps,
            "data_format": "hdf5",
            "jpeg_encoding": False,
            "observation_space": self.spaces[0],
            "action_space": self.spaces[1],
            "dataset_id": self.dataset_id,
            "minari_version": MINARI_LAYOUT_VERSION,
            "dataset_size": round(size / 1e6, 1),
            **metadata,
        }
        if self.env_spec is not None:
            body["env_spec"] = self.env_spec
        path = self.data_dir / METADATA_FILE
        write_json_atomic(path, body)
        return path

    def abort(self) -> None:
        """Close the HDF5 file without writing metadata.json (the dataset stays unopenable)."""
        if self.file.id.valid:
            self.file.close()


def _py(value: Any) -> Any:
    """An HDF5 attribute or dataset element as plain Python (bytes decoded)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_py(v) for v in value.tolist()] if value.dtype.kind in "SO" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unflatten(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        cur = out
        *parents, leaf = key.split("/")
        for p in parents:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            cur = nxt
        else:
            cur[leaf] = _py(value)
    return out


def _first_row(group: h5py.Group) -> dict[str, Any]:
    """infos/<group>/<key>[0] of every key (a zshot env's per-step info["task"])."""
    out: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _first_row(item)
        elif item.shape and item.shape[0]:
            out[key] = _py(item[0])
    return out


def episode_task(attrs: Mapping[str, Any], group: h5py.Group) -> dict[str, Any]:
    """An episode's task: task_json, else task/... metadata, else options/task, else infos/task."""
    raw = attrs.get("task_json")
    if raw is not None:
        task = json.loads(_py(raw))
        return task if isinstance(task, dict) else {}
    meta = _unflatten(attrs)
    for found in (meta.get("task"), (meta.get("options") or {}).get("task")):
        if isinstance(found, dict) and found:
            return found
    infos = group.get("infos")
    if isinstance(infos, h5py.Group) and isinstance(infos.get("task"), h5py.Group):
        return _first_row(infos["task"])
    return {}


def read_metadata(data_dir: Path) -> dict[str, Any]:
    """metadata.json of a Minari data dir, checked for what reading needs."""
    path = data_dir / METADATA_FILE
    if not path.is_file():
        raise MinariFormatError(
            f"{data_dir}: no {METADATA_FILE} (an interrupted write, or not a Minari dataset)"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MinariFormatError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise MinariFormatError(f"{path}: not a JSON object")
    if meta.get("data_format", "hdf5") != "hdf5":
        raise MinariFormatError(
            f"{path}: data_format {meta.get('data_format')!r}; only Minari's hdf5 storage is read"
        )
    return meta


def read_minari(data_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every episode of a Minari hdf5 dataset: (episodes, metadata.json).

    Each episode: name, observations [T+1, obs], actions [T, act], rewards, terminations,
    truncations [T], task (dict, {} when none is recorded), label (the episode's `label`, or
    `plug` as older datasets and bridge recordings say), mode, attrs (unflattened).
    """
    meta = read_metadata(data_dir)
    main = data_dir / MAIN_FILE
    try:
        h5 = h5py.File(main, "r")
    except OSError as exc:
        raise MinariFormatError(f"{main}: not a readable HDF5 file ({exc})") from None
    episodes: list[dict[str, Any]] = []
    with h5:
        names = sorted((k for k in h5 if re.fullmatch(r"episode_\d+", k)), key=lambda k: int(k[8:]))
        expected = meta.get("total_episodes")
        if expected is not None and int(expected) != len(names):
            raise MinariFormatError(
                f"{main}: {METADATA_FILE} lists {expected} episodes, the file holds {len(names)} "
                "(episodes missing or added)"
            )
        for name in names:
            g = h5[name]
            ep: dict[str, Any] = {"name": f"{main.name}/{name}"}
            try:
                for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                    item = g.get(key)
                    if not isinstance(item, h5py.Dataset):
                        raise MinariFormatError(
                            f"{main}/{name}/{key}: missing, or not an array (dict and tuple "
                            "spaces are not read: zshot needs flat Box observations and actions)"
                        )
                    ep[key] = np.asarray(item[()])
                # Only the attributes zshot wrote when task_json is there (each HDF5 attribute
                # read costs ~0.1-0.3 ms); everything for a dataset from elsewhere.
                present = set(g.attrs)
                keys = ("task_json", "label", "plug", "mode") if "task_json" in present else present
                attrs = {k: g.attrs[k] for k in keys if k in present}
                task = episode_task(attrs, g)
            except (OSError, ValueError, KeyError) as exc:
                if isinstance(exc, MinariFormatError):
                    raise
                raise MinariFormatError(f"{main}/{name}: unreadable ({exc})") from None
            t = ep["actions"].shape[0] if ep["actions"].ndim == 2 else -1
            if t < 0 or ep["observations"].ndim != 2 or ep["observations"].shape[0] != t + 1:
                raise MinariFormatError(
                    f"{main}/{name}: observations {ep['observations'].shape} and actions "
                    f"{ep['actions'].shape} do not form an episode (need [T+1, obs], [T, act])"
                )
            for key in ("rewards", "terminations", "truncations"):
                if ep[key].shape != (t,):
                    raise MinariFormatError(
                        f"{main}/{name}/{key}: shape {ep[key].shape}, expected ({t},)"
                    )
            flat = _unflatten(attrs)
            ep["task"] = task
            # "plug": the key before the rename (and the bridge recorder's, insertion)
            ep["label"] = str(
                flat.get("label") or flat.get("plug") or task.get("label") or task.get("plug") or ""
            )
            ep["mode"] = str(flat.get("mode") or meta.get("algorithm_name") or "")
            ep["attrs"] = flat
            episodes.append(ep)
    if not episodes:
        raise MinariFormatError(f"{main}: holds no episodes")
    return episodes, meta
