"""Every MQTT topic under a device's root, in one table: its place below the root, whether the
broker keeps it, its QoS, its payload's schema, and whether a removed camera's copy is cleared.

Publishers name a topic by its key (`at(root, "engine")`, `at(root, "state", unit=...)`);
subscribers (`watch`, the board) read a topic back with `parse`; config checks a camera's
longest topic against MQTT's limit with `longest`; the schema tests and docs/mqtt.md are
checked against the table. A new topic is one row here plus the code that sends it.

A `unit` is a camera (`lobby`) or one of its regions (`lobby/door`): labels, states and
snapshots are per unit; health, availability and pictures per camera.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    pattern: str  # below the root; {camera}: one level, {unit}: a camera or camera/region
    retained: bool
    qos: int | None  # None: the config's mqtt.qos (what classifications and states use)
    schema: str | None = None  # edgeswin/schemas/<schema>.schema.json
    to_device: bool = False  # read by the device, sent by others
    per_camera_cleared: bool = False  # emptied when its camera is removed or disabled


TOPICS: dict[str, Topic] = {
    "status": Topic("status", True, 1),
    "classification": Topic("{unit}/classification", False, None, "classification"),
    "state": Topic("{unit}/state", True, None, "state", per_camera_cleared=True),
    "snapshot": Topic("{unit}/snapshot", True, 1, per_camera_cleared=True),
    "availability": Topic("{camera}/availability", True, 1, per_camera_cleared=True),
    "health": Topic("{camera}/health", True, 1, "health", per_camera_cleared=True),
    "health_snapshot": Topic("{camera}/health/snapshot", True, 1, per_camera_cleared=True),
    "picture": Topic("{camera}/picture", False, 0),
    "watching": Topic("watching", False, 0, to_device=True),
    "canary": Topic("canary", True, 1, "canary"),
    "desired": Topic("desired", True, 1, "bundle", to_device=True),
    "reported": Topic("reported", True, 1, "reported"),
    "engine": Topic("engine", True, 1, "engine"),
    "rollout": Topic("rollout", True, 1, "rollout"),
    "stats": Topic("stats", False, 0, "stats"),
    "measured": Topic("measured", True, 1),
}


def group_desired(group: str) -> str:
    """Where a fleet group's bundle of desired state is (outside any device's root: every
    device of the group reads it)."""
    return f"edgeswin/fleet/{group}/desired"


def unit_of(camera: str, region: str | None = None) -> str:
    """The unit a camera's or region's labels go under."""
    return camera if region is None else f"{camera}/{region}"


def at(root: str, key: str, camera: str | None = None, unit: str | None = None) -> str:
    """The full topic of `key` for a device (and a camera or unit where the topic has one)."""
    pattern = TOPICS[key].pattern
    if "{camera}" in pattern and camera is None or "{unit}" in pattern and unit is None:
        raise ValueError(f"topic {key} ({pattern}) needs its camera or unit")
    return f"{root}/" + pattern.format(camera=camera, unit=unit)


def parse(rest: list[str]) -> tuple[str, str | None] | None:
    """Which topic the levels below a root are, and its camera or unit (None for a device's
    own topics); None for a topic not in the table. A fixed level beats a placeholder, so
    `lobby/health/snapshot` is the camera's health picture, not a region named `health`."""
    best: tuple[int, str, str | None] | None = None
    for key, topic in TOPICS.items():
        levels = topic.pattern.split("/")
        if levels[0] == "{unit}":
            shapes = [["{camera}", "{region}", *levels[1:]], ["{camera}", *levels[1:]]]
        else:
            shapes = [levels]
        for shape in shapes:
            if len(shape) != len(rest):
                continue
            if all(s.startswith("{") or s == r for s, r in zip(shape, rest)):
                fixed = sum(not s.startswith("{") for s in shape)
                owner = "/".join(r for s, r in zip(shape, rest) if s.startswith("{")) or None
                if best is None or fixed > best[0]:
                    best = (fixed, key, owner)
    return None if best is None else (best[1], best[2])


def per_camera(root: str, camera: str, regions: list[str]) -> list[tuple[str, str]]:
    """(key, topic) of every topic of a camera and its regions."""
    units = [camera] + [unit_of(camera, r) for r in regions]
    return [(key, at(root, key, camera=camera, unit=unit)) for key, t in TOPICS.items()
            for unit in (units if "{unit}" in t.pattern else [camera])
            if "{" in t.pattern]


def longest(root: str, camera: str, regions: list[str]) -> str:
    """A camera's longest topic (what MQTT's topic length limit is checked against)."""
    return max((topic for _, topic in per_camera(root, camera, regions)),
               key=lambda t: len(t.encode()))


# A region is not named like a level of its camera's own deeper topics: a region `health`
# would put its snapshot where the camera's health picture is.
RESERVED_REGION_NAMES = frozenset(
    t.pattern.split("/")[1] for t in TOPICS.values()
    if t.pattern.startswith("{camera}/") and t.pattern.count("/") >= 2)
