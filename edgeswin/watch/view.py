"""The fleet as text: a line per device (status, serving rung, canary, age of its last stats,
cameras online), then a line per problem (`!`) and per note (`-`), then a summary line.
Hands on the text and whether any device has a problem."""

from __future__ import annotations

from .fleet import Device, Fleet


def render(fleet: Fleet, now: float, stale_after_s: float) -> tuple[str, bool]:
    lines, bad = [], 0
    for root in sorted(fleet.devices):
        d = fleet.devices[root]
        problems = fleet.problems(d, now, stale_after_s)
        bad += bool(problems)
        lines.append(f"{root}  {_summary(d, now)}")
        lines += [f"  ! {p}" for p in problems]
        lines += [f"  - {n}" for n in fleet.notes(d)]
    n = len(fleet.devices)
    if not n:
        lines.append(f"no device under {'/'.join(fleet.pattern)}")
    else:
        lines.append(f"{n} device(s): " + (f"{bad} with problems" if bad else "all well"))
    return "\n".join(lines), bad > 0 or n == 0


def _summary(d: Device, now: float) -> str:
    status = (d.status or "no status").upper() if d.status != "online" else "online"
    engine = d.engine
    rung = "rung ?" if not engine else "no engine yet (building)" if engine.get("rung") is None \
        else f"rung {engine.get('rung')} {engine.get('name')}"
    canary = "canary -" if d.canary is None else \
        ("canary ok" if d.canary.get("ok") else "CANARY FAILING")
    stats = "stats -" if d.stats_at is None else f"stats {now - d.stats_at:.0f} s ago"
    online = sum(s == "online" for s in d.availability.values())
    return f"{status}  {rung}  {canary}  {stats}  cameras {online}/{len(d.availability)} online"
