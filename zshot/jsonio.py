"""Strict JSON for every report zshot writes: no NaN or Infinity tokens (jq, JavaScript and
other strict parsers reject them); a non-finite number is written as null."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zshot.atomic import atomic_write

__all__ = ["dumps_strict", "strict", "write_json"]


def strict(x: Any) -> Any:
    """`x` with every non-finite float replaced by None, tuples as lists, numpy scalars and
    arrays as Python numbers and lists (anything with `.tolist()`)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, bool | int | str) or x is None:
        return x
    if isinstance(x, Mapping):
        return {str(k): strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [strict(v) for v in x]
    tolist = getattr(x, "tolist", None)
    if callable(tolist):
        return strict(tolist())
    return x


def dumps_strict(x: Any, **kwargs: Any) -> str:
    """json.dumps of `strict(x)`; refuses (ValueError) anything that would still be non-finite."""
    return json.dumps(strict(x), allow_nan=False, **kwargs)


def write_json(path: str | Path, x: Any, indent: int | None = 2, **kwargs: Any) -> Path:
    """Write `x` as strict JSON to `path` atomically (zshot.atomic: temp file, fsync, rename;
    mode 0644, parents made); `kwargs` go to json.dumps (e.g. default=str)."""
    data = (dumps_strict(x, indent=indent, **kwargs) + "\n").encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))
