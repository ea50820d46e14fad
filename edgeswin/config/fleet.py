"""The `fleet:` section of edgeswin.yaml (local only: a bundle can never set it): whether this
device takes signed desired state from the broker, from which group, with which keys, what a
bundle may change, and how long a new state is watched before it counts as good."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .fields import DAY, ConfigPath, _Strict

# What a bundle may change, at most: the device's identity and what could run code or reach
# outside its files stay local (device_id, mqtt, state_dir, fleet; host_code_allowed and
# gst: sources are refused inside the sections too).
CHANGEABLE = ("cameras", "engines", "fallback", "power", "snapshots", "hard_examples",
              "metrics", "homeassistant", "rollout", "health", "canary", "stats_interval_s",
              "opencv_threads")
DEFAULT_ALLOW = ("cameras", "engines", "fallback", "snapshots", "hard_examples", "rollout",
                 "health", "canary", "stats_interval_s")


class FleetConfig(_Strict):
    enabled: bool = Field(False, description="Take signed desired state from the broker "
                          "(edgeswin/fleet/<group>/desired and <root>/desired) and report on "
                          "<root>/reported.")
    group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", max_length=64,
                              description="The device's group: it follows "
                              "edgeswin/fleet/<group>/desired.")
    ring: Literal["canary", "all"] = Field("all", description="canary: this device takes a "
                                           "group's bundles pushed to the canary ring first; "
                                           "all: only those pushed (or promoted) to all.")
    trusted_keys: ConfigPath | None = Field(None, description="Folder of trusted public keys "
                                            "(*.pub, from `edgeswin fleet keygen`): a bundle "
                                            "must be signed by one of them.")
    allow: list[str] = Field(list(DEFAULT_ALLOW), description="What a bundle may change: "
                             "cameras, and sections of edgeswin.yaml (" + ", ".join(CHANGEABLE)
                             + ").")
    revert_after_s: float = Field(120.0, ge=0, le=DAY, description="A new state is watched "
                                  "this long: a camera that delivered and stops, a failing "
                                  "canary, a new health problem or a rolled-back model "
                                  "rollout reverts it to the last good one.")

    @field_validator("allow")
    @classmethod
    def _changeable(cls, value: list[str]) -> list[str]:
        wrong = [v for v in value if v not in CHANGEABLE]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: a bundle can change only "
                             f"{', '.join(CHANGEABLE)}")
        return value
