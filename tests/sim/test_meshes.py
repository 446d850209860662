"""Visual meshes: closed, outward-facing triangulations (the renderer draws faces; Bullet's
collision takes vertex hulls, so it never checked them)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.geometry import Box, box_mesh, prism_mesh, socket_geometry


def _volume_and_closed(verts: np.ndarray, faces: list[tuple[int, int, int]]) -> tuple[float, bool]:
    """Signed volume (divergence theorem; > 0 when faces point outwards) and whether every
    edge is shared by exactly two faces in opposite directions (closed, consistently wound)."""
    vol = sum(float(np.dot(verts[a], np.cross(verts[b], verts[c]))) for a, b, c in faces) / 6.0
    directed = Counter((u, v) for f in faces for u, v in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])))
    closed = all(n == 1 and directed.get((v, u)) == 1 for (u, v), n in directed.items())
    return vol, closed


def _polygon_area(poly: list[tuple[float, float]]) -> float:
    return 0.5 * sum(
        x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1], strict=True)
    )


@given(
    n=st.integers(3, 24),
    r=st.floats(0.5, 20.0),
    phase=st.floats(0.0, 2 * math.pi),
    length=st.floats(0.5, 30.0),
    cx=st.floats(-10, 10),
)
def test_prism_mesh_is_a_closed_solid_of_the_prisms_volume(
    n: int, r: float, phase: float, length: float, cx: float
) -> None:
    poly = [
        (cx + r * math.cos(phase + 2 * math.pi * k / n), r * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]
    verts, faces = prism_mesh(poly, 0.0, -length)
    assert len(faces) == 4 * n - 4  # two per side, n - 2 per cap: not one sliver per side
    vol, closed = _volume_and_closed(verts, faces)
    assert closed
    assert vol == pytest.approx(_polygon_area(poly) * length, rel=1e-6)


def test_socket_mesh_holds_every_box() -> None:
    from sim.plugs import load_plug

    spec = load_plug("DT04-6P")  # 60 boxes: a visual shape array kept only 16 of them
    boxes = socket_geometry(spec, spec.clearance).boxes
    assert len(boxes) > 16
    verts, faces = box_mesh(boxes)
    assert len(verts) == 8 * len(boxes) and len(faces) == 12 * len(boxes)
    vol, closed = _volume_and_closed(verts, faces)
    want = sum(8 * b.half[0] * b.half[1] * b.half[2] for b in boxes)
    assert closed and vol == pytest.approx(want, rel=1e-9)
    rotated = box_mesh([Box((1.0, 2.0, 3.0), (1.0, 2.0, 0.5), yaw=0.7)])
    assert _volume_and_closed(*rotated)[0] == pytest.approx(8.0)


def test_rendered_socket_shows_every_round_cavity() -> None:
    """Top view of DT04-6P's socket (six round cavities): every cavity is open at its
    centre and closed just outside its bounding circle's square corners (a square hole, the
    old rendering of cavities 2..6, is open there)."""
    import pybullet as p

    from sim.insertion import InsertionEnv

    env = InsertionEnv(plug="DT04-6P", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        cid = env._cid
        assert len(p.getVisualShapeData(env._socket_id, physicsClientId=cid)) == 1
        p.resetBasePositionAndOrientation(
            env._plug_id, (0, 0, 1e4), (0, 0, 0, 1), physicsClientId=cid
        )
        spec = env.plug_spec
        hx, hy = socket_geometry(spec, spec.clearance).half_xy
        half = max(hx, hy)
        w = 400
        view = p.computeViewMatrix((0, 0, 200.0), (0, 0, 0), (0, 1, 0), physicsClientId=cid)
        fov = 2 * math.degrees(math.atan(half * 1.1 / 200.0))
        proj = p.computeProjectionMatrixFOV(fov, 1.0, 1.0, 1000.0, physicsClientId=cid)
        *_, depth, _ = p.getCameraImage(
            w, w, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=cid
        )
        depth = np.asarray(depth).reshape(w, w)

        def px(x: float, y: float) -> tuple[int, int]:
            s = w / (2 * half * 1.1)
            return round(w / 2 - y * s), round(w / 2 + x * s)

        face = depth[px(0.95 * hx, 0.95 * hy)]  # near a corner of the face plate
        assert face < 1.0  # the plate, not the background

        for pin in spec.pins:
            assert pin.shape == "cylinder" and pin.diameter is not None
            r = pin.diameter / 2 + spec.clearance
            assert depth[px(pin.x, pin.y)] > face + 1e-4  # open: we see down into it
            for sx in (-1, 1):
                for sy in (-1, 1):  # the corner of the square around the circle
                    c = 0.92 * r
                    assert depth[px(pin.x + sx * c, pin.y + sy * c)] == pytest.approx(
                        face, abs=1e-4
                    )
    finally:
        env.close()


def test_polygon_pins_render_a_closed_prism_and_collide_with_the_hull() -> None:
    import pybullet as p

    from sim.insertion import InsertionEnv

    env = InsertionEnv(plug="Hex-peg", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        cid = env._cid
        vis = [d[4].decode() for d in p.getVisualShapeData(env._plug_id, physicsClientId=cid)]
        (vis_file,) = [f for f in vis if f]
        assert "pin_vis_" in Path(vis_file).name
        lines = Path(vis_file).read_text().splitlines()
        n = sum(line.startswith("v ") for line in lines) // 2
        assert n == 6 and sum(line.startswith("f ") for line in lines) == 4 * n - 4
        # The collision mesh is the file it always was (Bullet takes its vertices' hull).
        assert env._mesh_dir is not None
        (col_file,) = [f for f in Path(env._mesh_dir).glob("pin_*.obj") if "_vis_" not in f.name]
        col_lines = col_file.read_text().splitlines()
        assert sum(line.startswith("f ") for line in col_lines) == n
    finally:
        env.close()
