"""Hard examples: the frames the model was unsure about, kept to relabel and retrain on.

A classification whose top score is below `below_score`, or a label that flips and flips back
within `flip_s` (the frame of the brief label), is saved as
`<state_dir>/hard/<label>/<time>-<camera>-<region>.jpg` (the crop the model saw, at full
resolution) with a JSON sidecar (scores, engine, rung, why). `<label>` is the model's top-1,
so the folder is the labelled layout `edgeswin eval` and `edgeswin quantize` read: move the
wrong ones to the right folder and it is a dataset. Bounded like the snapshots (count and
bytes, oldest dropped); a full disk costs this feature only. Off by default, except while a
camera's health says `drift` (`during_drift`): its unsure frames are what the model meets and
was not trained on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classify.schedule import CameraRuntime, RegionRuntime
from ..config import DeviceConfig, HardExamplesConfig
from ..prepare.preprocess import crop
from ..records import Frame
from .snapshot import ImageStore, jpeg


@dataclass
class _Seen:
    """The last label change of a region, and the frame it came with (for a flip back)."""

    label: str
    before: str | None
    at: float
    image: np.ndarray | None
    payload: dict | None


class HardExamples:
    def __init__(self, cfg: HardExamplesConfig, store: ImageStore):
        self.cfg, self.store = cfg, store
        self._seen: dict[tuple[str, str | None], _Seen] = {}
        self._last_low: dict[tuple[str, str | None], float] = {}
        self._count = 0

    @classmethod
    def for_device(cls, dev: DeviceConfig) -> HardExamples:
        """The device's, kept in `<state_dir>/hard` within its bounds."""
        cfg = dev.hard_examples
        return cls(cfg, ImageStore(Path(dev.state_dir) / "hard", cfg.keep_files,
                                   int(cfg.keep_mb * 1e6)))

    def after(self, cam: CameraRuntime, region: RegionRuntime, frame: Frame,
              payload: dict, drifting: bool = False) -> int:
        """Called after every classification; returns how many images it kept."""
        drifting = drifting and self.cfg.during_drift
        if not self.cfg.enabled and not drifting:
            return 0
        key, now, kept = (cam.name, region.name), time.monotonic(), 0
        top_score = payload["topk"][0]["score"]
        if top_score < self.cfg.below_score and \
                now - self._last_low.get(key, -1e18) >= self.cfg.min_interval_s:
            self._last_low[key] = now
            kept += self._keep(cam, region, self._image(region, frame), payload,
                               f"top score {top_score:.3f} below {self.cfg.below_score}"
                               + (" while the camera drifts" if drifting else ""))
        if not self.cfg.enabled:
            return kept  # during drift: the unsure frames only
        label, seen = payload["label"], self._seen.get(key)
        if seen is None or label != seen.label:
            if seen is not None and label == seen.before and now - seen.at <= self.cfg.flip_s \
                    and seen.image is not None:
                kept += self._keep(cam, region, seen.image, seen.payload,
                                   f"{label} -> {seen.label} -> {label} within "
                                   f"{now - seen.at:.1f} s")
            self._seen[key] = _Seen(label, seen.label if seen else None, now,
                                    self._image(region, frame), payload)
        return kept

    @staticmethod
    def _image(region: RegionRuntime, frame: Frame) -> np.ndarray:
        if region.config is None:
            return frame.image
        return np.ascontiguousarray(crop(frame.image, region.config.box, "squash", (1, 1)))

    def _keep(self, cam: CameraRuntime, region: RegionRuntime, image: np.ndarray,
              payload: dict, why: str) -> int:
        label = payload["topk"][0]["label"]
        now = time.time()
        self._count += 1  # two in one millisecond still get two names
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
        name = f"{stamp}-{self._count % 1000:03d}-{cam.name}-{region.name or 'frame'}"
        sidecar = {"why": why, "camera": cam.name, "region": region.name,
                   "label": payload["label"], "score": payload["score"],
                   "topk": payload["topk"], "engine": payload["engine"],
                   "model": payload["model"], "rung": payload["rung"],
                   "frame_ts": payload["frame_ts"], "frame_index": payload["frame_index"]}
        data = jpeg(image, max(image.shape[1], 1), self.cfg.quality)
        path = self.store.add(label, f"{name}.jpg", data,
                              json.dumps(sidecar, indent=1).encode())
        return int(path is not None)
