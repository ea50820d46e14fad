"""The other side of the broker (`edgeswin watch`, `edgeswin fleet`): a paho client that
connects with the same settings as the daemon's (`mqtt:`: host, port, user, password, TLS),
subscribes to one filter and hands every message on as (topic, payload, retained), on paho's
network thread; and `publish_retained`, one retained message acknowledged by the broker.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from ..config import MqttConfig, load_config
from ..errors import EdgeswinError
from .connection import read_password, tls_context


class Listener:
    def __init__(self, cfg: MqttConfig, topic_filter: str,
                 on_message: Callable[[str, bytes, bool], None]):
        self.cfg, self.filter = cfg, topic_filter
        self.connected = threading.Event()
        self.refused: str | None = None  # the broker's reason, when it refused us
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if cfg.username:
            self._client.username_pw_set(cfg.username, read_password(cfg))
        if cfg.tls:
            self._client.tls_set_context(tls_context(cfg))
        self._client.on_connect = self._on_connect
        self._client.on_message = lambda c, u, m: on_message(m.topic, m.payload, bool(m.retain))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            return
        client.subscribe(self.filter, qos=1)
        self.connected.set()

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; EdgeswinError saying why not within the timeout."""
        where = f"{self.cfg.host}:{self.cfg.port}"
        try:
            self._client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        except OSError as exc:
            raise EdgeswinError(f"cannot reach the broker at {where}: "
                                f"{exc.strerror or exc}") from None
        self._client.loop_start()
        if not self.connected.wait(timeout_s):
            self.stop()
            why = f"the broker refused: {self.refused}" if self.refused else "no answer"
            raise EdgeswinError(f"cannot subscribe at {where}: {why} within {timeout_s:g} s")

    def publish(self, topic: str, payload: bytes) -> None:
        """One message, QoS 0, not retained: a request that is sent again if it matters."""
        self._client.publish(topic, payload, qos=0, retain=False)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def publish_retained(cfg: MqttConfig, topic: str, payload: bytes, timeout_s: float = 10.0
                     ) -> None:
    """One retained QoS 1 message, returned once the broker has acknowledged it."""
    publish_retained_many(cfg, [(topic, payload)], timeout_s)


def publish_retained_many(cfg: MqttConfig, messages: list[tuple[str, bytes]],
                          timeout_s: float = 10.0) -> None:
    """Retained QoS 1 messages, in order, returned once the broker has acknowledged each."""
    listener = Listener(cfg, messages[0][0], lambda *_: None)
    listener.start(timeout_s)
    try:
        for topic, payload in messages:
            info = listener._client.publish(topic, payload, qos=1, retain=True)
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise EdgeswinError(f"the broker did not acknowledge {topic} within "
                                    f"{timeout_s:g} s")
    finally:
        listener.stop()


def broker_settings(args: argparse.Namespace) -> MqttConfig:
    """A config directory's `mqtt:` (user, password, TLS too), or the command line's."""
    folder = getattr(args, "broker_config", None) or getattr(args, "config", None)
    base = load_config(Path(folder)).device.mqtt if folder else MqttConfig()
    given = {k: v for k, v in (("host", args.host), ("port", args.port),
                               ("username", args.username),
                               ("password_file", args.password_file)) if v is not None}
    return MqttConfig.model_validate({**base.model_dump(exclude_none=True), **given}) \
        if given else base
