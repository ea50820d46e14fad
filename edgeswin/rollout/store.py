"""The models each rung has served, kept in the state dir, and which one serves now.

An OTA tool replaces a model file in place, so the file the config names is no proof of what
ran before. `ModelStore.keep()` copies a served model (its metadata sidecar, and the check images the
sidecar names, which are the canary's) to `<state_dir>/models/<sha256>/` and hands on a
`StoredModel`; `rollout.json` there records per
rung the current and previous model and the ones rejected or rolled back. A restart, a
rollback and a rejected candidate all read it. A TensorRT plan is cached by the ONNX file's
contents, so a stored copy finds the plan built for the original: a rollback builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..engine import read_model_info, sidecar_path
from ..errors import EdgeswinError
from ..files import write_whole
from ..labelled import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

REJECTED_KEPT = 8  # per rung, the newest rejected or rolled-back models not to try again
CHECK_IMAGES = "check_images"  # the stored copy's own folder of its sidecar's check images
CHECK_IMAGES_KEPT = 200  # at most this many of them (the canary reads 12 by default)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredModel:
    path: Path  # the model file to open (a stored copy, or the configured file)
    sha256: str
    source: str  # the file the config named when it was taken

    def as_dict(self) -> dict:
        return {"model": self.source, "sha256": self.sha256}

    def describe(self) -> str:
        """What serves, in words: the model's name, its SHA-256 and, for a stored copy, that it
        is one (the file the config names may hold another model by now)."""
        try:
            name = read_model_info(self.path).name
        except EdgeswinError:
            name = self.path.stem
        where = str(self.path) if Path(self.source) == self.path else \
            f"the stored copy {self.path} of what {self.source} held"
        return f"{name} (sha256 {self.sha256[:12]}, {where})"


class ModelStore:
    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "models"
        self.record_path = self.record_of(state_dir)
        self.record: dict[str, dict] = self._load()

    @staticmethod
    def record_of(state_dir: Path) -> Path:
        """Where the store records what each rung serves (read by `check` as well)."""
        return Path(state_dir) / "models" / "rollout.json"

    def _load(self) -> dict[str, dict]:
        try:
            record = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): starting a new model record", self.record_path, exc)
            return {}
        return record if isinstance(record, dict) else {}

    def save(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_whole(self.record_path, json.dumps(self.record, indent=1).encode())
        except OSError as exc:  # a full disk must not stop the rollout itself
            log.warning("cannot save %s: %s", self.record_path, exc)

    def keep(self, model: Path, sha: str | None = None) -> StoredModel:
        """A copy of `model` and its sidecar under models/<sha256>/ (made once). When the
        copy cannot be made (a full disk), the configured file serves and rollback to it
        will not be possible; that is said."""
        model = Path(model)
        sha = sha or sha256_of(model)
        folder = self.dir / sha
        copy = folder / model.name
        if copy.is_file():
            return StoredModel(copy, sha, str(model))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for src in (model, sidecar_path(model)):
                tmp = folder / f".{src.name}.tmp"
                shutil.copyfile(src, tmp)
                tmp.replace(folder / src.name)
        except OSError as exc:
            log.warning("cannot keep a copy of %s in %s (%s): a rollback to it will not be "
                        "possible", model, folder, exc)
            return StoredModel(model, sha, str(model))
        _keep_check_images(model, folder)
        return StoredModel(copy, sha, str(model))

    def stored(self, entry: dict | None) -> StoredModel | None:
        """The stored model a record entry names, if its copy is still there."""
        if not entry:
            return None
        folder = self.dir / str(entry.get("sha256", ""))
        copy = folder / Path(str(entry.get("model", ""))).name
        if entry.get("sha256") and copy.is_file() and sidecar_path(copy).is_file():
            return StoredModel(copy, entry["sha256"], entry["model"])
        return None

    def rung(self, name: str) -> dict:
        return self.record.setdefault(name, {})

    def set_current(self, name: str, model: StoredModel, previous: StoredModel | None) -> None:
        entry = self.rung(name)
        entry["current"] = model.as_dict()
        entry["previous"] = previous.as_dict() if previous else None
        self.save()
        self.prune()

    def refuse(self, name: str, model: StoredModel, reason: str) -> None:
        """Remember a rejected or rolled-back model: the same file is not tried again."""
        entry = self.rung(name)
        refused = [r for r in entry.get("refused", []) if r.get("sha256") != model.sha256]
        entry["refused"] = (refused + [{**model.as_dict(), "reason": reason}])[-REJECTED_KEPT:]
        self.save()

    def refused(self, name: str, sha: str) -> str | None:
        """Why this model was refused before, or None."""
        for item in self.record.get(name, {}).get("refused", []):
            if item.get("sha256") == sha:
                return str(item.get("reason", "refused"))
        return None

    def models_kept(self, specs: list, waiting: list[tuple[str, StoredModel]]
                    ) -> dict[str, list[Path]]:
        """Per rung name: its configured file, the stored models it serves or may roll back
        to, and the candidates `waiting` for it (engine plans worth keeping are theirs)."""
        kept: dict[str, list[Path]] = {}
        for spec in specs:
            entry = self.record.get(spec.name, {})
            stored = [self.stored(entry.get(key)) for key in ("current", "previous")]
            kept[spec.name] = [Path(spec.model)] + [m.path for m in stored if m] + [
                Path(model.path) for name, model in waiting if name == spec.name]
        return kept

    def prune(self, keep: set[str] = frozenset()) -> None:
        """Delete stored copies no rung serves or could roll back to."""
        wanted = set(keep)
        for entry in self.record.values():
            for key in ("current", "previous"):
                if entry.get(key):
                    wanted.add(entry[key].get("sha256"))
        try:
            folders = [p for p in self.dir.iterdir() if p.is_dir()]
        except OSError:
            return
        for folder in folders:
            if folder.name not in wanted:
                shutil.rmtree(folder, ignore_errors=True)


def _keep_check_images(model: Path, folder: Path) -> None:
    """The images the model's sidecar names as `check_images` (its canary), copied beside the
    stored model, and the stored sidecar pointed at the copy: a rung rolled back to this model
    after the original's folder was replaced (the next release ships other images, or none)
    still has its canary. A copy that cannot be made costs the canary only."""
    sidecar = folder / sidecar_path(model).name
    try:
        meta = json.loads(sidecar.read_text())
        named = meta.get("check_images") if isinstance(meta, dict) else None
        if not isinstance(named, str) or not named:
            return
        source = (model.parent / named).resolve()
        images = sorted(p for p in source.glob("*/*")
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            log.warning("model %s: its check_images %s holds no images: the stored copy has "
                        "no canary", model, source)
            return
        step = max(len(images) // CHECK_IMAGES_KEPT, 1)  # every label, not the first ones
        for image in images[::step][:CHECK_IMAGES_KEPT]:
            target = folder / CHECK_IMAGES / image.parent.name / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, target)
        write_whole(sidecar, json.dumps({**meta, "check_images": CHECK_IMAGES},
                                        indent=2).encode())
    except (OSError, ValueError) as exc:
        log.warning("cannot keep the check images of %s beside its stored copy (%s): a "
                    "rollback to it has no canary", model, exc)
