"""Every camera's health judge, fed after classifications (on the finisher's thread, or the
loop's), at most one frame every JUDGE_EVERY_S of the camera's clock.

Every classification's answer counts toward drift (`CameraJudge.answer`); frames are judged at
most every JUDGE_EVERY_S. What a camera learns (its normal, its drift baseline) is kept in
`<state_dir>/health/` (`store`) and read back when the camera starts again.

Hands on the retained `<root>/<camera>/health` payload (QoS 1) when a camera is first judged
and on every change, and the problems now raised for metrics, Home Assistant, snapshots and
hard examples.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import CameraEntry, HealthConfig
from ..config.health import KINDS, effective
from ..process.control import Request
from ..records import Frame
from .judge import CameraJudge, Problem
from .signals import measure
from .store import LearnedStore

log = logging.getLogger(__name__)

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
    def __init__(self, device: HealthConfig, root: str, iso: Callable[[float], str],
                 state_dir: Path | None = None):
        self.device, self.root, self.iso = device, root, iso
        self.store = LearnedStore(state_dir)
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()  # the metrics thread reads `problems()`

    def after(self, entry: CameraEntry, frame: Frame, source_fps: float | None,
              answer: tuple[str, float, str] | None = None) -> dict | None:
        """The health payload to publish when this frame changed something, else None.
        `answer`: (label, top score, engine) of the classification, counted for drift."""
        cam = self._cameras.get(entry.config.name)
        if cam is None or cam.entry is not entry:  # new, or changed by a reload
            cam = self._cameras[entry.config.name] = self._start(entry)
        if cam.judge is None:
            return None
        clock = self._clock(cam, entry, frame, source_fps)
        if answer is not None:
            cam.judge.answer(clock, *answer)
        if clock < cam.next_at:
            return None
        cam.next_at = clock + JUDGE_EVERY_S
        changed, problems = cam.judge.judge(measure(frame.image), clock, frame.wall_ts,
                                            frame.index)
        if cam.judge.learned_now:
            cam.judge.learned_now = False
            self.store.save(entry.config.name, str(entry.source.target), cam.judge.normal,
                            cam.judge.drift.baseline if cam.judge.drift else None)
        if not changed and cam.said:
            return None
        with self._lock:
            cam.problems, cam.said = tuple(problems), True
        return {"camera": entry.config.name, "ok": not problems,
                "problems": [p.as_dict(self.iso) for p in problems],
                "ts": self.iso(time.time()), "frame_index": frame.index}

    def _start(self, entry: CameraEntry) -> _Camera:
        """A judge with what this camera learned before, if its source is the same."""
        cfg = effective(self.device, entry.config.health)
        if not cfg.enabled:
            return _Camera(entry, None)
        normal, baseline = self.store.load(entry.config.name, str(entry.source.target))
        return _Camera(entry, CameraJudge(cfg, normal, baseline))

    def relearn(self, names: list[str] | None) -> list[str]:
        """Forget what these cameras (None: every one) learned; each learns afresh from its
        next frame. Called between two frames, with nothing of theirs being judged."""
        with self._lock:
            chosen = list(self._cameras) if names is None else \
                [n for n in names if n in self._cameras]
            for name in chosen:
                self.store.forget(name)
                cam = self._cameras.pop(name)
                self._cameras[name] = self._start(cam.entry)
                self._cameras[name].problems = cam.problems  # said until judged again
        return chosen

    def relearn_asked(self, request: Request, running: set[str]) -> None:
        """`edgeswin relearn [CAMERA ...]` through the control socket."""
        names = request.args.get("cameras")  # None: every camera
        if names is not None and not (isinstance(names, list) and
                                      all(isinstance(n, str) for n in names)):
            names = [repr(names)]
        unknown = sorted(set(names or ()) - running)
        if unknown:
            request.reply(False, f"no such camera: {', '.join(unknown)} (running: "
                                 f"{', '.join(sorted(running))})")
            return
        done = self.relearn(names)
        log.info("health: learning afresh for %s (asked)", ", ".join(done) or "no camera")
        request.reply(True, f"learning afresh: {', '.join(done) or 'no camera judged yet'}")

    def drifting(self, camera: str) -> bool:
        cam = self._cameras.get(camera)
        return cam is not None and any(p.kind == "drift" for p in cam.problems)

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
