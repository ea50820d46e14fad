"""Stage 5: MQTT. The only module that imports paho.

Hands `Message`s to the broker. The last will marks `<root>/status` offline; after every
(re)connect the client publishes `online` and re-sends the retained state it holds (camera
availability, labels, engine), so a restarted broker without persistence is brought up to
date. Connection trouble is logged once per outage, not once per retry.

QoS >= 1 messages go through the durable `Outbox` when there is one: stored first, handed to
paho at once while connected and caught up, kept on disk while the broker is away, and sent in
order (left-overs of a previous run first) by a drain thread after each connect; a row is
deleted when the broker acknowledges it. The session is persistent (clean_session false, a
stable client id), so the broker holds QoS 1 traffic for this client too.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from .config import MqttConfig
from .errors import EdgeswinError
from .outbox import Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


def json_message(topic: str, obj: Any, qos: int = 0, retain: bool = False) -> Message:
    return Message(topic, json.dumps(obj, separators=(",", ":")).encode(), qos, retain)


def read_password(cfg: MqttConfig) -> str | None:
    """Password from a file, an environment variable or systemd credentials (never inline)."""
    if cfg.password_file:
        try:
            return Path(cfg.password_file).read_text().strip()
        except OSError as exc:
            raise EdgeswinError(f"mqtt.password_file {cfg.password_file}: {exc.strerror}") from None
    if cfg.password_env:
        value = os.environ.get(cfg.password_env)
        if value is None:
            raise EdgeswinError(f"mqtt.password_env: variable {cfg.password_env} is not set")
        return value
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / "mqtt_password").is_file():
        # install.sh always creates the credential (LoadCredential fails on a missing file),
        # so an empty one means "no password".
        return (Path(creds) / "mqtt_password").read_text().strip() or None
    return None


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    """The client's TLS context; an error names the file that is wrong."""
    tls = cfg.tls
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise EdgeswinError(f"mqtt.tls.ca_file {tls.ca_file}: not a usable CA certificate "
                            f"({exc})") from None
    context.check_hostname = tls.check_hostname
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise EdgeswinError(f"mqtt.tls.cert_file/key_file {tls.cert_file}, {tls.key_file}: "
                                f"cannot load the client certificate and key ({exc})") from None
    return context


def tls_diagnosis(cfg: MqttConfig, timeout: float = 3.0) -> str | None:
    """Why a TLS connection to the broker fails, in words that point at the setting."""
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout) as raw, \
                tls_context(cfg).wrap_socket(raw, server_hostname=cfg.host):
            return None
    except ssl.SSLCertVerificationError as exc:
        if "hostname" in str(exc) or "IP address mismatch" in str(exc):
            return (f"the broker's certificate does not name {cfg.host!r} ({exc.verify_message}); "
                    "connect by a name on the certificate")
        return (f"the broker's certificate is not trusted by mqtt.tls.ca_file "
                f"({exc.verify_message})")
    except ssl.SSLError as exc:
        return f"TLS handshake failed ({exc.reason or exc}); is {cfg.port} a TLS port?"
    except (OSError, EdgeswinError) as exc:
        return str(exc)


class Publisher:
    """A paho client with a last will, background reconnect and retained-state replay."""

    def __init__(self, cfg: MqttConfig, root: str, client_id: str, outbox: Outbox | None = None):
        self.cfg = cfg
        self.root = root
        self.status_topic = f"{root}/status"
        self.outbox = outbox
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   clean_session=False)
        self._client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        if cfg.username:
            self._client.username_pw_set(cfg.username, read_password(cfg))
        if cfg.tls:
            self._client.tls_set_context(tls_context(cfg))
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Bounded: while the broker is away QoS>0 messages wait in memory, never without limit.
        self._client.max_queued_messages_set(10_000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        self._retained: dict[str, Message] = {}
        self._rows: dict[int, int] = {}  # paho mid -> outbox row, until the broker acks it
        self._direct = False  # connected and the outbox drained: hand new rows to paho at once
        self._handed = 0  # highest outbox row handed to paho (paho resends unacked ones)
        self._drain_wakeup = threading.Event()
        self._stopping = threading.Event()
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._sender_thread = threading.Thread(target=self._sender, name="mqtt-sender",
                                               daemon=True)
        self._lock = threading.Lock()
        self._outage_logged = False
        self.connected = threading.Event()
        self.sent = 0
        self.dropped = 0

    # --- paho callbacks (run in paho's network thread) ------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            hint = ""
            if "authori" in str(reason_code).lower() or "password" in str(reason_code).lower():
                hint = (" (check mqtt.username and the password: mqtt.password_file, "
                        "mqtt.password_env or the mqtt_password credential)")
            self._log_outage(f"broker refused the connection: {reason_code}{hint}")
            return
        log.info("connected to MQTT broker %s:%d", self.cfg.host, self.cfg.port)
        self._outage_logged = False
        self.connected.set()
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        with self._lock:
            retained = list(self._retained.values())
        for msg in retained:  # acknowledged before, so no longer in the outbox
            client.publish(msg.topic, msg.payload, msg.qos, msg.retain)
        self._drain_wakeup.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            row = self._rows.pop(mid, None)
        if row is not None:
            self.outbox.remove(row)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        with self._lock:
            self._direct = False  # from now on new rows wait in the outbox
        if reason_code.is_failure:
            self._log_outage(f"lost the MQTT broker ({reason_code}); reconnecting in the background")

    def _on_connect_fail(self, client, userdata) -> None:
        if self._outage_logged:
            return
        why = tls_diagnosis(self.cfg) if self.cfg.tls else None
        self._log_outage(f"cannot connect to the MQTT broker at {self.cfg.host}:{self.cfg.port}"
                         f"{': ' + why if why else ''}; running on and retrying in the background")

    def _log_outage(self, text: str) -> None:
        if not self._outage_logged:
            log.warning("%s", text)
            self._outage_logged = True

    # --- the pipeline's side -----------------------------------------------------------
    def start(self) -> None:
        self._sender_thread.start()
        if self.outbox is not None:
            left = self.outbox.depth()
            if left:
                log.info("outbox: %d message(s) left from before; sending them first", left)
            threading.Thread(target=self._drain, name="outbox-drain", daemon=True).start()
        self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        self._client.loop_start()

    def _drain(self) -> None:
        """After each connect: hand stored rows to paho in order, then go direct."""
        while not self._stopping.is_set():
            self._drain_wakeup.wait(1.0)
            self._drain_wakeup.clear()
            while self.connected.is_set() and not self._stopping.is_set():
                rows = self.outbox.rows(after=self._handed, limit=200)
                if not rows:
                    with self._lock:  # nothing left: new rows go straight out from now on
                        if not self.outbox.rows(after=self._handed, limit=1):
                            self._direct = self.connected.is_set()
                            break
                    continue
                for row in rows:
                    if not self._hand(row.id, row.topic, row.payload, row.qos, row.retain):
                        break  # paho's queue is full or the link dropped: try again shortly
                else:
                    continue
                self._stopping.wait(0.05)

    def _hand(self, row: int, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return False
        with self._lock:
            self._rows[info.mid] = row
            self._handed = max(self._handed, row)
        self.sent += 1
        return True

    def publish(self, msg: Message) -> None:
        """Queue a message: the sender thread stores and sends it, in this order, so the
        inference loop never waits on the disk or the socket."""
        self._queue.put(msg)

    def _sender(self) -> None:
        while True:
            msg = self._queue.get()
            if msg is None:
                return
            self._send(msg)

    def _send(self, msg: Message) -> None:
        if msg.retain:
            with self._lock:
                self._retained[msg.topic] = msg
        if msg.qos and self.outbox is not None:
            row = self.outbox.add(msg.topic, msg.payload, msg.qos, msg.retain)
            if row is not None:
                with self._lock:
                    direct = self._direct
                if direct and self._hand(row, msg.topic, msg.payload, msg.qos, msg.retain):
                    return
                self._drain_wakeup.set()  # stored: the drain sends it in its turn
                return
        info = self._client.publish(msg.topic, msg.payload, msg.qos, msg.retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and msg.qos):
            self.sent += 1  # QoS>0 without a connection is queued by paho and sent on reconnect
        else:
            self.dropped += 1

    def stop(self, final: list[Message], timeout: float = 2.0) -> None:
        """Publish the final retained messages and `offline`, then disconnect cleanly. What the
        broker has not acknowledged by then stays in the outbox for the next start."""
        infos = []
        for msg in final:
            self.publish(msg)
        self._queue.put(None)  # the sender stops after everything queued before it
        if self._sender_thread.is_alive():
            self._sender_thread.join(timeout)
        if self.outbox is not None and self.connected.is_set():
            deadline = time.monotonic() + timeout
            while self.outbox.depth() and time.monotonic() < deadline:
                time.sleep(0.02)  # let the drain and the acks catch up
        self._stopping.set()
        if self.connected.is_set():
            infos.append(self._client.publish(self.status_topic, b"offline", qos=1, retain=True))
            for info in infos:
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError):
                    pass
        self._client.disconnect()
        self._client.loop_stop()
        if self.outbox is not None:
            self.outbox.close()
