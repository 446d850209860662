"""Plug specs: shipped files validate, bad files name the field, geometry properties hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.geometry import point_in_cavity, point_in_socket_solid, socket_geometry
from sim.plugs import (
    NAMED_PLUGS,
    PinSpec,
    PlugSpec,
    PlugSpecError,
    convex_overlap,
    list_plugs,
    load_plug,
)


def test_named_plugs_ship_and_enough_training_shapes() -> None:
    names = list_plugs()
    for n in NAMED_PLUGS:
        assert n in names
    assert len(set(names) - set(NAMED_PLUGS)) >= 10


@pytest.mark.parametrize("name", list_plugs())
def test_every_shipped_plug_loads_and_cites_a_source(name: str) -> None:
    spec = load_plug(name)
    assert spec.name == name
    assert len(spec.source) > 20
    geom = socket_geometry(spec, spec.clearance * 1.5)  # the largest default task clearance
    assert geom.boxes


def test_round_cavity_walls_skip_the_edges_on_its_bounding_box() -> None:
    """A 12-gon cavity needs 8 walls: its 4 axis-aligned flats lie on its bounding box, beyond
    which the grid plate is already solid (the coverage property test checks the result)."""
    geom = socket_geometry(load_plug("Metal-peg-rd"), 0.1)
    r = [b.yaw % (np.pi / 2) for b in geom.boxes]
    slanted = [x for x in r if min(x, np.pi / 2 - x) > 1e-9]
    assert len(slanted) == 8


def test_uk_plug_dimensions_follow_bs1363() -> None:
    spec = load_plug("UK-AC-plug")
    ln = [p for p in spec.pins if p.name in ("L", "N")]
    assert {(p.width, p.depth, p.length) for p in ln} == {(6.35, 4.0, 17.7)}
    assert abs(ln[0].x - ln[1].x) == pytest.approx(22.2)


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    return f


GOOD = """
name: test
source: made up for a test
body: {shape: box, width: 20, depth: 20, height: 10}
pins:
  - {shape: box, width: 2, depth: 5, length: 10, x: -4}
  - {shape: box, width: 2, depth: 5, length: 10, x: 4}
"""


def test_malformed_file_names_the_field(tmp_path: Path) -> None:
    f = _write(tmp_path, GOOD.replace("width: 2,", "width: -2,", 1))
    with pytest.raises(PlugSpecError, match=r"pins\.0\.width"):
        load_plug(f)
    f = _write(tmp_path, GOOD.replace("length: 10, x: 4", "lenght: 10, x: 4"))
    with pytest.raises(PlugSpecError, match=r"pins\.1\.lenght"):
        load_plug(f)
    f = _write(
        tmp_path,
        GOOD.replace(
            "{shape: box, width: 2, depth: 5, length: 10, x: 4}",
            "{shape: cylinder, length: 10, x: 4}",
        ),
    )
    with pytest.raises(PlugSpecError, match="diameter"):
        load_plug(f)


def test_overlapping_pins_are_rejected(tmp_path: Path) -> None:
    f = _write(tmp_path, GOOD.replace("x: 4", "x: -3"))
    with pytest.raises(PlugSpecError, match="overlap"):
        load_plug(f)


def test_unknown_plug_name_lists_the_shipped_ones() -> None:
    with pytest.raises(PlugSpecError, match="UK-AC-plug"):
        load_plug("no-such-plug")


def test_user_file_loads(tmp_path: Path) -> None:
    spec = load_plug(_write(tmp_path, GOOD))
    assert len(spec.pins) == 2 and spec.effective_success_depth == pytest.approx(8.0)


# ----------------------------------------------------------------- hypothesis: spec -> geometry

pin_strategy = st.builds(
    lambda shape, w, d, yaw: {"shape": shape, "width": w, "depth": d, "diameter": w, "yaw": yaw},
    st.sampled_from(["box", "cylinder"]),
    st.floats(1.0, 6.0),
    st.floats(1.0, 6.0),
    st.sampled_from([0.0, 90.0, 30.0, -45.0]),
)


@st.composite
def plug_specs(draw: st.DrawFn) -> PlugSpec:
    n = draw(st.integers(1, 3))
    pins = []
    for k in range(n):
        pin = draw(pin_strategy)
        pins.append(
            PinSpec(
                shape=pin["shape"],
                width=pin["width"] if pin["shape"] == "box" else None,
                depth=pin["depth"] if pin["shape"] == "box" else None,
                diameter=pin["diameter"] if pin["shape"] == "cylinder" else None,
                yaw=pin["yaw"],
                length=draw(st.floats(3.0, 20.0)),
                x=-15.0 + 15.0 * k + draw(st.floats(-1.0, 1.0)),
                y=draw(st.floats(-2.0, 2.0)),
            )
        )
    return PlugSpec(
        name="h",
        source="hypothesis",
        body=dict(shape="box", width=50, depth=20, height=10),
        pins=pins,
        clearance=draw(st.floats(0.05, 0.5)),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plug_specs(), st.integers(0, 2**31 - 1))
def test_socket_is_solid_exactly_outside_the_cavities(spec: PlugSpec, seed: int) -> None:
    """Cavities = pins + clearance: every pin point is in a cavity and free of socket boxes;
    every plate point outside all cavities is inside some socket box; pins don't overlap."""
    geom = socket_geometry(spec, spec.clearance)
    rng = np.random.default_rng(seed)
    outlines = [p.outline() for p in spec.pins]
    for i in range(len(outlines)):
        for j in range(i + 1, len(outlines)):
            assert not convex_overlap(outlines[i], outlines[j])
    hx, hy = geom.half_xy
    for _ in range(300):
        q = np.array(
            [
                rng.uniform(-hx, hx),
                rng.uniform(-hy, hy),
                rng.uniform(-geom.cavity_depth + 0.01, -0.01),
            ]
        )
        if point_in_cavity(geom, q):
            assert not point_in_socket_solid(geom, q, tol=-1e-6), q
        else:
            assert point_in_socket_solid(geom, q, tol=1e-6), q
    # pin material with the clearance left around it: points of each pin grown by almost the
    # clearance are never inside a socket box
    for pin in spec.pins:
        for x, y in pin.outline(spec.clearance * 0.9):
            assert not point_in_socket_solid(geom, np.array([x, y, -1.0]), tol=-1e-6)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.5, 10.0), st.floats(0.5, 10.0), st.floats(0.01, 1.0), st.floats(-180, 180))
def test_box_cavity_is_pin_plus_clearance(w: float, d: float, c: float, yaw: float) -> None:
    pin = PinSpec(shape="box", width=w, depth=d, length=5, yaw=yaw)
    grown = np.array(pin.outline(c))
    # side lengths of the grown rectangle are w + 2c and d + 2c
    sides = np.linalg.norm(np.roll(grown, -1, axis=0) - grown, axis=1)
    assert sorted(np.round(sides, 6)) == sorted(np.round([w + 2 * c, d + 2 * c] * 2, 6))
