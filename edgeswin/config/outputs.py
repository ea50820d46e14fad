"""The sections for what the daemon hands on beside classifications: `metrics:`,
`homeassistant:`, `snapshots:` and `hard_examples:`."""

from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
)

from .fields import DAY, _Strict, topic_problem


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
    live_every_s: float = Field(2.0, ge=0, le=DAY, description="While a board asks for them "
                                "(edgeswin watch --web open), each camera's picture this often "
                                "on <root>/<camera>/picture (not retained, not kept); 0 = never.")


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
    during_drift: bool = Field(True, description="While a camera's health says `drift`, keep "
                               "its frames below `below_score` even when `enabled` is false.")
    keep_files: int = Field(1000, ge=0, le=1_000_000, description="Images kept (oldest dropped).")
    keep_mb: float = Field(500.0, ge=0, le=1_000_000, description="Disk they may use.")
