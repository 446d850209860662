"""The plug descriptor (zshot/plug_descriptor.py): the training side (from sim's validated
PlugSpec, through the insertion task source) and the robot side (the raw YAML file, as
`zshot trials --plug-descriptors` reads it) give the same vector for every shipped and
procedural plug; it ignores the pins' order and where the layout sits, tells plugs
apart, is scaled into [-1, 1] over the whole plug library by fixed ranges (version 2),
refuses an artifact of another version, and names what is wrong with a bad spec."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.plugs import list_plugs, load_plug
from training.common.tasks import insertion_descriptor
from training.plug_family import plug_paths
from zshot.plug_descriptor import (
    PLUG_DESCRIPTOR_DIM,
    PLUG_DESCRIPTOR_NAMES,
    PLUG_DESCRIPTOR_RANGES,
    PLUG_DESCRIPTOR_VERSION,
    PlugDescriptorError,
    check_plug_descriptor_version,
    plug_descriptor,
    plug_descriptor_of,
)

ALL_PLUGS = [*list_plugs(), *plug_paths()]


@pytest.mark.parametrize("ref", ALL_PLUGS, ids=lambda r: Path(r).stem)
def test_train_side_and_bridge_side_give_the_same_vector(ref: str) -> None:
    from sim.tasks import InsertionTask

    bridge = plug_descriptor_of(ref)  # the YAML file as written
    train = insertion_descriptor(InsertionTask(plug=ref))  # sim's PlugSpec, dumped
    assert len(bridge) == PLUG_DESCRIPTOR_DIM == len(PLUG_DESCRIPTOR_NAMES)
    assert train == bridge
    assert all(math.isfinite(v) for v in bridge)


def test_different_plugs_get_different_descriptors() -> None:
    vectors = {tuple(round(v, 9) for v in plug_descriptor_of(r)) for r in ALL_PLUGS}
    assert len(vectors) == len(ALL_PLUGS)


def test_the_entries_mean_what_their_names_say() -> None:
    us = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor_of("US-AC-plug"), strict=True))
    spec = load_plug("US-AC-plug")
    raw = {k: unscale(k, v) for k, v in us.items()}
    assert raw["pins"] == pytest.approx(len(spec.pins))
    assert raw["clearance_mm"] == pytest.approx(spec.clearance)
    assert raw["friction"] == pytest.approx(spec.friction)
    assert raw["frac_box"] + raw["frac_round"] + raw["frac_polygon"] == pytest.approx(1.0)
    peg = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor_of("Metal-peg-rd"), strict=True))
    assert peg["frac_round"] == 1.0 and peg["max_pin_distance_mm"] == -1.0  # one pin: 0 mm
    assert unscale("min_length_mm", peg["min_length_mm"]) == pytest.approx(
        min(p.length for p in load_plug("Metal-peg-rd").pins)
    )


def unscale(name: str, value: float) -> float:
    """An entry back in its units: the inverse of the [lo, hi] -> [-1, 1] map."""
    lo, hi = PLUG_DESCRIPTOR_RANGES[name]
    return lo + (value + 1.0) * (hi - lo) / 2.0


@pytest.mark.parametrize("ref", ALL_PLUGS, ids=lambda r: Path(r).stem)
def test_every_library_plug_is_within_minus_one_to_one(ref: str) -> None:
    """The fixed ranges cover the whole plug library (shipped and procedural), so the
    descriptor is on the normalised observation's scale."""
    d = plug_descriptor_of(ref)
    assert all(-1.0 <= v <= 1.0 for v in d), dict(zip(PLUG_DESCRIPTOR_NAMES, d, strict=True))


def test_the_library_spans_the_ranges_rather_than_a_corner_of_them() -> None:
    """Each size entry's spread over the library covers at least a third of [-1, 1]
    (ranges are not so wide that every plug looks alike)."""
    table = [plug_descriptor_of(r) for r in ALL_PLUGS]
    for i, name in enumerate(PLUG_DESCRIPTOR_NAMES):
        column = [row[i] for row in table]
        assert max(column) - min(column) >= 0.4, name


def test_an_artifact_of_another_descriptor_version_is_refused_in_one_line() -> None:
    check_plug_descriptor_version({"plug_descriptor_version": PLUG_DESCRIPTOR_VERSION}, "a")
    for training in ({}, {"plug_descriptor_version": 1}):  # none recorded: version 1
        with pytest.raises(
            PlugDescriptorError, match="art: trained on plug descriptor version 1"
        ) as e:
            check_plug_descriptor_version(training, "art")
        assert "\n" not in str(e.value)


def _spec(pins: list[dict[str, float | str]]) -> dict[str, object]:
    return {"name": "p", "pins": pins, "clearance": 0.2, "friction": 0.5}


pin_st = st.fixed_dictionaries(
    {
        "shape": st.sampled_from(["box", "cylinder"]),
        "width": st.floats(0.5, 10),
        "depth": st.floats(0.5, 10),
        "diameter": st.floats(0.5, 10),
        "length": st.floats(2, 30),
        "x": st.floats(-20, 20),
        "y": st.floats(-20, 20),
        "yaw": st.floats(-180, 180),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    pins=st.lists(pin_st, min_size=1, max_size=6),
    shift=st.tuples(st.floats(-30, 30), st.floats(-30, 30)),
    seed=st.integers(0, 1000),
)
def test_invariant_to_pin_order_and_to_moving_the_whole_layout(
    pins: list[dict[str, float | str]], shift: tuple[float, float], seed: int
) -> None:
    import random

    base = plug_descriptor(_spec(pins))
    moved = [{**p, "x": float(p["x"]) + shift[0], "y": float(p["y"]) + shift[1]} for p in pins]
    shuffled = list(moved)
    random.Random(seed).shuffle(shuffled)
    again = plug_descriptor(_spec(shuffled))
    assert again == pytest.approx(base, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(grow=st.floats(1.1, 3.0), pins=st.lists(pin_st, min_size=1, max_size=4))
def test_bigger_sections_give_bigger_size_entries(
    grow: float, pins: list[dict[str, float | str]]
) -> None:
    keys = ("width", "depth", "diameter")
    big = [{**p, **{k: float(p[k]) * grow for k in keys}} for p in pins]
    a = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor(_spec(pins)), strict=True))
    b = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor(_spec(big)), strict=True))
    for key in ("mean_minor_mm", "mean_major_mm", "min_minor_mm", "area_mm2"):
        assert b[key] > a[key]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x"}, "`pins` must be a non-empty list"),
        (_spec([{"shape": "box", "width": 1.0, "length": 3.0}]), "`depth` must be a finite"),
        (_spec([{"shape": "star", "length": 3.0}]), "unknown pin shape 'star'"),
        (_spec([{"shape": "cylinder", "diameter": "big", "length": 3}]), "`diameter`"),
    ],
)
def test_a_bad_spec_is_named(spec: dict[str, object], message: str) -> None:
    with pytest.raises(PlugDescriptorError, match=message):
        plug_descriptor(spec)


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlugDescriptorError, match="no such plug spec file"):
        plug_descriptor_of(tmp_path / "none.yaml")
    with pytest.raises(PlugDescriptorError, match="not a shipped name"):
        plug_descriptor_of("No-such-plug")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(["a", "list"]))
    with pytest.raises(PlugDescriptorError, match="top level must be a mapping"):
        plug_descriptor_of(bad)
    pins = tmp_path / "pins.yaml"
    pins.write_text(yaml.safe_dump({"name": "q", "pins": [{"shape": "box", "length": 2}]}))
    with pytest.raises(PlugDescriptorError, match=str(pins)):
        plug_descriptor_of(pins)
