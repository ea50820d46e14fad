"""Loading a config directory: every file read and validated, every problem collected and
raised at once as a `ConfigError` whose lines read `file:line: key.path: message`.

With a fleet (`fleet.enabled` in the local edgeswin.yaml), the bundle applied last is an
overlay, `<state_dir>/fleet/applied/`: its `edgeswin.yaml` sections replace the local ones, its
`cameras/*.yaml` replace or add cameras, and `removed.json` lists cameras it removes. Paths in
it are taken from the local directory, as if written there; an error in it names its file."""

from __future__ import annotations

import json
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
from ..topics import longest
from .cameras import NO_GST, CameraConfig, SourceSpec, opencv_has_gstreamer
from .device import DeviceConfig
from .fields import (
    CAMERA_DIR,
    CAMERA_NAME,
    CAMERA_SUFFIXES,
    DEVICE_FILE,
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
    overlay: Path | None = None  # the fleet bundle laid over the directory, if any


OVERLAY_REMOVED = "removed.json"


def fleet_overlay(directory: Path, data: Any) -> Path | None:
    """`<state_dir>/fleet/applied` when the local edgeswin.yaml enables a fleet and a bundle
    was applied, else None."""
    fleet = data.get("fleet") if isinstance(data, dict) else None
    if not (isinstance(fleet, dict) and fleet.get("enabled") is True):
        return None
    state_dir = data.get("state_dir", DeviceConfig.model_fields["state_dir"].default)
    if not isinstance(state_dir, str) or not state_dir or "\x00" in state_dir:
        return None
    applied = (directory / os.path.expanduser(state_dir)).resolve() / "fleet" / "applied"
    return applied if applied.is_dir() else None




def _validate(model: type[BaseModel], data: Any, path: Path, lines: dict[tuple, int],
              issues: list[ConfigIssue], base: Path | None = None) -> BaseModel | None:
    if not isinstance(data, dict):
        issues.append(ConfigIssue(str(path), 1, "", "expected a mapping of keys to values"))
        return None
    context = {"base": str(base or path.parent)}
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


def _device(directory: Path, overlay: Path | None | bool, issues: list[ConfigIssue]
            ) -> tuple[DeviceConfig | None, dict[tuple, int], Path | None]:
    """The device settings, the local file's lines, and the overlay used (if any)."""
    device_path = directory / DEVICE_FILE
    parsed = _read_yaml(device_path, issues)
    if parsed is None:
        return None, {}, None
    data, lines = parsed
    if overlay is None:
        overlay = fleet_overlay(directory, data)
    if not overlay or not isinstance(data, dict):
        return _validate(DeviceConfig, data, device_path, lines, issues), lines, None
    overlay_path = Path(overlay) / DEVICE_FILE
    over = _read_yaml(overlay_path, issues) if overlay_path.is_file() else ({}, {})
    if over is None or not isinstance(over[0], dict):
        return None, lines, Path(overlay)
    merged = {**data, **over[0]}
    merged_lines = {**lines, **{k: v for k, v in over[1].items() if k and k[0] in over[0]}}
    found: list[ConfigIssue] = []
    device = _validate(DeviceConfig, merged, device_path, merged_lines, found, directory)
    for issue in found:  # an error in a section the bundle set is the bundle's
        if issue.path.split(".")[0] in over[0]:
            issue = ConfigIssue(str(overlay_path), issue.line, issue.path, issue.message)
        issues.append(issue)
    return device, lines, Path(overlay)


def _camera_files(directory: Path, overlay: Path | None,
                  issues: list[ConfigIssue]) -> list[tuple[Path, Path]]:
    """(file, the folder its paths are taken from): the local cameras, with the overlay's
    replacing or adding cameras of the same file name and its removed ones gone."""
    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.glob("*")
                      if p.suffix in CAMERA_SUFFIXES and not p.name.startswith("."))

    local = directory / CAMERA_DIR
    if overlay is None:
        return [(p, local) for p in files(local)]
    try:
        removed = json.loads((overlay / OVERLAY_REMOVED).read_text()) \
            if (overlay / OVERLAY_REMOVED).is_file() else []
    except (OSError, ValueError) as exc:
        issues.append(ConfigIssue(str(overlay / OVERLAY_REMOVED), 0, "", str(exc)))
        removed = []
    over = files(overlay / CAMERA_DIR)
    gone = {p.stem for p in over} | {str(n) for n in (removed if isinstance(removed, list) else [])}
    return sorted([(p, local) for p in files(local) if p.stem not in gone] +
                  [(p, local) for p in over], key=lambda pair: pair[0].name)


def load_config(directory: str | Path, overlay: Path | None | bool = None) -> Config:
    """Load and validate a config directory; raise ConfigError listing every problem.
    `overlay`: None takes the fleet's applied bundle when the local file enables a fleet;
    a folder lays that one over the directory (a bundle being staged); False: none."""
    directory = Path(directory)
    issues: list[ConfigIssue] = []
    device_path = directory / DEVICE_FILE
    device, device_lines, used = _device(directory, overlay, issues)

    cameras: list[CameraEntry] = []
    names: dict[str, Path] = {}
    camera_files = _camera_files(directory, used, issues)
    if not camera_files:
        issues.append(ConfigIssue(str(directory / CAMERA_DIR), 0, "",
                                  "no camera files (*.yaml or *.yml) found"))
    for path, base in camera_files:
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
        camera = _validate(CameraConfig, data, path, lines, issues, base)
        if camera is None:
            continue
        if camera.name in names:
            issues.append(ConfigIssue(str(path), lines.get(("name",), 1), "name",
                                      f"camera name {camera.name!r} is also used by "
                                      f"{names[camera.name]}"))
            continue
        names[camera.name] = path
        entry = CameraEntry(camera, path, camera.source_spec(base))
        cameras.append(entry)
        if camera.enabled and entry.source.kind == "gstreamer" and not opencv_has_gstreamer():
            issues.append(ConfigIssue(str(path), lines.get(("source",), 1), "source", NO_GST))
        if camera.enabled and camera.decoder == "gstreamer" and not opencv_has_gstreamer():
            issues.append(ConfigIssue(str(path), lines.get(("decoder",), 1), "decoder",
                                      NO_GST.replace("a gst: source", "decoder: gstreamer")))
        if isinstance(device, DeviceConfig):
            topic = longest(device.topic_root, camera.name,
                            [r.name for r in camera.regions or ()])
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
    return Config(device, cameras, directory, used)  # type: ignore[arg-type]
