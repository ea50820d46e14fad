"""The `rollout:` section: how a changed model file is shadowed, promoted and watched."""

from __future__ import annotations

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from .fields import DAY, _Strict, labelled_folder


class RolloutConfig(_Strict):
    """A changed model file found by a reload: built, shadowed on live frames, then promoted
    or rejected; watched after promotion and rolled back when it misbehaves."""

    enabled: bool = Field(True, description="Roll a changed model out on reload; false: "
                          "engine changes wait for the next restart.")
    min_frames: int = Field(50, ge=1, le=1_000_000, description="Frames compared in shadow "
                            "before the verdict.")
    min_agreement: float = Field(0.95, ge=0, le=1, description="Top-1 agreement with the "
                                 "current model needed for promotion.")
    max_latency_ratio: float = Field(1.5, gt=0, le=1000, description="The candidate may be "
                                     "at most this times slower than the current model, timed "
                                     "back to back on the same frames (median of the pairs; a "
                                     "rejection needs it proven on max(2 x min_frames, 20) "
                                     "pairs).")
    check_images: str | None = Field(None, description="Labelled image folder (one sub-folder "
                                     "per label): the gate when the label sets differ.")
    min_accuracy: float = Field(0.9, ge=0, le=1, description="Top-1 on check_images needed "
                                "when the label sets differ.")
    watch_s: float = Field(300.0, ge=0, le=DAY, description="After promotion, compare with "
                           "the previous model for this long, and roll back on engine errors "
                           "or when it is proven slower.")
    shadow_every: int = Field(10, ge=1, le=10_000, description="With no spare time between "
                              "frames, shadow one classification in this many.")

    @field_validator("check_images")
    @classmethod
    def _check_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        return labelled_folder(value, info, "check_images")
