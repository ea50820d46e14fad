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
import time
from dataclasses import dataclass

from .canary.run import Canary, Result
from .classify.finisher import Finisher, HandOffPolicy
from .classify.schedule import CameraRuntime, next_job, set_fps_level
from .classify.step import Inferred, infer, iso
from .engine.ladder import ActiveEngine, EngineLadder
from .govern.fallback import Action, FallbackPolicy, Readings
from .govern.governor import Governor
from .govern.sensors import LatencyWindows
from .lineup import Lineup
from .publish.engine_topic import EngineTopic
from .publish.message import topic_message
from .publish.mqtt import Publisher
from .publish.recorder import Recorder
from .rollout.rollouts import ModelRollouts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parts:
    """The daemon's long-lived parts that serving works with (made before any engine serves)."""
    engines: EngineLadder
    rollouts: ModelRollouts
    governor: Governor
    latency: LatencyWindows
    recorder: Recorder
    publisher: Publisher
    engine_topic: EngineTopic
    lineup: Lineup


class Serving:
    """Made once an engine can serve (the start rung chosen, the cameras made, the policy
    set): nothing of it waits to be filled in."""

    def __init__(self, parts: Parts, active: ActiveEngine, policy: FallbackPolicy,
                 hand_off: HandOffPolicy):
        self.engines, self.rollouts, self.governor = parts.engines, parts.rollouts, parts.governor
        self.latency, self.recorder, self.publisher = parts.latency, parts.recorder, parts.publisher
        self.engine_topic, self.lineup = parts.engine_topic, parts.lineup
        self.active, self.policy, self.hand_off = active, policy, hand_off
        self.finisher: Finisher[Inferred] = Finisher(parts.recorder)
        self.switches = 0
        self.canary_last: Result | None = None  # the serving engine's latest canary

    @property
    def cameras(self) -> list[CameraRuntime]:
        """The running cameras (the lineup's, replaced on a reload)."""
        return self.lineup.cameras

    def levels(self) -> dict[str, int]:
        """Each fallback lever's level."""
        return self.policy.levels()

    @property
    def rollbacks(self) -> int:
        """Model rollouts rolled back since the start (a fleet's watch)."""
        return self.rollouts.events.get("rolled_back", 0)

    def adopt_builds(self) -> None:
        """Between frames: finished builds join the ladder; step up to one at once when the
        device allows it (not pinned, not hot)."""
        for rung, spec, report in self.engines.adopt():
            readings = self.governor.last(time.monotonic())  # the last sensor poll
            action = None
            if self.engines.rungs[rung] is not None and report.state == "ready":
                self.rollouts.now_serving(rung)
                action = self.policy.adopt(rung, readings, f"engine ready: {spec.name} "
                                           f"({spec.precision}) built on this device; "
                                           f"{report.detail}")
            if action is not None:
                self.act(action)
            else:
                self.publish_engine(None, self.engine_topic.last_reason, readings)

    def act(self, action: Action) -> None:
        """Carry out a lever's move between two frames (power_mode is already done), log it
        and say so on the retained engine topic."""
        fb = self.policy.cfg
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
                                     self.governor.last(time.monotonic()))

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

    def canary_step(self, canary: Canary) -> bool:
        """One canary image through an engine (spare time, or overdue); whether one ran."""
        ran, result = canary.step(time.monotonic(), self.engines.rungs, self.active)
        if result is not None:
            self.canary_result(result)
        return ran

    def canary_result(self, result: Result) -> None:
        if result.rung == self.active.rung:
            self.canary_last = result
            self.publisher.publish(topic_message(self.publisher.root, "canary",
                                                 result.payload(iso(time.time()))))
        readings = self.governor.last(time.monotonic())
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
        """The retained `<root>/engine` (`EngineTopic`) for what serves now."""
        self.engine_topic.say(self.active, self.levels(), reason, readings, from_rung,
                              action)
