"""What the daemon says about itself: the `<root>/stats` payload, the one-line status for
`systemctl status`, and the Home Assistant discovery messages for the current cameras.

Hands the loop dicts, strings and `Message`s; it publishes them. Reads the loop's state, never
changes it (apart from each camera's rate mark for `fps_in`).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..classify.schedule import CameraRuntime
from ..classify.step import iso
from ..config import DeviceConfig
from ..config.health import effective
from ..engine.ladder import ActiveEngine
from .homeassistant import Discovery
from .message import Message
from .readout import Readout


def stats_payload(view: Readout) -> dict:
    """`<root>/stats`: device, engine, latency per rung, MQTT, outbox and per camera (per
    region under `regions` for a camera with regions)."""
    active, cameras, now = view.active(), view.cameras(), time.monotonic()
    governor = view.governor
    fps_in = {}
    for c in cameras:
        then, frames = c.read_mark
        fps_in[c.name] = round((c.capture.frames_read - frames) / (now - then), 2) \
            if then and now > then else None
        c.read_mark = (now, c.capture.frames_read)
    publisher = view.publisher
    return {
        "ts": iso(time.time()),
        "uptime_s": round(now - view.started_mono, 1),
        "engine": active.name if active else None,
        "rung": active.rung if active else None,
        "degraded": bool(active and active.rung > 0),
        "temps_c": governor.temps,  # the last sensor poll
        "temp_max_c": max(governor.temps.values()) if governor.temps else None,
        "rungs": view.latency.by_rung(),
        "levels": view.levels(),
        "power": governor.power_report(sum(c.stats.classified for c in cameras)),
        "mqtt": {"connected": publisher.connected.is_set(),
                 "sent": publisher.sent, "dropped": publisher.dropped},
        "outbox": publisher.outbox.state() if publisher.outbox else None,
        "finisher": finisher_state(view.hand_off),
        "cameras": {
            c.name: {**c.stats.snapshot(), "fps_in": fps_in[c.name],
                     "state": c.capture.state,
                     "frames_read": c.capture.frames_read,
                     "skipped": c.skipped,
                     "reconnects": c.capture.reconnects,
                     **({"regions": {r.name: r.stats.snapshot() for r in c.regions}}
                        if c.entry.config.regions else {})}
            for c in cameras
        },
    }


def finisher_state(policy) -> dict:
    """Whether classifications are finished on the finisher's thread now, and the loop's
    cycle each way in the last trial (ms; null before the first)."""
    def ms(value: float | None) -> float | None:
        return round(value, 3) if value is not None else None
    return {"handing_off": policy.handing_off, "trials": policy.trials,
            "cycle_ms": {"finisher": ms(policy.cycle_ms[True]),
                         "loop": ms(policy.cycle_ms[False])}}


def status_line(cameras: list[CameraRuntime], active: ActiveEngine | None) -> str:
    """One line for `systemctl status`."""
    cams = ", ".join(f"{c.name} {c.stats.fps():.1f}/s" if c.capture.state == "online"
                     else f"{c.name} {c.capture.state}" for c in cameras)
    degraded = " degraded" if active and active.rung > 0 else ""
    engine = f"{active.name} (rung {active.rung}{degraded})" if active else "no engine"
    return f"{len(cameras)} camera(s) on {engine}: {cams}"


def discovery_messages(device: DeviceConfig, root: str,
                       cameras: list[CameraRuntime]) -> list[Message]:
    """Home Assistant discovery for the current cameras and regions (retained; gone ones
    cleared); none when discovery is off."""
    ha = device.homeassistant
    if not ha.enabled:
        return []
    discovery = Discovery(ha.prefix, device.device_id, root, Path(device.state_dir))
    return discovery.messages([(c.name, r.name) for c in cameras for r in c.regions],
                              device.snapshots.enabled,
                              {c.name: effective(device.health, c.entry.config.health).enabled
                               for c in cameras}, device.canary.enabled)
