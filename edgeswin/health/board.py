"""Every camera's health judge, fed after classifications (on the finisher's thread, or the
loop's), at most one frame every JUDGE_EVERY_S of the camera's clock.

Hands on the retained `<root>/<camera>/health` payload (QoS 1) when a camera is first judged
and on every change, and the problems now raised for metrics and Home Assistant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import CameraEntry, HealthConfig
from ..config.health import effective
from ..records import Frame
from .judge import KINDS, CameraJudge, Problem
from .signals import measure

JUDGE_EVERY_S = 0.5  # of the camera's clock: two frames a second at most


@dataclass
class _Camera:
    entry: CameraEntry
    judge: CameraJudge | None  # None: health is off for this camera
    next_at: float = float("-inf")
    loops: float = 0.0  # video time of the loops before this one (a looping file)
    last_clock: float = 0.0
    problems: tuple[Problem, ...] = ()
    said: bool = False


class HealthBoard:
    def __init__(self, device: HealthConfig, root: str, iso: Callable[[float], str]):
        self.device, self.root, self.iso = device, root, iso
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()  # the metrics thread reads `problems()`

    def after(self, entry: CameraEntry, frame: Frame, source_fps: float | None
              ) -> dict | None:
        """The health payload to publish when this frame changed something, else None."""
        cam = self._cameras.get(entry.config.name)
        if cam is None or cam.entry is not entry:  # new, or changed by a reload: learn afresh
            cfg = effective(self.device, entry.config.health)
            cam = self._cameras[entry.config.name] = _Camera(
                entry, CameraJudge(cfg) if cfg.enabled else None)
        if cam.judge is None:
            return None
        clock = self._clock(cam, entry, frame, source_fps)
        if clock < cam.next_at:
            return None
        cam.next_at = clock + JUDGE_EVERY_S
        changed, problems = cam.judge.judge(measure(frame.image), clock, frame.wall_ts,
                                            frame.index)
        if not changed and cam.said:
            return None
        with self._lock:
            cam.problems, cam.said = tuple(problems), True
        return {"camera": entry.config.name, "ok": not problems,
                "problems": [p.as_dict(self.iso) for p in problems],
                "ts": self.iso(time.time()), "frame_index": frame.index}

    def problems(self) -> dict[str, dict[str, bool]]:
        """camera -> kind -> raised now, for every camera judged so far."""
        with self._lock:
            return {name: {k: any(p.kind == k for p in cam.problems) for k in KINDS}
                    for name, cam in self._cameras.items() if cam.judge is not None}

    def forget(self, names: set[str]) -> None:
        """Cameras gone by reload: no judge, no metric."""
        with self._lock:
            for name in names:
                self._cameras.pop(name, None)

    @staticmethod
    def _clock(cam: _Camera, entry: CameraEntry, frame: Frame, fps: float | None) -> float:
        """The video's own time for a file read as fast as it decodes (every duration then
        counts the video's seconds, however fast it is read), the time of capture otherwise."""
        if entry.source.kind != "file" or entry.config.realtime or not fps:
            return frame.mono_ts
        clock = cam.loops + frame.index / fps
        if clock < cam.last_clock:  # the file started again
            cam.loops = cam.last_clock + 1 / fps
            clock = cam.loops + frame.index / fps
        cam.last_clock = clock
        return clock
