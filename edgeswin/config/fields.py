"""Building blocks every section shares: the strict base model, the error that points below
a key, path, file and command fields resolved against the file they appear in, and the
limits (sizes, names, MQTT strings) that several sections check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationInfo,
)

from ..errors import EdgeswinError
from .credentials import read_secret

DEVICE_FILE = "edgeswin.yaml"
CAMERA_DIR = "cameras"
CAMERA_SUFFIXES = (".yaml", ".yml")

# Hostile-input bounds. Real configs are a few kilobytes, a few levels deep, with at most a
# handful of anchors: these are orders of magnitude above that and far below harm.
MAX_FILE_BYTES = 1_000_000
MAX_NESTING = 64
MAX_NODES = 100_000  # YAML nodes after alias expansion ("billion laughs" stops here)
MAX_INT_DIGITS = 100  # Python refuses to parse integers past 4,300 digits (ValueError)
INT_TAG = "tag:yaml.org,2002:int"

# MQTT's own limits (MQTT 3.1.1 sections 1.5.3, 4.7): strings are at most 65,535 UTF-8 bytes,
# publish topics hold no wildcard and no NUL.
MQTT_MAX_BYTES = 65_535
DAY = 86_400.0  # upper bound of every duration setting, in seconds
CAMERA_NAME = r"^[A-Za-z0-9_-]+$"  # no dot: a camera file's name is its stem
NAME_MAX = 64  # device_id and camera names: part of every topic, metric label and file name


class _Strict(BaseModel):
    # allow_inf_nan=False: .inf and .nan are valid YAML floats that no setting can mean.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class At(ValueError):
    """A check of one key against others: reported at `key` (a dotted path below the field
    that raised it), with that key's line, not at the section."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


# Cross-field checks are field validators that read the fields declared before them
# (`info.data`), not model validators: pydantic skips a model's after-validators when any of
# its fields failed, and a user must see every problem at once. A field left at its default
# is checked only with validate_default=True.


def _earlier(info: ValidationInfo, *keys: str) -> tuple | None:
    """The values of earlier fields, or None when one of them failed its own validation
    (then that failure is what the user sees first)."""
    if not all(k in info.data for k in keys):
        return None
    return tuple(info.data[k] for k in keys)


def _resolve(value: str, info: ValidationInfo) -> Path:
    """The one place a path setting becomes a path: ~ expanded, a relative path taken from the
    directory of the YAML file it is written in (never the working directory)."""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and info.context:
        path = Path(info.context["base"]) / path
    return path.resolve()


def labelled_folder(value: str | None, info: ValidationInfo, key: str) -> str | None:
    """A folder of labelled images (`label/*.jpg`), resolved; None stays None."""
    if value is None:
        return None
    path = _resolve(value, info)
    if not path.is_dir():
        raise ValueError(f"{key} is not a folder: {path}")
    return str(path)


def _path_setting(value: str, info: ValidationInfo) -> str:
    if not value or "\x00" in value:
        raise ValueError("a path: not empty, no NUL character")
    return str(_resolve(value, info))


def _existing_file(value: str, info: ValidationInfo) -> str:
    path = Path(_path_setting(value, info))
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}" if path.exists()
                         else f"file does not exist: {path}")
    return str(path)


def _command(value: str, info: ValidationInfo) -> str:
    """A command: a bare name is looked up on PATH when run; one with a / is a path."""
    return _path_setting(value, info) if "/" in value else value


# Every path-valued key has one of these types, so no key can forget to resolve its path.
ConfigPath = Annotated[str, AfterValidator(_path_setting)]
ExistingFile = Annotated[str, AfterValidator(_existing_file)]
Command = Annotated[str, AfterValidator(_command)]


def _secret_readable(what: str, **source: str | None) -> None:
    """What `run` does with a password setting, done by `check` too: read it once."""
    try:
        read_secret(what, **source)
    except EdgeswinError as exc:
        message = str(exc).removeprefix(f"{what}: ")
        for key in source:  # the error is shown at its key already
            message = message.removeprefix(f"password_{key}: ").removeprefix(f"{key} ")
        raise ValueError(message) from None


def mqtt_string_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be an MQTT string (client id, user name), or None."""
    if "\x00" in value:
        return f"{what} holds a NUL character"
    if len(value.encode()) > MQTT_MAX_BYTES:
        return f"{what} is {len(value.encode())} bytes in UTF-8; MQTT allows {MQTT_MAX_BYTES}"
    return None


def topic_problem(value: str, what: str) -> str | None:
    """Why `value` cannot start a publish topic, or None."""
    if not value:
        return f"{what} is empty"
    if "+" in value or "#" in value:
        return f"{what} holds an MQTT wildcard (+ or #): publish topics cannot"
    if value.startswith("$"):
        return f"{what} starts with $: such topics belong to the broker (like $SYS)"
    return mqtt_string_problem(value, what)
