"""The broker connection's set-up and its diagnosis: the password (from a file, a variable or
a systemd credential), the TLS context from `mqtt.tls`, and, when a connection fails, what is
wrong in words a user can act on (a TLS listener reached without TLS, a certificate the CA file
does not trust). Plain sockets and `ssl`; paho stays in `mqtt`.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

from ..config import MqttConfig
from ..config.credentials import read_secret
from ..errors import EdgeswinError


def read_password(cfg: MqttConfig) -> str | None:
    """Password from a file, an environment variable or systemd credentials (never inline)."""
    if cfg.password_file or cfg.password_env:
        return read_secret("mqtt", cfg.password_file, cfg.password_env)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / "mqtt_password").is_file():
        # install.sh always creates the credential (LoadCredential fails on a missing file),
        # so an empty one means "no password".
        return read_secret("mqtt", credential="mqtt_password") or None
    return None


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    """The client's TLS context; an error names the file that is wrong."""
    tls = cfg.tls
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise EdgeswinError(f"mqtt.tls.ca_file {tls.ca_file}: not a usable CA certificate "
                            f"({exc})") from None
    context.check_hostname = tls.check_hostname
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise EdgeswinError(f"mqtt.tls.cert_file/key_file {tls.cert_file}, {tls.key_file}: "
                                f"cannot load the client certificate and key ({exc})") from None
    return context


def tls_diagnosis(cfg: MqttConfig, timeout: float = 3.0) -> str | None:
    """Why a TLS connection to the broker fails, in words that point at the setting."""
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout) as raw, \
                tls_context(cfg).wrap_socket(raw, server_hostname=cfg.host):
            return None
    except ssl.SSLCertVerificationError as exc:
        if "hostname" in str(exc) or "IP address mismatch" in str(exc):
            return (f"the broker's certificate does not name {cfg.host!r} ({exc.verify_message}); "
                    "connect by a name on the certificate")
        return (f"the broker's certificate is not trusted by mqtt.tls.ca_file "
                f"({exc.verify_message})")
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError,
            ConnectionAbortedError, BrokenPipeError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        return (f"the broker hung up during the TLS handshake ({why}): port {cfg.port} may be "
                "a plain (non-TLS) listener")
    except ssl.SSLError as exc:
        return f"TLS handshake failed ({exc.reason or exc}); is {cfg.port} a TLS port?"
    except (OSError, EdgeswinError) as exc:
        return str(exc)


def plain_diagnosis(cfg: MqttConfig, timeout: float = 3.0) -> str | None:
    """Why a plain connection was dropped before the broker answered: a TLS listener, most
    often (the broker hangs up on bytes that are no TLS handshake)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout) as raw, \
                context.wrap_socket(raw, server_hostname=cfg.host):
            return (f"port {cfg.port} is a TLS listener: set mqtt.tls (ca_file) or use the "
                    "broker's plain port")
    except (OSError, ssl.SSLError):
        return None
