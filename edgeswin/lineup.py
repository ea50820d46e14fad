"""The cameras the daemon runs: each made from its config entry (a capture thread, its
schedule state, the size a GStreamer decoder scales to, and its preparation on the capture
thread when every frame is classified), changed by a reload without touching the others, and
let go of once a stopped camera's thread has ended.

Holds the running `CameraRuntime`s (`cameras`: what `Serving` classifies, and the frames a
background build is checked on) and says each camera's availability on its retained
`<root>/<camera>/availability`.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from .capture.camera import Capture
from .capture.gst_pipeline import decode_width
from .classify.schedule import CameraRuntime, region_runtimes, set_fps_level
from .classify.stats import CameraStats
from .config import CameraEntry, DeviceConfig
from .engine.ladder import ActiveEngine
from .process import heap
from .process.reload import ReloadPlan, carry_counters
from .publish.message import Message, topic_message
from .publish.mqtt import Publisher
from .scenes import random_scene
from .topics import TOPICS, per_camera

log = logging.getLogger(__name__)


class Lineup:
    def __init__(self, device: DeviceConfig, root: str, publisher: Publisher,
                 wake: threading.Condition):
        self.device, self.root, self.publisher = device, root, publisher
        self._wake = wake
        self.cameras: list[CameraRuntime] = []  # none before the start
        self.retired: list[Capture] = []  # stopped by a reload, until their threads end

    def start(self, entries: list[CameraEntry], active: ActiveEngine,
              rungs: list[ActiveEngine | None]) -> list[CameraRuntime]:
        """The start's cameras, made for the engine that serves first (not started yet)."""
        self.cameras = [self.make(e, active, rungs, 0) for e in entries]
        return self.cameras

    def make(self, entry: CameraEntry, active: ActiveEngine, rungs: list[ActiveEngine | None],
             fps_level: int) -> CameraRuntime:
        """One camera for what serves now: its regions' labels and its preparation from the
        serving engine, its decode size from the largest input of the ladder's `rungs`, its
        rate from the fps lever's level."""
        capture = Capture(entry.config, entry.source, self._notify, self._on_availability)
        specs = [e.engine.info.input for e in rungs if e is not None]
        if specs:  # a GStreamer-decoded camera is scaled to what the largest input needs
            spec = max(specs, key=lambda s: s.width * s.height)
            snapshots = self.device.snapshots
            capture.decode_width = decode_width(
                spec.width, spec.height, [r.box for r in entry.config.regions or []],
                snapshots.max_width if snapshots.enabled else 0)
        stats = CameraStats()
        labels = active.engine.info.labels
        cam = CameraRuntime(entry, capture, region_runtimes(entry.config, labels, stats), stats)
        set_fps_level([cam], fps_level, self.device.fallback.fps_steps)
        if cam.regions[0].fps == 0 and not entry.config.regions:
            # Every frame is classified: prepare it on the capture thread, overlapping the
            # engine (regions are cropped on the loop's thread).
            capture.prepare = active.preprocess
        return cam

    def not_read_yet(self, entries: list[CameraEntry]) -> None:
        """At start, before any engine serves: every camera `offline` until its capture reads
        it (a killed run's retained `online` would say otherwise)."""
        for entry in entries:
            self.publisher.publish(topic_message(self.root, "availability", b"offline",
                                           camera=entry.config.name))

    def check_frames(self, wanted: int = 8) -> list:
        """The newest camera frames, topped up with rendered scenes, to compare engines on."""
        frames = [f.image for c in self.cameras if (f := c.capture.latest()) is not None]
        rng = np.random.default_rng(0)
        while len(frames) < wanted:
            frames.append(random_scene(rng, 640, 360)[0])
        return frames[:wanted]

    def change(self, plan: ReloadPlan, active: ActiveEngine, rungs: list[ActiveEngine | None],
               fps_level: int) -> list[CameraRuntime]:
        """A reload's cameras: stopped ones retired (joined later: a slow stream must not
        stall the loop), removed ones said offline (their retained health is cleared by
        `clear_removed`, after the announcement), new and changed ones made (`make`) and
        started, the rest left running; the new list."""
        for cam in plan.stop:
            cam.capture.retire()
            self.retired.append(cam.capture)
        for name in plan.removed:
            log.info("reload: camera %s removed", name)
            self.publisher.publish(topic_message(self.root, "availability", b"offline", camera=name))
        cameras = plan.keep
        for entry, before in plan.start:
            cam = self.make(entry, active, rungs, fps_level)
            if before is not None:
                carry_counters(before, cam)
            log.info("reload: camera %s %s", entry.config.name,
                     "changed" if before is not None else "added")
            cam.capture.start()
            cameras.append(cam)
        self.cameras = cameras
        return cameras

    def clear_removed(self, plan: ReloadPlan) -> None:
        """Every retained topic of the cameras a reload removed (availability, state, snapshot,
        health; their regions' too), emptied: a device that adds and removes cameras over a
        year must not leave the broker a growing heap of them. Called after Home Assistant
        was told the cameras are gone, so that no entity of theirs is left to read an empty
        payload as JSON; live subscribers saw `offline` first (`change`)."""
        gone = [c for c in plan.stop if c.name in plan.removed]
        for cam in gone:
            regions = [r.name for r in cam.regions if r.name is not None]
            for key, topic in per_camera(self.root, cam.name, regions):
                if TOPICS[key].per_camera_cleared:
                    self.publisher.publish(Message(topic, b"", 1, True))

    def release_retired(self) -> None:
        """Let go of retired captures once their threads are done."""
        if self.retired:
            still = [c for c in self.retired if not c.finished]
            if len(still) < len(self.retired):
                self.retired = still
                heap.trim()  # what their decoders and frames held, back to the system

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def _on_availability(self, camera: str, state: str, reason: str) -> None:
        log.info("camera %s: %s (%s)", camera, state, reason, extra={"CAMERA": camera})
        online = "online" if state == "online" else "offline"
        self.publisher.publish(topic_message(self.root, "availability", online.encode(), camera=camera))
        self._notify()
