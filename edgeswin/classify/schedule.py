"""Which (camera, region) is classified next: earliest deadline first over every region of
every camera that has a frame it has not classified yet and whose turn has come.

Hands the loop `next_job()`: a (camera, region, frame) or None, and how long to wait. Pure
apart from reading each capture's newest frame, so it runs under a fake clock in tests. Also
holds the per-camera and per-region state the loop keeps (cadence, seq, last frame taken).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..capture.camera import Capture
from ..config import CameraConfig, CameraEntry, RegionConfig
from ..records import Frame
from .postprocess import CameraPostprocessor, PublishGate
from .stats import CameraStats


@dataclass
class RegionRuntime:
    """One unit of work: a region of a camera, or the whole frame (name None) of a camera
    without regions. Its own cadence, smoothing, publish policy, seq and state."""

    name: str | None
    config: RegionConfig | None
    settings: CameraConfig  # the camera's, with the region's overrides
    post: CameraPostprocessor
    gate: PublishGate
    stats: CameraStats
    next_due: float = 0.0
    last_seq: int = 0  # capture seq of the last frame it classified: never one twice
    seq: int = 0  # published classification counter
    state_label: str | None = None
    warned_small: bool = False
    fps: float = -1.0  # the rate now: the configured one, or lower while the fps lever is down

    def __post_init__(self) -> None:
        if self.fps < 0:
            self.fps = self.settings.fps

    @property
    def period(self) -> float:
        return 1.0 / self.fps if self.fps > 0 else 0.0


@dataclass
class CameraRuntime:
    """Everything the loop keeps per camera; `stats` counts every classification of it."""

    entry: CameraEntry
    capture: Capture
    regions: list[RegionRuntime]
    stats: CameraStats = field(default_factory=CameraStats)
    read_mark: tuple[float, int] = (0.0, 0)  # (time, frames_read) at the last stats message
    frames_used: int = 0  # frames classified at least once (by any region)
    last_frame_seq: int = 0

    @property
    def name(self) -> str:
        return self.entry.config.name

    @property
    def skipped(self) -> int:
        """Frames read but not classified: a newer one was taken instead."""
        return max(self.capture.frames_read - self.frames_used, 0)

    def taken(self, frame: Frame) -> None:
        """`frame` is being classified (by one of its regions, maybe not the first)."""
        if frame.seq != self.last_frame_seq:
            self.last_frame_seq = frame.seq
            self.frames_used += 1


def region_runtimes(cfg: CameraConfig, labels: tuple[str, ...],
                    camera_stats: CameraStats) -> list[RegionRuntime]:
    """The camera's units of work: one per region, or the whole frame sharing the camera's
    stats (so a camera without regions counts exactly as before)."""
    if not cfg.regions:
        return [RegionRuntime(None, None, cfg, CameraPostprocessor(cfg, labels),
                              PublishGate(cfg), camera_stats)]
    out = []
    for region in cfg.regions:
        settings = cfg.for_region(region)
        out.append(RegionRuntime(region.name, region, settings,
                                 CameraPostprocessor(settings, labels), PublishGate(settings),
                                 CameraStats()))
    return out


def next_job(cameras: list[CameraRuntime], now: float
             ) -> tuple[tuple[CameraRuntime, RegionRuntime, Frame] | None, float]:
    """The (camera, region, newest frame) with the earliest deadline among those whose turn
    has come and that have a frame they have not classified; else None and how long until
    the next turn (at most 0.5 s)."""
    best: tuple[CameraRuntime, RegionRuntime, Frame] | None = None
    wait = 0.5
    for cam in cameras:
        frame = cam.capture.latest()
        if frame is None:
            continue
        for region in cam.regions:
            if frame.seq == region.last_seq:
                continue
            if region.next_due > now:
                wait = min(wait, region.next_due - now)
                continue
            if best is None or region.next_due < best[1].next_due:
                best = (cam, region, frame)
    return best, wait


def served(region: RegionRuntime, now: float) -> None:
    """Set the region's next turn after a classification at `now`."""
    if region.period:
        # Keep the cadence, but after a long gap start afresh instead of bursting to catch up.
        region.next_due = max(region.next_due + region.period, now - region.period)
    else:
        # fps 0: due again at once, but behind every region served less recently, so regions
        # that always have a new frame take turns instead of the first one winning.
        region.next_due = now


def governed_fps(settings: CameraConfig, level: int, steps: int) -> float:
    """The rate at fps-lever `level` of `steps`: from `fps` (level 0) in equal steps down to
    `min_fps`. An `fps: 0` camera (every frame) has no rate to step from: `min_fps` from the
    first step. Without a `min_fps`, the rate never changes."""
    fps, floor = settings.fps, settings.min_fps
    if level <= 0 or floor is None:
        return fps
    if fps == 0:
        return floor
    return fps - (fps - floor) * min(level, steps) / steps


def fps_adjustable(cameras: list[CameraRuntime]) -> bool:
    """Whether the fps lever would change any region's rate."""
    return settings_adjustable(r.settings for cam in cameras for r in cam.regions)


def settings_adjustable(units: Iterable[CameraConfig]) -> bool:
    """Whether the fps lever would change the rate of any of these units' settings."""
    return any(governed_fps(s, 1, 1) != s.fps for s in units)


def set_fps_level(cameras: list[CameraRuntime], level: int, steps: int) -> None:
    """Every region's rate at fps-lever `level`; its next turn follows the new cadence."""
    for cam in cameras:
        for region in cam.regions:
            region.fps = governed_fps(region.settings, level, steps)
