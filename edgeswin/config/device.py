"""`edgeswin.yaml` as a whole: the device-wide settings and the sections they hold."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from .canary import CanaryConfig
from .engines import EngineRung, backend_for, dla_twins
from .fallback import FallbackConfig, PowerConfig
from .fields import DAY, NAME_MAX, At, ConfigPath, _earlier, _Strict
from .fleet import FleetConfig
from .health import HealthConfig
from .mqtt import MqttConfig
from .outputs import HardExamplesConfig, HomeAssistantConfig, MetricsConfig, SnapshotConfig
from .rollout import RolloutConfig


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
    health: HealthConfig = Field(default_factory=HealthConfig,
                                 description="Camera health: covered, frozen, blurred, moved, "
                                             "drift (a camera file's own health: keys win).")
    canary: CanaryConfig = Field(default_factory=CanaryConfig,
                                 description="Known images through the serving engine now and "
                                             "then: <root>/canary.")
    fleet: FleetConfig = Field(default_factory=FleetConfig,
                               description="Signed desired state from the broker (local only).")
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
