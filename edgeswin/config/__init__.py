"""Configuration: `edgeswin.yaml` (device-wide) plus `cameras/*.yaml` (one file per camera).

Hands on a validated `Config`. Every key is checked by strict pydantic models; every problem
in every file is collected and raised at once as a `ConfigError` whose lines read
`file:line: key.path: message`. Relative paths are resolved against the file they appear in.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ..engine import backend_for
from ..errors import ConfigError, ConfigIssue, EdgeswinError
from ..files import NotASmallFile, read_small
from .credentials import read_secret, redact

DEVICE_FILE = "edgeswin.yaml"
CAMERA_DIR = "cameras"
CAMERA_SUFFIXES = (".yaml", ".yml")

# Hostile-input bounds. Real configs are a few kilobytes, a few levels deep, with at most a
# handful of anchors: these are orders of magnitude above that and far below harm.
MAX_FILE_BYTES = 1_000_000
MAX_NESTING = 64
MAX_NODES = 100_000  # YAML nodes after alias expansion ("billion laughs" stops here)
MAX_INT_DIGITS = 100  # Python refuses to parse integers past 4,300 digits (ValueError)
INT_TAG = "tag:yaml.org,2002:int"

# MQTT's own limits (MQTT 3.1.1 sections 1.5.3, 4.7): strings are at most 65,535 UTF-8 bytes,
# publish topics hold no wildcard and no NUL.
MQTT_MAX_BYTES = 65_535
DAY = 86_400.0  # upper bound of every duration setting, in seconds
CAMERA_NAME = r"^[A-Za-z0-9_-]+$"  # no dot: a camera file's name is its stem
NAME_MAX = 64  # device_id and camera names: part of every topic, metric label and file name
LONGEST_SUFFIX = "/classification"  # the longest per-camera topic level


class _Strict(BaseModel):
    # allow_inf_nan=False: .inf and .nan are valid YAML floats that no setting can mean.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class At(ValueError):
    """A check of one key against others: reported at `key` (a dotted path below the field
    that raised it), with that key's line, not at the section."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


# Cross-field checks are field validators that read the fields declared before them
# (`info.data`), not model validators: pydantic skips a model's after-validators when any of
# its fields failed, and a user must see every problem at once. A field left at its default
# is checked only with validate_default=True.


def _earlier(info: ValidationInfo, *keys: str) -> tuple | None:
    """The values of earlier fields, or None when one of them failed its own validation
    (then that failure is what the user sees first)."""
    if not all(k in info.data for k in keys):
        return None
    return tuple(info.data[k] for k in keys)


def _resolve(value: str, info: ValidationInfo) -> Path:
    """The one place a path setting becomes a path: ~ expanded, a relative path taken from the
    directory of the YAML file it is written in (never the working directory)."""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and info.context:
        path = Path(info.context["base"]) / path
    return path.resolve()


def _path_setting(value: str, info: ValidationInfo) -> str:
    if not value or "\x00" in value:
        raise ValueError("a path: not empty, no NUL character")
    return str(_resolve(value, info))


def _existing_file(value: str, info: ValidationInfo) -> str:
    path = Path(_path_setting(value, info))
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}" if path.exists()
                         else f"file does not exist: {path}")
    return str(path)


def _command(value: str, info: ValidationInfo) -> str:
    """A command: a bare name is looked up on PATH when run; one with a / is a path."""
    return _path_setting(value, info) if "/" in value else value


# Every path-valued key has one of these types, so no key can forget to resolve its path.
ConfigPath = Annotated[str, AfterValidator(_path_setting)]
ExistingFile = Annotated[str, AfterValidator(_existing_file)]
Command = Annotated[str, AfterValidator(_command)]


def _served_before(rung: str, state_dir: str | None) -> bool:
    """Whether the model store in state_dir still holds a model this rung served."""
    if not state_dir:
        return False
    from ..rollout.store import ModelStore
    store = ModelStore(Path(state_dir))
    return store.stored(store.record.get(rung, {}).get("current")) is not None


def _secret_readable(what: str, **source: str | None) -> None:
    """What `run` does with a password setting, done by `check` too: read it once."""
    try:
        read_secret(what, **source)
    except EdgeswinError as exc:
        message = str(exc).removeprefix(f"{what}: ")
        for key in source:  # the error is shown at its key already
            message = message.removeprefix(f"password_{key}: ").removeprefix(f"{key} ")
        raise ValueError(message) from None


def mqtt_string_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be an MQTT string (client id, user name), or None."""
    if "\x00" in value:
        return f"{what} holds a NUL character"
    if len(value.encode()) > MQTT_MAX_BYTES:
        return f"{what} is {len(value.encode())} bytes in UTF-8; MQTT allows {MQTT_MAX_BYTES}"
    return None


def topic_problem(value: str, what: str) -> str | None:
    """Why `value` cannot start a publish topic, or None."""
    if not value:
        return f"{what} is empty"
    if "+" in value or "#" in value:
        return f"{what} holds an MQTT wildcard (+ or #): publish topics cannot"
    if value.startswith("$"):
        return f"{what} starts with $: such topics belong to the broker (like $SYS)"
    return mqtt_string_problem(value, what)


class TlsConfig(_Strict):
    ca_file: ExistingFile = Field(description="CA certificate (PEM) that signed the broker's "
                                              "certificate.")
    cert_file: ExistingFile | None = Field(None, description="Client certificate (PEM), if the "
                                                             "broker wants one.")
    key_file: ExistingFile | None = Field(None, validate_default=True,
                                          description="Client private key (PEM).")
    check_hostname: bool = Field(True, description="Check the broker's name against its "
                                                   "certificate. Turn off only for testing.")

    @field_validator("key_file")
    @classmethod
    def _pair(cls, value: str | None, info: ValidationInfo) -> str | None:
        earlier = _earlier(info, "cert_file")
        if earlier is not None and (earlier[0] is None) != (value is None):
            raise ValueError("cert_file and key_file go together")
        return value


class MqttConfig(_Strict):
    host: str = Field("127.0.0.1", min_length=1, max_length=253, pattern=r"^[^\s\x00/]+$",
                      description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port.")
    topic_root: str | None = Field(None, description="Topic prefix; default edgeswin/<device_id>.")
    client_id: str | None = Field(None, description="MQTT client id; default edgeswin-<device_id>.")
    qos: int = Field(1, ge=0, le=2, description="QoS of classifications and state messages.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval.")
    username: str | None = Field(None, description="Broker user name.")
    password_file: ExistingFile | None = Field(None, description="File holding the broker "
                                               "password (needs username).")
    password_env: str | None = Field(None, description="Environment variable with the password "
                                     "(needs username); `check` reads it in its own "
                                     "environment, as the unit's ExecStartPre does in the "
                                     "service's.")
    tls: TlsConfig | None = Field(None, description="TLS to the broker (port 8883 usually).")
    outbox_max_mb: float = Field(64.0, ge=0, le=1_000_000, description="Durable outbox "
                                 "(SQLite in state_dir) for QoS >= 1 messages while the broker "
                                 "is away; the oldest are dropped beyond this size. 0 = memory "
                                 "only.")
    reconnect_max_s: float = Field(4.0, ge=1, le=300, description="Longest wait between two "
                                   "connection attempts (about 1 s, doubling up to this; each "
                                   "daemon draws its own first wait and cap once).")

    @field_validator("topic_root")
    @classmethod
    def _topic_root(cls, value: str | None) -> str | None:
        if value is not None and (problem := topic_problem(value, "topic_root")):
            raise ValueError(problem)
        return value

    @field_validator("password_file", "password_env")
    @classmethod
    def _password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.field_name == "password_env" and info.data.get("password_file"):
            raise ValueError("give the password one way: password_file or password_env")
        if _earlier(info, "username") == (None,):
            raise ValueError(f"{info.field_name} without username: the broker is sent no "
                             "password without a user name; set mqtt.username")
        _secret_readable("mqtt", **{info.field_name.removeprefix("password_"): value})
        return value

    @field_validator("client_id", "username")
    @classmethod
    def _mqtt_string(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (problem := mqtt_string_problem(value, info.field_name)):
            raise ValueError(problem)
        if info.field_name == "client_id" and value == "":
            raise ValueError("client_id is empty (leave it out for edgeswin-<device_id>)")
        return value


class EngineRung(_Strict):
    name: str = Field(description="Short name of this rung, shown in messages and logs.")
    model: str = Field(description="Model file (.onnx, .engine, .plan), relative to this file.")
    backend: Literal["auto", "onnxruntime", "tensorrt"] = Field(
        "auto", description="auto picks by file type: .onnx -> onnxruntime, .engine -> tensorrt.")
    threads: int = Field(0, ge=0, le=64, description="CPU threads for ONNX Runtime; 0 = its default.")
    host_code_allowed: bool = Field(
        False, description="TensorRT: allow engines with embedded host code (version-compatible "
                           "plans). An engine file is code: only for files you built or trust.")

    precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp16", description="An .onnx rung with backend tensorrt: the engine built on the device "
                            "(int8 needs a Q/DQ model). Ignored otherwise.")
    preprocess: Literal["cpu", "gpu"] = Field(
        "cpu", description="gpu: resize and normalise in one CUDA kernel (tensorrt rungs only).")
    dla_core: Literal[0, 1] | None = Field(
        None, description="An .onnx rung with backend tensorrt: build for this DLA core, with "
                          "unsupported layers on the GPU. A device without it builds for the "
                          "GPU and says so. fp16 or int8 only.")

    @field_validator("preprocess")
    @classmethod
    def _gpu_preprocess_needs_tensorrt(cls, value: str, info: ValidationInfo) -> str:
        earlier = _earlier(info, "model", "backend")
        if value == "gpu" and earlier is not None:
            if backend_for(Path(earlier[0]), earlier[1]) != "tensorrt":
                raise ValueError("preprocess: gpu needs TensorRT: an .engine/.plan file, or "
                                 "an .onnx with backend: tensorrt")
        return value

    @field_validator("dla_core")
    @classmethod
    def _dla_needs_an_onnx_build(cls, value: int | None, info: ValidationInfo) -> int | None:
        earlier = _earlier(info, "model", "backend", "precision")
        if value is None or earlier is None:
            return value
        model, backend, precision = earlier
        if not (backend == "tensorrt" and Path(model).suffix == ".onnx"):
            raise ValueError("dla_core needs an .onnx model with backend: tensorrt (the "
                             "engine is built for the DLA on the device)")
        if precision == "fp32":
            raise ValueError("dla_core needs precision fp16 or int8: the DLA has no FP32")
        return value

    @field_validator("model")
    @classmethod
    def _model_can_serve(cls, value: str, info: ValidationInfo) -> str:
        """The model as the engine reads it first: the metadata sidecar, and for ONNX its
        input and output against it. A broken file is an error unless the rung has a model
        it served before in state_dir: then that one serves, and the broken file is refused
        by the rollout (an update cut short must not stop the service)."""
        path = _resolve(value, info)
        if not path.is_file():
            raise ValueError(f"model is not a regular file: {path}" if path.exists()
                             else f"model file does not exist: {path}")
        from ..engine.check import check_model
        try:
            check_model(path)
        except EdgeswinError as exc:
            name = info.data.get("name")
            if not (name and _served_before(name, (info.context or {}).get("state_dir"))):
                raise ValueError(str(exc)) from None
        return str(path)


class FallbackConfig(_Strict):
    thermal_root: ConfigPath = Field("/sys/devices/virtual/thermal",
                              description="Where thermal_zone*/ live (a scripted tree in tests).")
    zones: list[str] = Field(["tj", "gpu", "cpu", "soc", "cv"],
                             description="Zone type prefixes to watch (case-insensitive).")
    nvml: bool = Field(True, description="Also watch discrete NVIDIA GPUs (zones GPU<i>-nvml) "
                                         "through NVML when nvidia-ml-py is installed.")
    degrade_above_c: float = Field(85.0, ge=-40, le=150, description="Step down above this temperature.")
    recover_below_c: float = Field(75.0, ge=-40, le=150, validate_default=True,
                                   description="Step up only below this temperature.")
    latency_budget_ms: float | None = Field(None, gt=0, le=DAY * 1000,
                                            description="p95 inference budget; none = no limit.")
    latency_window: int = Field(30, ge=5, le=1000, description="Inferences in the p95 window.")
    hold_s: float = Field(5.0, ge=0, le=DAY, description="A bad condition must last this long.")
    cooldown_s: float = Field(30.0, ge=0, le=DAY, description="Healthy this long before stepping up.")
    min_dwell_s: float = Field(10.0, ge=0, le=DAY, description="Minimum time on a rung.")
    latency_retry_s: float = Field(300.0, ge=0, le=DAY,
                                   description="Wait before retrying a rung left for being slow.")
    poll_s: float = Field(1.0, gt=0, le=3600, description="How often sensors are read.")
    pinned_rung: int | None = Field(None, ge=0, description="Stay on this rung: the rung and "
                                    "dla levers never move (fps and power_mode still do).")
    levers: list[Literal["fps", "rung", "dla", "power_mode"]] = Field(
        ["fps", "rung"], min_length=1, description="What a step down changes, first lever "
        "first; a step up undoes them in reverse order. fps: the cameras' rates toward their "
        "min_fps; rung: the next smaller engine; dla: the active rung's DLA build; power_mode: "
        "the next of power_modes.")
    fps_steps: int = Field(2, ge=1, le=10, description="Steps from each camera's fps down to "
                                                        "its min_fps.")
    power_modes: list[str] = Field([], max_length=8, validate_default=True, description=(
                                   "nvpmodel mode names (as in the device's nvpmodel "
                                   "configuration) to step down through, "
                                   "e.g. [\"15W\", \"7W\"]; for the power_mode lever."))
    power_mode_command: list[str] = Field(
        [], max_length=16, description="How to set a mode: a command with {id} for the mode "
        "id, e.g. [nvpmodel, -m, \"{id}\"] when running as root. Empty: the daemon writes the "
        "id to <state_dir>/power-mode.request for the root helper unit "
        "(systemd/edgeswin-power-mode.path).")

    @field_validator("recover_below_c")
    @classmethod
    def _hysteresis(cls, value: float, info: ValidationInfo) -> float:
        earlier = _earlier(info, "degrade_above_c")
        if earlier is not None and value >= earlier[0]:
            raise ValueError(f"recover_below_c ({value:g}) must be below degrade_above_c "
                             f"({earlier[0]:g}) (hysteresis)")
        return value

    @field_validator("levers")
    @classmethod
    def _each_lever_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"each lever once, got {value}")
        return value

    @field_validator("power_modes")
    @classmethod
    def _modes_for_the_lever(cls, value: list[str], info: ValidationInfo) -> list[str]:
        earlier = _earlier(info, "levers")
        if earlier is not None and "power_mode" in earlier[0] and not value:
            raise ValueError("levers has power_mode but power_modes is empty: name the nvpmodel "
                             "modes to step down through (see `edgeswin probe`)")
        return value

    @field_validator("power_mode_command")
    @classmethod
    def _command_takes_the_id(cls, value: list[str]) -> list[str]:
        if value and not any("{id}" in a for a in value):
            raise ValueError("power_mode_command needs an {id} argument for the mode id")
        return value


class PowerConfig(_Strict):
    hwmon_root: ConfigPath = Field("/sys/class/hwmon", description="Where hwmon*/ live: INA3221 "
                            "(JetPack 5/6) and INA238 (JetPack 7) power monitors.")
    devfreq_root: ConfigPath = Field("/sys/class/devfreq", description="Where the GPU's devfreq node "
                              "lives (load and clock).")
    total_rails: list[str] = Field(["VDD_IN", "POM_5V_IN", "VIN"], description="The rail that "
                                   "measures the whole module (first found, any case); none "
                                   "found: the sum of every rail.")
    nvpmodel_conf: ConfigPath = Field("/etc/nvpmodel.conf", description="The device's nvpmodel "
                               "configuration: mode ids and names.")
    nvpmodel: Command = Field("nvpmodel", description="The nvpmodel command (for -q): a name "
                              "looked up on PATH, or a path.")


class MetricsConfig(_Strict):
    enabled: bool = Field(False, description="Serve Prometheus /metrics and /healthz.")
    address: str = Field("127.0.0.1", description="Listen address; keep it local unless a "
                                                  "firewall or proxy guards it.")
    port: int = Field(9108, ge=0, le=65535, description="Listen port (0 = any free port).")
    stale_after_s: float = Field(10.0, gt=0, le=DAY, description="/healthz turns 503 when the "
                                                         "inference loop made no progress "
                                                         "for this long.")
    no_frames_after_s: float = Field(60.0, gt=0, le=DAY, description="/healthz turns 503 when "
                                     "no camera has delivered a frame for this long.")


class HomeAssistantConfig(_Strict):
    enabled: bool = Field(False, description="Publish Home Assistant MQTT discovery configs.")
    prefix: str = Field("homeassistant", max_length=1024,
                        description="Home Assistant's discovery prefix.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if problem := topic_problem(value, "prefix"):
            raise ValueError(problem)
        return value


class SnapshotConfig(_Strict):
    enabled: bool = Field(True, description="A JPEG on every state change: retained on "
                                            "<root>/<camera>/snapshot (and per region) and kept "
                                            "in <state_dir>/snapshots.")
    max_width: int = Field(640, ge=32, le=7680, description="Larger frames are scaled down to this.")
    quality: int = Field(80, ge=10, le=100, description="JPEG quality.")
    min_interval_s: float = Field(2.0, ge=0, le=DAY, description="At most one snapshot per "
                                                                  "camera this often.")
    keep_files: int = Field(200, ge=0, le=100_000, description="Snapshots kept on disk "
                                                               "(oldest dropped); 0 = none.")
    keep_mb: float = Field(50.0, ge=0, le=100_000, description="Disk the kept snapshots may use.")


class HardExamplesConfig(_Strict):
    enabled: bool = Field(False, description="Keep frames the model was unsure about in "
                                             "<state_dir>/hard/<label>/, to relabel and retrain.")
    below_score: float = Field(0.5, ge=0, le=1, description="Keep a frame whose top score is "
                                                            "below this.")
    flip_s: float = Field(3.0, ge=0, le=DAY, description="Keep the frame of a label that "
                                                         "flips back within this long.")
    min_interval_s: float = Field(5.0, ge=0, le=DAY, description="At most one low-score frame "
                                                                 "per camera region this often.")
    quality: int = Field(95, ge=10, le=100, description="JPEG quality.")
    keep_files: int = Field(1000, ge=0, le=1_000_000, description="Images kept (oldest dropped).")
    keep_mb: float = Field(500.0, ge=0, le=1_000_000, description="Disk they may use.")


class RolloutConfig(_Strict):
    """A changed model file found by a reload: built, shadowed on live frames, then promoted
    or rejected; watched after promotion and rolled back when it misbehaves."""

    enabled: bool = Field(True, description="Roll a changed model out on reload; false: "
                          "engine changes wait for the next restart.")
    min_frames: int = Field(50, ge=1, le=1_000_000, description="Frames compared in shadow "
                            "before the verdict.")
    min_agreement: float = Field(0.95, ge=0, le=1, description="Top-1 agreement with the "
                                 "current model needed for promotion.")
    max_latency_ratio: float = Field(1.5, gt=0, le=1000, description="The candidate may be "
                                     "at most this times slower than the current model, timed "
                                     "back to back on the same frames (median of the pairs; a "
                                     "rejection needs it proven on max(2 x min_frames, 20) "
                                     "pairs).")
    check_images: str | None = Field(None, description="Labelled image folder (one sub-folder "
                                     "per label): the gate when the label sets differ.")
    min_accuracy: float = Field(0.9, ge=0, le=1, description="Top-1 on check_images needed "
                                "when the label sets differ.")
    watch_s: float = Field(300.0, ge=0, le=DAY, description="After promotion, compare with "
                           "the previous model for this long, and roll back on engine errors "
                           "or when it is proven slower.")
    shadow_every: int = Field(10, ge=1, le=10_000, description="With no spare time between "
                              "frames, shadow one classification in this many.")

    @field_validator("check_images")
    @classmethod
    def _check_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = _resolve(value, info)
        if not path.is_dir():
            raise ValueError(f"check_images is not a folder: {path}")
        return str(path)


def dla_twins(engines: list[EngineRung]) -> dict[int, int]:
    """Rung index -> index of its DLA build: a later entry with the same model and dla_core
    set (used by the dla lever; the rung lever then steps over those entries)."""
    twins: dict[int, int] = {}
    for i, rung in enumerate(engines):
        if rung.dla_core is not None:
            continue
        for j, other in enumerate(engines):
            if other.dla_core is not None and other.model == rung.model and j not in \
                    twins.values():
                twins[i] = j
                break
    return twins


class DeviceConfig(_Strict):
    device_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=NAME_MAX,
                           description="Unique name of this device.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Broker connection.")
    engines: list[EngineRung] = Field(min_length=1, description="Engine ladder, primary first.")
    state_dir: ConfigPath = Field("/var/lib/edgeswin", description="Engine cache, timing "
                                  "cache, outbox, model store, snapshots, control socket.")
    stats_interval_s: float = Field(30.0, gt=0, le=DAY, description="How often <root>/stats is published.")
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig,
                                      description="Pictures of state changes.")
    hard_examples: HardExamplesConfig = Field(default_factory=HardExamplesConfig,
                                              description="Frames to relabel and retrain on.")
    fallback: FallbackConfig = Field(default_factory=FallbackConfig,
                                     description="When to step down/up the engine ladder.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig,
                                   description="Prometheus endpoint (off by default).")
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig,
                                               description="Home Assistant MQTT discovery.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig,
                                   description="How a changed model takes over (on reload).")
    power: PowerConfig = Field(default_factory=PowerConfig,
                               description="Power rails, GPU load and nvpmodel mode to report.")
    opencv_threads: int | None = Field(
        1, ge=1, le=256,
        description="Threads of OpenCV's own parallel loops (resize, colour conversion); "
                    "null leaves OpenCV's default, one per core.")

    @field_validator("engines")
    @classmethod
    def _a_rung_can_serve_here(cls, engines: list[EngineRung]) -> list[EngineRung]:
        # One usable rung is enough to start (the others wait for a build or step aside);
        # none usable stops `run`, so it stops `check` on the machine that runs it.
        needs_trt = [backend_for(Path(r.model), r.backend) == "tensorrt" for r in engines]
        if all(needs_trt) and importlib.util.find_spec("tensorrt") is None:
            raise ValueError("every rung needs TensorRT, which this Python cannot import: "
                             "add an .onnx rung on onnxruntime, or run where TensorRT is "
                             "installed (JetPack's python3-libnvinfer)")
        return engines

    @field_validator("fallback")
    @classmethod
    def _fallback_fits_the_ladder(cls, value: FallbackConfig,
                                  info: ValidationInfo) -> FallbackConfig:
        earlier = _earlier(info, "engines")
        if earlier is None:
            return value
        engines = earlier[0]
        if value.pinned_rung is not None and value.pinned_rung >= len(engines):
            raise At("pinned_rung", f"pinned_rung {value.pinned_rung} but the ladder has "
                                    f"{len(engines)} rung(s)")
        if "dla" in value.levers and not dla_twins(engines):
            raise At("levers", "levers has dla but no rung has a DLA build: add an engines "
                               "entry with the same model and dla_core set")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics_can_serve(cls, value: MetricsConfig) -> MetricsConfig:
        if value.enabled and importlib.util.find_spec("prometheus_client") is None:
            raise At("enabled", "metrics need prometheus-client, which this Python cannot "
                                f"import: {Path(sys.prefix) / 'bin' / 'pip'} install "
                                "'prometheus-client>=0.16' (or set metrics.enabled: false)")
        return value

    @property
    def topic_root(self) -> str:
        return self.mqtt.topic_root or f"edgeswin/{self.device_id}"


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from: kind is file | stream | v4l2 | gstreamer."""

    kind: str
    target: str | int  # path, URL, device index or path, or a GStreamer pipeline

    def describe(self) -> str:
        """For logs and messages: credentials in the URL or pipeline are masked."""
        return redact(f"{self.kind}:{self.target}")


NO_GST = ("this OpenCV has no GStreamer support, so a gst: source cannot open: install the "
          "system OpenCV (apt install python3-opencv; JetPack ships one) and make the venv "
          "with --system-site-packages, without the opencv-python wheel")


@functools.cache
def opencv_has_gstreamer() -> bool:
    """Whether the OpenCV this process imports was built with GStreamer (pip's wheels are
    not; the system's python3-opencv and JetPack's are)."""
    import cv2
    info = cv2.getBuildInformation()
    return any("GStreamer" in line and "YES" in line for line in info.splitlines())


def parse_source(text: str, base: Path) -> SourceSpec:
    """Turn a `source:` value into a SourceSpec, or raise ValueError saying what is accepted."""
    text = text.strip()
    if text.startswith("gst:"):
        pipeline = text[4:].strip()
        if "appsink" not in pipeline:
            raise ValueError("a gst: pipeline must end in an appsink")
        return SourceSpec("gstreamer", pipeline)
    if re.fullmatch(r"\d+", text):
        return SourceSpec("v4l2", int(text))
    parts = urlsplit(text)
    if parts.scheme in ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp"):
        if not parts.hostname:
            raise ValueError(f"stream URL has no host: {redact(text)!r}")
        return SourceSpec("stream", text)
    if parts.scheme == "v4l2" or text.startswith("/dev/video"):
        device = parts.path if parts.scheme else text
        if not re.fullmatch(r"/dev/video\d+", device):
            raise ValueError(f"not a V4L2 device path: {device!r} (expected /dev/videoN)")
        return SourceSpec("v4l2", device)
    if parts.scheme in ("file", ""):
        path = Path(parts.path if parts.scheme else text)
        path = (path if path.is_absolute() else base / path).resolve()
        if not path.is_file():
            raise ValueError(f"video file does not exist: {path}")
        return SourceSpec("file", str(path))
    raise ValueError(f"cannot parse source {redact(text)!r}: use a file path, file://, rtsp://, "
                     "http(s)://, v4l2:///dev/videoN, a device index, or gst: <pipeline>")


class Smoothing(_Strict):
    window: int = Field(1, ge=1, le=100, description="Average scores over this many inferences.")


class PublishPolicy(_Strict):
    mode: Literal["every", "change", "interval"] = Field(
        "every", description="every inference, on label change, or at most every interval_s.")
    interval_s: float = Field(1.0, gt=0, le=DAY, description="Minimum gap for mode 'interval'.")


class Reconnect(_Strict):
    initial_s: float = Field(1.0, gt=0, le=DAY, description="First wait after a failure.")
    max_s: float = Field(30.0, gt=0, le=DAY, description="Cap of the doubling wait.")


class CameraCredentials(_Strict):
    username: str = Field(min_length=1, max_length=256, description="User name for the stream.")
    password_file: ExistingFile | None = Field(None, description="File holding the password.")
    password_env: str | None = Field(None, description="Environment variable with the "
                                     "password (read by `check` in its own environment).")
    credential: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", max_length=255,
                                   description="systemd credential with the password "
                                               "(LoadCredential=NAME:FILE in the unit; "
                                               "`check` reads it where $CREDENTIALS_DIRECTORY "
                                               "is set, as in the unit's ExecStartPre).")

    @field_validator("password_env", "credential")
    @classmethod
    def _one_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        given = [k for k in ("password_file", "password_env") if info.data.get(k)]
        if given:
            raise ValueError(f"give the password one way, not {' and '.join(given)} and "
                             f"{info.field_name}")
        if info.field_name == "password_env":
            _secret_readable("camera", env=value)
        elif os.environ.get("CREDENTIALS_DIRECTORY"):
            _secret_readable("camera", credential=value)
        return value


class RegionConfig(_Strict):
    """A part of the frame classified on its own, with its own topics and seq."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=NAME_MAX,
                      description="Region name: letters, digits, _ and -; unique in the camera.")
    box: list[float] = Field(
        min_length=4, max_length=4,
        description="x0, y0, x1, y1 as fractions (0..1) of the frame width and height.")
    fps: float | None = Field(None, ge=0, le=1000,
                              description="Inferences per second; default: the camera's.")
    min_fps: float | None = Field(None, gt=0, le=1000, description="The fps lever's floor; "
                                  "default: the camera's min_fps, capped at this region's fps.")
    aspect: Literal["squash", "letterbox", "center-crop"] = Field(
        "squash", description="How the crop meets the model input: squash (stretch), letterbox "
                              "(pad) or center-crop.")
    topk: int | None = Field(None, ge=1, le=20, description="Default: the camera's.")
    threshold: float | None = Field(None, ge=0, le=1, description="Default: the camera's.")
    smoothing: Smoothing | None = Field(None, description="Default: the camera's.")
    publish: PublishPolicy | None = Field(None, description="Default: the camera's.")

    @field_validator("box")
    @classmethod
    def _box_inside_the_frame(cls, box: list[float]) -> list[float]:
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in box):
            raise ValueError(f"box {list(box)}: every value is a fraction from 0 to 1")
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {list(box)}: needs x1 > x0 and y1 > y0 (x0, y0, x1, y1)")
        return box


class CameraConfig(_Strict):
    name: str = Field(pattern=CAMERA_NAME, max_length=NAME_MAX,
                      description="Camera name (letters, digits, _ and -: it is a topic "
                                  "level, a metric label and a file name); default: the "
                                  "file name without .yaml.")
    source: str = Field(description="A video file path (relative to this file), file://, "
                                    "rtsp://, rtsps://, http(s)://, rtmp://, udp://, tcp://, "
                                    "v4l2:///dev/videoN, a device index such as 0, or gst: "
                                    "<pipeline ending in appsink>.")
    enabled: bool = Field(True, description="Set false to keep the file but not run the camera.")
    fps: float = Field(5.0, ge=0, le=1000, description="Inferences per second; 0 = every new frame.")
    decoder: Literal["auto", "ffmpeg", "gstreamer"] = Field(
        "auto", description="rtsp:// only: auto decodes on a Jetson's NVDEC through GStreamer, "
        "scaled to what the engine needs, and through FFmpeg elsewhere; ffmpeg or gstreamer "
        "(software off a Jetson) forces one.")
    min_fps: float | None = Field(None, gt=0, le=1000, description="The lowest rate the fps "
                                  "lever may lower it to when the device is hot or slow; "
                                  "default: its fps (never lowered).")
    loop: bool = Field(False, description="Files only: start again at the end.")
    realtime: bool = Field(True, description="Files only: deliver frames at the file's own rate.")
    stall_s: float = Field(10.0, gt=0, le=DAY, description="No frame for this long counts as a stall.")
    open_timeout_s: float = Field(5.0, gt=0, le=3600, description="Stream open timeout (FFmpeg/GStreamer).")
    read_timeout_s: float = Field(5.0, gt=0, le=3600, description="Stream read timeout (FFmpeg/GStreamer).")
    reconnect: Reconnect = Field(default_factory=Reconnect, description="Backoff after failures.")
    topk: int = Field(3, ge=1, le=20, description="How many classes each message lists.")
    threshold: float = Field(0.0, ge=0, le=1, description="Below this score the label is 'unknown'.")
    latency_budget_ms: float | None = Field(
        None, gt=0, le=DAY * 1000, description="p95 capture-to-publish budget of this camera; over it for "
                                "fallback.hold_s steps the ladder down. None = no limit.")
    credentials: CameraCredentials | None = Field(
        None, description="User and password for an rtsp:// or http(s):// source, kept out of "
                          "the URL (and so out of logs and messages).")
    smoothing: Smoothing = Field(default_factory=Smoothing, description="Temporal smoothing.")
    publish: PublishPolicy = Field(default_factory=PublishPolicy, description="When to publish.")
    regions: list[RegionConfig] | None = Field(
        None, min_length=1, max_length=64,
        description="Parts of the frame classified on their own; none: the whole frame.")

    @field_validator("regions")
    @classmethod
    def _regions_fit(cls, regions: list[RegionConfig] | None, info: ValidationInfo):
        names = [r.name for r in regions or ()]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise At(f"{i}.name", f"region name {name} used more than once")
        earlier = _earlier(info, "fps")
        for i, region in enumerate(regions or ()):
            fps = region.fps if region.fps is not None else (earlier or (None,))[0]
            if region.min_fps is not None and fps is not None and 0 < fps < region.min_fps:
                raise At(f"{i}.min_fps", f"min_fps {region.min_fps:g} is above the region's "
                                         f"fps {fps:g}: the fps lever only lowers the rate")
        return regions

    def for_region(self, region: RegionConfig) -> CameraConfig:
        """This camera's settings with the region's overrides (what postprocessing reads)."""
        update = {k: getattr(region, k) for k in ("topk", "threshold", "smoothing", "publish")
                  if getattr(region, k) is not None}
        if region.fps is not None:
            update["fps"] = region.fps
        fps = update.get("fps", self.fps)
        floor = region.min_fps if region.min_fps is not None else self.min_fps
        if region.min_fps is None and floor is not None and fps > 0:
            floor = min(floor, fps)
        update["min_fps"] = floor
        return self.model_copy(update=update)

    @field_validator("source", mode="before")
    @classmethod
    def _index_is_a_source(cls, value: Any) -> Any:
        # YAML reads `source: 0` as an integer: a device index, as documented.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10_000:
            return str(value)
        return value

    @field_validator("source")
    @classmethod
    def _source_parses(cls, value: str, info: ValidationInfo) -> str:
        if "\x00" in value:
            raise ValueError("source holds a NUL character")
        parse_source(value, Path(info.context["base"]) if info.context else Path.cwd())
        return value

    @field_validator("decoder")
    @classmethod
    def _decoder_fits_the_source(cls, value: str, info: ValidationInfo) -> str:
        earlier = _earlier(info, "source")
        if value == "gstreamer" and earlier is not None and \
                urlsplit(earlier[0].strip()).scheme not in ("rtsp", "rtsps"):
            raise ValueError("decoder: gstreamer is for rtsp:// sources (a gst: source is a "
                             "pipeline of its own)")
        return value

    @field_validator("min_fps")
    @classmethod
    def _min_fps_below_fps(cls, value: float | None, info: ValidationInfo) -> float | None:
        earlier = _earlier(info, "fps")
        if value is not None and earlier is not None and 0 < earlier[0] < value:
            raise ValueError(f"min_fps {value:g} is above fps {earlier[0]:g}: the fps lever "
                             f"only lowers the rate")
        return value

    @field_validator("credentials")
    @classmethod
    def _credentials_fit_the_source(cls, value: CameraCredentials | None,
                                    info: ValidationInfo) -> CameraCredentials | None:
        earlier = _earlier(info, "source")
        if value is None or earlier is None:
            return value
        parts = urlsplit(earlier[0].strip())
        if parts.scheme not in ("rtsp", "rtsps", "http", "https", "rtmp"):
            raise ValueError("only for rtsp://, http(s):// and rtmp:// sources (a gst: "
                             "pipeline sets them on its source element)")
        if "@" in parts.netloc:
            raise ValueError("the source URL already holds a user; keep it in one place")
        return value

    def source_spec(self, base: Path) -> SourceSpec:
        return parse_source(self.source, base)


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


# --- YAML with line numbers -------------------------------------------------------------

def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path to the 1-based line where its value (or key) starts."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (key.value,)
            out[sub] = key.start_mark.line + 1
            _line_map(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def _duplicate_keys(node: yaml.Node, path: tuple = ()) -> list[tuple[tuple, int]]:
    found: list[tuple[tuple, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append((path + (key.value,), key.start_mark.line + 1))
            seen.add(key.value)
            found += _duplicate_keys(value, path + (key.value,))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, path + (i,))
    return found


def _read_text(path: Path) -> str:
    """A config file's text; _Unreadable(line, message) for what is not a small UTF-8 file."""
    try:
        raw = read_small(path, MAX_FILE_BYTES)
    except NotASmallFile as exc:
        raise _Unreadable(1, str(exc)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise _Unreadable(line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                                f"{exc.start})") from None


class _Unreadable(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _bounded(root: yaml.Node) -> None:
    """Refuse trees too deep to walk or, with aliases expanded, too large to build. An alias
    is a shared node: each is measured once, so a "billion laughs" costs a few thousand steps."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, expanded height)
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        line = node.start_mark.line + 1
        if children_done:
            open_nodes.discard(id(node))
            kids = [measured[id(c)] for c in _children(node)]
            size = 1 + sum(k[0] for k in kids)
            height = 1 + max((k[1] for k in kids), default=0)
            if size > MAX_NODES:
                raise _Unreadable(line, f"expands to more than {MAX_NODES:,} values "
                                        "(aliases of aliases?): refused")
            if height > MAX_NESTING:
                raise _Unreadable(line, f"nested more than {MAX_NESTING} levels deep: refused")
            measured[id(node)] = (size, height)
            continue
        if id(node) in measured:
            continue
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise _Unreadable(key.start_mark.line + 1,
                                      "a key must be a plain name, not a list or mapping")
        elif (isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG
              and len(node.value) > MAX_INT_DIGITS):
            raise _Unreadable(line, f"a number of {len(node.value)} digits: refused")
        if id(node) in open_nodes:
            raise _Unreadable(line, "an alias refers to a node that contains it: refused")
        if len(open_nodes) > MAX_NESTING:
            raise _Unreadable(line, f"nested more than {MAX_NESTING} levels deep: refused")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in measured)


def _read_yaml(path: Path, issues: list[ConfigIssue]) -> tuple[Any, dict[tuple, int]] | None:
    try:
        text = _read_text(path)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _bounded(node)  # before anything walks it or builds Python objects from it
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except OSError as exc:
        issues.append(ConfigIssue(str(path), 0, "", f"cannot read: {exc.strerror}"))
        return None
    except _Unreadable as exc:
        issues.append(ConfigIssue(str(path), exc.line, "", exc.message))
        return None
    except (ValueError, TypeError) as exc:  # a value PyYAML cannot build, past our checks
        issues.append(ConfigIssue(str(path), 1, "", f"cannot read a value: {exc}"))
        return None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        issues.append(ConfigIssue(str(path), 1, "", f"nested more than {MAX_NESTING} levels "
                                                    "deep: refused"))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        issues.append(ConfigIssue(str(path), line, "", f"malformed YAML: {problem}"))
        return None
    if node is None:
        return {}, {(): 1}
    for key_path, line in _duplicate_keys(node):
        issues.append(ConfigIssue(str(path), line, ".".join(map(str, key_path)), "duplicate key"))
    return data, _line_map(node)


def read_config_file(path: Path) -> Any:
    """One config file's data, read with the same bounds as `load_config` (size, FIFO,
    nesting, alias expansion); None when it cannot be read (`load_config` says why)."""
    parsed = _read_yaml(path, [])
    return parsed[0] if parsed is not None else None


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
