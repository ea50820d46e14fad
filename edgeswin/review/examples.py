"""The hard examples waiting for a person, and each decision on one as a file move.

Reads `<examples>/<label the model gave>/<name>.jpg` with its JSON sidecar (what the daemon's
hard-example store writes) and hands on `Example`s grouped by that label. A decision moves the
image into `<labelled>/<true label>/` (confirmed or relabelled) or `<discarded>/<label given>/`
in one atomic rename, the decision itself: a crash before it leaves the frame waiting, after it
leaves it decided. The sidecar goes with it, written first at the destination with a `review`
block (the label given, the label chosen, when), so the labelled folder says what the device
answered for every frame. Across file systems the image is copied, synced and renamed into
place before the original goes; a frame found in both places counts as decided.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..engine import write_atomic
from ..errors import EdgeswinError
from ..files import NotASmallFile, read_small
from ..labelled import IMAGE_SUFFIXES

SIDECAR_LIMIT = 64 * 1024  # a hard example's sidecar is ~1 kB; anything far bigger is not one


@dataclass(frozen=True)
class Example:
    key: str  # "<label given>/<file name>": how the page names a frame, never a path
    image: Path
    given: str  # the label the model gave: the folder it was kept in
    meta: dict  # the sidecar (empty when there is none or it cannot be read)

    @property
    def score(self) -> float | None:
        value = self.meta.get("score")
        return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class Decision:
    key: str
    given: str
    chosen: str | None  # None: discarded
    source: Path  # where the image was
    target: Path  # where it is now


def read_sidecar(path: Path) -> dict:
    try:
        meta = json.loads(read_small(path, SIDECAR_LIMIT))
    except (OSError, ValueError, NotASmallFile):
        return {}
    return meta if isinstance(meta, dict) else {}


_GIVEN: dict[Path, tuple[int, str | None]] = {}  # sidecar -> (mtime_ns, given): read once


def given_label(image: Path) -> str | None:
    """The label the device gave a reviewed frame, from its sidecar's `review` block."""
    sidecar = image.with_suffix(".json")
    try:
        stamp = sidecar.stat().st_mtime_ns
    except OSError:
        return None
    cached = _GIVEN.get(sidecar)
    if cached is None or cached[0] != stamp:
        review = read_sidecar(sidecar).get("review")
        given = review.get("given") if isinstance(review, dict) else None
        cached = _GIVEN[sidecar] = (stamp, given if isinstance(given, str) else None)
    return cached[1]


def images_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES
                      and p.is_file() and not p.name.startswith(".")
                      and not p.parent.name.startswith("."))
    except OSError:
        return []


def move_atomic(source: Path, target: Path) -> None:
    """Rename `source` to `target`; across file systems, copy + fsync + rename, then unlink."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    part = target.with_name(f".{target.name}.part")
    with source.open("rb") as src, part.open("wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(part, target)
    source.unlink()


class Examples:
    """The three folders and the decisions made on them in this session (for undo)."""

    def __init__(self, source: Path, labelled: Path, discarded: Path):
        if not source.is_dir():
            raise EdgeswinError(f"{source}: no such folder of hard examples (the daemon keeps "
                                "them in <state_dir>/hard with outputs.hard_examples)")
        for other, name in ((labelled, "--to"), (discarded, "--discard-to")):
            if other.resolve() == source.resolve() or source.resolve() in other.resolve().parents:
                raise EdgeswinError(f"{name} {other} is inside the examples folder {source}")
        self.source, self.labelled, self.discarded = source, labelled, discarded
        self._lock = threading.Lock()  # one decision at a time: the page may send two at once
        self._done: list[Decision] = []

    def _decided_names(self) -> set[str]:
        return {p.name for p in images_in(self.labelled) + images_in(self.discarded)}

    def pending(self) -> dict[str, list[Example]]:
        """Frames waiting, by the label the model gave, oldest first (names start with time)."""
        decided = self._decided_names()
        groups: dict[str, list[Example]] = {}
        for image in images_in(self.source):
            if image.name in decided:
                continue  # copied across file systems, crashed before the original went
            given = image.parent.name
            groups.setdefault(given, []).append(
                Example(f"{given}/{image.name}", image, given,
                        read_sidecar(image.with_suffix(".json"))))
        return dict(sorted(groups.items()))

    def find(self, key: str) -> Example | None:
        """The waiting frame `key` names, or None; a key never reaches outside the folder."""
        given, sep, name = key.partition("/")
        if not sep or "/" in name or "\\" in key or given.startswith(".") \
                or name.startswith("."):
            return None
        image = self.source / given / name
        if image.suffix.lower() not in IMAGE_SUFFIXES or image.is_symlink() \
                or not image.is_file() or name in self._decided_names():
            return None
        return Example(key, image, given, read_sidecar(image.with_suffix(".json")))

    def decide(self, key: str, chosen: str | None) -> Decision:
        """Confirm or relabel (`chosen` a label) or discard (None) the frame `key`."""
        with self._lock:
            example = self.find(key)
            if example is None:
                raise KeyError(key)
            root = self.labelled / chosen if chosen is not None else self.discarded / example.given
            target = root / example.image.name
            stem = example.image.stem
            n = 1
            while target.exists():  # another device's frame of the same name: keep both
                n += 1
                target = root / f"{stem}-{n}{example.image.suffix}"
            meta = dict(example.meta)
            meta["review"] = {"given": example.given, "label": chosen,
                              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            root.mkdir(parents=True, exist_ok=True)
            write_atomic(target.with_suffix(".json"), (json.dumps(meta, indent=1) + "\n").encode())
            move_atomic(example.image, target)  # the decision
            example.image.with_suffix(".json").unlink(missing_ok=True)
            decision = Decision(key, example.given, chosen, example.image, target)
            self._done.append(decision)
            return decision

    def undo(self) -> Decision | None:
        """Put the last decision of this session back among the waiting frames."""
        with self._lock:
            if not self._done:
                return None
            last = self._done.pop()
            if not last.target.is_file():
                return None  # moved away by hand meanwhile: nothing to put back
            meta = read_sidecar(last.target.with_suffix(".json"))
            meta.pop("review", None)
            last.source.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(last.source.with_suffix(".json"),
                         (json.dumps(meta, indent=1) + "\n").encode())
            move_atomic(last.target, last.source)
            last.target.with_suffix(".json").unlink(missing_ok=True)
            return last

    def counts(self) -> dict[str, int]:
        confirmed = relabelled = 0
        for image in images_in(self.labelled):
            if given_label(image) == image.parent.name:
                confirmed += 1
            else:
                relabelled += 1
        decided = self._decided_names()
        return {"waiting": sum(1 for p in images_in(self.source) if p.name not in decided),
                "confirmed": confirmed, "relabelled": relabelled,
                "discarded": len(images_in(self.discarded))}
