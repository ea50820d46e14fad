"""The one small exception hierarchy: every error a user can act on derives from EdgeswinError."""

from __future__ import annotations

from dataclasses import dataclass


class EdgeswinError(Exception):
    """Base of all errors edgeswin raises on purpose; the CLI prints them without a traceback."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one config file, located for a person to fix."""

    file: str
    line: int  # 0: about the file or folder as a whole (missing, empty), not a line of it
    path: str  # dotted key path, e.g. "mqtt.port" or "engines.0.model"
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        line = f":{self.line}" if self.line else ""
        return f"{self.file}{line}: {where}{self.message}"


class ConfigError(EdgeswinError):
    """Every problem found in a config directory, reported at once."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.path))
        super().__init__("\n".join(str(i) for i in self.issues))


class ModelError(EdgeswinError):
    """A model file or its metadata cannot be used (missing, corrupt, inconsistent)."""


class BackendUnavailable(EdgeswinError):
    """The backend a model needs is not installed on this machine."""
