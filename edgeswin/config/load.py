"""Loading a config directory: every file read and validated, every problem collected and
raised at once as a `ConfigError` whose lines read `file:line: key.path: message`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from ..errors import ConfigError, ConfigIssue
from .cameras import NO_GST, CameraConfig, SourceSpec, opencv_has_gstreamer
from .device import DeviceConfig
from .fields import (
    CAMERA_DIR,
    CAMERA_NAME,
    CAMERA_SUFFIXES,
    DEVICE_FILE,
    LONGEST_SUFFIX,
    MQTT_MAX_BYTES,
    NAME_MAX,
    At,
)
from .reading import _read_yaml


@dataclass(frozen=True)
class CameraEntry:
    config: CameraConfig
    file: Path
    source: SourceSpec


@dataclass(frozen=True)
class Config:
    device: DeviceConfig
    cameras: list[CameraEntry]
    directory: Path




def _validate(model: type[BaseModel], data: Any, path: Path, lines: dict[tuple, int],
              issues: list[ConfigIssue]) -> BaseModel | None:
    if not isinstance(data, dict):
        issues.append(ConfigIssue(str(path), 1, "", "expected a mapping of keys to values"))
        return None
    context = {"base": str(path.parent)}
    state_dir = data.get("state_dir", DeviceConfig.model_fields["state_dir"].default)
    if model is DeviceConfig and isinstance(state_dir, str) and state_dir and "\x00" not in state_dir:
        # Read by the engines' checks, which come before state_dir in the file's order.
        context["state_dir"] = str((path.parent / os.path.expanduser(state_dir)).resolve())
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, At):
                loc += tuple(int(k) if k.isdigit() else k for k in cause.key.split("."))
            probe = loc
            while probe not in lines and probe:
                probe = probe[:-1]
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            elif err["type"] == "missing":
                message = "required key is missing"
            issues.append(ConfigIssue(str(path), lines.get(probe, 1),
                                      ".".join(map(str, loc)), message))
        return None


def load_config(directory: str | Path) -> Config:
    """Load and validate a config directory; raise ConfigError listing every problem."""
    directory = Path(directory)
    issues: list[ConfigIssue] = []
    device_path = directory / DEVICE_FILE
    device = None
    device_lines: dict[tuple, int] = {}
    parsed = _read_yaml(device_path, issues)
    if parsed is not None:
        device_lines = parsed[1]
        device = _validate(DeviceConfig, parsed[0], device_path, device_lines, issues)

    cameras: list[CameraEntry] = []
    names: dict[str, Path] = {}
    camera_files = sorted(p for p in (directory / CAMERA_DIR).glob("*")
                          if p.suffix in CAMERA_SUFFIXES and not p.name.startswith("."))
    if not camera_files:
        issues.append(ConfigIssue(str(directory / CAMERA_DIR), 0, "",
                                  "no camera files (*.yaml or *.yml) found"))
    for path in camera_files:
        parsed = _read_yaml(path, issues)
        if parsed is None:
            continue
        data, lines = parsed
        if isinstance(data, dict) and "name" not in data:
            if not re.fullmatch(CAMERA_NAME, path.stem) or len(path.stem) > NAME_MAX:
                issues.append(ConfigIssue(str(path), 1, "", f"file name {path.name}: a camera "
                                          "is named after its file, and a camera name is "
                                          f"letters, digits, _ and - (at most {NAME_MAX}): "
                                          "rename the file or set name:"))
                data = {"name": "_", **data}  # the rest of the file is still checked
            else:
                data = {"name": path.stem, **data}
        camera = _validate(CameraConfig, data, path, lines, issues)
        if camera is None:
            continue
        if camera.name in names:
            issues.append(ConfigIssue(str(path), lines.get(("name",), 1), "name",
                                      f"camera name {camera.name!r} is also used by "
                                      f"{names[camera.name]}"))
            continue
        names[camera.name] = path
        entry = CameraEntry(camera, path, camera.source_spec(path.parent))
        cameras.append(entry)
        if camera.enabled and entry.source.kind == "gstreamer" and not opencv_has_gstreamer():
            issues.append(ConfigIssue(str(path), lines.get(("source",), 1), "source", NO_GST))
        if camera.enabled and camera.decoder == "gstreamer" and not opencv_has_gstreamer():
            issues.append(ConfigIssue(str(path), lines.get(("decoder",), 1), "decoder",
                                      NO_GST.replace("a gst: source", "decoder: gstreamer")))
        if isinstance(device, DeviceConfig):
            topic = f"{device.topic_root}/{camera.name}{LONGEST_SUFFIX}"
            if len(topic.encode()) > MQTT_MAX_BYTES:
                issues.append(ConfigIssue(str(device_path),
                                          device_lines.get(("mqtt", "topic_root"), 1),
                                          "mqtt.topic_root", f"topics of camera {camera.name} "
                                          f"would be {len(topic.encode())} bytes; MQTT allows "
                                          f"{MQTT_MAX_BYTES}"))
    if camera_files and not issues and not any(e.config.enabled for e in cameras):
        issues.append(ConfigIssue(str(directory / CAMERA_DIR), 0, "",
                                  "every camera has enabled: false: there is nothing to run"))
    if issues or device is None:
        raise ConfigError(issues)
    host = os.environ.get("EDGESWIN_MQTT_HOST")
    if host:  # containers: the broker's service name differs from the config's host
        device = device.model_copy(update={"mqtt": device.mqtt.model_copy(update={"host": host})})
    return Config(device, cameras, directory)  # type: ignore[arg-type]
