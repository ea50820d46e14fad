"""The daemon loop and the only place the stages are wired together.

camera (one capture thread each, newest frame only) -> classify (crop, preprocess, engine,
postprocess) -> publish. One inference worker (this loop) owns the engine and serves every
(camera, region) earliest-deadline-first (`schedule`), each at its configured rate, so no
camera or region starves another. Each classification's tail (postprocessing, publishing,
records) runs on this loop or, when that is measured faster, on the finisher's thread while
the next frame is inferred (`finisher`); the loop waits for the finisher before it reads what
the finisher records or changes what it uses.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .capture.camera import Capture
from .capture.gst_pipeline import decode_width
from .classify.finisher import Finisher, HandOffPolicy
from .classify.schedule import CameraRuntime, fps_adjustable, next_job, region_runtimes, set_fps_level
from .classify.stats import CameraStats
from .classify.step import Inferred, finish, infer, iso
from .config import CameraEntry, Config, dla_twins, load_config
from .engine import open_engine
from .engine.ladder import ActiveEngine, EngineLadder
from .errors import ConfigError, EdgeswinError
from .govern.fallback import Action, FallbackPolicy, Readings
from .govern.governor import Governor
from .govern.sensors import LatencyWindows
from .publish.hard_examples import HardExamples
from .publish.mqtt import Message, Publisher, json_message
from .publish.outbox import Outbox
from .publish.report import discovery_messages, stats_payload, status_line
from .publish.snapshot import ImageStore, Snapshots
from .rollout.rollouts import ModelRollouts
from .rollout.store import ModelStore
from .scenes import random_scene
from .service import heap
from .service.control import ControlSocket, Request
from .service.notify import Notifier
from .service.reload import carry_counters, plan_reload

log = logging.getLogger(__name__)

BUILD_PROGRESS_EVERY_S = 5.0  # a running build's step republished on <root>/engine at most this often


class Every:
    """A loop step's cadence: due from `first` on, then once per `period_s` after each run."""

    def __init__(self, period_s: float, first: float):
        self.period_s = period_s
        self.next = first

    def due(self, now: float) -> bool:
        return now >= self.next

    def done(self, now: float) -> None:
        self.next = now + self.period_s


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
        heap.map_large_blocks()  # frames and decoders given back when freed (see heap)
        outbox = Outbox(Path(dev.state_dir) / "outbox.sqlite3",
                        int(dev.mqtt.outbox_max_mb * 1e6)) if dev.mqtt.outbox_max_mb else None
        self.publisher = Publisher(dev.mqtt, self.root,
                                   dev.mqtt.client_id or f"edgeswin-{dev.device_id}", outbox)
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self.stop_reason = ""
        self.failure = ""  # set when a worker thread died: run() then returns 1
        self.started_mono = time.monotonic()
        self.active: ActiveEngine | None = None
        fb = config.device.fallback
        self.governor = Governor(dev)
        self.policy: FallbackPolicy | None = None  # set in run(), once the ladder is loaded
        self.latency = LatencyWindows(fb.latency_window)
        self.cameras: list[CameraRuntime] = []
        self._retired: list[Capture] = []  # stopped by a reload, until their threads end
        self.notifier = Notifier()
        self.engines = EngineLadder(dev.engines, Path(dev.state_dir), self._check_frames,
                                    self._wake, opener or open_engine)
        self._last_reason = "start"
        self.switches = 0
        self.metrics = None  # Metrics when enabled: created in run()
        self._reload = threading.Event()
        # Called with every classification payload (published or not), e.g. by the demo.
        self.listeners: list[Callable[[dict], None]] = []
        self.snapshots = Snapshots(dev.snapshots, self.root, Path(dev.state_dir))
        self.hard = HardExamples(dev.hard_examples, ImageStore(
            Path(dev.state_dir) / "hard", dev.hard_examples.keep_files,
            int(dev.hard_examples.keep_mb * 1e6)))
        self.rollouts = ModelRollouts(
            dev.rollout, ModelStore(Path(dev.state_dir)), self.engines,
            fb.latency_budget_ms, lambda payload: self.publisher.publish(
                json_message(f"{self.root}/rollout", payload, 1, True)), self._wake)
        self.control = ControlSocket(dev.state_dir)
        self.finisher: Finisher[Inferred] | None = None  # started in run()
        self.hand_off = HandOffPolicy()
        self._ready = False  # READY=1 sent

    # --- wiring ------------------------------------------------------------------------
    @property
    def ladder(self) -> list[ActiveEngine | None]:
        return self.engines.rungs

    @property
    def temps(self) -> dict[str, float]:
        return self.governor.temps  # the last sensor poll

    def _check_frames(self, wanted: int = 8) -> list:
        """The newest camera frames, topped up with rendered scenes, to compare engines on."""
        frames = [f.image for c in self.cameras if (f := c.capture.latest()) is not None]
        rng = np.random.default_rng(0)
        while len(frames) < wanted:
            frames.append(random_scene(rng, 640, 360)[0])
        return frames[:wanted]

    def _adopt_builds(self) -> None:
        """Between frames: finished builds join the ladder; step up to one at once when the
        device allows it (not pinned, not hot)."""
        for rung, spec, report in self.engines.adopt():
            readings = Readings(time.monotonic(), self.temps)  # the last sensor poll
            action = None
            if self.ladder[rung] is not None and report.state == "ready":
                self.rollouts.now_serving(rung)
                action = self.policy.adopt(rung, readings, f"engine ready: {spec.name} "
                                           f"({spec.precision}) built on this device; "
                                           f"{report.detail}")
            if action is not None:
                self._act(action)
            elif self.active is not None:
                self._publish_engine(None, self._last_reason, readings)

    def _make_camera(self, entry: CameraEntry, labels: tuple[str, ...]) -> CameraRuntime:
        capture = Capture(entry.config, entry.source, self._notify, self._on_availability)
        specs = [e.engine.info.input for e in self.ladder if e is not None]
        if specs:  # a GStreamer-decoded camera is scaled to what the largest input needs
            spec = max(specs, key=lambda s: s.width * s.height)
            snapshots = self.config.device.snapshots
            capture.decode_width = decode_width(
                spec.width, spec.height, [r.box for r in entry.config.regions or []],
                snapshots.max_width if snapshots.enabled else 0)
        stats = CameraStats()
        cam = CameraRuntime(entry, capture, region_runtimes(entry.config, labels, stats), stats)
        fps_level = self.policy.level["fps"] if self.policy else 0
        set_fps_level([cam], fps_level, self.config.device.fallback.fps_steps)
        if cam.regions[0].fps == 0 and not entry.config.regions and self.active is not None:
            # Every frame is classified: prepare it on the capture thread, overlapping the
            # engine (regions are cropped on the loop's thread).
            capture.prepare = self.active.preprocess
        return cam

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def _on_availability(self, camera: str, state: str, reason: str) -> None:
        log.info("camera %s: %s (%s)", camera, state, reason, extra={"CAMERA": camera})
        online = "online" if state == "online" else "offline"
        self.publisher.publish(Message(f"{self.root}/{camera}/availability", online.encode(),
                                       1, True))
        self._notify()

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

    def request_reload(self) -> None:
        """Re-read the config directory between two frames (SIGHUP, `systemctl reload`)."""
        self._reload.set()
        self._notify()

    # --- the loop ----------------------------------------------------------------------
    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        """A worker thread ended on an exception: say so and stop with a failure, so the
        service manager restarts the daemon instead of it running on, deaf or blind."""
        if issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread else "a thread"
        log.critical("thread %s died: %s: %s; stopping (exit 1) so the service restarts",
                     name, args.exc_type.__name__, args.exc_value,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        self.failure = f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}"
        self.request_stop(self.failure)

    def run(self) -> int:
        """Run until stopped; 0 after a clean stop, 1 when a worker thread died or a camera
        never delivered a frame before every source ended."""
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
        never = [c.name for c in self.cameras if c.capture.frames_read == 0]
        if never and self.stop_reason == "every source has ended":
            log.error("camera(s) %s ended without delivering a frame", ", ".join(never))
            return 1
        return 0

    def _start(self) -> bool:
        """Load the ladder, make the cameras and start every thread; False when a stop came
        first (a first boot's build can take minutes: `systemctl stop` then is a clean stop)."""
        self.engines.specs = self.rollouts.startup(self.engines.specs)
        self.engines.load(self._stop)
        if self._stop.is_set():
            return False
        fb = self.config.device.fallback
        wanted = fb.pinned_rung if fb.pinned_rung is not None else 0
        usable = [i for i, engine in enumerate(self.ladder) if engine]
        # With the dla lever, a rung's DLA build serves only through that lever, never at start.
        builds = set(dla_twins(self.config.device.engines).values()) \
            if "dla" in fb.levers else set()
        mains = [i for i in usable if i not in builds] or usable
        start = next((i for i in mains if i >= wanted), mains[0])
        self.active = active = self.ladder[start]
        self.cameras = [self._make_camera(e, active.engine.info.labels)
                        for e in self.config.cameras if e.config.enabled]
        if not self.cameras:
            raise EdgeswinError("no enabled camera")
        self.policy = self.governor.start(
            time.monotonic(), start, set(usable),
            fb.fps_steps if fps_adjustable(self.cameras) else 0)
        if self.config.device.metrics.enabled:
            from .publish.metrics import Metrics
            m = self.config.device.metrics
            self.metrics = Metrics(self, m.address, m.port, m.stale_after_s,
                                   m.no_frames_after_s)
        self.publisher.start()
        self.finisher = Finisher(self._finish)
        self.rollouts.started(self.ladder)
        self.control.start()
        self._announce()
        reason = "start" if start == 0 else f"start on rung {start} (rungs above unusable or pinned)"
        self._publish_engine(None, reason, self.governor.read(time.monotonic()))
        for cam in self.cameras:
            cam.capture.start()
        log.info("running %d camera(s) on engine %s (rung %d, %s)", len(self.cameras),
                 active.name, active.rung, active.engine.backend)
        now = time.monotonic()
        self._poll = Every(fb.poll_s, now)
        self._progress = Every(BUILD_PROGRESS_EVERY_S, now)
        self._report = Every(self.config.device.stats_interval_s,
                             now + self.config.device.stats_interval_s)
        return True

    def _loop(self) -> None:
        """One pass per frame or wake-up, as named steps. A periodic step keeps its own
        cadence (`Every`): a new concern is one line here and one method of its own."""
        self.notifier.status(f"loaded {len(self.ladder)} engine rung(s); waiting for cameras")
        while not self._stop.is_set():
            now = time.monotonic()
            self._keep_alive(now)
            self._apply_reload_when_asked()
            self._release_retired()
            self._adopt_builds_or_show_progress(now)
            if not self._classify_next(now):
                break  # every source has ended
            now = time.monotonic()
            self._check_stalls(now)
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
            self._drain()
            self.notifier.ready(self._status())

    def _apply_reload_when_asked(self) -> None:
        if self._reload.is_set():
            self._reload.clear()
            self._apply_reload()

    def _release_retired(self) -> None:
        """Let go of retired captures once their threads are done."""
        if self._retired:
            still = [c for c in self._retired if not c.finished]
            if len(still) < len(self._retired):
                self._retired = still
                heap.trim()  # what their decoders and frames held, back to the system

    def _adopt_builds_or_show_progress(self, now: float) -> None:
        if self.engines.arrived:
            self._adopt_builds()
        elif self._progress.due(now) and self.engines.progressed():
            # A build's step on the retained engine topic, at most every few seconds.
            self._publish_engine(None, self._last_reason, Readings(now, self.temps))
            self._progress.done(now)

    def _classify_next(self, now: float) -> bool:
        """The next due frame through the engine; with none due, a shadow comparison in the
        spare time, or a wait for a frame, a wake-up or the next poll. False once every
        source has ended."""
        job, wait = next_job(self.cameras, now)
        if job is not None:
            self._classify_or_roll_back(*job)
            return True
        shadowed, replaced = self.rollouts.shadow_idle()
        self._rungs_replaced(replaced)
        if shadowed:
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

    def _check_stalls(self, now: float) -> None:
        for cam in self.cameras:
            cam.capture.check_stall(now)

    def _govern(self, now: float) -> None:
        self._drain()  # the latency windows read here are complete
        action = self.governor.poll(
            now, self.latency.p95(("inference", self.active.rung)), self._slow_cameras())
        if action:
            self._act(action)

    def _serve_requests(self) -> None:
        for request in self.control.pending():
            self._on_request(request)

    def _step_rollouts(self, now: float) -> None:
        self._rungs_replaced(self.rollouts.step(now))

    def _publish_stats(self) -> None:
        self._drain()
        self.governor.refresh_mode()
        self.publisher.publish(json_message(f"{self.root}/stats", self.stats()))
        if self._ready:
            self.notifier.status(self._status())

    def _act(self, action: Action) -> None:
        """Carry out a lever's move between two frames (power_mode is already done), log it
        and say so on the retained engine topic."""
        fb = self.config.device.fallback
        previous = self.active
        if action.lever in ("rung", "dla"):
            target = self.policy.serving
            self.switches += 1
            self._serve(self.ladder[target])
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
        self._publish_engine(previous.rung if action.lever in ("rung", "dla") else None,
                             action.reason, action.readings, action)

    def _serve(self, new: ActiveEngine) -> ActiveEngine | None:
        """Point every camera at another engine between two frames; the one before."""
        self._drain()  # what was inferred before is postprocessed with its own labels
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

    def _rungs_replaced(self, rungs: list[int]) -> None:
        """A rollout put another model on these rungs (promotion or rollback)."""
        if rungs:
            self._drain()  # the windows cleared here are the finisher's to fill
        for rung in rungs:
            # The rung's latency window now judges the new model only.
            self.latency.clear(lambda key, r=rung: key[0] != "camera" and key[1] == r)
            new = self.ladder[rung]
            if new is not None and self.active is not None and self.active.rung == rung:
                self._serve(new)
                self._publish_engine(None, f"model rollout on rung {rung}: {new.engine.info.name}",
                                     Readings(time.monotonic(), self.temps))

    def _classify_or_roll_back(self, cam: CameraRuntime, region, frame) -> None:
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
                self._finish(done)
            except Exception as exc:
                self._engine_failed(active.rung, exc, cam.name, frame.index)
                return
        try:
            replaced = self.rollouts.offer(done.image)
        except Exception as exc:
            self._engine_failed(active.rung, exc, cam.name, frame.index)
            return
        self._rungs_replaced(replaced)

    def _drain(self) -> None:
        """Everything handed to the finisher is published and recorded: before reading what
        it records (latency, stats) or changing what it uses (postprocessing, cameras)."""
        self._handle(self.finisher.drain())

    def _handle(self, failed: list[tuple[Inferred, BaseException]]) -> None:
        for done, exc in failed:
            self._engine_failed(done.active.rung, exc, done.cam.name, done.frame.index)

    def _engine_failed(self, rung: int, exc: BaseException, camera: str, index: int) -> None:
        replaced = self.rollouts.engine_failed(rung, exc)
        if not replaced:
            raise exc
        log.error("engine rung %d failed on camera %s frame %d", rung, camera, index,
                  exc_info=exc, extra={"CAMERA": camera})
        self._rungs_replaced(replaced)

    def _on_request(self, request: Request) -> None:
        """A command from the control socket (`edgeswin rollback`), between two frames."""
        if request.command == "rollback":
            self._rungs_replaced(self.rollouts.rollback_by_hand(request))
        else:
            request.reply(False, f"unknown command {request.command!r}")

    def _slow_cameras(self) -> dict[str, tuple[float, float]]:
        slow = {}
        for cam in self.cameras:
            budget = cam.entry.config.latency_budget_ms
            p95 = self.latency.p95(("camera", cam.name)) if budget is not None else None
            if p95 is not None and p95 > budget:
                slow[cam.name] = (p95, budget)
        return slow

    def _publish_engine(self, from_rung: int | None, reason: str, readings: Readings,
                        action: Action | None = None) -> None:
        active = self.active
        if active is None:
            return
        self._last_reason = reason
        payload = {
            "rung": active.rung, "from": from_rung, "name": active.name,
            "model": active.engine.info.name, "backend": active.engine.backend,
            "precision": active.engine.info.precision, "reason": reason,
            "lever": {"name": action.lever, "from": action.frm, "to": action.to}
            if action else None,
            "levels": self.policy.levels() if self.policy else {},
            "readings": readings.as_dict(), "ts": iso(time.time())}
        if self.engines.builds:
            payload["builds"] = {name: r.as_dict() for name, r in self.engines.builds.items()}
        self.publisher.publish(json_message(f"{self.root}/engine", payload, 1, True))

    def _finish(self, done: Inferred) -> None:
        """Postprocess, publish and record one classification (the finisher's thread, or the
        loop's when nothing was handed off)."""
        active, cam, region, frame = done.active, done.cam, done.region, done.frame
        out = finish(done, self.root)
        qos = self.config.device.mqtt.qos
        if out.publish:
            self.publisher.publish(json_message(f"{out.topic}/classification", out.payload, qos))
        for listener in self.listeners:
            listener(out.payload)
        if out.state is not None:
            self.publisher.publish(json_message(f"{out.topic}/state", out.state, qos, True))
        label, score = out.payload["label"], out.payload["score"]
        self.latency.add(("inference", active.rung), out.infer_ms)
        self.latency.add(("capture_to_publish", active.rung), out.total_ms)
        self.latency.add(("camera", cam.name), out.total_ms)
        cam.stats.record(label, score, out.infer_ms, out.total_ms, out.publish)
        if region.stats is not cam.stats:
            region.stats.record(label, score, out.infer_ms, out.total_ms, out.publish)
        for message in self.snapshots.after(cam, region, frame, out.state is not None):
            self.publisher.publish(message)
        self.hard.after(cam, region, frame, out.payload)
        if self.metrics:
            self.metrics.inference.labels(str(active.rung), active.name).observe(
                out.infer_ms / 1000)
            self.metrics.capture_to_publish.labels(cam.name).observe(out.total_ms / 1000)

    # --- reload ------------------------------------------------------------------------
    def _apply_reload(self) -> None:
        """Apply camera additions, removals and changes; leave untouched cameras running. An
        invalid directory changes nothing. Device settings apply at the next restart."""
        self.notifier.reloading()
        self._drain()  # carried counters and retired cameras: nothing of theirs in flight
        directory = self.config.directory
        try:
            new = load_config(directory)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload rejected: %s", issue)
            self.notifier.ready(f"reload rejected ({len(exc.issues)} config error(s), see the "
                                f"log); still running the previous config; {self._status()}")
            return
        plan = plan_reload(self.cameras, self.config, new)
        if plan.restart:
            log.warning("reload: %s: %s changed; applied at the next restart (cameras, rollout "
                        "settings and engines' model files apply now)",
                        directory / "edgeswin.yaml", ", ".join(plan.restart))
        self.rollouts.reloaded(new.device.rollout, new.device.engines, plan.model_rungs)
        for cam in plan.stop:
            cam.capture.retire()  # joined later: a slow stream must not stall the loop
            self._retired.append(cam.capture)
        for name in plan.removed:
            log.info("reload: camera %s removed", name)
            self.publisher.publish(Message(f"{self.root}/{name}/availability", b"offline", 1,
                                           True))
        cameras = plan.keep
        for entry, before in plan.start:
            cam = self._make_camera(entry, self.active.engine.info.labels)
            if before is not None:
                carry_counters(before, cam)
            log.info("reload: camera %s %s", entry.config.name,
                     "changed" if before is not None else "added")
            cam.capture.start()
            cameras.append(cam)
        self.cameras = cameras
        self.config = Config(self.config.device, new.cameras, directory)
        self.policy.set_limit("fps", self.config.device.fallback.fps_steps
                              if fps_adjustable(cameras) else 0)
        self._announce()
        self.notifier.ready(self._status())

    # --- reporting and shutdown ----------------------------------------------------------
    def stats(self) -> dict:
        return stats_payload(self)

    def _announce(self) -> None:
        for message in discovery_messages(self.config.device, self.root, self.cameras):
            self.publisher.publish(message)

    def _status(self) -> str:
        return status_line(self.cameras, self.active)

    def _shutdown(self) -> None:
        log.info("stopping: %s", self.stop_reason)
        for cam in self.cameras:
            cam.capture.stop()
        if self.finisher is not None:  # what was inferred is published before the last word
            for done, exc in self.finisher.close():
                log.error("camera %s frame %d was inferred but not published", done.cam.name,
                          done.frame.index, exc_info=exc, extra={"CAMERA": done.cam.name})
        # Builds stop at their next step, and the retained engine message says so: a
        # subscriber must not read "building" from a daemon that has stopped.
        self.engines.stop_builds()
        if self.engines.builds:
            self._publish_engine(None, self._last_reason, Readings(time.monotonic(), self.temps))
        final = [Message(f"{self.root}/{c.name}/availability", b"offline", 1, True)
                 for c in self.cameras]
        self.publisher.stop(final)
        if self.metrics:
            self.metrics.close()
        for capture in [c.capture for c in self.cameras] + self._retired:
            capture.join(timeout=1.0)
        self.control.close()
        self.governor.close(time.monotonic())
        self.rollouts.close()
        self.engines.close()  # GPU memory back before the interpreter tears objects down
