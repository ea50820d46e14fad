"""The small dataclasses handed from stage to stage: a frame, an input spec, model metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """The newest image of one camera, as captured (BGR, any size)."""

    camera: str
    image: np.ndarray
    seq: int  # per capture, +1 for every frame read (never reset): tells new frames from old
    index: int  # position in the source: frame number in a file, count since (re)connect otherwise
    wall_ts: float  # time.time() when read
    mono_ts: float  # time.monotonic() when read
    decode_ms: float = 0.0  # how long the read (grab + decode) took
    # (preprocessor, its output, ms) when the capture thread prepared the engine input ahead
    prepared: tuple | None = None


@dataclass(frozen=True)
class InputSpec:
    """What a model expects, from its metadata: the contract between preprocess and engine."""

    name: str
    height: int
    width: int
    layout: str = "NCHW"  # or NHWC
    dtype: str = "float32"  # float32 | float16 | uint8
    color: str = "RGB"  # or BGR
    scale: float = 1 / 255
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: str = "area"  # area | linear

    @property
    def shape(self) -> tuple[int, int, int, int]:
        if self.layout == "NHWC":
            return (1, self.height, self.width, 3)
        return (1, 3, self.height, self.width)


@dataclass(frozen=True)
class ModelInfo:
    """Metadata that travels with a model file (its sidecar JSON)."""

    name: str
    labels: tuple[str, ...]
    input: InputSpec
    output_kind: str = "logits"  # or "probabilities"
    precision: str = "fp32"
    output_name: str | None = None  # which output holds the scores when there are several
    output_scale: float | None = None  # dequantization scale of an INT8 output tensor
    check_images: str | None = None  # a labelled folder shipped with the model (sidecar-relative)
