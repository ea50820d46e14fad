"""What a reload changes: the running cameras and a freshly loaded config -> which cameras to
keep running untouched, which to stop, which to start, and the counters a changed camera
carries on.

Hands the loop a `ReloadPlan`; it stops and starts captures itself. Pure: no threads, no MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..classify.schedule import CameraRuntime
from ..config import CameraEntry, Config, DeviceConfig


@dataclass
class ReloadPlan:
    keep: list[CameraRuntime] = field(default_factory=list)  # unchanged: left running
    stop: list[CameraRuntime] = field(default_factory=list)  # removed or changed
    removed: list[str] = field(default_factory=list)  # of those, the ones gone for good
    start: list[tuple[CameraEntry, CameraRuntime | None]] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)  # device settings that wait for a restart
    model_rungs: list[int] = field(default_factory=list)  # rungs a changed model may roll out on


def plan_reload(running: list[CameraRuntime], current: Config, new: Config) -> ReloadPlan:
    """Cameras whose entry (file, source, every setting) is unchanged keep running; a changed
    one is stopped and started afresh (with the old runtime, to carry its counters on)."""
    wanted = {e.config.name: e for e in new.cameras if e.config.enabled}
    old = {c.name: c for c in running}
    restart, rungs = device_changes(current.device, new.device)
    plan = ReloadPlan(restart=restart, model_rungs=rungs)
    for cam in running:
        if wanted.get(cam.name) == cam.entry:
            plan.keep.append(cam)
        else:
            plan.stop.append(cam)
            if cam.name not in wanted:
                plan.removed.append(cam.name)
    for name, entry in wanted.items():
        if name not in old or old[name].entry != entry:
            plan.start.append((entry, old.get(name)))
    return plan


def carry_counters(before: CameraRuntime, after: CameraRuntime) -> None:
    """A changed camera's regions that keep their name keep their seq and state, so `seq`
    stays gap-free across the reload."""
    previous = {r.name: r for r in before.regions}
    for region in after.regions:
        if region.name in previous:
            region.seq = previous[region.name].seq
            region.state_label = previous[region.name].state_label


APPLY_NOW = ("rollout",)  # device settings a reload applies (engines' model files: a rollout)


def device_changes(current: DeviceConfig, new: DeviceConfig) -> tuple[list[str], list[int]]:
    """The device settings that changed and wait for a restart (as `key.sub` paths), and the
    rungs whose other settings are the same, so a changed model file can roll out on them."""
    before, after = current.model_dump(), new.model_dump()
    restart = []
    for key, old in before.items():
        if key in APPLY_NOW or key == "engines" or after[key] == old:
            continue
        if isinstance(old, dict) and isinstance(after[key], dict):
            restart += [f"{key}.{sub}" for sub in old if old[sub] != after[key].get(sub)]
        else:
            restart.append(key)
    if len(current.engines) != len(new.engines):
        return restart + ["engines (rungs added or removed)"], []
    rungs = []
    for i, (old, rung) in enumerate(zip(before["engines"], after["engines"])):
        changed = [k for k in old if k != "model" and old[k] != rung[k]]
        restart += [f"engines[{i}].{k}" for k in changed]
        if not changed:
            rungs.append(i)
    return restart, rungs
