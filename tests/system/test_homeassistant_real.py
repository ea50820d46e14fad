"""edgeswin against a real Home Assistant (tests/homeassistant.py): the MQTT integration set up
through its own config flow, a real daemon publishing discovery, and everything checked through
Home Assistant's REST and websocket APIs, its log and its recorder's database."""

from __future__ import annotations

import json
import random
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from edgeswin.demo import fixed_camera
from tests.harness import write_config
from tests.homeassistant import HomeAssistant

DEVICE = "hadev"
COVERED = (20.0, 40.0)  # seconds of the door camera's video
REGIONS = [{"name": "left", "box": [0, 0, 0.5, 1]}, {"name": "right", "box": [0.5, 0, 1, 1]}]


class JetsonSensors:
    """A Jetson's thermal zone and INA3221 power monitor as sysfs files whose readings jitter
    as real ones do (a tenth of a degree, tens of milliwatts) around a steady load."""

    def __init__(self, root: Path):
        self.thermal, self.hwmon = root / "thermal", root / "hwmon"
        zone, node = self.thermal / "thermal_zone0", self.hwmon / "hwmon0"
        zone.mkdir(parents=True)
        node.mkdir(parents=True)
        (zone / "type").write_text("tj-thermal\n")
        (node / "name").write_text("ina3221\n")
        (node / "in1_label").write_text("VDD_IN\n")
        (node / "in1_input").write_text("5000\n")
        self._temp, self._curr = zone / "temp", node / "curr1_input"
        self._stop = threading.Event()
        self._tick()
        threading.Thread(target=self._run, daemon=True).start()

    def _tick(self) -> None:
        self._temp.write_text(f"{55000 + random.randint(-400, 400)}\n")  # 54.6-55.4 C
        self._curr.write_text(f"{2400 + random.randint(-40, 40)}\n")  # 12 W +- 0.2 W

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._tick()

    def stop(self) -> None:
        self._stop.set()


def _by_unique_id(ha: HomeAssistant) -> dict[str, dict]:
    return {e["unique_id"]: e for e in ha.entities()}


def _state(ha: HomeAssistant, unique_id: str) -> dict | None:
    entry = _by_unique_id(ha).get(unique_id)
    return ha.states().get(entry["entity_id"]) if entry else None


def _complaints(log: str) -> list[str]:
    """Warnings and errors of Home Assistant's MQTT integration and of the templates our
    discovery configs hand it (a template error is logged by the template helper)."""
    return [line for line in log.splitlines()
            if re.search(r"(WARNING|ERROR) .*\[homeassistant\.(components\.mqtt|helpers\."
                         r"template)", line)]


@pytest.mark.mqtt
def test_a_real_home_assistant_sees_what_the_daemon_says(tmp_path, broker, subscriber,
                                                         daemon_factory, videos):
    ha = HomeAssistant(tmp_path, broker.port).start()
    jetson = JetsonSensors(tmp_path / "sys")
    try:
        door = fixed_camera.make(tmp_path / "door.mp4", 150, 5, {"covered": COVERED})
        cfg = write_config(tmp_path / "cfg", broker.port, {
            "door": {"source": str(door)},
            "lobby": {"source": str(videos["north"]), "fps": 2, "loop": True,
                      "regions": REGIONS}},
            {"device_id": DEVICE, "homeassistant": {"enabled": True},
             "fallback": {"thermal_root": str(jetson.thermal)},
             "power": {"hwmon_root": str(jetson.hwmon)},
             "stats_interval_s": 10})  # the default, for the load figures below
        daemon = daemon_factory(cfg)
        labels = {f"edgeswin_{DEVICE}_{u}" for u in
                  ("door_label", "lobby__left_label", "lobby__right_label")}
        device_wide = {f"edgeswin_{DEVICE}_{u}" for u in
                       ("engine_rung", "model_rollout", "temperature", "power", "online",
                        "canary")}
        wanted = labels | device_wide | {f"edgeswin_{DEVICE}_door_health"}
        assert subscriber.wait_for(lambda: wanted <= set(_by_unique_id(ha)), 60), \
            (sorted(_by_unique_id(ha)), ha.log()[-3000:])

        # Every entity on the device Home Assistant made for this daemon.
        entities = _by_unique_id(ha)
        devices = ha.devices()
        for uid in wanted:
            device = devices[entities[uid]["device_id"]]
            assert device["name"] == f"edgeswin {DEVICE}" and device["manufacturer"] == \
                "edgeswin", (uid, device)

        # The label sensors follow the retained state, with score and since as attributes.
        def follows(camera: str, uid: str) -> bool:
            retained = subscriber.json_on(f"edgeswin/{DEVICE}/{camera}/state")
            state = _state(ha, uid)
            return bool(retained) and state is not None and \
                state["state"] == retained[-1]["label"] and \
                state["attributes"].get("since") == retained[-1]["since"] and \
                isinstance(state["attributes"].get("score"), float)
        assert subscriber.wait_for(lambda: follows("door", f"edgeswin_{DEVICE}_door_label"), 30)
        assert subscriber.wait_for(
            lambda: follows("lobby/left", f"edgeswin_{DEVICE}_lobby__left_label"), 30)
        rung = _state(ha, f"edgeswin_{DEVICE}_engine_rung")
        assert rung["state"] == "0" and rung["attributes"]["engine"] == "primary", rung
        assert _state(ha, f"edgeswin_{DEVICE}_online")["state"] == "on"
        assert subscriber.wait_for(lambda: (_state(ha, f"edgeswin_{DEVICE}_temperature") or {})
                                   .get("state") in ("55.0", "54.6", "54.7", "54.8", "54.9",
                                                     "55.1", "55.2", "55.3", "55.4"), 30)
        assert _state(ha, f"edgeswin_{DEVICE}_power")["attributes"]["VDD_IN"] == \
            pytest.approx(12.0, abs=0.3)
        steady, steady_mono = time.time(), time.monotonic()

        # The covered lens: the problem sensor on, with the kind, and off once it cleared.
        health = f"edgeswin_{DEVICE}_door_health"
        assert subscriber.wait_for(lambda: (_state(ha, health) or {}).get("state") == "on", 60), \
            (_state(ha, health), daemon.log()[-2000:])
        assert _state(ha, health)["attributes"]["problems"] == ["covered"]
        assert subscriber.wait_for(lambda: _state(ha, health)["state"] == "off", 60)

        # A camera removed by a reload leaves the entity registry, not only goes unavailable.
        (cfg / "cameras" / "lobby.yaml").unlink()
        daemon.proc.send_signal(signal.SIGHUP)
        assert subscriber.wait_for(
            lambda: not {u for u in _by_unique_id(ha) if "lobby" in u}, 30), \
            sorted(_by_unique_id(ha))
        assert f"edgeswin_{DEVICE}_door_label" in _by_unique_id(ha)

        # What reached the recorder in steady running, per entity: the device's measurements
        # once each (they jitter, but never by a whole step), a label sensor once per label
        # change the daemon published.
        ran_s = time.time() - steady
        recorded = ha.recorded(steady)
        for measurement in ("temperature", "power", "power_mode"):
            assert recorded.get(f"sensor.edgeswin_{DEVICE}_{measurement}", 0) <= 1, recorded
        changes = sum(1 for (t, _, _), at in zip(subscriber.messages, subscriber.arrivals)
                      if t == f"edgeswin/{DEVICE}/lobby/left/state" and at >= steady_mono)
        assert recorded.get(f"sensor.edgeswin_{DEVICE}_lobby_left_label", 0) <= changes + 2, \
            (recorded, changes)

        # SIGTERM: the daemon says offline; every entity of it is unavailable.
        door_label = f"edgeswin_{DEVICE}_door_label"
        assert daemon.terminate()[0] == 0
        assert subscriber.wait_for(lambda: _state(ha, door_label)["state"] == "unavailable", 20)
        assert _state(ha, f"edgeswin_{DEVICE}_engine_rung")["state"] == "unavailable"
        # Back, then SIGKILL: the broker's last will says it.
        daemon = daemon_factory(cfg)
        assert subscriber.wait_for(lambda: _state(ha, door_label)["state"] != "unavailable", 60)
        daemon.proc.kill()
        assert subscriber.wait_for(lambda: _state(ha, door_label)["state"] == "unavailable", 30)
        assert _state(ha, f"edgeswin_{DEVICE}_online")["state"] in ("off", "unavailable")

        assert _complaints(ha.log()) == []
        per_hour = {e: round(n * 3600 / ran_s) for e, n in sorted(recorded.items())
                    if "edgeswin" in e}
        (tmp_path / "recorder-per-hour.json").write_text(json.dumps(
            {"home_assistant": ha.version, "steady_s": round(ran_s), "rows": recorded,
             "per_hour": per_hour}, indent=1))
        print(f"Home Assistant {ha.version}: state rows in {ran_s:.0f} s of steady running:",
              recorded, "per hour:", per_hour)
    finally:
        jetson.stop()
        ha.stop()
