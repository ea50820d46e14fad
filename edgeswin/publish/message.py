"""What a stage hands the MQTT client: a `Message` (topic, payload, QoS, retained). A topic of
the device's own is built by `topic_message`, which takes the topic's retained flag and QoS
from the table in `topics`; Home Assistant's discovery topics, outside the root, are built
in `homeassistant`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..topics import TOPICS, at


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


def topic_message(root: str, key: str, payload: Any, camera: str | None = None,
                  unit: str | None = None, qos: int | None = None) -> Message:
    """A message on a topic of the table (`topics.TOPICS`), retained as the table says, at its
    QoS (`qos` where the table leaves it to the config, or to clear a topic); bytes go as they
    are, anything else as compact JSON."""
    topic = TOPICS[key]
    level = qos if qos is not None else topic.qos
    if level is None:
        raise ValueError(f"topic {key}: its QoS comes from the config; pass qos")
    data = payload if isinstance(payload, bytes) else \
        json.dumps(payload, separators=(",", ":")).encode()
    return Message(at(root, key, camera, unit), data, level, topic.retained)
