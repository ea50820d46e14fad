"""The `health:` section (in edgeswin.yaml, and per camera in its own file): when a camera that
still delivers frames counts as covered, frozen, blurred, moved or drifting, and how long each
must last before it is raised and before it clears."""

from __future__ import annotations

from pydantic import Field

from .fields import DAY, _Strict

# Every health problem a camera can have: the one list the judge, the schema
# (health.schema.json), /metrics and Home Assistant follow. A new kind is one entry here, its
# hold in HealthConfig.hold_s, and its test in health/judge.py.
KINDS = ("covered", "frozen", "blurred", "moved", "drift")


class DriftConfig(_Strict):
    enabled: bool = Field(True, description="Compare the camera's recent inputs (brightness, "
                          "contrast, sharpness, colour) and outputs (top score, label mix, "
                          "unknown rate) with its baseline, and raise `drift` when they differ.")
    baseline_s: float = Field(600.0, gt=0, le=30 * DAY, description="The baseline is learned "
                              "over this long of healthy running, kept in <state_dir>/health/ "
                              "across restarts (`edgeswin relearn` starts it again).")
    window_s: float = Field(120.0, gt=0, le=DAY, description="Recent means the last this long: "
                            "a change is seen about half a window after it began.")


class HealthConfig(_Strict):
    enabled: bool = Field(True, description="Judge each camera's view (about 2 frames a "
                          "second, on frames already decoded) and publish <root>/<camera>/health.")
    covered_after_s: float = Field(3.0, gt=0, le=DAY, description="A (nearly) flat view for "
                                   "this long is `covered`: a blocked or sprayed lens, a black "
                                   "or single-colour frame.")
    frozen_after_s: float = Field(5.0, gt=0, le=DAY, description="The same picture again and "
                                  "again for this long is `frozen`.")
    blurred_after_s: float = Field(5.0, gt=0, le=DAY, description="Sharpness far below this "
                                   "camera's own normal for this long is `blurred`.")
    moved_after_s: float = Field(10.0, gt=0, le=DAY, description="A static view that no "
                                 "longer matches the camera's reference view for this long is "
                                 "`moved`.")
    clear_after_s: float = Field(5.0, gt=0, le=DAY, description="A problem clears after this "
                                 "long without it.")
    learn_s: float = Field(10.0, gt=0, le=DAY, description="The camera's normal (contrast, "
                           "sharpness, change between frames, reference view) is learned over "
                           "this long of healthy running after a start; a problem is judged "
                           "once it is learned.")
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift of the inputs "
                               "or outputs from this camera's learned baseline.")

    def hold_s(self, kind: str) -> float:
        """How long `kind` must last before it is raised; drift's window is its hold (0 here).
        A kind without a hold is a KeyError, never a silent zero."""
        return {"covered": self.covered_after_s, "frozen": self.frozen_after_s,
                "blurred": self.blurred_after_s, "moved": self.moved_after_s,
                "drift": 0.0}[kind]


def effective(device: HealthConfig, camera: HealthConfig | None) -> HealthConfig:
    """The device's settings with the keys a camera file sets itself laid over them."""
    if camera is None:
        return device
    update = {k: getattr(camera, k) for k in camera.model_fields_set}
    if "drift" in update:  # a camera's own drift keys, over the device's drift
        update["drift"] = device.drift.model_copy(update={
            k: getattr(camera.drift, k) for k in camera.drift.model_fields_set})
    return device.model_copy(update=update)
