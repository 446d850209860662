"""A procedural family of training plugs, so the 9 named plugs can stay held out.

The sim ships the 9 named plugs of the ODA table (all held out of training by default), so
meta-training needs other plugs: pegs of several sections and sizes, blade plugs and
multi-pin connectors, drawn from seeded ranges that bracket the named ones without copying
them. The generated spec files are committed under `training/plugs/` (regenerate with
`python -m training.plug_family`); they are ordinary sim plug specs (`sim.plugs.PlugSpec`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PLUG_DIR = Path(__file__).resolve().parent / "plugs"


def _peg(rng: np.random.Generator, i: int) -> dict[str, Any]:
    kind = ["box", "cylinder", "polygon"][i % 3]
    size = float(rng.uniform(6.0, 20.0))
    length = float(rng.uniform(12.0, 25.0))
    pin: dict[str, Any] = {"name": "peg", "shape": kind, "length": round(length, 2)}
    if kind == "box":
        pin["width"] = round(size, 2)
        pin["depth"] = round(size * float(rng.uniform(0.5, 1.0)), 2)
    elif kind == "cylinder":
        pin["diameter"] = round(size, 2)
    else:
        pin["diameter"] = round(size, 2)
        pin["sides"] = int(rng.choice([3, 5, 6, 8]))
    body = round(size + 12.0, 1)
    return {"body": {"shape": "box", "width": body, "depth": body, "height": 20.0}, "pins": [pin]}


def _blades(rng: np.random.Generator, i: int) -> dict[str, Any]:
    n = 2 + i % 2
    pitch = float(rng.uniform(10.0, 16.0))
    thick, wide = float(rng.uniform(1.5, 2.5)), float(rng.uniform(5.0, 9.0))
    length = float(rng.uniform(12.0, 19.0))
    yaw = float(rng.choice([0.0, 90.0, 30.0, -30.0]))
    pins: list[dict[str, Any]] = []
    for k in range(n):
        x = (k - (n - 1) / 2) * pitch
        pins.append(
            {
                "name": f"b{k}",
                "shape": "box",
                "width": round(thick, 2),
                "depth": round(wide, 2),
                "length": round(length, 2),
                "x": round(x, 2),
                "y": 0.0,
                "yaw": yaw if k else 0.0,
            }
        )
    width = round(pitch * (n - 1) + 16.0, 1)
    return {"body": {"shape": "box", "width": width, "depth": 20.0, "height": 20.0}, "pins": pins}


def _pins(rng: np.random.Generator, i: int) -> dict[str, Any]:
    n = 2 + i % 3
    d = float(rng.uniform(1.5, 5.0))
    pitch = float(rng.uniform(max(4.0, 2.2 * d), 14.0))
    length = float(rng.uniform(8.0, 19.0))
    ring = i % 2 == 1 and n >= 3
    pins: list[dict[str, Any]] = []
    for k in range(n):
        if ring:
            a = 2 * math.pi * k / n
            r = pitch / (2 * math.sin(math.pi / n))
            x, y = r * math.cos(a), r * math.sin(a)
        else:
            x, y = (k - (n - 1) / 2) * pitch, 0.0
        pins.append(
            {
                "name": f"p{k}",
                "shape": "cylinder",
                "diameter": round(d, 2),
                "length": round(length, 2),
                "x": round(x, 2),
                "y": round(y, 2),
            }
        )
    span = max(max(abs(p["x"]) for p in pins), max(abs(p["y"]) for p in pins))
    body = round(2 * span + d + 12.0, 1)
    return {"body": {"shape": "box", "width": body, "depth": body, "height": 18.0}, "pins": pins}


def generate(n: int = 24, seed: int = 0) -> list[dict[str, Any]]:
    """n plug specs (dicts in the sim's PlugSpec schema), a third of each kind."""
    from sim.plugs import PlugSpec

    rng = np.random.default_rng(seed)
    makers = [("peg", _peg), ("blades", _blades), ("pins", _pins)]
    specs = []
    for i in range(n):
        kind, make = makers[i % 3]
        spec = make(rng, i // 3)
        spec.update(
            name=f"train-{kind}-{i:02d}",
            source=f"procedural training plug (training/plug_family.py, seed {seed}, #{i})",
            description=f"generated {kind} plug for meta-training",
            clearance=round(float(rng.uniform(0.1, 0.3)), 3),
            friction=round(float(rng.uniform(0.2, 0.45)), 3),
        )
        PlugSpec.model_validate(spec)  # fails loudly if a draw is not a valid plug
        specs.append(spec)
    return specs


def plug_paths() -> list[str]:
    """Paths of the committed training plug specs, sorted."""
    return sorted(str(p) for p in PLUG_DIR.glob("train-*.yaml"))


def main() -> None:
    """Write the specs to training/plugs/ (or --out)."""
    p = argparse.ArgumentParser(description="generate the procedural training plug family")
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(PLUG_DIR))
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in generate(a.n, a.seed):
        (out / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    print(f"wrote {a.n} specs to {out}")


if __name__ == "__main__":
    main()
