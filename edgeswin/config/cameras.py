"""`cameras/*.yaml`: one camera a file, its source (parsed into a `SourceSpec`), regions,
smoothing, publish policy, reconnect and credentials."""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from ..topics import RESERVED_REGION_NAMES
from .credentials import redact
from .fields import CAMERA_NAME, DAY, NAME_MAX, At, ExistingFile, _earlier, _secret_readable, _Strict
from .health import HealthConfig


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
                      description="Region name: letters, digits, _ and -; unique in the camera; "
                                  "not `health` (a level of the camera's own topics).")
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
    health: HealthConfig | None = Field(None, description="This camera's own health settings, "
                                        "over edgeswin.yaml's (only the keys given).")
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
            if name in RESERVED_REGION_NAMES:
                raise At(f"{i}.name", f"region name {name} is a level of the camera's own "
                                      f"topics (<camera>/{name}/...): choose another")
        earlier = _earlier(info, "fps")
        for i, region in enumerate(regions or ()):
            fps = region.fps if region.fps is not None else (earlier or (None,))[0]
            if region.min_fps is not None and fps is not None and 0 < fps < region.min_fps:
                raise At(f"{i}.min_fps", f"min_fps {region.min_fps:g} is above the region's "
                                         f"fps {fps:g}: the fps lever only lowers the rate")
        return regions

    def units(self) -> list[CameraConfig]:
        """The settings of each unit of work: one per region, or the whole frame's."""
        return [self.for_region(r) for r in self.regions] if self.regions else [self]

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
