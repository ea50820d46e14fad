"""What the page shows of each device, from its topics: the fleet's view (`fleet.Fleet`: status,
engine, canary, rollout, stats, availability, health), and besides it each camera's and
region's label state and newest pictures (the retained snapshots, and the live pictures a
device sends while a board asks for them), the stats as points over the last hours, and each
camera's label timeline.

Takes (topic, payload, arrival time) like `Fleet` and hands on `snapshot()`, a dict made only
of JSON values (the page's `/api/board`), and `picture()`, a JPEG's bytes. Whatever arrives is
bounded: payloads over `MAX_JSON` or `MAX_PICTURE` bytes, a picture that is not a JPEG, a state
that is not a JSON object are dropped; points and timelines are rings; at most `MAX_DEVICES`
devices and `MAX_UNITS` cameras and regions (pictures) each are kept. Nothing of a payload is
interpreted as markup anywhere: the page sets text, never HTML.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field

from ..topics import parse
from .fleet import Fleet, matches

MAX_JSON = 256 * 1024  # a state or stats payload larger than this is not the daemon's
MAX_PICTURE = 4 * 1024 * 1024  # snapshots are at most a few hundred KB
POINTS = 4320  # stats points kept per device: 6 h at the default 5 s interval
CHANGES = 2000  # label changes kept per camera or region
MAX_DEVICES = 1000  # devices shown; more roots than this are ignored
MAX_UNITS = 256  # cameras and regions kept per device
JPEG = b"\xff\xd8"


@dataclass
class Seen:
    """What the board keeps of one device besides the fleet's view."""

    states: dict[str, dict] = field(default_factory=dict)  # unit ("cam" or "cam/region")
    pictures: dict[str, tuple[bytes, float]] = field(default_factory=dict)  # unit/kind
    points: deque = field(default_factory=lambda: deque(maxlen=POINTS))
    timeline: dict[str, deque] = field(default_factory=dict)  # unit -> (t, label)
    fleet: dict | None = None  # the device's `reported`: a fleet bundle's state


class Board:
    def __init__(self, root_pattern: str):
        self.fleet = Fleet(root_pattern)
        self.seen: dict[str, Seen] = {}

    @property
    def topic_filter(self) -> str:
        return self.fleet.topic_filter

    def take(self, topic: str, payload: bytes, now: float) -> None:
        parts = topic.split("/")
        pattern = self.fleet.pattern
        if not matches(pattern, parts) or len(parts) == len(pattern):
            return
        root, rest = "/".join(parts[:len(pattern)]), parts[len(pattern):]
        if root not in self.seen and len(self.seen) >= MAX_DEVICES:
            return  # a flood of made-up roots must not grow the board without end
        if len(payload) <= MAX_JSON:
            self.fleet.take(topic, payload, now)
        seen = self.seen.setdefault(root, Seen())
        key, owner = parse(rest) or (None, "")
        if key in ("snapshot", "health_snapshot", "picture"):
            # cam or cam/region; cam/health for the health picture; a live picture: cam
            unit = f"{owner}/health" if key == "health_snapshot" else owner
            if not payload:
                seen.pictures.pop(unit, None)
            elif len(payload) <= MAX_PICTURE and payload.startswith(JPEG) and (
                    unit in seen.pictures or len(seen.pictures) < MAX_UNITS):
                seen.pictures[unit] = (bytes(payload), time.time())
        elif key == "state":
            unit = owner
            if unit in seen.states or len(seen.states) < MAX_UNITS:
                self._state(seen, unit, payload)
        elif key == "stats" and len(payload) <= MAX_JSON:
            self._point(seen, payload)
        elif key == "reported" and len(payload) <= MAX_JSON:
            value = _json(payload) if payload else None
            seen.fleet = {k: str(value.get(k))[:300] for k in ("version", "state", "reason",
                                                               "group")} \
                if isinstance(value, dict) else None
        elif key == "availability" and not payload:
            for unit in [u for u in seen.states if u == owner or u.startswith(owner + "/")]:
                seen.states.pop(unit, None)  # removed from the config: nothing more to show

    def _state(self, seen: Seen, unit: str, payload: bytes) -> None:
        if not payload:
            seen.states.pop(unit, None)
            return
        value = _json(payload)
        if not isinstance(value, dict) or not isinstance(value.get("label"), str):
            return
        state = {"label": value["label"][:200], "score": _number(value.get("score")),
                 "since": str(value.get("since", ""))[:64]}
        before = seen.states.get(unit)
        seen.states[unit] = state
        if before is None or before["label"] != state["label"]:
            seen.timeline.setdefault(unit, deque(maxlen=CHANGES)).append(
                (round(time.time(), 3), state["label"]))

    def _point(self, seen: Seen, payload: bytes) -> None:
        stats = _json(payload)
        if not isinstance(stats, dict):
            return
        cameras = stats.get("cameras") if isinstance(stats.get("cameras"), dict) else {}
        fps = [_number(c.get("fps")) for c in cameras.values() if isinstance(c, dict)]
        rungs = stats.get("rungs") if isinstance(stats.get("rungs"), dict) else {}
        serving = rungs.get(str(stats.get("rung")))  # the serving rung's inference p50, p95
        latency = serving.get("inference_ms") if isinstance(serving, dict) else None
        latency = latency if isinstance(latency, dict) else {}
        power = stats.get("power") if isinstance(stats.get("power"), dict) else {}
        seen.points.append({
            "t": round(time.time(), 3),
            "fps": round(sum(f for f in fps if f is not None), 2),
            "p50_ms": _number(latency.get("p50")), "p95_ms": _number(latency.get("p95")),
            "temp_c": _number(stats.get("temp_max_c")),
            "power_w": _number(power.get("total_w")),
            "rung": _number(stats.get("rung"))})

    def snapshot(self, now: float, stale_after_s: float) -> dict:
        """Every device as the page draws it (JSON values only)."""
        out = []
        for root in sorted(set(self.fleet.devices) | set(self.seen)):
            device = self.fleet.devices.get(root)
            seen = self.seen.get(root, Seen())
            cameras = sorted(set(device.availability if device else ()) |
                             {u.split("/")[0] for u in seen.states} |
                             set(device.health if device else ()))
            out.append({
                "root": root,
                "status": device.status if device else None,
                "problems": self.fleet.problems(device, now, stale_after_s) if device else [],
                "notes": self.fleet.notes(device) if device else [],
                "engine": device.engine if device else None,
                "canary": device.canary if device else None,
                "rollout": device.rollout if device else None,
                "fleet": seen.fleet,
                "stats_age_s": round(now - device.stats_at, 1)
                if device and device.stats_at is not None else None,
                "temps_c": (device.stats or {}).get("temps_c") if device else None,
                "power": (device.stats or {}).get("power") if device else None,
                "cameras": [self._camera(device, seen, name) for name in cameras],
                "points": list(seen.points),
                "timeline": {unit: list(changes) for unit, changes in seen.timeline.items()}})
        return {"devices": out}

    def _camera(self, device, seen: Seen, name: str) -> dict:
        units = [u for u in seen.states if u == name or u.startswith(name + "/")]
        health = (device.health.get(name) if device else None) or {}
        return {
            "name": name,
            "availability": device.availability.get(name) if device else None,
            "health": {"ok": health.get("ok"), "problems": [
                {"kind": str(p.get("kind")), "since": str(p.get("since")),
                 "detail": str(p.get("detail"))[:300]}
                for p in (health.get("problems") or []) if isinstance(p, dict)]},
            "units": [{"unit": u, "region": u.split("/", 1)[1] if "/" in u else None,
                       **seen.states[u]} for u in sorted(units)],
            "pictures": {k: seen.pictures[k][1] for k in sorted(seen.pictures)
                         if k == name or k.startswith(name + "/")}}

    def picture(self, root: str, unit: str) -> bytes | None:
        seen = self.seen.get(root)
        found = seen.pictures.get(unit) if seen else None
        return found[0] if found else None


def _json(payload: bytes):
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and value == value and abs(value) != float("inf") else None
