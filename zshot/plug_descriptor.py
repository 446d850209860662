"""A plug's task descriptor: a fixed-size vector computed from its spec file alone.

What a user has for a new plug is its spec (sim/plugs/*.yaml: pin sections, sizes, layout,
clearance, friction); a policy conditioned on this vector (MT-SAC with
`mtsac.task_input: descriptor`, training/algos/mtsac) is told a plug it never trained on
zero-shot. Pure Python (math + pyyaml) so both sides compute the same numbers: training
(from `sim.plugs.PlugSpec.model_dump()`) and the robot side (`zshot trials
--plug-descriptors` in hardware_bridge, from the YAML file, without sim or torch).

    plug_descriptor(mapping) -> [DESCRIPTOR_DIM floats]   # a spec's fields as a dict
    plug_descriptor_of("US-AC-plug")                        # a shipped name or a .yaml path
    plug_inserted_goal_of("US-AC-plug", 1.0)                # its inserted pose, as a goal

Entries (`PLUG_DESCRIPTOR_NAMES` names them, in their physical units): pin count; the
fractions of box, round and polygon sections; each section's minor and major extent (mean,
and the smallest minor: the tightest pin); the summed section area; pin length (mean and
shortest) and the success depth; the layout's spread in x and y and the largest distance
between pin centres; the mean |sin yaw| of the non-round pins (blades turned off the axes);
the nominal clearance and friction. The spec's `source`, `description` and `body` are not
used (the body's size does not change where the pins go in).

Scaling (version 2, `PLUG_DESCRIPTOR_VERSION`): each entry is mapped affinely from a fixed
range [lo, hi] (`PLUG_DESCRIPTOR_RANGES`, in the entry's units) to [-1, 1],
v = 2 (x - lo) / (hi - lo) - 1, so the descriptor sits on the scale of the normalised
observation beside it. The ranges are fixed constants (never fitted at training time, so
the training side and the robot side compute the same numbers from a spec alone): the
envelope of the plug library (the 23 shipped specs in sim/plugs and the 24 procedural ones
in training/plugs, all within [-1, 1]: tests/zshot/test_plug_descriptor.py) rounded
outwards; fractions, |sin yaw| and friction use their natural [0, 1]. A new plug beyond the
library's envelope gets values beyond +-1 (not clipped: two plugs outside it stay apart).
Version 1 (before this scaling: mm divided by a fixed unit, values 0..3) is refused where
an artifact or a run records it (`check_plug_descriptor_version`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PLUG_DESCRIPTOR_DIM",
    "PLUG_DESCRIPTOR_NAMES",
    "PLUG_DESCRIPTOR_RANGES",
    "PLUG_DESCRIPTOR_VERSION",
    "PlugDescriptorError",
    "check_plug_descriptor_version",
    "inserted_goal_z",
    "load_plug_spec",
    "plug_descriptor",
    "plug_descriptor_of",
    "plug_inserted_goal",
    "plug_inserted_goal_of",
    "plug_spec_path",
]

PLUG_DESCRIPTOR_VERSION = 2
"""The descriptor's definition (entries and scaling); recorded in descriptor artifacts'
manifests (`training.plug_descriptor_version`). 1: unscaled (before this version)."""

PLUG_DESCRIPTOR_RANGES: dict[str, tuple[float, float]] = {
    "pins": (1.0, 8.0),
    "frac_box": (0.0, 1.0),
    "frac_round": (0.0, 1.0),
    "frac_polygon": (0.0, 1.0),
    "mean_minor_mm": (0.0, 20.0),
    "mean_major_mm": (0.0, 30.0),
    "min_minor_mm": (0.0, 20.0),
    "area_mm2": (0.0, 400.0),
    "mean_length_mm": (0.0, 30.0),
    "min_length_mm": (0.0, 30.0),
    "success_depth_mm": (0.0, 25.0),
    "spread_x_mm": (0.0, 15.0),
    "spread_y_mm": (0.0, 15.0),
    "max_pin_distance_mm": (0.0, 35.0),
    "mean_abs_sin_yaw": (0.0, 1.0),
    "clearance_mm": (0.0, 0.4),
    "friction": (0.0, 1.0),
}
"""Each entry's [lo, hi] in its units, mapped to [-1, 1] (the library's envelope, rounded
outwards: pins 1-6, minor extents 1.5-18.5 mm, major to 24.5 mm, area to 371 mm^2, length
6-25 mm, success depth 4.8-20 mm, spreads to 11.8 mm, pin distance to 28.8 mm, clearance
0.1-0.3 mm, friction 0.2-0.45)."""

PLUG_DESCRIPTOR_NAMES: tuple[str, ...] = tuple(PLUG_DESCRIPTOR_RANGES)
PLUG_DESCRIPTOR_DIM = len(PLUG_DESCRIPTOR_NAMES)

SHIPPED_PLUGS = Path(__file__).resolve().parents[1] / "sim" / "plugs"
"""Where shipped plug names resolve (read as data files; nothing of sim is imported)."""


class PlugDescriptorError(ValueError):
    """A spec the descriptor cannot be computed from; the message names what is wrong."""


def _num(pin: Mapping[str, Any], key: str, where: str) -> float:
    value = pin.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PlugDescriptorError(f"{where}: `{key}` must be a finite number, got {value!r}")
    return float(value)


def _section(pin: Mapping[str, Any], where: str) -> tuple[float, float, float]:
    """(minor extent, major extent, area) of a pin's section in mm, mm^2."""
    shape = pin.get("shape")
    if shape == "box":
        w, d = _num(pin, "width", where), _num(pin, "depth", where)
        return min(w, d), max(w, d), w * d
    if shape == "cylinder":
        dia = _num(pin, "diameter", where)
        return dia, dia, math.pi * dia * dia / 4
    if shape == "polygon":
        verts = pin.get("vertices")
        if verts:
            xs = [float(v[0]) for v in verts]
            ys = [float(v[1]) for v in verts]
            ext = (max(xs) - min(xs), max(ys) - min(ys))
            n = len(xs)
            area = 0.5 * abs(
                sum(xs[k] * ys[(k + 1) % n] - xs[(k + 1) % n] * ys[k] for k in range(n))
            )
            return min(ext), max(ext), area
        dia, sides = _num(pin, "diameter", where), _num(pin, "sides", where)
        r = dia / 2
        return dia, dia, 0.5 * sides * r * r * math.sin(2 * math.pi / sides)
    raise PlugDescriptorError(f"{where}: unknown pin shape {shape!r} (box, cylinder, polygon)")


def plug_descriptor(spec: Mapping[str, Any]) -> list[float]:
    """The descriptor of one plug spec given as a mapping (a spec file's YAML, or
    `PlugSpec.model_dump()`); `PLUG_DESCRIPTOR_DIM` floats, named by
    `PLUG_DESCRIPTOR_NAMES`. PlugDescriptorError for a spec without usable pins."""
    name = spec.get("name", "<plug>")
    pins = spec.get("pins")
    if not isinstance(pins, list) or not pins:
        raise PlugDescriptorError(f"plug {name}: `pins` must be a non-empty list")
    minors, majors, areas, lengths, xs, ys, yaws = [], [], [], [], [], [], []
    shapes = {"box": 0, "cylinder": 0, "polygon": 0}
    for i, pin in enumerate(pins):
        where = f"plug {name}: pins[{i}]"
        if not isinstance(pin, Mapping):
            raise PlugDescriptorError(f"{where}: must be a mapping")
        minor, major, area = _section(pin, where)
        shapes[str(pin["shape"])] += 1
        minors.append(minor)
        majors.append(major)
        areas.append(area)
        lengths.append(_num(pin, "length", where))
        xs.append(float(pin.get("x") or 0.0))
        ys.append(float(pin.get("y") or 0.0))
        if pin["shape"] != "cylinder":
            yaws.append(abs(math.sin(math.radians(float(pin.get("yaw") or 0.0)))))
    n = len(pins)
    success = spec.get("success_depth")
    depth = float(success) if success is not None else 0.8 * min(lengths)
    mx, my = sum(xs) / n, sum(ys) / n
    spread_x = math.sqrt(sum((x - mx) ** 2 for x in xs) / n)
    spread_y = math.sqrt(sum((y - my) ** 2 for y in ys) / n)
    far = max(
        (math.hypot(xs[i] - xs[j], ys[i] - ys[j]) for i in range(n) for j in range(i + 1, n)),
        default=0.0,
    )
    clearance = spec.get("clearance")
    friction = spec.get("friction")
    raw = [
        n,
        shapes["box"] / n,
        shapes["cylinder"] / n,
        shapes["polygon"] / n,
        sum(minors) / n,
        sum(majors) / n,
        min(minors),
        sum(areas),
        sum(lengths) / n,
        min(lengths),
        depth,
        spread_x,
        spread_y,
        far,
        sum(yaws) / len(yaws) if yaws else 0.0,
        0.2 if clearance is None else float(clearance),  # PlugSpec's defaults
        0.4 if friction is None else float(friction),
    ]
    out = [
        2.0 * (x - lo) / (hi - lo) - 1.0
        for x, (lo, hi) in zip(raw, PLUG_DESCRIPTOR_RANGES.values(), strict=True)
    ]
    if not all(math.isfinite(v) for v in out):
        raise PlugDescriptorError(f"plug {name}: descriptor not finite: {out}")
    return out


def plug_spec_path(ref: str | Path) -> Path:
    """A shipped plug name (sim/plugs/NAME.yaml) or a spec file path -> the file."""
    text = str(ref)
    shipped = SHIPPED_PLUGS / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    path = Path(text)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise PlugDescriptorError(f"{path}: no such plug spec file")
        return path
    raise PlugDescriptorError(f"unknown plug {text!r}: not a shipped name nor a .yaml file")


def load_plug_spec(ref: str | Path) -> tuple[Path, Mapping[str, Any]]:
    """A shipped plug (by name) or a spec file (by path) -> (its file, its YAML mapping);
    PlugDescriptorError naming the file when it cannot be read."""
    path = plug_spec_path(ref)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlugDescriptorError(f"{path}: cannot read the plug spec: {exc}") from None
    if not isinstance(data, Mapping):
        raise PlugDescriptorError(f"{path}: top level must be a mapping of fields")
    return path, data


def plug_descriptor_of(ref: str | Path) -> list[float]:
    """The descriptor of a shipped plug (by name) or of a spec file (by path)."""
    path, data = load_plug_spec(ref)
    try:
        return plug_descriptor(data)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        if isinstance(exc, PlugDescriptorError):
            raise PlugDescriptorError(f"{path}: {exc}") from None
        raise PlugDescriptorError(f"{path}: malformed pin fields ({exc!r})") from None


def plug_inserted_goal(spec: Mapping[str, Any], epsilon: float) -> list[float]:
    """A plug's inserted pose as a goal of the goal-reaching insertion arm
    (sim/insertion_goal.py `InsertionGoalEnv.inserted_goal`, the same numbers): (x mm, y mm,
    z mm, yaw deg) = (0, 0, max(longest pin - success depth - epsilon, 0), 0), so reaching
    it within `epsilon` puts the pins at least the success depth below the socket face
    (success depth: the spec's `success_depth`, else 80 % of the shortest pin, as PlugSpec)."""
    name = spec.get("name", "<plug>")
    pins = spec.get("pins")
    if not isinstance(pins, list) or not pins or not all(isinstance(p, Mapping) for p in pins):
        raise PlugDescriptorError(f"plug {name}: `pins` must be a non-empty list of mappings")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise PlugDescriptorError(f"goal epsilon must be a finite number > 0, got {epsilon}")
    lengths = [_num(p, "length", f"plug {name}: pins[{i}]") for i, p in enumerate(pins)]
    success = spec.get("success_depth")
    depth = _num(spec, "success_depth", f"plug {name}") if success is not None else None
    depth = 0.8 * min(lengths) if depth is None else depth
    return [0.0, 0.0, inserted_goal_z(max(lengths), depth, epsilon), 0.0]


def inserted_goal_z(longest_pin: float, success_depth: float, epsilon: float) -> float:
    """The height (mm) of an inserted goal: the pins `success_depth + epsilon` below the
    face, clamped at 0 (the plug's body on the face). The one formula of the train side
    (`InsertionGoalEnv.inserted_goal`) and the robot side (`plug_inserted_goal`)."""
    return max(longest_pin - success_depth - epsilon, 0.0)


def plug_inserted_goal_of(ref: str | Path, epsilon: float) -> list[float]:
    """`plug_inserted_goal` of a shipped plug (by name) or of a spec file (by path)."""
    path, data = load_plug_spec(ref)
    try:
        return plug_inserted_goal(data, epsilon)
    except PlugDescriptorError as exc:
        raise PlugDescriptorError(f"{path}: {exc}") from None


def check_plug_descriptor_version(training: Mapping[str, Any], where: str) -> None:
    """Refuse, with one line naming `where`, an artifact or run whose manifest's `training`
    mapping records another plug descriptor version than this code computes (none
    recorded: version 1, the descriptor before its scaling)."""
    got = training.get("plug_descriptor_version", 1)
    if got != PLUG_DESCRIPTOR_VERSION:
        raise PlugDescriptorError(
            f"{where}: trained on plug descriptor version {got}, but this code computes "
            f"version {PLUG_DESCRIPTOR_VERSION} (zshot/plug_descriptor.py); retrain and export "
            "it with this version"
        )
