"""The `fallback:` and `power:` sections: the governor's levers, sensors and thresholds."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from .fields import DAY, Command, ConfigPath, _earlier, _Strict

# The governor's levers, the one list: the config accepts these, the policy keeps a limit and
# a level for each (govern/fallback.py), and the engine schema's `lever.name` enum says the same.
Lever = Literal["fps", "rung", "dla", "power_mode"]
LEVERS: tuple[str, ...] = get_args(Lever)


class FallbackConfig(_Strict):
    thermal_root: ConfigPath = Field("/sys/devices/virtual/thermal",
                              description="Where thermal_zone*/ live (a scripted tree in tests).")
    zones: list[str] = Field(["tj", "gpu", "cpu", "soc", "cv"],
                             description="Zone type prefixes to watch (case-insensitive).")
    nvml: bool = Field(True, description="Also watch discrete NVIDIA GPUs (zones GPU<i>-nvml) "
                                         "through NVML when nvidia-ml-py is installed.")
    degrade_above_c: float = Field(85.0, ge=-40, le=150, description="Step down above this temperature.")
    recover_below_c: float = Field(75.0, ge=-40, le=150, validate_default=True,
                                   description="Step up only below this temperature.")
    latency_budget_ms: float | None = Field(None, gt=0, le=DAY * 1000,
                                            description="p95 inference budget; none = no limit.")
    latency_window: int = Field(30, ge=5, le=1000, description="Inferences in the p95 window.")
    hold_s: float = Field(5.0, ge=0, le=DAY, description="A bad condition must last this long.")
    cooldown_s: float = Field(30.0, ge=0, le=DAY, description="Healthy this long before stepping up.")
    min_dwell_s: float = Field(10.0, ge=0, le=DAY, description="Minimum time on a rung.")
    latency_retry_s: float = Field(300.0, ge=0, le=DAY,
                                   description="Wait before retrying a rung left for being slow.")
    poll_s: float = Field(1.0, gt=0, le=3600, description="How often sensors are read.")
    pinned_rung: int | None = Field(None, ge=0, description="Stay on this rung: the rung and "
                                    "dla levers never move (fps and power_mode still do).")
    levers: list[Lever] = Field(
        ["fps", "rung"], min_length=1, description="What a step down changes, first lever "
        "first; a step up undoes them in reverse order. fps: the cameras' rates toward their "
        "min_fps; rung: the next smaller engine; dla: the active rung's DLA build; power_mode: "
        "the next of power_modes.")
    fps_steps: int = Field(2, ge=1, le=10, description="Steps from each camera's fps down to "
                                                        "its min_fps.")
    power_modes: list[str] = Field([], max_length=8, validate_default=True, description=(
                                   "nvpmodel mode names (as in the device's nvpmodel "
                                   "configuration) to step down through, "
                                   "e.g. [\"15W\", \"7W\"]; for the power_mode lever."))
    power_mode_command: list[str] = Field(
        [], max_length=16, description="How to set a mode: a command with {id} for the mode "
        "id, e.g. [nvpmodel, -m, \"{id}\"] when running as root. Empty: the daemon writes the "
        "id to <state_dir>/power-mode.request for the root helper unit "
        "(systemd/edgeswin-power-mode.path).")

    @field_validator("recover_below_c")
    @classmethod
    def _hysteresis(cls, value: float, info: ValidationInfo) -> float:
        earlier = _earlier(info, "degrade_above_c")
        if earlier is not None and value >= earlier[0]:
            raise ValueError(f"recover_below_c ({value:g}) must be below degrade_above_c "
                             f"({earlier[0]:g}) (hysteresis)")
        return value

    @field_validator("levers")
    @classmethod
    def _each_lever_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"each lever once, got {value}")
        return value

    @field_validator("power_modes")
    @classmethod
    def _modes_for_the_lever(cls, value: list[str], info: ValidationInfo) -> list[str]:
        earlier = _earlier(info, "levers")
        if earlier is not None and "power_mode" in earlier[0] and not value:
            raise ValueError("levers has power_mode but power_modes is empty: name the nvpmodel "
                             "modes to step down through (see `edgeswin probe`)")
        return value

    @field_validator("power_mode_command")
    @classmethod
    def _command_takes_the_id(cls, value: list[str]) -> list[str]:
        if value and not any("{id}" in a for a in value):
            raise ValueError("power_mode_command needs an {id} argument for the mode id")
        return value


class PowerConfig(_Strict):
    hwmon_root: ConfigPath = Field("/sys/class/hwmon", description="Where hwmon*/ live: INA3221 "
                            "(JetPack 5/6) and INA238 (JetPack 7) power monitors.")
    devfreq_root: ConfigPath = Field("/sys/class/devfreq", description="Where the GPU's devfreq node "
                              "lives (load and clock).")
    total_rails: list[str] = Field(["VDD_IN", "POM_5V_IN", "VIN"], description="The rail that "
                                   "measures the whole module (first found, any case); none "
                                   "found: the sum of every rail.")
    nvpmodel_conf: ConfigPath = Field("/etc/nvpmodel.conf", description="The device's nvpmodel "
                               "configuration: mode ids and names.")
    nvpmodel: Command = Field("nvpmodel", description="The nvpmodel command (for -q): a name "
                              "looked up on PATH, or a path.")
