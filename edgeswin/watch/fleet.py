"""What each device said, from its topics under the watched root (`edgeswin/+`: one device per
match of the pattern), and what is wrong with it.

Takes (topic, payload, arrival time) and hands on `Device`s and, per device, its problems (each
a line a person acts on: offline, a camera offline, a camera's health, a failing canary, stats
silent) and its notes (serving a smaller rung, a rollout under way). An empty retained payload
removes what it stood for (a camera removed from the config).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..topics import parse


@dataclass
class Device:
    root: str
    status: str | None = None
    engine: dict | None = None
    canary: dict | None = None
    rollout: dict | None = None
    stats: dict | None = None
    stats_at: float | None = None  # when the last stats arrived (the watcher's clock)
    availability: dict[str, str] = field(default_factory=dict)
    health: dict[str, dict] = field(default_factory=dict)


def matches(pattern: list[str], parts: list[str]) -> bool:
    return len(parts) >= len(pattern) and all(p in ("+", s) for p, s in zip(pattern, parts))


class Fleet:
    def __init__(self, root_pattern: str):
        if "#" in root_pattern or not root_pattern.strip("/"):
            raise ValueError(f"--root {root_pattern!r}: a topic root such as 'edgeswin/+' "
                             "(+ for any one level; no #)")
        self.pattern = root_pattern.strip("/").split("/")
        self.devices: dict[str, Device] = {}

    @property
    def topic_filter(self) -> str:
        return "/".join(self.pattern) + "/#"

    def take(self, topic: str, payload: bytes, now: float) -> None:
        parts = topic.split("/")
        if not matches(self.pattern, parts) or len(parts) == len(self.pattern):
            return
        root = "/".join(parts[:len(self.pattern)])
        rest = parts[len(self.pattern):]
        device = self.devices.setdefault(root, Device(root))
        key, camera = parse(rest) or (None, None)
        text = payload.decode("utf-8", "replace")
        if key == "status":
            device.status = text or None
        elif key == "availability":
            _put(device.availability, camera, text or None)
        elif key in ("engine", "canary", "rollout", "stats", "health"):
            try:
                value = json.loads(text) if text else None
            except json.JSONDecodeError:
                return  # not ours (another program under the same root): nothing to judge
            if not isinstance(value, dict | None):
                return
            if key == "health":
                _put(device.health, camera, value)
            elif key == "stats":
                device.stats, device.stats_at = value, now
            else:
                setattr(device, key, value)

    def problems(self, device: Device, now: float, stale_after_s: float) -> list[str]:
        out = []
        if device.status != "online":
            out.append("offline (its last will, or a clean stop)" if device.status == "offline"
                       else "no status message: not an edgeswin device, or never connected")
        for camera, state in sorted(device.availability.items()):
            if state != "online":
                out.append(f"camera {camera} {state}")
        for camera, health in sorted(device.health.items()):
            for p in health.get("problems") or []:
                out.append(f"camera {camera}: {p.get('kind')} since {p.get('since')} "
                           f"({p.get('detail')})")
        canary = device.canary
        if canary is not None and not canary.get("ok", True):
            wrong = canary.get("wrong") or []
            out.append(f"canary failing on {canary.get('engine')}: {len(wrong)} of "
                       f"{canary.get('checked')} wrong"
                       + (f" ({wrong[0].get('image')}: {wrong[0].get('got')})" if wrong else ""))
        if device.status == "online":
            if device.stats_at is None:
                out.append("no stats received")
            elif now - device.stats_at > stale_after_s:
                out.append(f"stats silent for {now - device.stats_at:.0f} s")
        return out

    def notes(self, device: Device) -> list[str]:
        out = []
        engine = device.engine
        if engine and engine.get("rung"):
            out.append(f"degraded: serving rung {engine.get('rung')} ({engine.get('name')}): "
                       f"{engine.get('reason')}")
        rollout = device.rollout
        if rollout and rollout.get("state") in ("building", "shadow", "promoted"):
            out.append(f"model rollout on rung {rollout.get('rung')}: {rollout.get('state')}")
        return out


def _put(table: dict, key: str, value) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
