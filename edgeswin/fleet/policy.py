"""Whether this device may take a bundle: its shape, its signature, its version, and what it
changes. Pure: takes the bundle, the device's `fleet:` settings, the last version taken from
that topic and the trusted keys; hands on None (take it) or why not, in words a fleet operator
acts on.

A camera's name becomes a file name, so it must be a camera name (no path). A model comes as
ONNX only: the device builds its own engines (a prebuilt engine file is code).

Never from a bundle, whatever `fleet.allow` says: the device's identity and connection
(`device_id`, `mqtt`, `state_dir`, `fleet`), an engine's `host_code_allowed` (an engine file
with host code is code), and `gst:` camera sources (a GStreamer pipeline can run anything its
plugins can).
"""

from __future__ import annotations

import re

from ..config import FleetConfig
from ..config.fields import CAMERA_NAME, NAME_MAX
from .bundle import verify
from .download import blob_url

NEVER = ("device_id", "mqtt", "state_dir", "fleet")
MAX_MODEL = 20_000_000_000  # bytes


def refusal(bundle, cfg: FleetConfig, last_version: int | None, keys: dict
            ) -> tuple[str | None, bool]:
    """(why not, or None; signed by a trusted key)."""
    if not isinstance(bundle, dict):
        return "not a JSON object", False
    version = bundle.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"version {version!r}: a whole number from 1", False
    why = verify(bundle, keys)  # before anything else is believed
    if why:
        return why, False
    return _content(bundle, cfg, version, last_version), True


def _content(bundle: dict, cfg: FleetConfig, version: int, last_version: int | None
             ) -> str | None:
    if last_version is not None and version <= last_version:
        return f"version {version} is not newer than {last_version}, taken before"
    config, cameras = bundle.get("config", {}), bundle.get("cameras", {})
    if not isinstance(config, dict) or not isinstance(cameras, dict):
        return "config and cameras must be mappings"
    models = bundle.get("models") or []
    if models and "engines" not in cfg.allow:
        return "models: engines are not in this device's fleet.allow"
    for i, model in enumerate(models if isinstance(models, list) else [None]):
        why = _model(model)
        if why:
            return f"models.{i}: {why}"
    for key in config:
        if key in NEVER:
            return f"config.{key}: never set by a bundle (the device's own)"
        if key not in cfg.allow:
            return f"config.{key}: not in this device's fleet.allow"
    if cameras and "cameras" not in cfg.allow:
        return "cameras: not in this device's fleet.allow"
    engines = config.get("engines")
    for i, engine in enumerate(engines if isinstance(engines, list) else []):
        if isinstance(engine, dict) and engine.get("host_code_allowed"):
            return f"config.engines.{i}.host_code_allowed: never set by a bundle"
    for name, camera in cameras.items():
        if not re.fullmatch(CAMERA_NAME, name) or len(name) > NAME_MAX:
            return f"cameras.{name[:80]!r}: a camera name is letters, digits, _ and - (at " \
                   f"most {NAME_MAX})"
        if camera is not None and not isinstance(camera, dict):
            return f"cameras.{name}: a mapping, or null to remove the camera"
        source = camera.get("source") if isinstance(camera, dict) else None
        if isinstance(source, str) and source.strip().startswith("gst:"):
            return f"cameras.{name}.source: a gst: pipeline is never set by a bundle"
    return None


def _model(model) -> str | None:
    if not isinstance(model, dict):
        return "a mapping of rung, sha256, size, url and sidecar"
    rung, digest, size, url = (model.get(k) for k in ("rung", "sha256", "size", "url"))
    if not isinstance(rung, int) or isinstance(rung, bool) or rung < 0:
        return f"rung {rung!r}: a rung index from 0"
    if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        return "sha256: 64 lowercase hex digits"
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_MODEL:
        return f"size {size!r}: bytes, from 1 to {MAX_MODEL:,}"
    if url == blob_url(digest):
        pass  # chunks on the broker
    elif not (isinstance(url, str) and url.split(":", 1)[0] in ("http", "https")):
        return (f"url: an http:// or https:// address (the operator's server), or "
                f"{blob_url(digest)}")
    sidecar = model.get("sidecar")
    if not (isinstance(sidecar, dict) and isinstance(sidecar.get("labels"), list)):
        return "sidecar: the model's sidecar (labels, input) as a mapping"
    return None
