"""A bundle on disk, as the config overlay `load_config` lays over the local directory:
`<state_dir>/fleet/staging/` while it is checked, `applied/` once taken, `last_good/` the one
before (absent: the local files alone were good), and `state.json` (what was taken and said,
for the next start).

Hands on the staged folder, the digest of what a bundle sets (`config_sha256`: the same bundle
gives the same digest on every device), and the swaps: `take` (staging -> applied, applied ->
last_good) and `revert` (last_good -> applied).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import yaml

from ..config.fields import CAMERA_DIR, DEVICE_FILE
from ..config.load import OVERLAY_REMOVED
from ..files import write_whole


def config_sha256(bundle: dict) -> str:
    body = {"config": bundle.get("config", {}), "cameras": bundle.get("cameras", {})}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


class FleetFiles:
    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "fleet"
        self.staging, self.applied = self.dir / "staging", self.dir / "applied"
        self.last_good, self.state_path = self.dir / "last_good", self.dir / "state.json"

    def stage(self, bundle: dict) -> Path:
        shutil.rmtree(self.staging, ignore_errors=True)
        (self.staging / CAMERA_DIR).mkdir(parents=True)
        if bundle.get("config"):
            write_whole(self.staging / DEVICE_FILE,
                        yaml.safe_dump(bundle["config"], sort_keys=False).encode())
        removed = []
        for name, camera in (bundle.get("cameras") or {}).items():
            if camera is None:
                removed.append(name)
            else:
                write_whole(self.staging / CAMERA_DIR / f"{name}.yaml",
                            yaml.safe_dump(camera, sort_keys=False).encode())
        write_whole(self.staging / OVERLAY_REMOVED, json.dumps(removed).encode())
        write_whole(self.staging / "bundle.json", json.dumps(bundle).encode())
        return self.staging

    def take(self) -> None:
        """The staged bundle becomes the applied one; the applied one the last good."""
        shutil.rmtree(self.last_good, ignore_errors=True)
        if self.applied.exists():
            self.applied.rename(self.last_good)
        self.staging.rename(self.applied)

    def revert(self) -> None:
        """Back to the last good overlay (none: the local files alone)."""
        shutil.rmtree(self.applied, ignore_errors=True)
        if self.last_good.exists():
            self.last_good.rename(self.applied)

    def state(self) -> dict:
        try:
            value = json.loads(self.state_path.read_text())
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_whole(self.state_path, json.dumps(state).encode())
