"""What health looks at in a frame, cheaply (about 0.4 ms on one slow core, whatever the frame
size): the frame seen 320 pixels wide (nearest pixels, no filtering: the same for every frame
of a camera, which is all a comparison with its own normal needs), in grey.

Hands on `Signals`: contrast (the grey standard deviation), sharpness (the variance of the
Laplacian), the mean, the colour (mean blue, green, red), and a 64x36 thumbnail for
frame-to-frame change and the reference view.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

VIEW_WIDTH = 320
THUMB = (64, 36)


@dataclass(frozen=True)
class Signals:
    mean: float
    contrast: float
    sharpness: float
    thumb: np.ndarray  # float32, THUMB[1] x THUMB[0]
    colour: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mean blue, green, red


def measure(image: np.ndarray) -> Signals:
    h, w = image.shape[:2]
    if w > VIEW_WIDTH:  # nearest pixels: reads only what it keeps, however large the frame
        image = cv2.resize(image, (VIEW_WIDTH, max(round(h * VIEW_WIDTH / w), 1)),
                           interpolation=cv2.INTER_NEAREST)
    colour = cv2.mean(image)[:3] if image.ndim == 3 and image.shape[2] >= 3 else None
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 and image.shape[2] == 3 \
        else (image if image.ndim == 2 else np.ascontiguousarray(image[..., 0]))
    laplacian_std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))[1][0][0]
    mean, std = cv2.meanStdDev(grey)
    thumb = cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
    m = float(mean[0][0])
    return Signals(m, float(std[0][0]), float(laplacian_std) ** 2, thumb,
                   tuple(float(c) for c in colour) if colour else (m, m, m))


def change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in grey levels."""
    return float(np.abs(a - b).mean())


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two thumbnails' edges (1: the same structure; near 0: none in
    common). Edges, not grey levels, so that a change of light alone does not count."""
    ea, eb = _edges(a), _edges(b)
    ea, eb = ea - ea.mean(), eb - eb.mean()
    denom = float(np.sqrt((ea * ea).sum() * (eb * eb).sum()))
    return float((ea * eb).sum() / denom) if denom > 1e-6 else 0.0


def _edges(thumb: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(thumb, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(thumb, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)
