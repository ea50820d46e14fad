"""Stage 2: a captured BGR frame -> the engine's input tensor, as its InputSpec declares.

Hands on a contiguous numpy array of exactly `spec.shape` and `spec.dtype`. The resize is the
one the demo models were trained with (INTER_AREA from the full frame, aspect squashed), made
of the steps OpenCV does fastest (`shrink_area`): a bilinear resize to 1, 2 or 4 times the
target on each axis, then 2:1 box averages (INTER_AREA's vectorised halving) down to the
target. Exact INTER_AREA costs ~6 ms on a 1080p frame, this ~0.85 ms (~0.35 ms at 640x360). On
150 rendered scenes each at 1920x1080 and 640x360 the result differs from exact INTER_AREA by
0.44 and 0.22 of one 8-bit level on average, and the demo model scored 150/150 at both sizes
(exact: 150 and 149); `benchmarks/preprocess_study.py` measures it.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..records import InputSpec


def _box(factor: float) -> int:
    """How many pixels per output pixel an axis keeps for the box average after the bilinear
    step: 4 from a factor of 3 (the bilinear step then enlarges a little, which costs nothing
    in sharpness: the box average follows), 2 from 2, else none."""
    return 4 if factor >= 3 else 2 if factor >= 2 else 1


def shrink_area(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Close to INTER_AREA from the full frame, at a fraction of its cost: OpenCV's INTER_AREA
    is fast only for a 2:1 box, so shrink bilinearly to 1, 2 or 4 times the target per axis,
    then halve with INTER_AREA until the target. A frame smaller than the target on an axis
    gets plain INTER_AREA."""
    h, w = image.shape[:2]
    if w < width or h < height:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    kx, ky = _box(w / width), _box(h / height)
    if (kx * width, ky * height) != (w, h):
        image = cv2.resize(image, (kx * width, ky * height), interpolation=cv2.INTER_LINEAR)
    while kx > 1 or ky > 1:
        kx, ky = max(kx // 2, 1), max(ky // 2, 1)
        image = cv2.resize(image, (kx * width, ky * height), interpolation=cv2.INTER_AREA)
    return image


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
            small = shrink_area(image, spec.width, spec.height)
        else:
            small = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        if spec.dtype == "uint8":
            x = small[:, :, ::-1] if self._flip else small
        else:
            x = cv2.transform(small.astype(np.float32), self._affine).reshape(small.shape)
        if spec.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None], dtype=np.dtype(spec.dtype))
