"""Secrets: read from a file, an environment variable or a systemd credential, never from the
YAML; and kept out of everything the daemon says (logs, MQTT, metrics, errors).

Hands on `read_secret()` (the MQTT password, camera passwords), `with_credentials()` (a stream
URL with its user and password, built only at open time) and `redact()` (any text that may
hold a URL or a pipeline)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from ..errors import EdgeswinError
from ..files import read_small

SECRET_MAX_BYTES = 65_536  # a password, a token: never more

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]+@")
# Camera URLs and GStreamer elements that carry secrets as parameters (Hikvision and Dahua
# HTTP APIs, rtspsrc user-pw=, signed URLs).
_SECRET_VALUE = re.compile(r"(?i)\b((?:user-pw|password|passwd|pwd|pass|token|secret|key|auth|"
                           r"signature|sig)=)(\"[^\"]*\"|'[^']*'|[^&\s!'\"]+)")


def redact(text: str) -> str:
    """`text` with URL user info and secret-looking parameters replaced by ***."""
    return _SECRET_VALUE.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


def read_secret(what: str, file: str | None = None, env: str | None = None,
                credential: str | None = None) -> str | None:
    """The secret from the one place configured; EdgeswinError names `what` and the place."""
    if file:
        try:
            return read_small(file, SECRET_MAX_BYTES).decode().strip()
        except (OSError, ValueError) as exc:  # missing, a FIFO, huge, not UTF-8
            raise EdgeswinError(f"{what}: password_file {file}: "
                                f"{getattr(exc, 'strerror', None) or exc}") from None
    if env:
        value = os.environ.get(env)
        if value is None:
            raise EdgeswinError(f"{what}: password_env: variable {env} is not set")
        return value
    if credential:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise EdgeswinError(f"{what}: credential {credential}: no systemd credentials "
                                "(add LoadCredential=" + credential + ":<file> to the unit)")
        try:
            return read_small(Path(directory) / credential, SECRET_MAX_BYTES).decode().strip()
        except (OSError, ValueError) as exc:
            raise EdgeswinError(f"{what}: credential {credential}: "
                                f"{getattr(exc, 'strerror', None) or exc}") from None
    return None


def with_credentials(url: str, username: str, password: str | None) -> str:
    """`url` with user info added, each part percent-encoded (a password may hold @ or :)."""
    parts = urlsplit(url)
    userinfo = quote(username, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))
