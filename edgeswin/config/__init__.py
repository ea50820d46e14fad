"""Configuration: `edgeswin.yaml` (device-wide) plus `cameras/*.yaml` (one file per camera).

Hands on a validated `Config` (`load_config`). Every key is checked by strict pydantic models,
one module per section (`mqtt`, `engines`, `fallback`, `outputs`, `rollout`, `health`,
`canary`, `fleet`, `device`, `cameras`, built from `fields`); every problem in every file is
collected and raised at once as a `ConfigError` whose lines read `file:line: key.path: message`
(`reading` keeps the lines, `load` collects). Relative paths are resolved against the file they
appear in. A fleet's applied bundle is an overlay over the directory (`load_config(overlay=)`).
Secrets are read by `credentials`, never from the YAML.
"""

from .cameras import (
    CameraConfig,
    CameraCredentials,
    PublishPolicy,
    Reconnect,
    RegionConfig,
    Smoothing,
    SourceSpec,
    opencv_has_gstreamer,
    parse_source,
)
from .canary import CanaryConfig
from .device import DeviceConfig
from .engines import EngineRung, backend_for, dla_twins
from .fallback import FallbackConfig, PowerConfig
from .fields import CAMERA_DIR, CAMERA_SUFFIXES, DEVICE_FILE
from .fleet import FleetConfig
from .health import HealthConfig
from .load import CameraEntry, Config, load_config
from .mqtt import MqttConfig, TlsConfig
from .outputs import HardExamplesConfig, HomeAssistantConfig, MetricsConfig, SnapshotConfig
from .reading import read_config_file
from .rollout import RolloutConfig

__all__ = [
    "CAMERA_DIR", "CAMERA_SUFFIXES", "DEVICE_FILE", "CameraConfig", "CanaryConfig", "CameraCredentials",
    "CameraEntry", "Config", "DeviceConfig", "EngineRung", "FallbackConfig", "FleetConfig",
    "HardExamplesConfig", "HealthConfig", "HomeAssistantConfig", "MetricsConfig", "MqttConfig", "PowerConfig",
    "PublishPolicy", "Reconnect", "RegionConfig", "RolloutConfig", "SnapshotConfig",
    "Smoothing", "SourceSpec", "TlsConfig", "backend_for", "dla_twins", "load_config",
    "opencv_has_gstreamer", "parse_source", "read_config_file",
]
