"""Snapshots: the picture behind a state change. Hands the loop MQTT messages (a JPEG of the
frame with every region's box, label and score drawn, retained on `<root>/<camera>/snapshot`,
and the changed region's crop on `<root>/<camera>/<region>/snapshot`) and keeps the same
images in a bounded folder, `<state_dir>/snapshots/<camera>/`.

At most one per camera per `min_interval_s`: changes inside that interval are shown by the
camera's next classification after it, with a crop for every region that changed. A full or
read-only disk costs the folder only, with one warning, never a classification.

While a board is open (`edgeswin watch --web` sends `<root>/watching` every few seconds), each
camera's frame with its boxes and labels is also sent every `live_every_s` on
`<root>/<camera>/picture`: not retained, not kept on disk, and nothing when no one watches.

When a camera's health raises a problem, the frame that raised it with the problems drawn on it
(a red frame, each kind and why) is retained on `<root>/<camera>/health/snapshot` and kept as
`<stamp>-health.jpg`, whatever the interval.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np

from ..classify.schedule import CameraRuntime, RegionRuntime
from ..config import SnapshotConfig
from ..files import write_whole
from ..prepare.preprocess import crop
from ..records import Frame
from ..topics import unit_of
from .message import Message, topic_message

WATCH_S = 10.0  # how long a request for live pictures holds when it says nothing else

log = logging.getLogger(__name__)

GREEN, WHITE, BLACK, RED = (60, 200, 60), (255, 255, 255), (0, 0, 0), (40, 40, 220)


def jpeg(image: np.ndarray, max_width: int, quality: int) -> bytes:
    h, w = image.shape[:2]
    if w > max_width:
        image = cv2.resize(image, (max_width, max(int(round(h * max_width / w)), 1)),
                           interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the snapshot")
    return data.tobytes()


def annotate(image: np.ndarray, cam: CameraRuntime) -> np.ndarray:
    """A copy of the frame with each region's box and its current label and score (the whole
    frame's label for a camera without regions)."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(w / 1000, 0.5)
    for region in cam.regions:
        label = f"{region.state_label or '-'} {region.stats.score:.2f}"
        if region.config is None:
            x0, y0, x1, y1 = 0, 0, w - 1, h - 1
        else:
            box = region.config.box
            x0, y0 = int(box[0] * w), int(box[1] * h)
            x1, y1 = int(box[2] * w) - 1, int(box[3] * h) - 1
            label = f"{region.name}: {label}"
            cv2.rectangle(out, (x0, y0), (x1, y1), GREEN, max(int(2 * scale), 1))
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(out, (x0, y0), (x0 + tw + 6, y0 + th + base + 6), BLACK, -1)
        cv2.putText(out, label, (x0 + 3, y0 + th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE,
                    max(int(scale), 1), cv2.LINE_AA)
    return out


def annotate_problems(image: np.ndarray, problems: list[dict]) -> np.ndarray:
    """A copy of the frame in a red frame with a line per problem: its kind and why."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(w / 1000, 0.5)
    thick = max(int(6 * scale), 2)
    cv2.rectangle(out, (0, 0), (w - 1, h - 1), RED, thick)
    y = thick
    for p in problems:
        text = f"{p['kind'].upper()}: {p['detail']}"[:120]
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(out, (thick, y), (thick + tw + 6, y + th + base + 6), RED, -1)
        cv2.putText(out, text, (thick + 3, y + th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE,
                    max(int(scale), 1), cv2.LINE_AA)
        y += th + base + 8
    return out


class ImageStore:
    """JPEGs under `directory/<folder>/` (each with an optional JSON sidecar), at most
    `keep_files` images and `keep_bytes` in all, the oldest dropped first."""

    def __init__(self, directory: Path, keep_files: int, keep_bytes: int):
        self.dir = Path(directory)
        self.keep_files, self.keep_bytes = keep_files, keep_bytes
        self.degraded: str | None = None  # why the last write failed, until one succeeds

    def add(self, folder: str, name: str, data: bytes, sidecar: bytes | None = None
            ) -> Path | None:
        if self.keep_files == 0 or self.keep_bytes < len(data):
            return None
        path = self.dir / folder / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if sidecar is not None:  # first, so an image is never there without it
                write_whole(path.with_suffix(".json"), sidecar)
            write_whole(path, data)
        except OSError as exc:
            if self.degraded is None:
                log.warning("images not kept in %s: %s (classification goes on)", self.dir,
                            exc.strerror or exc)
            self.degraded = exc.strerror or str(exc)
            return None
        if self.degraded is not None:
            log.info("images are kept in %s again", self.dir)
            self.degraded = None
        self._prune()
        return path

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("*/*.jpg"), key=lambda p: (p.stat().st_mtime_ns, p.name))

    def _prune(self) -> None:
        try:
            files = self.files()
            sizes = [p.stat().st_size + _size(p.with_suffix(".json")) for p in files]
        except OSError:
            return
        total = sum(sizes)
        try:
            while files and (len(files) > self.keep_files or total > self.keep_bytes):
                total -= sizes.pop(0)
                oldest = files.pop(0)
                oldest.unlink(missing_ok=True)
                oldest.with_suffix(".json").unlink(missing_ok=True)
        except OSError as exc:  # a read-only folder: the next write says so
            log.debug("image store %s not pruned: %s", self.dir, exc)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Snapshots:
    def __init__(self, cfg: SnapshotConfig, root: str, state_dir: Path):
        self.cfg, self.root = cfg, root
        self.store = ImageStore(Path(state_dir) / "snapshots", cfg.keep_files,
                                int(cfg.keep_mb * 1e6))
        self._last: dict[str, float] = {}  # camera -> monotonic time of its last snapshot
        # camera -> its regions that changed since its last snapshot, by name
        self._pending: dict[str, dict[str | None, RegionRuntime]] = {}
        self._watched_until = 0.0  # monotonic: live pictures until then (`watched`)
        self._live_at: dict[str, float] = {}  # camera -> its last live picture

    def watched(self, topic: str, payload: bytes) -> None:
        """A board asks for live pictures for `for_s` seconds more (at most a minute; any
        payload that is not such a request counts as 10 s). On paho's thread: one float."""
        try:
            for_s = float(json.loads(payload).get("for_s", WATCH_S))
        except (ValueError, TypeError, AttributeError):
            for_s = WATCH_S
        if not math.isfinite(for_s):  # NaN would compare false with every clock: forever
            for_s = WATCH_S
        self._watched_until = time.monotonic() + min(max(for_s, 0.0), 60.0)

    def _live(self, cam: CameraRuntime, frame: Frame, now: float) -> list[Message]:
        every = self.cfg.live_every_s
        if not every or now >= self._watched_until or \
                now - self._live_at.get(cam.name, -1e18) < every:
            return []
        self._live_at[cam.name] = now
        try:
            data = jpeg(annotate(frame.image, cam), self.cfg.max_width, self.cfg.quality)
        except (ValueError, cv2.error):
            return []
        return [topic_message(self.root, "picture", data, camera=cam.name)]

    def problem(self, cam: CameraRuntime, frame: Frame, health: dict) -> list[Message]:
        """The frame that raised a health problem, the problems drawn on it."""
        if not self.cfg.enabled or not health["problems"]:
            return []
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(frame.wall_ts))
        try:
            data = jpeg(annotate_problems(frame.image, health["problems"]), self.cfg.max_width,
                        self.cfg.quality)
        except (ValueError, cv2.error) as exc:
            log.warning("camera %s: no health snapshot: %s", cam.name, exc,
                        extra={"CAMERA": cam.name})
            return []
        self.store.add(cam.name, f"{stamp}-{frame.index}-health.jpg", data)
        return [topic_message(self.root, "health_snapshot", data, camera=cam.name)]

    def after(self, cam: CameraRuntime, region: RegionRuntime, frame: Frame,
              changed: bool) -> list[Message]:
        """Called after every classification; messages to publish (none most of the time)."""
        if not self.cfg.enabled:
            return []
        if changed:
            self._pending.setdefault(cam.name, {})[region.name] = region
        pending = self._pending.get(cam.name)
        now = time.monotonic()
        live = self._live(cam, frame, now)
        if not pending or now - self._last.get(cam.name, -1e18) < self.cfg.min_interval_s:
            return live
        del self._pending[cam.name]
        self._last[cam.name] = now
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(frame.wall_ts)) + \
            f"{frame.wall_ts % 1:.3f}"[1:].replace(".", "-")
        try:
            whole = jpeg(annotate(frame.image, cam), self.cfg.max_width, self.cfg.quality)
            out = [topic_message(self.root, "snapshot", whole, unit=cam.name)]
            self.store.add(cam.name, f"{stamp}.jpg", whole)
            current = {r.name for r in cam.regions}  # a reload may have removed one
            for changed_region in pending.values():
                if changed_region.config is None or changed_region.name not in current:
                    continue
                part = crop(frame.image, changed_region.config.box, "squash", (1, 1))
                small = jpeg(part, self.cfg.max_width, self.cfg.quality)
                out.append(topic_message(self.root, "snapshot", small,
                                   unit=unit_of(cam.name, changed_region.name)))
                self.store.add(cam.name, f"{stamp}-{changed_region.name}.jpg", small)
        except (ValueError, OSError, cv2.error) as exc:  # no picture; nothing else is lost
            log.warning("camera %s: no snapshot: %s", cam.name, exc, extra={"CAMERA": cam.name})
            return live
        return live + out
