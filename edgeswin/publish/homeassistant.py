"""Home Assistant MQTT discovery: retained config messages so the cameras and the device show
up in Home Assistant without YAML. Hands on `Message`s for `publish`; the daemon sends them
after start and after a reload, and clears (empty retained payload) the entries of cameras that
are gone — also across restarts, from the list kept in `<state_dir>/homeassistant.json`.

Entities: per camera (per region for a camera with regions) a `sensor` with the label
(attributes: score, since) and availability from both the device status and the camera's
stream; with snapshots on, a `camera` per camera and per region showing the retained
snapshot; with health on, a `problem` `binary_sensor` per camera (on while its retained
`<root>/<camera>/health` lists a problem, the kinds as attributes); per device a `sensor` for
the engine rung, one for the model rollout's state, one for the hottest temperature, the
module's power (W, with each rail as an attribute), the energy per classification (mJ) and the
nvpmodel power mode (all four from `<root>/measured`, which changes only by whole steps: see
`measured`), and a connectivity `binary_sensor`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from .. import __version__
from ..topics import at, unit_of
from .message import Message

log = logging.getLogger(__name__)


def _device(device_id: str) -> dict:
    return {"identifiers": [f"edgeswin_{device_id}"], "name": f"edgeswin {device_id}",
            "manufacturer": "edgeswin", "model": "camera classification daemon",
            "sw_version": __version__}


def discovery_id(text: str) -> str:
    """Home Assistant takes node and object ids of [a-zA-Z0-9_-] only and drops any other
    discovery message without a word; a device_id may hold dots."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _topic(prefix: str, component: str, device_id: str, object_id: str) -> str:
    return (f"{prefix}/{component}/{discovery_id(f'edgeswin_{device_id}')}/"
            f"{discovery_id(object_id)}/config")


def _label_id(camera: str, region: str | None) -> str:
    """The sensor's object id: `<camera>_label`, or `<camera>__<region>_label`."""
    return f"{camera}_label" if region is None else f"{camera}__{region}_label"


def _unit_entity(prefix: str, component: str, device_id: str, root: str, camera: str,
                 region: str | None, object_id: str, what: str, fields: dict) -> Message:
    """A per-camera (or per-region) entity: named, available while both the device and the
    camera's stream are online, on the device."""
    payload = {
        "name": f"{camera} {what}" if region is None else f"{camera} {region} {what}",
        "unique_id": f"edgeswin_{device_id}_{object_id}",
        **fields,
        "availability": [{"topic": at(root, "status")},
                         {"topic": at(root, "availability", camera=camera)}],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device(device_id),
    }
    return Message(_topic(prefix, component, device_id, object_id),
                   json.dumps(payload).encode(), 1, True)


def camera_config(prefix: str, device_id: str, root: str, camera: str,
                  region: str | None = None) -> Message:
    """The label sensor of a camera, or of one region of it. Its retained state is cleared (an
    empty payload) when the camera goes; Home Assistant may read that before it removed the
    entity: the templates pass over it instead of reading an empty payload as JSON."""
    state = at(root, "state", unit=unit_of(camera, region))
    return _unit_entity(prefix, "sensor", device_id, root, camera, region,
                        _label_id(camera, region), "label",
                        {"state_topic": state,
                         "value_template": "{{ value_json.label if value_json is defined "
                                           "else '' }}",
                         "json_attributes_topic": state,
                         "json_attributes_template":
                             "{{ value_json | tojson if value_json is defined else '{}' }}",
                         "icon": "mdi:cctv"})


def _snapshot_id(camera: str, region: str | None) -> str:
    return f"{camera}_snapshot" if region is None else f"{camera}__{region}_snapshot"


def snapshot_config(prefix: str, device_id: str, root: str, camera: str,
                    region: str | None = None) -> Message:
    """An MQTT camera entity showing the retained snapshot of a camera or region."""
    return _unit_entity(prefix, "camera", device_id, root, camera, region,
                        _snapshot_id(camera, region), "snapshot",
                        {"topic": at(root, "snapshot", unit=unit_of(camera, region))})


def _health_id(camera: str) -> str:
    return f"{camera}_health"


def health_config(prefix: str, device_id: str, root: str, camera: str) -> Message:
    """A problem sensor on the camera's retained health: on while it lists a problem."""
    topic = at(root, "health", camera=camera)
    # The retained health is cleared (an empty payload) when the camera goes; Home Assistant
    # may read that before it removed the entity: an empty template output is ignored.
    return _unit_entity(prefix, "binary_sensor", device_id, root, camera, None,
                        _health_id(camera), "health",
                        {"state_topic": topic, "device_class": "problem",
                         "value_template": "{{ ('OFF' if value_json.ok else 'ON') "
                                           "if value_json is defined else '' }}",
                         "json_attributes_topic": topic,
                         "json_attributes_template":
                             "{{ {'problems': value_json.problems | map(attribute='kind') "
                             "| list} | tojson if value_json is defined else '{}' }}"})


def device_configs(prefix: str, device_id: str, root: str, canary: bool = True
                   ) -> list[Message]:
    """The device's entities; the canary's problem sensor only while the canary runs (else its
    retained config is cleared)."""
    device = _device(device_id)
    status = {"availability_topic": at(root, "status"), "payload_available": "online",
              "payload_not_available": "offline", "device": device}

    def measured(name: str, field: str, unit: str, **fields) -> dict:
        """A device measurement read from <root>/measured (`measured`: it changes only when a
        value moved by a whole step, so the recorder keeps no sensor noise)."""
        return {"name": name, "state_topic": at(root, "measured"),
                "value_template": f"{{{{ value_json.{field} }}}}",
                "unit_of_measurement": unit, "state_class": "measurement",
                "entity_category": "diagnostic", **fields, **status}
    entities = [
        ("sensor", "engine_rung", {
            "name": "engine rung", "state_topic": at(root, "engine"),
            "value_template": "{{ value_json.rung }}",
            "json_attributes_topic": at(root, "engine"),
            "json_attributes_template": "{{ {'engine': value_json.name, "
                                        "'reason': value_json.reason} | tojson }}",
            "icon": "mdi:stairs-down", "entity_category": "diagnostic", **status}),
        ("sensor", "model_rollout", {
            "name": "model rollout", "state_topic": at(root, "rollout"),
            "value_template": "{{ value_json.state }}",
            "json_attributes_topic": at(root, "rollout"),
            "json_attributes_template": "{{ {'rung': value_json.rung, 'reason': "
                                        "value_json.reason, 'agreement': value_json.agreement} "
                                        "| tojson }}",
            "icon": "mdi:swap-horizontal", "entity_category": "diagnostic", **status}),
        ("sensor", "temperature", measured("temperature", "temp_max_c", "°C",
                                           device_class="temperature")),
        ("sensor", "power", measured(
            "power", "power_w", "W", device_class="power",
            json_attributes_topic=at(root, "measured"),
            json_attributes_template="{{ value_json.watts | tojson }}")),
        ("sensor", "energy_per_classification", measured(
            "energy per classification", "energy_mj_per_classification", "mJ",
            icon="mdi:lightning-bolt")),
        ("sensor", "power_mode", {
            "name": "power mode", "state_topic": at(root, "measured"),
            "value_template": "{{ value_json.power_mode or 'unknown' }}",
            "icon": "mdi:flash-outline", "entity_category": "diagnostic", **status}),
        ("binary_sensor", "canary", {
            "name": "canary", "state_topic": at(root, "canary"), "device_class": "problem",
            "value_template": "{{ 'OFF' if value_json.ok else 'ON' }}",
            "json_attributes_topic": at(root, "canary"),
            "json_attributes_template": "{{ {'engine': value_json.engine, 'checked': "
                                        "value_json.checked, 'wrong': value_json.wrong | "
                                        "map(attribute='image') | list} | tojson }}",
            "entity_category": "diagnostic", **status}),
        ("binary_sensor", "online", {
            "name": "online", "state_topic": at(root, "status"), "payload_on": "online",
            "payload_off": "offline", "device_class": "connectivity",
            "entity_category": "diagnostic", "device": device}),
    ]
    messages = [] if canary else [Message(_topic(prefix, "binary_sensor", device_id, "canary"),
                                          b"", 1, True)]
    for component, object_id, payload in entities:
        if object_id == "canary" and not canary:
            continue
        payload["unique_id"] = f"edgeswin_{device_id}_{object_id}"
        messages.append(Message(_topic(prefix, component, device_id, object_id),
                                json.dumps(payload).encode(), 1, True))
    return messages


def removal(prefix: str, device_id: str, unit: str) -> list[Message]:
    """Empty retained configs remove a unit's entities from Home Assistant (`unit`: a camera,
    or `camera/region`): its label sensor and its snapshot camera, and a camera's health."""
    camera, _, region = unit.partition("/")
    out = [Message(_topic(prefix, "sensor", device_id, _label_id(camera, region or None)), b"",
                   1, True),
           Message(_topic(prefix, "camera", device_id, _snapshot_id(camera, region or None)),
                   b"", 1, True)]
    if not region:
        out.append(Message(_topic(prefix, "binary_sensor", device_id, _health_id(camera)), b"",
                           1, True))
    return out


class Discovery:
    """Announces the current cameras and regions and clears the ones announced before and gone
    now."""

    def __init__(self, prefix: str, device_id: str, root: str, state_dir: Path):
        self.prefix, self.device_id, self.root = prefix, device_id, root
        self._record = Path(state_dir) / "homeassistant.json"

    def _announced(self) -> set[str]:
        try:
            return set(json.loads(self._record.read_text()))
        except (OSError, ValueError):
            return set()

    def _remember(self, cameras: set[str]) -> None:
        try:
            self._record.parent.mkdir(parents=True, exist_ok=True)
            self._record.write_text(json.dumps(sorted(cameras)))
        except OSError as exc:  # a read-only state dir must not stop discovery
            log.warning("cannot record announced cameras in %s: %s", self._record, exc)

    def messages(self, units: list[tuple[str, str | None]], snapshots: bool = False,
                 health: dict[str, bool] | None = None, canary: bool = True) -> list[Message]:
        """Configs for (camera, region) label sensors (region None: the whole frame), with
        snapshots on a camera entity per camera and per region, and a health sensor for each
        camera whose `health` is on (camera -> on)."""
        # A camera with regions is a unit of its own too: its health sensor and its snapshot
        # camera are the camera's, and go when the camera goes.
        keys = {camera if region is None else f"{camera}/{region}" for camera, region in units}
        keys |= {camera for camera, _ in units}
        gone = self._announced() - keys
        out = [m for name in sorted(gone) for m in removal(self.prefix, self.device_id, name)]
        out += device_configs(self.prefix, self.device_id, self.root, canary)
        out += [camera_config(self.prefix, self.device_id, self.root, camera, region)
                for camera, region in units]
        pictures = sorted({(camera, None) for camera, _ in units} |
                          {(c, r) for c, r in units if r is not None}, key=str)
        for camera, region in pictures:
            if snapshots:
                out.append(snapshot_config(self.prefix, self.device_id, self.root, camera,
                                           region))
            else:  # turned off: no entity left showing a stale picture
                out.append(Message(_topic(self.prefix, "camera", self.device_id,
                                          _snapshot_id(camera, region)), b"", 1, True))
        for camera, on in sorted((health or {}).items()):
            out.append(health_config(self.prefix, self.device_id, self.root, camera) if on
                       else Message(_topic(self.prefix, "binary_sensor", self.device_id,
                                           _health_id(camera)), b"", 1, True))
        self._remember(keys)
        if gone:
            log.info("home assistant: cleared %s", ", ".join(sorted(gone)))
        return out
