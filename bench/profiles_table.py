"""Per-plug insertion results side by side, one table per benchmark profile (issue #16: every
insertion result in all three profiles, beside the spiral and the spiral with memory).

Reads the JSON reports `zshot eval` / `zshot sim baseline` / `python -m training.finetune`
write, each labelled on the command line, and prints Markdown: per plug `x/N (t s)` (N =
episodes, t = mean time-to-insert of the successes), then the total, the force-limit endings
and the mean time over every success.

    python bench/profiles_table.py spiral=runs/bench16/spiral-{profile}.json \\
        pearl=runs/bench16/pearl-{profile}.json --profiles known,oda,hard

`{profile}` in a path is replaced by each profile in turn; a missing file prints as "-".
`PATH#KEY` takes the report under KEY (`training.finetune` writes one per context source:
`offline-{profile}.json#teleop`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Plug label -> {successes, episodes, t, violations} from an eval or finetune report:
    rows under "tasks" labelled "label", or, as reports written before the rename and
    `zshot trials` reports say, under "plugs" labelled "plug"."""
    out: dict[str, dict[str, Any]] = {}
    rows = report["tasks"] if isinstance(report.get("tasks"), list) else report.get("plugs", [])
    for p in rows:
        out[p["label"] if "label" in p else p["plug"]] = {
            "successes": int(p["successes"]),
            "episodes": int(p["episodes"]),
            "t": p.get("mean_time_to_insert"),
            "violations": int(p.get("safety_violations", 0)),
        }
    return out


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    t = f" ({r['t']:.1f} s)" if r["t"] is not None else ""
    return f"{r['successes']}/{r['episodes']}{t}"


def table(profile: str, columns: list[tuple[str, dict[str, dict[str, Any]] | None]]) -> str:
    """One Markdown table: plugs as rows, the labelled reports as columns."""
    plugs = sorted({plug for _, rows in columns if rows for plug in rows})
    lines = [
        f"profile `{profile}`",
        "",
        "| plug | " + " | ".join(label for label, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for plug in plugs:
        cells = [_cell(rows.get(plug) if rows else None) for _, rows in columns]
        lines.append(f"| {plug} | " + " | ".join(cells) + " |")
    totals, force, times = [], [], []
    for _, rows in columns:
        if not rows:
            totals.append("-")
            force.append("-")
            times.append("-")
            continue
        s = sum(r["successes"] for r in rows.values())
        n = sum(r["episodes"] for r in rows.values())
        totals.append(f"**{s}/{n}**")
        force.append(str(sum(r["violations"] for r in rows.values())))
        timed = [(r["t"], r["successes"]) for r in rows.values() if r["t"] is not None]
        w = sum(k for _, k in timed)
        times.append(f"{sum(t * k for t, k in timed) / w:.2f} s" if w else "-")
    lines.append("| all | " + " | ".join(totals) + " |")
    lines.append("| force-limit endings | " + " | ".join(force) + " |")
    lines.append("| mean time-to-insert | " + " | ".join(times) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print one table per profile."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("columns", nargs="+", metavar="LABEL=PATH", help="{profile} is substituted")
    p.add_argument("--profiles", default="known,oda,hard")
    args = p.parse_args(argv)
    specs = []
    for item in args.columns:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            print(f"profiles_table: expected LABEL=PATH, got {item!r}", file=sys.stderr)
            return 2
        specs.append((label, path))
    for profile in args.profiles.split(","):
        columns = []
        for label, path in specs:
            file, _, key = path.replace("{profile}", profile).partition("#")
            f = Path(file)
            report = json.loads(f.read_text()) if f.is_file() else None
            if report is not None and key:
                report = report.get(key)
            columns.append((label, _rows(report) if report is not None else None))
        print(table(profile, columns))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
