"""The `canary:` section of edgeswin.yaml: known images run through the serving engine now and
then, to learn when the answers themselves stop being right."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from .fields import DAY, _Strict, labelled_folder


class CanaryConfig(_Strict):
    enabled: bool = Field(True, description="Run the canary images through the serving engine "
                          "every interval_s, in spare time between frames, and publish "
                          "<root>/canary; a rung that answers one wrong is stepped away from.")
    interval_s: float = Field(60.0, ge=1, le=DAY, description="How often the canary runs.")
    images: str | None = Field(None, description="Labelled image folder (one sub-folder per "
                               "label); default: the check images the serving model's sidecar "
                               "names (check_images), if any.")
    max_images: int = Field(12, ge=1, le=1000, description="At most this many of them, spread "
                            "over the labels.")

    @field_validator("images")
    @classmethod
    def _folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        return labelled_folder(value, info, "canary images")
