"""zshot.jsonio / zshot.atomic: strict JSON reports, written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zshot.atomic import atomic_write
from zshot.jsonio import dumps_strict, strict, write_json

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_values)
def test_strict_json_has_no_non_finite_tokens_and_keeps_finite_values(x) -> None:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-finite token {token} in strict JSON")

    back = json.loads(dumps_strict(x), parse_constant=refuse)

    def same(a, b) -> bool:
        if isinstance(a, float) and not math.isfinite(a):
            return b is None
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(same(u, v) for u, v in zip(a, b, strict=True))
        return a == b

    assert same(x, back)


def test_numpy_values_become_json_numbers_and_lists() -> None:
    out = strict({"a": np.float32(1.5), "b": np.array([1.0, np.nan]), "c": (np.int64(3),)})
    assert out == {"a": 1.5, "b": [1.0, None], "c": [3]}


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = write_json(tmp_path / "sub" / "r.json", {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
    assert oct(target.stat().st_mode & 0o777) == "0o644"

    def boom(fh) -> None:
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]
