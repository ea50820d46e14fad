"""The shipped alerting, run for real: Debian's Prometheus scrapes two running daemons with
deploy/prometheus/prometheus.yml and evaluates edgeswin-alerts.yml; Debian's Alertmanager, with
deploy/prometheus/alertmanager.yml, delivers to a webhook here. A covered lens is notified
(`EdgeswinCameraProblem`) and later resolved; a daemon killed with SIGKILL is notified
(`EdgeswinDeviceDown`). The times from each event to its notification are printed (-s) and
kept in the test's folder as alert-times.json."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from edgeswin.demo import fixed_camera
from tests.harness import REPO, TIME_SCALE, wait_port, write_config
from tests.streams import free_port

SHIPPED = REPO / "deploy" / "prometheus"
COVERED = (10.0, 110.0)  # seconds of the door camera's video
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary


class Webhook:
    """Alertmanager's webhook receiver: every notification with the time it arrived."""

    def __init__(self):
        self.received: list[tuple[float, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/edgeswin"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first(self, alertname: str, status: str, **labels) -> float | None:
        for at, note in list(self.received):
            for alert in note["alerts"]:
                if alert["labels"].get("alertname") == alertname and alert["status"] == status \
                        and all(alert["labels"].get(k) == v for k, v in labels.items()):
                    return at
        return None


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _targets_up(port: int) -> int:
    """Targets Prometheus scraped up; 0 while it is still starting (it answers 503 then)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
    except OSError:  # urllib's HTTPError and URLError are OSErrors
        return 0
    return sum(t["health"] == "up" for t in targets)


@pytest.mark.mqtt
def test_a_covered_lens_and_a_killed_device_reach_the_operator(tmp_path, broker, subscriber,
                                                               daemon_factory, videos):
    for tool in ("prometheus", ALERTMANAGER):
        assert shutil.which(tool), f"{tool} is missing: make test installs it (Debian)"
    hook = Webhook()
    door_metrics, gone_metrics, prom_port, am_port = (free_port() for _ in range(4))
    door_video = fixed_camera.make(tmp_path / "door.mp4", 210, 5, {"covered": COVERED})
    door = write_config(tmp_path / "door", broker.port, {"door": {"source": str(door_video)}},
                        {"device_id": "door-dev", "metrics": {"enabled": True,
                                                              "port": door_metrics}})
    gone = write_config(tmp_path / "gone", broker.port, {
        "yard": {"source": str(videos["north"]), "fps": 2, "loop": True}},
        {"device_id": "gone-dev", "metrics": {"enabled": True, "port": gone_metrics}})

    prom = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    prom["rule_files"] = [str(SHIPPED / "edgeswin-alerts.yml")]
    prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    prom["scrape_configs"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{door_metrics}", f"127.0.0.1:{gone_metrics}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom))
    am = yaml.safe_load((SHIPPED / "alertmanager.yml").read_text())
    am["receivers"][0]["webhook_configs"][0]["url"] = hook.url
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am))

    procs = [
        _start([ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
               tmp_path / "alertmanager.log"),
        _start(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path / "prometheus.log")]
    try:
        wait_port(am_port, 30)
        wait_port(prom_port, 30)
        started = time.monotonic()
        door_daemon, gone_daemon = daemon_factory(door), daemon_factory(gone)
        assert subscriber.wait_for(lambda: _targets_up(prom_port) == 2, 60), \
            (tmp_path / "prometheus.log").read_text()[-2000:]
        gone_daemon.proc.kill()  # SIGKILL: no last words but the broker's will
        killed = time.monotonic()

        def covered() -> list[float]:
            return [at for (t, p, _), at in zip(subscriber.messages, subscriber.arrivals)
                    if t == "edgeswin/door-dev/door/health" and b'"covered"' in p]
        assert subscriber.wait_for(lambda: covered(), 60), door_daemon.log()[-3000:]
        raised = covered()[0]
        budget = 200 * TIME_SCALE
        problem = dict(alertname="EdgeswinCameraProblem", camera="door", kind="covered")
        down = dict(alertname="EdgeswinDeviceDown", instance=f"127.0.0.1:{gone_metrics}")
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline and not (
                hook.first(status="resolved", **problem) and hook.first(status="firing", **down)):
            time.sleep(1)
        fired, resolved = hook.first(status="firing", **problem), \
            hook.first(status="resolved", **problem)
        notified_down = hook.first(status="firing", **down)
        log = (tmp_path / "prometheus.log").read_text()[-1500:]
        assert fired and notified_down and resolved, (hook.received, log)
        cleared = next(at for (t, p, _), at in zip(subscriber.messages, subscriber.arrivals)
                       if t == "edgeswin/door-dev/door/health" and at > raised and
                       json.loads(p)["ok"])
        assert not hook.first("EdgeswinDeviceDown", "firing",
                              instance=f"127.0.0.1:{door_metrics}"), "the door device runs"
        times = {"covered_raised_to_notified_s": round(fired - raised, 1),
                 "covered_cleared_to_resolved_s": round(resolved - cleared, 1),
                 "killed_to_notified_s": round(notified_down - killed, 1),
                 "daemons_started_to_killed_s": round(killed - started, 1)}
        (tmp_path / "alert-times.json").write_text(json.dumps(times, indent=1))
        print("alert times:", times)
        # The shipped holds (1 min and 2 min) plus a scrape, an evaluation and Alertmanager's
        # 10 s group_wait; resolved within one evaluation and a 30 s group_interval.
        assert 60 <= times["covered_raised_to_notified_s"] <= 60 + 60 * TIME_SCALE, times
        assert 120 <= times["killed_to_notified_s"] <= 120 + 60 * TIME_SCALE, times
        assert times["covered_cleared_to_resolved_s"] <= 30 + 45 * TIME_SCALE, times
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
