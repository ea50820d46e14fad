"""Prometheus `/metrics` and `/healthz` on a local HTTP port (off unless `metrics.enabled`).

Hands on nothing to the pipeline: it reads the daemon's counters at scrape time (a custom
collector, so the hot path only feeds two histograms), and `/healthz` answers 200 only while
the inference loop keeps making progress (the same heartbeat as the systemd watchdog).
Names follow Prometheus conventions: `edgeswin_` prefix, base units, `_total` counters.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import EdgeswinError
from .readout import Readout

log = logging.getLogger(__name__)

# Inference and capture-to-publish on Jetson-class devices: 1 ms .. 2.5 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
           0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, view: Readout, address: str, port: int, stale_after_s: float,
                 no_frames_after_s: float = 60.0):
        try:
            from prometheus_client import CollectorRegistry, Histogram, generate_latest
            from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
            from prometheus_client.process_collector import ProcessCollector
        except ImportError:
            raise EdgeswinError("metrics.enabled needs prometheus-client: pip install "
                                "'edgeswin[metrics]'") from None
        self._view = view
        self._stale_after = stale_after_s
        self._no_frames_after = no_frames_after_s
        self.heartbeat = time.monotonic()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # RSS, fds, CPU: what a soak watches
        self.inference = Histogram("edgeswin_inference_seconds", "Engine time per frame.",
                                   ["rung", "engine"], buckets=BUCKETS, registry=self.registry)
        self.capture_to_publish = Histogram(
            "edgeswin_capture_to_publish_seconds", "From reading a frame to publishing it.",
            ["camera"], buckets=BUCKETS, registry=self.registry)
        self._families = (CounterMetricFamily, GaugeMetricFamily)
        self.registry.register(self)
        self._generate = generate_latest
        self._server = _server(self, address, port)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        log.info("metrics on http://%s:%d/metrics and /healthz", address, self.port)

    def beat(self, now: float) -> None:
        self.heartbeat = now

    def problems(self) -> list[str]:
        """Why the daemon is unhealthy, one reason a line; empty when healthy."""
        now = time.monotonic()
        if now - self.heartbeat >= self._stale_after:
            return ["stalled"]  # the inference loop itself makes no progress
        cameras = list(self._view.cameras())
        if not cameras:
            return []
        newest = max(c.capture.last_frame_mono for c in cameras)
        if now - newest < self._no_frames_after:
            return []
        return [f"no camera delivered a frame for {now - newest:.0f} s "
                f"(metrics.no_frames_after_s {self._no_frames_after:g})"] + [
            f"camera {c.name}: {c.capture.state}" for c in cameras]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def describe(self):
        return []  # collected at scrape time; nothing to describe up front

    def collect(self):
        # Long: one metric family after another, in the order /metrics lists them.
        counter, gauge = self._families
        d = self._view
        per_camera = {
            "edgeswin_frames_read_total": counter("edgeswin_frames_read", "Frames read from "
                                                  "the source.", labels=["camera"]),
            "edgeswin_classifications_total": counter("edgeswin_classifications", "Frames "
                                                      "classified.", labels=["camera"]),
            "edgeswin_published_total": counter("edgeswin_published", "Classifications "
                                                "published.", labels=["camera"]),
            "edgeswin_frames_skipped_total": counter("edgeswin_frames_skipped", "Frames read "
                                                     "but not classified (newer ones won).",
                                                     labels=["camera"]),
            "edgeswin_reconnects_total": counter("edgeswin_reconnects", "Source reconnects.",
                                                 labels=["camera"]),
            "edgeswin_camera_up": gauge("edgeswin_camera_up", "1 while frames arrive.",
                                        labels=["camera"]),
        }
        for cam in list(d.cameras()):
            cap, stats = cam.capture, cam.stats
            values = {"edgeswin_frames_read_total": cap.frames_read,
                      "edgeswin_classifications_total": stats.classified,
                      "edgeswin_published_total": stats.published,
                      "edgeswin_frames_skipped_total": cam.skipped,
                      "edgeswin_reconnects_total": cap.reconnects,
                      "edgeswin_camera_up": int(cap.state == "online")}
            for key, family in per_camera.items():
                family.add_metric([cam.name], values[key])
        yield from per_camera.values()
        per_region = {
            "edgeswin_region_classifications_total": counter(
                "edgeswin_region_classifications", "Classifications of a region of a camera "
                "with regions.", labels=["camera", "region"]),
            "edgeswin_region_published_total": counter(
                "edgeswin_region_published", "Classifications of a region published.",
                labels=["camera", "region"])}
        for cam in list(d.cameras()):
            for region in cam.regions if cam.entry.config.regions else ():
                per_region["edgeswin_region_classifications_total"].add_metric(
                    [cam.name, region.name], region.stats.classified)
                per_region["edgeswin_region_published_total"].add_metric(
                    [cam.name, region.name], region.stats.published)
        yield from per_region.values()
        problem = gauge("edgeswin_camera_problem", "1 while the camera's health lists this "
                        "problem (covered, frozen, blurred, moved, drift).",
                        labels=["camera", "kind"])
        for camera, kinds in sorted(d.health.problems().items()):
            for kind, raised in kinds.items():
                problem.add_metric([camera, kind], int(raised))
        yield problem
        canary = gauge("edgeswin_canary_ok", "1 when the serving engine's latest canary "
                       "answered every image right, 0 when one was wrong.",
                       labels=["engine", "rung"])
        last = d.canary_last()
        if last is not None:
            canary.add_metric([last.engine, str(last.rung)], int(last.ok))
        yield canary
        active = d.active()
        rung = gauge("edgeswin_engine_rung", "Active rung of the engine ladder (0 = primary).",
                     labels=["engine", "backend"])
        if active is not None:
            rung.add_metric([active.name, active.engine.backend], active.rung)
        yield rung
        usable = gauge("edgeswin_engine_rung_usable", "1 when the rung has an engine to "
                       "serve, 0 while its engine builds or its model cannot be opened (the "
                       "retained <root>/engine says why).", labels=["rung", "engine"])
        rungs = d.ladder.rungs
        for i, spec in enumerate(d.ladder.specs):
            usable.add_metric([str(i), spec.name], int(i < len(rungs) and rungs[i] is not None))
        yield usable
        yield counter("edgeswin_engine_switches", "Rung switches since start.",
                      value=d.switches())
        rollouts = counter("edgeswin_rollout_transitions", "Model rollouts entering each state "
                           "(building, shadow, promoted, rejected, rolled_back) since start.",
                           labels=["state"])
        for state, count in sorted(d.rollouts.events.items()):
            rollouts.add_metric([state], count)
        yield rollouts
        ro = d.rollouts.active
        agreement = ro.comparison.agreement if ro is not None and ro.comparison else None
        yield gauge("edgeswin_rollout_shadow_agreement", "Top-1 agreement of the candidate in "
                    "shadow with the serving model (NaN when none is compared).",
                    value=float("nan") if agreement is None else agreement)
        gov = d.governor
        levels = gauge("edgeswin_fallback_level", "Each fallback lever's level (0 = untouched; "
                       "rung: the rung).", labels=["lever"])
        for lever, level in d.levels().items():
            levels.add_metric([lever], level)
        yield levels
        actions = counter("edgeswin_fallback_actions", "Fallback lever moves since start.",
                          labels=["lever"])
        for lever, count in sorted(gov.actions.items()):
            actions.add_metric([lever], count)
        yield actions
        watts = gauge("edgeswin_power_watts", "Power rails (INA3221, INA238, NVML).",
                      labels=["rail"])
        for rail, value in dict(gov.watts).items():
            watts.add_metric([rail], value)
        yield watts
        energy = gov.last_energy_mj
        yield gauge("edgeswin_energy_per_classification_millijoules", "Module energy per "
                    "classification over the last stats interval (NaN when unknown).",
                    value=float("nan") if energy is None else energy)
        mode = gauge("edgeswin_power_mode", "The active nvpmodel mode (1 for the active one).",
                     labels=["id", "name"])
        if gov.mode is not None:
            mode.add_metric([str(gov.mode.id), gov.mode.name], 1)
        yield mode
        gpu = gov.power.gpu_state()
        for key, name, text in (("load_pct", "edgeswin_gpu_load_percent", "GPU load."),
                                ("freq_mhz", "edgeswin_gpu_frequency_mhz", "GPU clock.")):
            if key in gpu:
                yield gauge(name, text, value=gpu[key])
        temps = gauge("edgeswin_temperature_celsius", "Selected thermal zones.", labels=["zone"])
        for zone, celsius in dict(d.governor.temps).items():
            temps.add_metric([zone], celsius)
        yield temps
        pub = d.publisher
        yield gauge("edgeswin_mqtt_connected", "1 while connected to the broker.",
                    value=int(pub.connected.is_set()))
        yield counter("edgeswin_mqtt_messages_sent", "Messages handed to the broker.",
                      value=pub.sent)
        yield counter("edgeswin_mqtt_messages_dropped", "Messages dropped (QoS 0 while "
                      "disconnected, or the queue full).", value=pub.dropped)
        if pub.outbox is not None:
            yield gauge("edgeswin_outbox_depth", "Messages stored, waiting for the broker.",
                        value=pub.outbox.depth())
            yield counter("edgeswin_outbox_dropped", "Oldest messages dropped from a full "
                          "outbox.", value=pub.outbox.dropped)
            yield gauge("edgeswin_outbox_degraded", "1 while the outbox cannot be written.",
                        value=int(pub.outbox.degraded is not None))
        yield gauge("edgeswin_uptime_seconds", "Seconds since the daemon started.",
                    value=time.monotonic() - d.started_mono)

    def scrape(self) -> bytes:
        return self._generate(self.registry)


def _server(metrics: Metrics, address: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server name
            if self.path == "/metrics":
                self._reply(200, metrics.scrape(), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path == "/healthz":
                problems = metrics.problems()
                self._reply(503 if problems else 200,
                            ("".join(f"{p}\n" for p in problems) or "ok\n").encode(),
                            "text/plain")
            else:
                self._reply(404, b"try /metrics or /healthz\n", "text/plain")

        def _reply(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes every few seconds: keep them out of the log
            pass

    try:
        return ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:
        raise EdgeswinError(f"metrics: cannot listen on {address}:{port}: {exc.strerror}") from None
