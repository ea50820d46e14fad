"""Stage 2: a captured BGR frame -> the engine's input tensor, as its InputSpec declares.

Hands on a contiguous numpy array of exactly `spec.shape` and `spec.dtype`. The resize is the
one the demo models were trained with (INTER_AREA from the full frame, aspect squashed), with
one shortcut: each axis is first shrunk bilinearly to a whole multiple of the target, at most
4x, so that INTER_AREA takes its box-average fast path. Exact INTER_AREA costs ~7 ms on a
1080p frame, the shortcut ~1 ms (0.5 ms at 640x360). On 150 rendered scenes each at 1920x1080
and 640x360 the result differs from exact INTER_AREA by 0.41 and 0.19 of one 8-bit level on
average, and the demo model scored 150/150 at both sizes (exact: 150 and 149);
`benchmarks/preprocess_study.py` measures it.
"""

from __future__ import annotations

import cv2
import numpy as np

from .records import InputSpec

_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}
PRE_SHRINK = 4  # the largest whole factor per axis left for INTER_AREA after the bilinear step


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Accept grey, BGR or BGRA frames from any source and hand on 3-channel BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def crop(image: np.ndarray, box: list[float], aspect: str, target_wh: tuple[int, int]
         ) -> np.ndarray:
    """A region of a full-resolution frame, as the engine's resize should see it.

    `box` is x0, y0, x1, y1 in fractions of the frame. `squash` hands on the box itself (the
    resize stretches it), `center-crop` the largest centred part with the input's aspect ratio,
    `letterbox` the box padded with black to that ratio. A view where no padding is needed."""
    h, w = image.shape[:2]
    x0, x1 = sorted((int(round(box[0] * w)), int(round(box[2] * w))))
    y0, y1 = sorted((int(round(box[1] * h)), int(round(box[3] * h))))
    x0, y0 = min(x0, w - 1), min(y0, h - 1)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)  # never empty, however small the frame
    part = image[y0:y1, x0:x1]
    if aspect == "squash":
        return part
    ph, pw = part.shape[:2]
    want = target_wh[0] / target_wh[1]
    if aspect == "center-crop":
        if pw / ph > want:
            keep = max(int(round(ph * want)), 1)
            left = (pw - keep) // 2
            return part[:, left:left + keep]
        keep = max(int(round(pw / want)), 1)
        top = (ph - keep) // 2
        return part[top:top + keep]
    # letterbox
    out_w, out_h = (int(round(ph * want)), ph) if pw / ph < want else (pw, int(round(pw / want)))
    padded = np.zeros((out_h, out_w) + part.shape[2:], part.dtype)
    top, left = (out_h - ph) // 2, (out_w - pw) // 2
    padded[top:top + ph, left:left + pw] = part
    return padded


class Preprocessor:
    """Precomputes the per-channel affine map once, so each frame costs one resize and one FMA."""

    def __init__(self, spec: InputSpec):
        self.spec = spec
        # After the optional BGR->RGB flip the channels are in the model's order, so
        # (x * scale - mean) / std becomes one multiply-add with per-channel constants.
        std = np.asarray(spec.std, np.float32)
        self._gain = (spec.scale / std).astype(np.float32)
        self._bias = (-np.asarray(spec.mean, np.float32) / std).astype(np.float32)
        self._flip = spec.color == "RGB"
        # The same as a 3x4 matrix on BGR pixels, channel flip included: cv2.transform does it
        # in one pass (~0.01 ms at 112x112, against ~0.2 ms for numpy on a reversed view).
        self._affine = np.zeros((3, 4), np.float32)
        for out in range(3):
            self._affine[out, 2 - out if self._flip else out] = self._gain[out]
            self._affine[out, 3] = self._bias[out]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        spec = self.spec
        image = to_bgr(image)
        if spec.resize == "area":
            h, w = image.shape[:2]
            if w >= spec.width and h >= spec.height:
                # A whole multiple (at most PRE_SHRINK) of the target on each axis: OpenCV's
                # INTER_AREA then takes its fast path (a plain box average).
                pre = (min(w // spec.width, PRE_SHRINK) * spec.width,
                       min(h // spec.height, PRE_SHRINK) * spec.height)
                if pre != (w, h):
                    image = cv2.resize(image, pre, interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(image, (spec.width, spec.height), interpolation=_INTERP[spec.resize])
        if spec.dtype == "uint8":
            x = small[:, :, ::-1] if self._flip else small
        else:
            x = cv2.transform(small.astype(np.float32), self._affine).reshape(small.shape)
        if spec.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None], dtype=np.dtype(spec.dtype))
