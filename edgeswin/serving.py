"""The engine that serves and what flows through it, between the daemon's loop and the stages.

Each due frame is inferred on the loop's thread, then finished there or, while another frame
waits and that is measured faster, on the finisher's thread (`classify.finisher`; the tail is
`publish.recorder.Recorder`). An engine that fails while its promotion is watched is rolled back;
any other failure stops the daemon. Between two frames it carries out the governor's lever moves
(rung, dla, fps), puts a rollout's promoted or rolled-back model into service, adopts engines
built in the background, says which engine serves on the retained `<root>/engine`, and runs
the canary's images in spare time: the serving engine's result on the retained `<root>/canary`,
and an engine that answers wrong stepped away from (or its watched promotion rolled back).

The daemon owns the cameras' lifecycle and the loop; this owns which engine serves them.
"""

from __future__ import annotations

import logging
import threading
import time

from .canary.run import Canary, Result
from .classify.finisher import Finisher, HandOffPolicy
from .classify.schedule import CameraRuntime, next_job, set_fps_level
from .classify.step import Inferred, infer, iso
from .config import DeviceConfig
from .engine.ladder import ActiveEngine, EngineLadder
from .govern.fallback import Action, FallbackPolicy, Readings
from .govern.governor import Governor
from .govern.sensors import LatencyWindows
from .health.board import HealthBoard
from .process.cadence import Every
from .process.notify import Notifier
from .publish.message import topic_message
from .publish.mqtt import Publisher
from .publish.readout import Readout
from .publish.recorder import Recorder
from .rollout.rollouts import ModelRollouts

log = logging.getLogger(__name__)

BUILD_PROGRESS_EVERY_S = 5.0  # a running build's step republished on <root>/engine at most this often
START_EXTENSION_S = 30.0  # each progress report before the first engine: this much more start time
WAITING = "waiting for an engine: no rung can serve until its TensorRT build finishes"


class Serving:
    def __init__(self, device: DeviceConfig, root: str, engines: EngineLadder,
                 rollouts: ModelRollouts, governor: Governor, latency: LatencyWindows,
                 publisher: Publisher, recorder: Recorder):
        self.device, self.root = device, root
        self.engines, self.rollouts, self.governor = engines, rollouts, governor
        self.latency, self.publisher, self.recorder = latency, publisher, recorder
        self.active: ActiveEngine | None = None
        self.cameras: list[CameraRuntime] = []  # the daemon's, replaced on a reload
        self.policy: FallbackPolicy | None = None  # set at start, once the ladder is loaded
        self.finisher: Finisher[Inferred] | None = None  # started with the cameras
        self.hand_off = HandOffPolicy()
        self.switches = 0
        self.last_reason = "start"
        self.canary_last: Result | None = None  # the serving engine's latest canary
        self.rollbacks = 0  # model rollouts rolled back since the start (a fleet's watch)

    def load_ladder(self, stop: threading.Event, notifier: Notifier) -> None:
        """Open the ladder (`EngineLadder.load`). While a first boot's build runs with no rung
        to serve: the watchdog fed, and every few seconds the build's step on `<root>/engine`
        and to systemd, with more start time each time."""
        progress = Every(BUILD_PROGRESS_EVERY_S, time.monotonic())

        def waiting() -> None:
            now = time.monotonic()
            notifier.watchdog(now)
            if progress.due(now):
                self.publish_engine(None, WAITING, Readings(now, self.governor.temps))
                notifier.extend(START_EXTENSION_S, f"{WAITING}: " + "; ".join(
                    f"{name} {r.step or r.state} ({r.as_dict().get('elapsed_s', r.seconds)} s)"
                    for name, r in self.engines.builds.items()))
                progress.done(now)

        self.engines.load(stop, waiting)

    def builds_stopped(self) -> None:
        """At exit, the builds cancelled: the retained engine message says so (a subscriber
        must not read "building" from a daemon that has stopped)."""
        if self.engines.builds:
            self.publish_engine(None, self.last_reason if self.active else
                                "stopped before an engine served",
                                Readings(time.monotonic(), self.governor.temps))

    def adopt_builds(self) -> None:
        """Between frames: finished builds join the ladder; step up to one at once when the
        device allows it (not pinned, not hot)."""
        for rung, spec, report in self.engines.adopt():
            readings = Readings(time.monotonic(), self.governor.temps)  # the last sensor poll
            action = None
            if self.engines.rungs[rung] is not None and report.state == "ready":
                self.rollouts.now_serving(rung)
                action = self.policy.adopt(rung, readings, f"engine ready: {spec.name} "
                                           f"({spec.precision}) built on this device; "
                                           f"{report.detail}")
            if action is not None:
                self.act(action)
            elif self.active is not None:
                self.publish_engine(None, self.last_reason, readings)

    def act(self, action: Action) -> None:
        """Carry out a lever's move between two frames (power_mode is already done), log it
        and say so on the retained engine topic."""
        fb = self.device.fallback
        previous = self.active
        if action.lever in ("rung", "dla"):
            target = self.policy.serving
            self.switches += 1
            self.serve(self.engines.rungs[target])
            # Judge the new rung on its own fresh samples, and the cameras on it only.
            self.latency.clear(lambda key: key[0] == "camera" or key[1] == target)
        elif action.lever == "fps":
            set_fps_level(self.cameras, action.to, fb.fps_steps)
            for cam in self.cameras:  # a throttled every-frame camera: prepare only what is used
                if not cam.entry.config.regions and cam.entry.config.fps == 0:
                    cam.capture.prepare = self.active.preprocess if cam.regions[0].fps == 0 \
                        else None
        if action.lever == "fps":
            what = ", ".join(f"{c.name} {r.fps:g}/s" for c in self.cameras for r in c.regions[:1])
        elif action.lever == "power_mode":
            what = f"mode {self.governor.modes.target(action.to).name}"
        else:
            what = f"{previous.name} -> {self.active.name}"
        log.warning("fallback: %s %d -> %d (%s): %s", action.lever, action.frm, action.to, what,
                    action.reason, extra={"ENGINE": self.active.name})
        self.publish_engine(previous.rung if action.lever in ("rung", "dla") else None,
                             action.reason, action.readings, action)

    def serve(self, new: ActiveEngine) -> ActiveEngine | None:
        """Point every camera at another engine between two frames; the one before."""
        self.drain()  # what was inferred before is postprocessed with its own labels
        previous, self.active = self.active, new
        if new is not previous:
            self.hand_off.retry()
        for cam in self.cameras:
            if cam.capture.prepare is not None:
                cam.capture.prepare = new.preprocess
        if previous is not None and previous.engine.info.labels != new.engine.info.labels:
            for cam in self.cameras:
                for region in cam.regions:
                    region.post.reset(new.engine.info.labels)
        return previous

    def rungs_replaced(self, rungs: list[int]) -> None:
        """A rollout put another model on these rungs (promotion or rollback)."""
        if rungs:
            self.drain()  # the windows cleared here are the finisher's to fill
        for rung in rungs:
            # The rung's latency window now judges the new model only.
            self.latency.clear(lambda key, r=rung: key[0] != "camera" and key[1] == r)
            new = self.engines.rungs[rung]
            if new is not None and self.active is not None and self.active.rung == rung:
                self.serve(new)
                self.publish_engine(None, f"model rollout on rung {rung}: {new.engine.info.name}",
                                     Readings(time.monotonic(), self.governor.temps))

    def classify(self, cam: CameraRuntime, region, frame) -> None:
        """A frame through the serving engine, then finished here or, while another frame
        already waits and handing off is measured to be faster (`HandOffPolicy`), on the
        finisher's thread while the next one is inferred. An engine that raises (or whose
        output cannot be finished) while its promotion is watched is rolled back (this frame
        is lost); any other error stops the daemon, cameras released and the last words
        sent."""
        active = self.active
        try:
            done = infer(active, cam, region, frame)
        except Exception as exc:
            self._engine_failed(active.rung, exc, cam.name, frame.index)
            return
        now = time.monotonic()
        if next_job(self.cameras, now)[0] is None:
            self.hand_off.unsaturated()
            handing_off = False
        else:
            handing_off = self.hand_off.decide(now)
        if handing_off:
            self.finisher.submit(done)
            self._handle(self.finisher.failures())
        else:
            self._handle(self.finisher.drain())  # in order: after what was handed off
            try:
                self.recorder(done)
            except Exception as exc:
                self._engine_failed(active.rung, exc, cam.name, frame.index)
                return
        try:
            replaced = self.rollouts.offer(done.image)
        except Exception as exc:
            self._engine_failed(active.rung, exc, cam.name, frame.index)
            return
        self.rungs_replaced(replaced)

    def drain(self) -> None:
        """Everything handed to the finisher is published and recorded: before reading what
        it records (latency, stats) or changing what it uses (postprocessing, cameras)."""
        self._handle(self.finisher.drain())

    def _handle(self, failed: list[tuple[Inferred, BaseException]]) -> None:
        for done, exc in failed:
            self._engine_failed(done.active.rung, exc, done.cam.name, done.frame.index)

    def _engine_failed(self, rung: int, exc: BaseException, camera: str, index: int) -> None:
        replaced = self.rollouts.engine_failed(rung, f"engine error: {type(exc).__name__}: "
                                                     f"{exc}")
        if not replaced:
            raise exc
        log.error("engine rung %d failed on camera %s frame %d", rung, camera, index,
                  exc_info=exc, extra={"CAMERA": camera})
        self.rungs_replaced(replaced)

    def readout(self, started_mono: float, health: HealthBoard) -> Readout:
        """What the stats and /metrics read of the device: this, and what it serves with."""
        return Readout(started_mono, lambda: self.cameras, lambda: self.active, self.levels,
                       lambda: self.switches, lambda: self.canary_last, self.hand_off,
                       self.engines, self.rollouts, self.governor, self.latency, health,
                       self.publisher)

    def levels(self) -> dict[str, int]:
        """Each fallback lever's level (none before the start set the policy)."""
        return self.policy.levels() if self.policy else {}

    def rollout_said(self, payload: dict) -> None:
        """A model rollout's state, on the retained `<root>/rollout`."""
        self.rollbacks += payload.get("state") == "rolled_back"
        self.publisher.publish(topic_message(self.root, "rollout", payload))

    def canary_step(self, canary: Canary) -> bool:
        """One canary image through an engine (spare time, or overdue); whether one ran."""
        ran, result = canary.step(time.monotonic(), self.engines.rungs, self.active)
        if result is not None:
            self.canary_result(result)
        return ran

    def canary_result(self, result: Result) -> None:
        if result.rung == self.active.rung:
            self.canary_last = result
            self.publisher.publish(topic_message(self.root, "canary", result.payload(iso(time.time()))))
        readings = Readings(time.monotonic(), self.governor.temps)
        if result.recovered:
            log.warning("canary: rung %d (%s) answers right again", result.rung, result.engine)
            action = self.policy.adopt(result.rung, readings, f"canary: {result.engine} "
                                       "answers right again")
            if action is not None:
                self.act(action)
        if result.ok:
            return
        why = f"canary: {len(result.wrong)} of {result.checked} wrong on {result.engine}: " \
              f"{result.why()}"
        log.error("%s", why, extra={"ENGINE": result.engine})
        replaced = self.rollouts.engine_failed(result.rung, why)
        if replaced:
            self.rungs_replaced(replaced)
            return
        action = self.policy.drop(result.rung, readings, why)
        if action is not None:
            self.act(action)

    def slow_cameras(self) -> dict[str, tuple[float, float]]:
        slow = {}
        for cam in self.cameras:
            budget = cam.entry.config.latency_budget_ms
            p95 = self.latency.p95(("camera", cam.name)) if budget is not None else None
            if p95 is not None and p95 > budget:
                slow[cam.name] = (p95, budget)
        return slow

    def publish_engine(self, from_rung: int | None, reason: str, readings: Readings,
                       action: Action | None = None) -> None:
        """The retained `<root>/engine`: what serves and why, and the builds. Before any
        engine serves (a first boot's build) the engine's fields are null and the builds say
        how far they got; with neither an engine nor a build there is nothing to say."""
        active = self.active
        if active is None and not self.engines.builds:
            return
        if active is not None:
            self.last_reason = reason
        payload = {
            "rung": active.rung if active else None, "from": from_rung,
            "name": active.name if active else None,
            "model": active.engine.info.name if active else None,
            "backend": active.engine.backend if active else None,
            "precision": active.engine.info.precision if active else None, "reason": reason,
            "lever": {"name": action.lever, "from": action.frm, "to": action.to}
            if action else None,
            "levels": self.levels(),
            "readings": readings.as_dict(), "ts": iso(time.time())}
        if self.engines.builds:
            payload["builds"] = {name: r.as_dict() for name, r in self.engines.builds.items()}
        if skipped := self.engines.skipped():
            payload["skipped"] = skipped
        self.publisher.publish(topic_message(self.root, "engine", payload))
