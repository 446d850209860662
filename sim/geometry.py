"""Plug spec -> collision geometry, in millimetres (pure numpy; no physics here).

The socket is a static compound of boxes:

* a *face plate* (z from -cavity_depth to 0) with a hole per pin, the pin's section grown
  by the clearance on every side. Holes whose edges are axis-aligned are cut exactly by a
  grid decomposition of the plate (cells not inside any hole's bounding box become boxes,
  merged into rows and then into blocks). A hole with any slanted edge (a rotated blade,
  a round or polygonal pin) gets one wall box per edge, lying outside the edge's line and
  thick and long enough to cover the hole's bounding box, which the grid leaves empty.
  An edge that lies on the bounding box needs no wall (the plate is solid beyond it), so a
  round cavity, a 12-gon whose flats are at r + clearance, takes 8 walls.
* a *base* under the plate, which is the floor of every cavity.

`socket_boxes` checks that no wall cuts into another cavity and raises `GeometryError`
naming the pins if it does; `point_in_socket_solid` / `point_in_cavity` let tests verify
that the boxes cover the plate exactly outside the cavities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.plugs import PinSpec, PlugSpec, convex_overlap

__all__ = [
    "BASE_THICKNESS",
    "CAVITY_EXTRA_DEPTH",
    "Box",
    "GeometryError",
    "SocketGeometry",
    "box_mesh",
    "cavity_outlines",
    "point_in_cavity",
    "point_in_socket_solid",
    "prism_mesh",
    "socket_geometry",
    "write_obj",
]

CAVITY_EXTRA_DEPTH = 3.0
"""mm below the longest pin's tip when seated: the plug body, not the pin tips, bottoms out
on the socket face, as in a real socket."""
BASE_THICKNESS = 5.0
"""mm; the socket's floor under the cavities."""
_EPS = 1e-6


class GeometryError(ValueError):
    """The spec cannot be turned into a socket (e.g. cavities too close for a wall)."""


@dataclass(frozen=True)
class Box:
    """An oriented box: centre (mm), half extents (mm), yaw about z (rad)."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float = 0.0

    def contains(self, p: np.ndarray, tol: float = 0.0) -> bool:
        """Is point p (3,) inside the box grown by tol (mm)?"""
        d = p - np.asarray(self.center)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2]])
        return bool(np.all(np.abs(local) <= np.asarray(self.half) + tol))


@dataclass(frozen=True)
class SocketGeometry:
    """Boxes of the socket plus the numbers the env needs."""

    boxes: tuple[Box, ...]
    cavities: tuple[tuple[tuple[float, float], ...], ...]  # per pin, CCW outline (mm)
    cavity_depth: float  # mm below the face
    half_xy: tuple[float, float]  # mm, plate half size


def cavity_outlines(spec: PlugSpec, clearance: float) -> list[list[tuple[float, float]]]:
    """Per pin, the cavity section: the pin's outline grown by `clearance` mm on each side."""
    return [pin.outline(clearance) for pin in spec.pins]


def _axis_aligned(poly: list[tuple[float, float]]) -> bool:
    n = len(poly)
    for k in range(n):
        (x1, y1), (x2, y2) = poly[k], poly[(k + 1) % n]
        if abs(x1 - x2) > 1e-9 and abs(y1 - y2) > 1e-9:
            return False
    return True


def _bbox(poly: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in poly]
    ys = [p[1] for p in poly]
    return min(xs), min(ys), max(xs), max(ys)


WALL_EXTRA = (0.5, 0.25, 0.0)
"""mm added to a cavity wall beyond what covering the bounding box needs, tried in this order
until the walls clear the other cavities (the solid is the same either way: the extra lies
under the plate). It was 2 mm when a plug could move ~3 mm in one physics step and tunnel
through a thin wall; the env now caps that at speed_limit·dt = 0.3 mm, and thicker walls
overlap more neighbouring pins, each overlap a narrow-phase test per physics step."""


def _walls(poly: list[tuple[float, float]], z0: float, z1: float, extra: float = 0.0) -> list[Box]:
    """One box per edge of a convex CCW polygon, outside the edge, covering bbox - polygon,
    thickened by `extra` mm outwards."""
    x0, y0, x1, y1 = _bbox(poly)
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    cx = sum(p[0] for p in poly) / len(poly)
    cy = sum(p[1] for p in poly) / len(poly)
    out: list[Box] = []
    n = len(poly)
    for k in range(n):
        (ax, ay), (bx, by) = poly[k], poly[(k + 1) % n]
        if (abs(ax - bx) < _EPS and (abs(ax - x0) < _EPS or abs(ax - x1) < _EPS)) or (
            abs(ay - by) < _EPS and (abs(ay - y0) < _EPS or abs(ay - y1) < _EPS)
        ):
            # an edge on the bounding box: nothing of the bbox lies beyond it, and the grid
            # plate is solid outside the bbox, so its wall would only duplicate the plate
            # (4 of a round cavity's 12 walls; each box costs narrow-phase tests every step)
            continue
        ex, ey = bx - ax, by - ay
        ln = math.hypot(ex, ey)
        nx, ny = ey / ln, -ex / ln  # outward normal
        ux, uy = -ny, nx
        h = nx * ax + ny * ay
        # thickness: the furthest bbox corner beyond this edge's line (a point of the bbox
        # outside the polygon is beyond at least one edge, by at most this much)
        t = max(nx * px + ny * py - h for px, py in corners) + 0.05 + extra
        half_len = max(abs(ux * (px - cx) + uy * (py - cy)) for px, py in corners) + 0.05 + extra
        # centre: on the normal through the centroid, in the middle of the wall's thickness
        dn = h - (nx * cx + ny * cy) + t / 2
        center = (cx + dn * nx, cy + dn * ny, (z0 + z1) / 2)
        out.append(Box(center, (t / 2, half_len, (z1 - z0) / 2), math.atan2(ny, nx)))
    return out


def _box_footprint(box: Box) -> list[tuple[float, float]]:
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    hx, hy = box.half[0], box.half[1]
    pts = [(-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)]
    return [(box.center[0] + c * a - s * b, box.center[1] + s * a + c * b) for a, b in pts]


def _grid_boxes(
    plate: tuple[float, float, float, float],
    holes: list[tuple[float, float, float, float]],
    z0: float,
    z1: float,
) -> list[Box]:
    """Exact box cover of plate minus the union of axis-aligned rectangles `holes`."""
    px0, py0, px1, py1 = plate
    xs = sorted({px0, px1, *(min(max(v, px0), px1) for h in holes for v in (h[0], h[2]))})
    ys = sorted({py0, py1, *(min(max(v, py0), py1) for h in holes for v in (h[1], h[3]))})
    # rows[j] = list of solid x-runs in the row between ys[j] and ys[j+1]
    rows: list[list[tuple[float, float]]] = []
    for j in range(len(ys) - 1):
        ym = (ys[j] + ys[j + 1]) / 2
        runs: list[tuple[float, float]] = []
        for i in range(len(xs) - 1):
            xm = (xs[i] + xs[i + 1]) / 2
            solid = not any(h[0] < xm < h[2] and h[1] < ym < h[3] for h in holes)
            if solid:
                if runs and abs(runs[-1][1] - xs[i]) < _EPS:
                    runs[-1] = (runs[-1][0], xs[i + 1])
                else:
                    runs.append((xs[i], xs[i + 1]))
        rows.append(runs)
    # merge identical runs of consecutive rows into blocks
    boxes: list[Box] = []
    open_blocks: dict[tuple[float, float], float] = {}  # run -> y start
    for j in range(len(rows) + 1):
        current = set(rows[j]) if j < len(rows) else set()
        for run in list(open_blocks):
            if run not in current:
                ystart = open_blocks.pop(run)
                yend = ys[j]
                boxes.append(
                    Box(
                        ((run[0] + run[1]) / 2, (ystart + yend) / 2, (z0 + z1) / 2),
                        ((run[1] - run[0]) / 2, (yend - ystart) / 2, (z1 - z0) / 2),
                    )
                )
        for run in current:
            if run not in open_blocks:
                open_blocks[run] = ys[j]
    return boxes


def socket_geometry(spec: PlugSpec, clearance: float) -> SocketGeometry:
    """The socket for `spec` with `clearance` mm per side, as boxes in the socket frame.

    Raises `GeometryError` when a cavity wall would cut into another pin's cavity.
    """
    if clearance <= 0:
        raise GeometryError(f"{spec.name}: clearance must be > 0 mm, got {clearance}")
    cavities = cavity_outlines(spec, clearance)
    depth = spec.max_pin_length + CAVITY_EXTRA_DEPTH
    z0, z1 = -depth, 0.0
    bbs = [_bbox(c) for c in cavities]
    bx0 = min(b[0] for b in bbs) - spec.socket_margin
    by0 = min(b[1] for b in bbs) - spec.socket_margin
    bx1 = max(b[2] for b in bbs) + spec.socket_margin
    by1 = max(b[3] for b in bbs) + spec.socket_margin
    hx_body, hy_body = spec.body.half_extent_xy()
    half_x = max(abs(bx0), abs(bx1), hx_body + 3.0)
    half_y = max(abs(by0), abs(by1), hy_body + 3.0)
    plate = (-half_x, -half_y, half_x, half_y)

    boxes = _grid_boxes(plate, bbs, z0, z1)
    for i, cav in enumerate(cavities):
        if _axis_aligned(cav):
            continue
        clash = (-1, -1)
        for extra in WALL_EXTRA:
            walls = _walls(cav, z0, z1, extra)
            clash = next(
                (
                    (i, j)
                    for wall in walls
                    for j, other in enumerate(cavities)
                    if j != i and convex_overlap(_box_footprint(wall), other)
                ),
                (-1, -1),
            )
            if clash == (-1, -1):
                boxes.extend(walls)
                break
        else:
            a, b = spec.pins[clash[0]], spec.pins[clash[1]]
            raise GeometryError(
                f"{spec.name}: the cavity wall of pins[{clash[0]}] ({a.name or a.shape}) cuts "
                f"into the cavity of pins[{clash[1]}] ({b.name or b.shape}); move the pins "
                "apart or align them with the axes"
            )
    base = Box((0.0, 0.0, z0 - BASE_THICKNESS / 2), (half_x, half_y, BASE_THICKNESS / 2))
    boxes.append(base)
    return SocketGeometry(
        boxes=tuple(boxes),
        cavities=tuple(tuple(c) for c in cavities),
        cavity_depth=depth,
        half_xy=(half_x, half_y),
    )


def _inside_convex(
    poly: tuple[tuple[float, float], ...] | list[tuple[float, float]],
    x: float,
    y: float,
    tol: float,
) -> bool:
    n = len(poly)
    for k in range(n):
        (ax, ay), (bx, by) = poly[k], poly[(k + 1) % n]
        ex, ey = bx - ax, by - ay
        ln = math.hypot(ex, ey)
        if (ey * (x - ax) - ex * (y - ay)) / ln > tol:
            return False
    return True


def point_in_cavity(geom: SocketGeometry, p: np.ndarray, tol: float = 0.0) -> bool:
    """Is p (mm, socket frame) inside some cavity (grown by tol) and within the plate layer?"""
    if not (-geom.cavity_depth <= p[2] <= 0.0):
        return False
    return any(_inside_convex(c, float(p[0]), float(p[1]), tol) for c in geom.cavities)


def point_in_socket_solid(geom: SocketGeometry, p: np.ndarray, tol: float = 0.0) -> bool:
    """Is p (mm, socket frame) inside one of the socket's boxes (grown by tol)?"""
    return any(b.contains(p, tol) for b in geom.boxes)


def pin_prism_vertices(pin: PinSpec) -> np.ndarray:
    """(2n, 3) vertices (mm, plug frame) of a polygon pin's prism, for a convex-hull mesh."""
    outline = pin.outline(0.0)
    top = [(x, y, 0.0) for x, y in outline]
    bottom = [(x, y, -pin.length) for x, y in outline]
    return np.asarray(top + bottom, dtype=np.float64)


# ---------------------------------------------------------------- visual meshes
# Triangulated, closed, outward-facing meshes of convex solids, for the renderer. Bullet's
# collision takes the convex hull of a mesh's vertices and ignores its faces; the renderer
# draws the faces, so they must cover the whole surface.


def _convex_solid_faces(
    vertices: np.ndarray, faces: list[tuple[int, int, int]]
) -> list[tuple[int, int, int]]:
    """`faces` of a convex solid, each wound so that its normal points away from the centre."""
    centre = vertices.mean(axis=0)
    out = []
    for a, b, c in faces:
        n = np.cross(vertices[b] - vertices[a], vertices[c] - vertices[a])
        mid = (vertices[a] + vertices[b] + vertices[c]) / 3.0
        out.append((a, b, c) if float(np.dot(n, mid - centre)) >= 0 else (a, c, b))
    return out


def prism_mesh(
    outline: list[tuple[float, float]], z_top: float, z_bottom: float
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A convex polygon extruded from z_top down to z_bottom: (2n, 3) vertices (top ring,
    then bottom ring) and 4n - 4 triangles (two per side face, fans for the caps)."""
    n = len(outline)
    verts = np.asarray(
        [(x, y, z_top) for x, y in outline] + [(x, y, z_bottom) for x, y in outline],
        dtype=np.float64,
    )
    faces: list[tuple[int, int, int]] = []
    for k in range(n):
        j = (k + 1) % n
        faces += [(k, j, n + j), (k, n + j, n + k)]
    for k in range(1, n - 1):
        faces += [(0, k, k + 1), (n, n + k + 1, n + k)]
    return verts, _convex_solid_faces(verts, faces)


def box_mesh(boxes: tuple[Box, ...] | list[Box]) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Every box as 8 vertices and 12 triangles, in one mesh (the socket's visual shape)."""
    verts: list[np.ndarray] = []
    faces: list[tuple[int, int, int]] = []
    for box in boxes:
        hx, hy, hz = box.half
        c, s = math.cos(box.yaw), math.sin(box.yaw)
        corners = [
            (c * x - s * y, s * x + c * y) for x, y in ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy))
        ]
        cx, cy, cz = box.center
        outline = [(cx + x, cy + y) for x, y in corners]
        v, f = prism_mesh(outline, cz + hz, cz - hz)
        base = sum(len(a) for a in verts)
        verts.append(v)
        faces += [(a + base, b + base, d + base) for a, b, d in f]
    return np.concatenate(verts), faces


def write_obj(path: str, vertices: np.ndarray, faces: list[tuple[int, int, int]]) -> None:
    """A Wavefront OBJ file of the mesh (1-based face indices)."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
