"""A model a bundle names, fetched into `<state_dir>/fleet/models/<sha256>.onnx` with its
sidecar (carried, signed, in the bundle): from the operator's server (`http://`, `https://`),
or from the broker itself (`mqtt:edgeswin/fleet/blobs/<sha256>`: retained chunks of `CHUNK`
bytes on `.../<n>`, n from 0), for fleets without a file server.

By URL: written to `<sha256>.part` first and resumed with a Range request after a dropped
connection (from the start again when the server ignores ranges), at most `TRIES` attempts
with a growing wait. By MQTT: the chunks as they come, kept across the client's reconnects,
until all are there or `mqtt_timeout` passes. Either way used only when its size and SHA-256
are those the bundle names; a file already there with the right digest is not fetched again.
Hands on the model's path, or `DownloadError` saying why.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import EdgeswinError
from ..files import sha256, write_whole

log = logging.getLogger(__name__)

TRIES = 5
CHUNK = 1 << 20
TIMEOUT_S = 30.0
BLOBS = "edgeswin/fleet/blobs"
MQTT_CHUNK = 256 * 1024  # bytes per retained chunk


def blob_url(digest: str) -> str:
    return f"mqtt:{BLOBS}/{digest}"


def mqtt_timeout(size: int) -> float:
    return 60.0 + 2.0 * size / 1e6  # a minute, and two seconds a megabyte


class DownloadError(Exception):
    pass


def fetch(model: dict, folder: Path, mqtt=None, stop=lambda: False) -> Path:
    """`mqtt`: the device's broker settings, for an `mqtt:` model."""
    digest, size, url = model["sha256"], model["size"], model["url"]
    target = folder / f"{digest}.onnx"  # ONNX only: the device builds its own engines
    folder.mkdir(parents=True, exist_ok=True)
    if target.exists() and sha256(target) == digest:
        _sidecar(target, model)
        return target
    part = target.with_suffix(target.suffix + ".part")
    if url.startswith("mqtt:"):
        _chunks(mqtt, digest, size, part)
        return _checked(part, target, model)
    for attempt in range(1, TRIES + 1):
        if stop():
            raise DownloadError("stopped")
        have = part.stat().st_size if part.exists() else 0
        try:
            _get(url, part, have, size)
            break
        except (OSError, urllib.error.URLError, DownloadError) as exc:
            if isinstance(exc, DownloadError) and "larger" in str(exc):
                part.unlink(missing_ok=True)
                raise
            log.warning("fleet: %s: attempt %d of %d: %s", url, attempt, TRIES, exc)
            if attempt == TRIES:
                raise DownloadError(f"{url}: {exc} ({TRIES} attempts)") from None
            time.sleep(min(2 ** attempt * 0.25, 5.0))
    return _checked(part, target, model)


def _checked(part: Path, target: Path, model: dict) -> Path:
    url, size, digest = model["url"], model["size"], model["sha256"]
    got = part.stat().st_size
    if got != size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {got:,} bytes, the bundle says {size:,}")
    if sha256(part) != digest:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: its SHA-256 is not the bundle's {digest}")
    part.replace(target)
    _sidecar(target, model)
    return target


def _get(url: str, part: Path, have: int, size: int) -> None:
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        resumed = have and response.status == 206
        with part.open("ab" if resumed else "wb") as fh:
            written = have if resumed else 0
            while chunk := response.read(CHUNK):
                written += len(chunk)
                if written > size:
                    raise DownloadError(f"{url}: larger than the {size:,} bytes the bundle says")
                fh.write(chunk)
    if written < size:
        raise DownloadError(f"the connection ended at {written:,} of {size:,} bytes")


def _chunks(mqtt, digest: str, size: int, part: Path) -> None:
    from ..publish.listen import Listener
    count = max((size + MQTT_CHUNK - 1) // MQTT_CHUNK, 1)
    chunks: dict[int, bytes] = {}
    done = threading.Event()

    def take(topic: str, payload: bytes, retained: bool) -> None:
        tail = topic.rsplit("/", 1)[-1]
        if tail.isdigit() and int(tail) < count and payload:
            chunks[int(tail)] = payload
            if len(chunks) == count:
                done.set()

    listener = Listener(mqtt, f"{BLOBS}/{digest}/+", take)
    try:
        listener.start()
    except EdgeswinError as exc:
        raise DownloadError(str(exc)) from None
    try:
        if not done.wait(mqtt_timeout(size)):
            raise DownloadError(f"{BLOBS}/{digest}: {len(chunks)} of {count} chunks within "
                                f"{mqtt_timeout(size):.0f} s")
    finally:
        listener.stop()
    write_whole(part, b"".join(chunks[i] for i in range(count)))


def _sidecar(model_path: Path, model: dict) -> None:
    write_whole(model_path.with_suffix(".json"), json.dumps(model["sidecar"]).encode())
