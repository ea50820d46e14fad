"""What a camera's health learned, kept across restarts: `<state_dir>/health/<camera>.json`
with its normal (contrast, sharpness, the reference view) and its drift baseline.

Kept with a digest of the camera's source (never the source itself: it may hold a password):
a camera pointed elsewhere learns afresh. A file that cannot be read as one of these is said
once and learned afresh; a disk that cannot take it costs the keeping only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..files import NotASmallFile, read_small, write_whole
from .drift import Baseline
from .judge import Normal

log = logging.getLogger(__name__)

LIMIT = 1_000_000  # bytes: a kept file is about 20 kB


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class LearnedStore:
    def __init__(self, state_dir: Path | None):
        self.dir = Path(state_dir) / "health" if state_dir is not None else None

    def load(self, camera: str, source: str) -> tuple[Normal | None, Baseline | None]:
        """What was learned for this camera and this source, or (None, None)."""
        path = self._path(camera)
        if path is None or not path.exists():
            return None, None
        try:
            d = json.loads(read_small(path, LIMIT))
            if d.get("source") != source_digest(source):
                log.info("camera %s: its source changed since its normal was learned: "
                         "learning afresh", camera, extra={"CAMERA": camera})
                return None, None
            normal = Normal.from_dict(d["normal"]) if d.get("normal") else None
            baseline = Baseline.from_dict(d["drift"]) if d.get("drift") else None
        except (OSError, NotASmallFile, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("camera %s: %s is not a health record this daemon wrote (%s): learning "
                        "afresh", camera, path, exc, extra={"CAMERA": camera})
            return None, None
        return normal, baseline

    def save(self, camera: str, source: str, normal: Normal | None,
             baseline: Baseline | None) -> None:
        path = self._path(camera)
        if path is None:
            return
        record = {"camera": camera, "source": source_digest(source),
                  "normal": normal.as_dict() if normal else None,
                  "drift": baseline.as_dict() if baseline else None}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, json.dumps(record).encode())
        except OSError as exc:
            log.warning("camera %s: what its health learned is not kept (%s): it is learned "
                        "again after a restart", camera, exc.strerror or exc,
                        extra={"CAMERA": camera})

    def forget(self, camera: str) -> bool:
        """Drop what was kept; True when there was something."""
        path = self._path(camera)
        try:
            path.unlink()
            return True
        except (OSError, AttributeError):
            return False

    def _path(self, camera: str) -> Path | None:
        # Camera names are checked by config (letters, digits, - and _), so they name files.
        return self.dir / f"{camera}.json" if self.dir is not None else None
