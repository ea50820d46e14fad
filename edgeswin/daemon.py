"""The daemon: the only place the parts are wired together, its start and stop, and the loop.

camera (one capture thread each, newest frame only, `lineup`) -> classify (crop, preprocess,
engine, postprocess; `serving`) -> publish. One inference worker (this loop) owns the engine and
serves every (camera, region) earliest-deadline-first (`classify.schedule`), each at its
configured rate, so no camera or region starves another. Each classification's tail runs on
this loop or, when that is measured faster, on the finisher's thread while the next frame is
inferred; the loop waits for the finisher before it reads what the finisher records or changes
what it uses. The loop is a list of named steps (`_loop`), each with its own cadence.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from .canary.run import Canary
from .classify.finisher import HandOffPolicy
from .classify.schedule import CameraRuntime, fps_adjustable, next_job
from .classify.step import iso
from .config import Config, load_config
from .engine import open_engine
from .engine.ladder import ActiveEngine, EngineLadder
from .errors import ConfigError, EdgeswinError
from .fleet.agent import RESTART_EXIT, FleetAgent, observe
from .govern.governor import Governor
from .govern.sensors import LatencyWindows
from .health.board import HealthBoard
from .lineup import Lineup
from .process import hangup, heap
from .process.cadence import Every
from .process.control import ControlSocket, Request
from .process.deaths import thread_died
from .process.notify import Notifier
from .process.reload import plan_reload
from .publish.engine_topic import BUILD_PROGRESS_EVERY_S, EngineTopic
from .publish.hard_examples import HardExamples
from .publish.measured import Measured
from .publish.message import topic_message
from .publish.mqtt import Publisher
from .publish.readout import Readout
from .publish.recorder import Recorder
from .publish.report import discovery_messages, stats_payload, status_line
from .publish.snapshot import Snapshots
from .rollout.rollouts import ModelRollouts
from .rollout.store import ModelStore
from .serving import Parts, Serving

log = logging.getLogger(__name__)


class Daemon:
    """Runs until SIGTERM/SIGINT, `request_stop()`, or (files only) every source has ended."""

    def __init__(self, config: Config, opener: Callable[..., object] | None = None):
        """`opener(model, backend, threads, host_code_allowed)` makes an engine of a model
        file; the default is `engine.open_engine` (the bench passes a synthetic one)."""
        self.config = config
        dev = config.device
        self.root = dev.topic_root
        if dev.opencv_threads is not None:
            # Each camera resizes on its own capture thread, so OpenCV's pool only adds
            # hand-offs and worker threads that take CPU from the engine and the other
            # cameras (benchmarks/RESULTS.md, "What changed the figures").
            cv2.setNumThreads(dev.opencv_threads)
        heap.tune()  # two arenas, large blocks mapped: memory given back when freed (see heap)
        self.publisher = Publisher.for_device(dev)
        self._measured = Measured(self.root)  # what Home Assistant records of the stats
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self.stop_reason = ""
        self.failure = ""  # set when a worker thread died: run() then returns 1
        self.started_mono = time.monotonic()
        fb = config.device.fallback
        self.governor = Governor(dev)
        self.latency = LatencyWindows(fb.latency_window)
        self.notifier = Notifier()
        self.lineup = Lineup(dev, self.root, self.publisher, self._wake)
        self.engines = EngineLadder(dev.engines, Path(dev.state_dir), self.lineup.check_frames,
                                    self._wake, opener or open_engine)
        self.engine_topic = EngineTopic(self.root, self.engines, self.publisher)
        self.metrics = None  # Metrics when enabled: created in run()
        self._reload = threading.Event()
        self.snapshots = Snapshots(dev.snapshots, self.root, Path(dev.state_dir))
        self.hard = HardExamples.for_device(dev)
        self.rollouts = ModelRollouts(
            dev.rollout, ModelStore(Path(dev.state_dir)), self.engines,
            fb.latency_budget_ms, lambda payload: self.publisher.publish(
                topic_message(self.root, "rollout", payload)), self._wake)
        self.control = ControlSocket(dev.state_dir)
        self.health = HealthBoard(dev.health, self.root, iso, Path(dev.state_dir))
        self.canary = Canary(dev.canary, lambda: self.engines.specs, time.monotonic()) \
            if dev.canary.enabled else None
        self.fleet = FleetAgent(dev, self.root, config.directory, lambda p: self.publisher.publish(
            topic_message(self.root, "reported", p)), self.publisher.follow,
            self._notify) if dev.fleet.enabled else None
        self.recorder = Recorder(self.publisher, self.root, dev.mqtt.qos, self.latency,
                                 self.snapshots, self.hard, self.health)
        self.hand_off = HandOffPolicy()  # whether tails run on the finisher's thread
        self.serving: Serving | None = None  # made once an engine can serve (`_start`)
        self.readout = Readout(self.started_mono, lambda: self.lineup.cameras, lambda: self.serving,
                               self.hand_off, self.engines, self.rollouts, self.governor,
                               self.latency, self.health, self.publisher)
        self._ready = False  # READY=1 sent

    # --- wiring ------------------------------------------------------------------------
    # What serves and what it serves: the reports, metrics, the demo and the bench read them.
    @property
    def active(self) -> ActiveEngine | None:
        return self.readout.active()

    @property
    def cameras(self) -> list[CameraRuntime]:
        return self.lineup.cameras

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def request_stop(self, reason: str = "stop requested") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()
            self._notify()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _: self.request_stop(signal.Signals(signum).name))
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        if hangup.asked():  # one came while starting: the config may have changed since
            self.request_reload()

    def request_reload(self) -> None:
        """Re-read the config directory between two frames (SIGHUP, `systemctl reload`)."""
        self._reload.set()
        self._notify()

    # --- the loop ----------------------------------------------------------------------
    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        self.failure = thread_died(args, self.request_stop) or self.failure

    def run(self) -> int:
        """Run until stopped; 0 after a clean stop, 1 when a worker thread died or a camera
        never delivered a frame before every source ended, 75 to be restarted (a fleet
        bundle that changed settings a reload cannot apply)."""
        previous_hook = threading.excepthook
        threading.excepthook = self._thread_died
        try:
            return self._run()
        finally:
            threading.excepthook = previous_hook

    def _run(self) -> int:
        self._install_signals()
        try:
            if self._start():
                self._loop()
        except BaseException as exc:
            # Stopped all the same: cameras released, the last words and the outbox kept.
            self.stop_reason = self.stop_reason or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.notifier.stopping(f"stopping: {self.stop_reason}")
            self._shutdown()
        if self.failure:
            return 1
        if self.fleet and self.fleet.restart_reason:
            return RESTART_EXIT
        never = [c.name for c in self.cameras if c.capture.frames_read == 0]
        if never and self.stop_reason == "every source has ended":
            log.error("camera(s) %s ended without delivering a frame", ", ".join(never))
            return 1
        return 0

    def _start(self) -> bool:
        """Connected from the first second (`online`, each camera `offline` until read, a
        first boot's build progress), then the ladder loaded, the cameras made and every
        thread started; False when a stop came first (a first boot's build can take minutes:
        `systemctl stop` then is a clean stop)."""
        enabled = [e for e in self.config.cameras if e.config.enabled]
        if not enabled:
            raise EdgeswinError("no enabled camera")
        self.publisher.start()
        self.lineup.not_read_yet(enabled)
        self.engines.specs = self.rollouts.startup(self.engines.specs)
        self.engine_topic.load(self._stop, self.notifier, self.governor.last)
        if self._stop.is_set():
            return False
        dev = self.config.device
        fb = dev.fallback
        start = self.engines.start_rung(dev.engines, fb.pinned_rung, "dla" in fb.levers)
        rungs = self.engines.rungs
        active = rungs[start]
        cameras = self.lineup.start(enabled, active, rungs)
        policy = self.governor.start(
            time.monotonic(), start, {i for i, engine in enumerate(rungs) if engine},
            fb.fps_steps if fps_adjustable(cameras) else 0)
        self.serving = Serving(Parts(self.engines, self.rollouts, self.governor, self.latency,
                                     self.recorder, self.publisher, self.engine_topic,
                                     self.lineup), active, policy, self.hand_off)
        if self.config.device.metrics.enabled:
            from .publish.metrics import Metrics
            m = self.config.device.metrics
            self.metrics = Metrics(self.readout, m.address, m.port, m.stale_after_s,
                                   m.no_frames_after_s)
        if self.fleet:
            self.fleet.started()
        self.recorder.metrics = self.metrics
        self.rollouts.started(rungs)
        self.control.start()
        self._announce()
        reason = "start" if start == 0 else f"start on rung {start} (rungs above unusable or pinned)"
        self.serving.publish_engine(None, reason, self.governor.read(time.monotonic()))
        for cam in self.cameras:
            cam.capture.start()
        log.info("running %d camera(s) on engine %s (rung %d, %s)", len(self.cameras),
                 active.name, active.rung, active.engine.backend)
        now = time.monotonic()
        self._poll = Every(fb.poll_s, now)
        self._progress = Every(BUILD_PROGRESS_EVERY_S, now + BUILD_PROGRESS_EVERY_S)
        self._report = Every(self.config.device.stats_interval_s,
                             now + self.config.device.stats_interval_s)
        return True

    def _loop(self) -> None:
        """One pass per frame or wake-up, as named steps. A periodic step keeps its own
        cadence (`Every`): a new concern is one line here and one method of its own."""
        self.notifier.status(f"loaded {len(self.engines.rungs)} engine rung(s); waiting for "
                             f"cameras")
        while not self._stop.is_set():
            now = time.monotonic()
            self._keep_alive(now)
            self._apply_reload_when_asked()
            self.lineup.release_retired()
            self._adopt_builds_or_show_progress(now)
            if not self._classify_next(now):
                break  # every source has ended
            now = time.monotonic()
            if self.canary and self.canary.overdue(now):  # no spare time for an interval
                self.serving.canary_step(self.canary)
            for cam in self.cameras:
                cam.capture.check_stall(now)
            if self._poll.due(now):  # between two frames: a switch loses and repeats none
                self._govern(now)
                self._serve_requests()
                self._step_rollouts(now)
                self._poll.done(now)
            if self._report.due(now):
                self._publish_stats()
                self._report.done(now)

    # --- the loop's steps --------------------------------------------------------------
    def _keep_alive(self, now: float) -> None:
        """The watchdog and /healthz fed; READY once engines are warm and every camera has
        classified once or is found dead and retrying (a dead camera must not hold the
        service in "activating")."""
        self.notifier.watchdog(now)
        if self.metrics:
            self.metrics.beat(now)
        if not self._ready and all(c.stats.classified or c.capture.state in ("offline", "ended")
                                   for c in self.cameras):
            self._ready = True
            self.serving.drain()
            self.notifier.ready(self._status())

    def _apply_reload_when_asked(self) -> None:
        """SIGHUP, or a fleet's bundle (taken, then watched: `fleet.agent`)."""
        if self._reload.is_set():
            self._reload.clear()
            self._apply_reload()
        if self.fleet:
            self.fleet.step(time.monotonic(), self._apply_reload, lambda: observe(
                self.cameras, self.serving, self.health.problems()))
            if self.fleet.restart_reason:
                self.request_stop(self.fleet.restart_reason)

    def _adopt_builds_or_show_progress(self, now: float) -> None:
        if self.engines.arrived:
            self.serving.adopt_builds()
        elif self._progress.due(now) and self.engines.progressed():
            # A build's step on the retained engine topic, at most every few seconds.
            self.serving.publish_engine(None, self.engine_topic.last_reason,
                                        self.governor.last(now))
            self._progress.done(now)

    def _classify_next(self, now: float) -> bool:
        """The next due frame through the engine; with none due, a shadow comparison or a
        canary image in the spare time, or a wait for a frame, a wake-up or the next poll.
        False once every source has ended."""
        job, wait = next_job(self.cameras, now)
        if job is not None:
            self.serving.classify(*job)
            return True
        shadowed, replaced = self.rollouts.shadow_idle()
        self.serving.rungs_replaced(replaced)
        if shadowed or (self.canary and self.serving.canary_step(self.canary)):
            return True
        # Ended, and no last frame handed on since next_job looked (a file's last frame and
        # its end can both come in between).
        if all(c.capture.ended for c in self.cameras) and \
                next_job(self.cameras, time.monotonic())[0] is None:
            self.request_stop("every source has ended")
            return False
        with self._wake:
            self._wake.wait(min(wait, 0.5, max(self._poll.next - now, 0.0)))
        return True

    def _govern(self, now: float) -> None:
        self.serving.drain()  # the latency windows read here are complete
        action = self.governor.poll(
            now, self.latency.p95(("inference", self.active.rung)), self.serving.slow_cameras())
        if action:
            self.serving.act(action)

    def _serve_requests(self) -> None:
        for request in self.control.pending():
            self._on_request(request)

    def _step_rollouts(self, now: float) -> None:
        self.serving.rungs_replaced(self.rollouts.step(now))

    def _publish_stats(self) -> None:
        self.serving.drain()
        self.governor.refresh_mode()
        stats = self.stats()
        self.publisher.publish(topic_message(self.root, "stats", stats))
        if self.config.device.homeassistant.enabled and (m := self._measured.after(stats)):
            self.publisher.publish(m)
        if self._ready:
            self.notifier.status(self._status())

    def _on_request(self, request: Request) -> None:
        """A command from the control socket (`edgeswin rollback`, `edgeswin relearn`),
        between two frames (the finisher drained: nothing is being judged)."""
        if request.command == "rollback":
            self.serving.rungs_replaced(self.rollouts.rollback_by_hand(request))
        elif request.command == "relearn":
            self.serving.drain()
            self.health.relearn_asked(request, {c.name for c in self.cameras})
        else:
            request.reply(False, f"unknown command {request.command!r}")

    # --- reload ------------------------------------------------------------------------
    def _apply_reload(self) -> list[str] | None:
        """Apply camera additions, removals and changes; leave untouched cameras running. An
        invalid directory changes nothing (None). Device settings apply at the next restart:
        the list of those that changed."""
        self.notifier.reloading()
        self.serving.drain()  # carried counters and retired cameras: nothing of theirs in flight
        directory = self.config.directory
        try:
            new = load_config(directory)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload rejected: %s", issue)
            self.notifier.ready(f"reload rejected ({len(exc.issues)} config error(s), see the "
                                f"log); still running the previous config; {self._status()}")
            return None
        plan = plan_reload(self.cameras, self.config, new)
        if plan.restart:
            log.warning("reload: %s: %s changed; applied at the next restart (cameras, rollout "
                        "settings and engines' model files apply now)",
                        directory / "edgeswin.yaml", ", ".join(plan.restart))
        self.rollouts.reloaded(new.device.rollout, new.device.engines, plan.model_rungs)
        cameras = self.lineup.change(plan, self.active, self.engines.rungs,
                                     self.serving.policy.level["fps"])
        self.health.forget(set(plan.removed))
        self.config = Config(self.config.device, new.cameras, directory, new.overlay)
        self.serving.policy.set_limit("fps", self.config.device.fallback.fps_steps
                              if fps_adjustable(cameras) else 0)
        self._announce()
        self.lineup.clear_removed(plan)
        self.notifier.ready(self._status())
        return plan.restart

    # --- reporting and shutdown ----------------------------------------------------------
    def stats(self) -> dict:
        return stats_payload(self.readout)

    def _announce(self) -> None:
        for message in discovery_messages(self.config.device, self.root, self.cameras):
            self.publisher.publish(message)

    def _status(self) -> str:
        return status_line(self.cameras, self.active)

    def _shutdown(self) -> None:
        log.info("stopping: %s", self.stop_reason)
        for cam in self.cameras:
            cam.capture.stop()
        if self.serving is not None:  # what was inferred is published before the last word
            for done, exc in self.serving.finisher.close():
                log.error("camera %s frame %d was inferred but not published", done.cam.name,
                          done.frame.index, exc_info=exc, extra={"CAMERA": done.cam.name})
        self.engines.stop_builds()
        self.engine_topic.builds_stopped(self.active, self.readout.levels(),
                                         self.governor.last(time.monotonic()))
        final = [topic_message(self.root, "availability", b"offline", camera=c.name)
                 for c in self.cameras]
        self.publisher.stop(final)
        if self.metrics:
            self.metrics.close()
        for capture in [c.capture for c in self.cameras] + self.lineup.retired:
            capture.join(timeout=1.0)
        self.control.close()
        self.governor.close(time.monotonic())
        self.rollouts.close()
        self.engines.close()  # GPU memory back before the interpreter tears objects down
