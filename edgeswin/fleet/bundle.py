"""The signed bundle: what a fleet operator wants a group of devices (or one) to run.

`{"version", "created", "config", "cameras", "models", "ring", "signature": {"key_id", "alg",
"value"}}`. The signature is ed25519 over the bundle without its signature, as canonical JSON
(keys sorted, no spaces, UTF-8), so any byte changed anywhere, or a field added, breaks it.
Keys are PEM files: `<name>.key` (PKCS#8, mode 0600) and `<name>.pub`; a key's id is the first
16 hex digits of the SHA-256 of its raw public bytes.

Hands on the signed bundle (`sign`), the key that verified it or why none did (`verify`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import EdgeswinError
from ..files import write_whole

ALG = "ed25519"
MAX_BUNDLE = 4_000_000  # bytes: configs and model references, never the models themselves


def canonical(bundle: dict) -> bytes:
    unsigned = {k: v for k, v in bundle.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(folder: Path, name: str = "fleet") -> tuple[Path, Path]:
    """A new key pair in `folder`: `<name>.key` (private, 0600) and `<name>.pub`. An existing
    private key is never overwritten."""
    private = Ed25519PrivateKey.generate()
    folder.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = folder / f"{name}.key", folder / f"{name}.pub"
    if key_path.exists():
        raise EdgeswinError(f"{key_path} exists: a fleet key is not replaced (devices trust "
                            "it); choose another --name or folder")
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    write_whole(pub_path, private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise EdgeswinError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EdgeswinError(f"{path}: not an ed25519 key (edgeswin fleet keygen makes one)")
    return key


def trusted_keys(folder: Path | None) -> tuple[dict[str, Ed25519PublicKey], list[str]]:
    """key id -> key for every `*.pub` in the folder, and what could not be read (said, then
    left out: one bad file must not make every other key untrusted)."""
    keys, bad = {}, []
    for path in sorted(folder.glob("*.pub")) if folder and folder.is_dir() else []:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            bad.append(f"{path}: {exc}")
            continue
        if isinstance(key, Ed25519PublicKey):
            keys[key_id(key)] = key
        else:
            bad.append(f"{path}: not an ed25519 public key")
    return keys, bad


def sign(bundle: dict, key: Ed25519PrivateKey) -> dict:
    value = base64.b64encode(key.sign(canonical(bundle))).decode()
    return {**{k: v for k, v in bundle.items() if k != "signature"},
            "signature": {"key_id": key_id(key.public_key()), "alg": ALG, "value": value}}


def verify(bundle: dict, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """None when a trusted key signed exactly this bundle, else why not."""
    sig = bundle.get("signature")
    if not isinstance(sig, dict):
        return "not signed"
    if sig.get("alg") != ALG:
        return f"signature algorithm {sig.get('alg')!r}: only {ALG} is accepted"
    key = keys.get(str(sig.get("key_id")))
    if key is None:
        return f"signed by key {sig.get('key_id')!r}, which this device does not trust"
    try:
        key.verify(base64.b64decode(str(sig.get("value")), validate=True), canonical(bundle))
    except (InvalidSignature, ValueError):
        return f"the signature of key {sig.get('key_id')} does not match the bundle"
    return None
