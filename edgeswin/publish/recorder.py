"""A finished classification's tail: `classify.step.finish` turns it into payloads, and this
publishes them and records it everywhere the daemon keeps figures.

Takes an `Inferred` (on the finisher's thread, or the loop's when nothing was handed off) and
hands on MQTT messages (classification, retained state, snapshots), the payload to listeners
(the demo, the bench), latency samples, camera and region counts, the camera's health (retained
`<root>/<camera>/health` when it changes, with a snapshot of a problem raised), hard examples
(more of them while the camera drifts) and metrics.
"""

from __future__ import annotations

from collections.abc import Callable

from ..classify.step import Inferred, finish
from ..govern.sensors import LatencyWindows
from ..health.board import HealthBoard
from ..topics import at
from .hard_examples import HardExamples
from .message import topic_message
from .mqtt import Publisher
from .snapshot import Snapshots


class Recorder:
    def __init__(self, publisher: Publisher, root: str, qos: int, latency: LatencyWindows,
                 snapshots: Snapshots, hard: HardExamples, health: HealthBoard):
        self.publisher, self.root, self.qos = publisher, root, qos
        self.latency, self.snapshots, self.hard = latency, snapshots, hard
        self.health = health
        # Called with every classification payload (published or not), e.g. by the demo.
        self.listeners: list[Callable[[dict], None]] = []
        self.metrics = None  # publish.metrics.Metrics, once the daemon has started it
        # A board open somewhere asks for live pictures (`Snapshots.watched`).
        publisher.follow(at(root, "watching"), snapshots.watched)

    def __call__(self, done: Inferred) -> None:
        active, cam, region, frame = done.active, done.cam, done.region, done.frame
        out = finish(done)
        if out.publish:
            self.publisher.publish(topic_message(self.root, "classification", out.payload,
                                           unit=out.unit, qos=self.qos))
        for listener in self.listeners:
            listener(out.payload)
        if out.state is not None:
            self.publisher.publish(topic_message(self.root, "state", out.state, unit=out.unit,
                                           qos=self.qos))
        label, score = out.payload["label"], out.payload["score"]
        self.latency.add(("inference", active.rung), out.infer_ms)
        self.latency.add(("capture_to_publish", active.rung), out.total_ms)
        self.latency.add(("camera", cam.name), out.total_ms)
        cam.stats.record(label, score, out.infer_ms, out.total_ms, out.publish)
        if region.stats is not cam.stats:
            region.stats.record(label, score, out.infer_ms, out.total_ms, out.publish)
        for message in self.snapshots.after(cam, region, frame, out.state is not None):
            self.publisher.publish(message)
        health = self.health.after(cam.entry, frame, cam.capture.source_fps,
                                   (label, score, active.name))
        if health is not None:
            self.publisher.publish(topic_message(self.root, "health", health, camera=cam.name))
            for message in self.snapshots.problem(cam, frame, health):
                self.publisher.publish(message)
        self.hard.after(cam, region, frame, out.payload, self.health.drifting(cam.name))
        if self.metrics:
            self.metrics.inference.labels(str(active.rung), active.name).observe(
                out.infer_ms / 1000)
            self.metrics.capture_to_publish.labels(cam.name).observe(out.total_ms / 1000)
