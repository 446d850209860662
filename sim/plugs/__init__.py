"""Plug specs as data: one YAML file per plug in this folder, validated by `PlugSpec`.

Lengths in a spec file are millimetres, angles degrees (the units of the standards they
cite). The plug frame: origin at the centre of the body's bottom face, z up; pins hang
down from z = 0 to z = -length. The socket is generated from the same spec (see
`sim.geometry`): its face is the plane z = 0, each pin gets a cavity of the pin's section
grown by `clearance` on every side.

    spec = load_plug("UK-AC-plug")          # a shipped plug, by name
    spec = load_plug("my_plugs/foo.yaml")   # or any file that validates

A malformed file raises `PlugSpecError` naming the file and the field.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "NAMED_PLUGS",
    "BodySpec",
    "PinSpec",
    "PlugSpec",
    "PlugSpecError",
    "is_plug_file",
    "list_plugs",
    "load_plug",
    "plug_dir",
]

# The 9 plugs of the ODA paper's table (Zhao et al. 2022); held out of training by default.
NAMED_PLUGS: tuple[str, ...] = (
    "US-AC-plug",
    "EU-AC-plug",
    "UK-AC-plug",
    "NEMA14-30P",
    "Car-plug-3p",
    "Car-plug-4p",
    "Metal-peg-rec",
    "Metal-peg-rd",
    "Metal-peg-sq",
)

CIRCLE_SEGMENTS = 12
"""Sides of the polygon that stands for a round cavity (and a round pin's outline in the
geometry checks). 12 sides: the cavity's corners sit 3.5 % further out than its flats."""


class PlugSpecError(ValueError):
    """A plug spec file is missing or malformed; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PinSpec(_Strict):
    """One pin (blade, round pin, peg): a prism hanging down from the body."""

    name: str = ""
    shape: Literal["box", "cylinder", "polygon"]
    width: float | None = Field(default=None, gt=0, le=200)
    """mm, box extent along the pin's local x (before yaw)."""
    depth: float | None = Field(default=None, gt=0, le=200)
    """mm, box extent along the pin's local y."""
    diameter: float | None = Field(default=None, gt=0, le=200)
    """mm; cylinder diameter, or a regular polygon's circumscribed diameter."""
    sides: int | None = Field(default=None, ge=3, le=12)
    """Regular polygon: number of sides (with `diameter`)."""
    vertices: list[tuple[float, float]] | None = None
    """Convex polygon (mm, counter-clockwise, pin-local) instead of `sides`."""
    length: float = Field(gt=0, le=300)
    """mm, from the body's bottom face to the tip."""
    x: float = Field(default=0.0, ge=-200, le=200)
    y: float = Field(default=0.0, ge=-200, le=200)
    yaw: float = Field(default=0.0, ge=-180, le=180)
    """deg, rotation of the section about z."""
    group: str | None = None
    """Pins with the same group may touch or overlap (one bent blade, e.g. an L)."""

    @model_validator(mode="after")
    def _shape_fields(self) -> PinSpec:
        need: dict[str, tuple[str, ...]] = {
            "box": ("width", "depth"),
            "cylinder": ("diameter",),
        }
        if self.shape == "polygon":
            if self.vertices is None and (self.sides is None or self.diameter is None):
                raise ValueError("a polygon pin needs `vertices`, or `sides` and `diameter`")
            if self.vertices is not None:
                _check_convex_ccw(self.vertices)
        else:
            missing = [f for f in need[self.shape] if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a {self.shape} pin needs {', '.join(missing)}")
        return self

    def outline(self, grow: float = 0.0) -> list[tuple[float, float]]:
        """The section as a convex polygon in the plug frame (mm, CCW), grown by `grow` mm.

        Growing moves every edge outwards by `grow` (a Minkowski sum with a square-ish
        pad): exactly the cavity wall offset used for the socket. A circle becomes a
        `CIRCLE_SEGMENTS`-gon whose flats are at radius r + grow.
        """
        if self.shape == "box":
            assert self.width is not None and self.depth is not None
            hw, hd = self.width / 2, self.depth / 2
            local = [(-hw, -hd), (hw, -hd), (hw, hd), (-hw, hd)]
        elif self.shape == "cylinder":
            assert self.diameter is not None
            n = CIRCLE_SEGMENTS
            # vertices of the circumscribed n-gon (flats tangent to the circle)
            rc = (self.diameter / 2) / math.cos(math.pi / n)
            local = [
                (
                    rc * math.cos(2 * math.pi * (k + 0.5) / n),
                    rc * math.sin(2 * math.pi * (k + 0.5) / n),
                )
                for k in range(n)
            ]
        elif self.vertices is not None:
            local = [(float(a), float(b)) for a, b in self.vertices]
        else:
            assert self.sides is not None and self.diameter is not None
            r = self.diameter / 2
            local = [
                (
                    r * math.cos(2 * math.pi * k / self.sides),
                    r * math.sin(2 * math.pi * k / self.sides),
                )
                for k in range(self.sides)
            ]
        if grow:
            local = _offset_convex(local, grow)
        c, s = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        return [(self.x + c * a - s * b, self.y + s * a + c * b) for a, b in local]


class BodySpec(_Strict):
    """The plug body (housing, or the held part of a peg), above the pins."""

    shape: Literal["box", "cylinder"] = "box"
    width: float | None = Field(default=None, gt=0, le=300)
    depth: float | None = Field(default=None, gt=0, le=300)
    diameter: float | None = Field(default=None, gt=0, le=300)
    height: float = Field(gt=0, le=300)
    """mm, above z = 0."""

    @model_validator(mode="after")
    def _shape_fields(self) -> BodySpec:
        if self.shape == "box" and (self.width is None or self.depth is None):
            raise ValueError("a box body needs width and depth")
        if self.shape == "cylinder" and self.diameter is None:
            raise ValueError("a cylinder body needs diameter")
        return self

    def half_extent_xy(self) -> tuple[float, float]:
        """mm, half size of the body's footprint."""
        if self.shape == "box":
            assert self.width is not None and self.depth is not None
            return self.width / 2, self.depth / 2
        assert self.diameter is not None
        return self.diameter / 2, self.diameter / 2


class PlugSpec(_Strict):
    """A plug (and, by construction, its socket). Lengths in mm, angles in degrees."""

    name: str = Field(min_length=1, max_length=64)
    source: str = Field(min_length=3)
    """The standard or datasheet the dimensions come from (and what was simplified)."""
    description: str = ""
    body: BodySpec
    pins: list[PinSpec] = Field(min_length=1, max_length=16)
    clearance: float = Field(default=0.2, gt=0, le=3)
    """mm, nominal gap between pin and cavity wall on each side."""
    friction: float = Field(default=0.4, gt=0, le=2)
    """Coulomb coefficient, pin on cavity wall."""
    success_depth: float | None = Field(default=None, gt=0)
    """mm of insertion (pin tip below the socket face) that counts as inserted; default
    80 % of the shortest pin."""
    socket_margin: float = Field(default=8.0, gt=0, le=100)
    """mm of socket face around the cavities' bounding box."""
    held_out: bool = False
    """Informational: the spec is one of the named (held-out) plugs."""

    @model_validator(mode="after")
    def _geometry(self) -> PlugSpec:
        shortest = min(p.length for p in self.pins)
        if self.success_depth is not None and self.success_depth > shortest:
            raise ValueError(
                f"success_depth {self.success_depth} mm exceeds the shortest pin ({shortest} mm)"
            )
        # Pins in different groups must leave room for a cavity wall between them: their
        # cavities (grown by 1.5 × clearance, the largest default task clearance) may not
        # overlap, or the socket would have no wall there.
        grow = 1.5 * self.clearance
        outlines = [p.outline(grow) for p in self.pins]
        for i in range(len(self.pins)):
            for j in range(i + 1, len(self.pins)):
                a, b = self.pins[i], self.pins[j]
                if a.group is not None and a.group == b.group:
                    continue
                if convex_overlap(outlines[i], outlines[j]):
                    raise ValueError(
                        f"pins[{i}] ({a.name or a.shape}) and pins[{j}] ({b.name or b.shape}) "
                        f"overlap or leave no room for a cavity wall (clearance {self.clearance} mm)"
                    )
        return self

    @property
    def effective_success_depth(self) -> float:
        """mm; `success_depth` or 80 % of the shortest pin."""
        if self.success_depth is not None:
            return self.success_depth
        return 0.8 * min(p.length for p in self.pins)

    @property
    def max_pin_length(self) -> float:
        """mm; the longest pin (its tip is the lowest point of the plug)."""
        return max(p.length for p in self.pins)


# --------------------------------------------------------------------------- geometry helpers


def _check_convex_ccw(pts: list[tuple[float, float]]) -> None:
    if len(pts) < 3:
        raise ValueError("a polygon needs at least 3 vertices")
    n = len(pts)
    for k in range(n):
        (ax, ay), (bx, by), (cx, cy) = pts[k], pts[(k + 1) % n], pts[(k + 2) % n]
        cross = (bx - ax) * (cy - by) - (by - ay) * (cx - bx)
        if cross <= 0:
            raise ValueError("polygon vertices must be convex and counter-clockwise")


def _offset_convex(pts: list[tuple[float, float]], d: float) -> list[tuple[float, float]]:
    """Move each edge of a CCW convex polygon outwards by d; new vertices at the edge lines'
    intersections (so every flat moves exactly d, corners stay sharp)."""
    n = len(pts)
    lines = []
    for k in range(n):
        (ax, ay), (bx, by) = pts[k], pts[(k + 1) % n]
        ex, ey = bx - ax, by - ay
        ln = math.hypot(ex, ey)
        nx, ny = ey / ln, -ex / ln  # outward normal of a CCW polygon
        lines.append((nx, ny, nx * ax + ny * ay + d))
    out = []
    for k in range(n):
        n1x, n1y, h1 = lines[k - 1]
        n2x, n2y, h2 = lines[k]
        det = n1x * n2y - n1y * n2x
        out.append(((h1 * n2y - h2 * n1y) / det, (n1x * h2 - n2x * h1) / det))
    return out


def convex_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Separating-axis test: do two convex polygons' interiors intersect?"""
    for poly in (a, b):
        n = len(poly)
        for k in range(n):
            (x1, y1), (x2, y2) = poly[k], poly[(k + 1) % n]
            nx, ny = y2 - y1, x1 - x2
            pa = [nx * x + ny * y for x, y in a]
            pb = [nx * x + ny * y for x, y in b]
            if max(pa) <= min(pb) + 1e-9 or max(pb) <= min(pa) + 1e-9:
                return False
    return True


# --------------------------------------------------------------------------- loading


def plug_dir() -> Path:
    """The folder of the shipped plug spec files."""
    return Path(__file__).resolve().parent


def list_plugs() -> list[str]:
    """Names of every shipped plug (file stems), sorted."""
    return sorted(p.stem for p in plug_dir().glob("*.yaml"))


def _format_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid plug spec {source}:"]
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "<top level>"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {source}: {loc}: {msg}")
    return "\n".join(lines)


@lru_cache(maxsize=256)
def _load_path(path: Path) -> PlugSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PlugSpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PlugSpecError(f"{path}: top level must be a mapping of fields")
    try:
        return PlugSpec.model_validate(data)
    except ValidationError as exc:
        raise PlugSpecError(_format_error(exc, str(path))) from None


def is_plug_file(ref: str | Path) -> bool:
    """Does `ref` name a spec file (…/name.yaml or .yml) rather than a shipped plug?"""
    text = str(ref)
    return text.endswith((".yaml", ".yml")) and not (plug_dir() / f"{text}.yaml").is_file()


def load_plug(name_or_path: str | Path) -> PlugSpec:
    """A shipped plug by name (`"UK-AC-plug"`), or a spec file by path.

    Raises `PlugSpecError` naming the file and the offending field.
    """
    text = str(name_or_path)
    candidate = plug_dir() / f"{text}.yaml"
    if candidate.is_file():
        return _load_path(candidate)
    path = Path(text)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise PlugSpecError(f"{path}: no such plug spec file")
        return _load_path(path.resolve())
    known = ", ".join(list_plugs())
    raise PlugSpecError(f"unknown plug {text!r}; shipped plugs: {known}")
