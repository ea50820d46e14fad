"""A model a bundle names, fetched from the operator's server (`http://` or `https://`) into
`<state_dir>/fleet/models/<sha256><suffix>` with its sidecar (carried, signed, in the bundle).

Written to `<sha256>.part` first and resumed with a Range request after a dropped connection
(from the start again when the server ignores ranges), at most `TRIES` attempts with a growing
wait; used only when its size and SHA-256 are those the bundle names. A file already there with
the right digest is not fetched again. Hands on the model's path, or `DownloadError` saying why.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..files import sha256, write_whole

log = logging.getLogger(__name__)

TRIES = 5
CHUNK = 1 << 20
TIMEOUT_S = 30.0


class DownloadError(Exception):
    pass


def fetch(model: dict, folder: Path, stop=lambda: False) -> Path:
    digest, size, url = model["sha256"], model["size"], model["url"]
    suffix = Path(url.split("?")[0]).suffix or ".onnx"
    target = folder / f"{digest}{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    if target.exists() and sha256(target) == digest:
        _sidecar(target, model)
        return target
    part = target.with_suffix(target.suffix + ".part")
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


def _sidecar(model_path: Path, model: dict) -> None:
    write_whole(model_path.with_suffix(".json"), json.dumps(model["sidecar"]).encode())
