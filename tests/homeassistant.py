"""A real Home Assistant for the tests: core from the venv `make homeassistant` makes
(`.venv-ha`, or EDGESWIN_HA_VENV), started with --skip-pip on a free port with a config of its
own, a user made with its `auth` script, a long-lived access token made through its login flow
and websocket API, and its MQTT integration set up through its own config flow over the REST
API, against the test's broker.

Hands on what Home Assistant itself says: states (REST), the entity and device registries
(websocket), its log, and what its recorder wrote (its SQLite database).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import websocket

from .harness import REPO, TIME_SCALE
from .streams import free_port

VENV = Path(os.environ.get("EDGESWIN_HA_VENV", REPO / ".venv-ha"))
USER, PASSWORD = "edgeswin-test", "not-a-secret-anywhere-else"


def version() -> str:
    hass = VENV / "bin" / "hass"
    if not hass.exists():
        raise RuntimeError(f"{hass}: missing; `make homeassistant` (part of make test) makes it")
    return subprocess.run([str(hass), "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()


class HomeAssistant:
    def __init__(self, workdir: Path, broker_port: int):
        self.dir, self.broker_port = workdir / "ha-config", broker_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.proc: subprocess.Popen | None = None
        self._ws_id = 0

    # -- start and stop ---------------------------------------------------------------------
    def start(self) -> HomeAssistant:
        self.version = version()
        self.dir.mkdir(parents=True, exist_ok=True)
        # The recorder commits every second so that a test reads what it wrote.
        (self.dir / "configuration.yaml").write_text(
            "homeassistant:\n  name: edgeswin-test\n  latitude: 0\n  longitude: 0\n"
            "  elevation: 0\n  unit_system: metric\n  time_zone: UTC\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nwebsocket_api:\nconfig:\nrecorder:\n  commit_interval: 1\n"
            "logger:\n  default: info\n")
        hass = str(VENV / "bin" / "hass")
        subprocess.run([hass, "--script", "auth", "-c", str(self.dir), "add", USER, PASSWORD],
                       check=True, capture_output=True, timeout=120)
        self.proc = subprocess.Popen([hass, "-c", str(self.dir), "--skip-pip"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60 * TIME_SCALE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited: {self.log()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/api/", timeout=2)
            except urllib.error.HTTPError as err:
                if err.code == 401:  # up, and asking who we are
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"Home Assistant did not answer: {self.log()[-3000:]}")
        self.token = self._long_lived_token()
        self._set_up_mqtt()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _long_lived_token(self) -> str:
        client = f"{self.url}/"
        flow = self._post("/auth/login_flow", {"client_id": client, "redirect_uri": client,
                                               "handler": ["homeassistant", None]}, auth=False)
        done = self._post(f"/auth/login_flow/{flow['flow_id']}",
                          {"client_id": client, "username": USER, "password": PASSWORD},
                          auth=False)
        body = urllib.parse.urlencode({"grant_type": "authorization_code", "code":
                                       done["result"], "client_id": client}).encode()
        with urllib.request.urlopen(urllib.request.Request(
                f"{self.url}/auth/token", body,
                {"Content-Type": "application/x-www-form-urlencoded"}), timeout=10) as r:
            self.token = json.load(r)["access_token"]  # short-lived: makes the long-lived one
        return self.ws("auth/long_lived_access_token", client_name="edgeswin tests",
                       lifespan=1)

    def _set_up_mqtt(self) -> None:
        """The MQTT integration through its config flow, as a user adds it in the UI."""
        flow = self._post("/api/config/config_entries/flow", {"handler": "mqtt"})
        if flow.get("step_id") != "broker":
            raise RuntimeError(f"unexpected MQTT config flow: {flow}")
        done = self._post(f"/api/config/config_entries/flow/{flow['flow_id']}",
                          {"broker": "127.0.0.1", "port": self.broker_port})
        if done.get("type") != "create_entry":
            raise RuntimeError(f"MQTT integration not set up: {done}")

    # -- what Home Assistant says ------------------------------------------------------------
    def _post(self, path: str, data: dict, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, json.dumps(data).encode(), headers)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def states(self) -> dict[str, dict]:
        req = urllib.request.Request(f"{self.url}/api/states",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return {s["entity_id"]: s for s in json.load(r)}

    def ws(self, command: str, **fields):
        """One command over Home Assistant's websocket API; its result."""
        conn = websocket.create_connection(f"ws://127.0.0.1:{self.port}/api/websocket",
                                           timeout=10)
        try:
            assert json.loads(conn.recv())["type"] == "auth_required"
            conn.send(json.dumps({"type": "auth", "access_token": self.token}))
            answer = json.loads(conn.recv())
            if answer["type"] != "auth_ok":
                raise RuntimeError(f"websocket auth: {answer}")
            self._ws_id += 1
            conn.send(json.dumps({"id": self._ws_id, "type": command, **fields}))
            reply = json.loads(conn.recv())
            if not reply.get("success"):
                raise RuntimeError(f"{command}: {reply}")
            return reply["result"]
        finally:
            conn.close()

    def entities(self) -> list[dict]:
        """The entity registry's entries made by MQTT discovery."""
        return [e for e in self.ws("config/entity_registry/list") if e["platform"] == "mqtt"]

    def devices(self) -> dict[str, dict]:
        return {d["id"]: d for d in self.ws("config/device_registry/list")}

    def log(self) -> str:
        path = self.dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def recorded(self, since: float) -> dict[str, int]:
        """State rows the recorder wrote per entity since this Unix time."""
        with sqlite3.connect(f"file:{self.dir / 'home-assistant_v2.db'}?mode=ro", uri=True,
                             timeout=10) as db:
            rows = db.execute(
                "SELECT m.entity_id, COUNT(*) FROM states s JOIN states_meta m "
                "ON s.metadata_id = m.metadata_id WHERE s.last_updated_ts >= ? "
                "GROUP BY m.entity_id", (since,)).fetchall()
        return dict(rows)
