"""Strict JSON for every report zshot writes: no NaN or Infinity tokens (jq, JavaScript and
other strict parsers reject them); a non-finite number is written as null."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    """Write `x` as strict JSON to `path` atomically: temp file beside it, fsync, rename (so a
    crash leaves the old file or the new one, never half of one); mode 0644, parents made;
    `kwargs` go to json.dumps (e.g. default=str)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = dumps_strict(x, indent=indent, **kwargs) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
