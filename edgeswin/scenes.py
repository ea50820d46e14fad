"""Procedural demo scenes: one large shape (or none) over a textured background.

Hands on BGR uint8 images and their labels. The same code makes the demo model's training
data (`models/train_demo.py`) and the demo video (`edgeswin.demo.assets`), so the model sees
at run time what it learned from. Deterministic for a given `numpy.random.Generator` seed.
Only numpy and OpenCV: the daemon side never needs torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

LABELS: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "empty")


@dataclass(frozen=True)
class Shape:
    """A shape placed in relative coordinates, so one scene renders at any frame size."""

    kind: str  # one of LABELS except "empty"
    cx: float  # centre, fraction of width
    cy: float  # centre, fraction of height
    size: float  # circumradius, fraction of frame height
    angle: float  # degrees
    color: tuple[int, int, int]  # BGR


@dataclass(frozen=True)
class Look:
    """How a scene is photographed: background texture and degradations."""

    background_seed: int
    style: str  # "gradient" | "texture" | "clutter"
    noise_sigma: float  # grey levels, per pixel
    blur_sigma: float  # fraction of frame height
    jpeg_quality: int  # 0 = no JPEG round trip


def _unit_polygon(kind: str) -> np.ndarray:
    """Vertices on a unit circumradius, for the polygonal shapes."""
    if kind == "square":
        angles = np.deg2rad(np.arange(4) * 90 + 45)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "triangle":
        angles = np.deg2rad(np.arange(3) * 120 - 90)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "star":
        angles = np.deg2rad(np.arange(10) * 36 - 90)
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if kind == "cross":
        a, b = 0.3, 0.95  # half arm width, half arm length (relative)
        return np.array(
            [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
             (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
        ) / math.hypot(a, b) * 1.0
    raise ValueError(f"not a polygon shape: {kind}")


def make_background(look: Look, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(look.background_seed)
    c0 = rng.integers(0, 256, 3).astype(np.float32)
    c1 = rng.integers(0, 256, 3).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xs / width * math.cos(theta) + ys / height * math.sin(theta))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    if look.style in ("texture", "clutter"):
        # Low-frequency blotches plus a few sinusoids: texture without shape-like edges.
        coarse = rng.normal(0, 1, (6, 10, 3)).astype(np.float32)
        blotch = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        img += blotch * rng.uniform(10, 30)
        for _ in range(int(rng.integers(1, 4))):
            fx, fy = rng.uniform(-12, 12, 2)
            phase = rng.uniform(0, 2 * math.pi)
            wave = np.sin(2 * math.pi * (fx * xs / width + fy * ys / height) + phase)
            img += wave[..., None] * rng.uniform(5, 18)
    if look.style == "clutter":
        # Thin lines and small dots: far smaller and thinner than any shape.
        for _ in range(int(rng.integers(8, 20))):
            p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p1 = (int(p0[0] + rng.integers(-width // 6, width // 6)),
                  int(p0[1] + rng.integers(-height // 6, height // 6)))
            color = tuple(float(v) for v in rng.integers(0, 256, 3))
            cv2.line(img, p0, p1, color, max(1, height // 180), cv2.LINE_AA)
        for _ in range(int(rng.integers(5, 15))):
            p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            color = tuple(float(v) for v in rng.integers(0, 256, 3))
            cv2.circle(img, p, max(1, int(height * rng.uniform(0.005, 0.015))), color, -1,
                       cv2.LINE_AA)
    return img


def contrasting_color(rng: np.random.Generator, background_mean: np.ndarray) -> tuple[int, int, int]:
    """A random colour whose brightness differs clearly from the background's."""
    luma = float(background_mean @ np.array([0.114, 0.587, 0.299]))
    for _ in range(20):
        color = rng.integers(0, 256, 3)
        if abs(float(color @ np.array([0.114, 0.587, 0.299])) - luma) > 70:
            return int(color[0]), int(color[1]), int(color[2])
    value = 20 if luma > 128 else 235
    return value, value, value


def draw_shape(img: np.ndarray, shape: Shape) -> None:
    """Draw `shape` into a float32 BGR image in place, anti-aliased."""
    height, width = img.shape[:2]
    cx, cy, r = shape.cx * width, shape.cy * height, shape.size * height
    shift = 4  # sub-pixel precision for the anti-aliased fill
    if shape.kind == "circle":
        centre = (int(round(cx * 16)), int(round(cy * 16)))
        cv2.circle(img, centre, int(round(r * 16)), shape.color, -1, cv2.LINE_AA, shift)
        return
    pts = _unit_polygon(shape.kind)
    a = math.radians(shape.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = pts @ rot.T * r + np.array([cx, cy])
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], shape.color, cv2.LINE_AA, shift)


def render(shape: Shape | None, look: Look, width: int, height: int,
           rng: np.random.Generator, background: np.ndarray | None = None) -> np.ndarray:
    """Render one BGR uint8 frame; `rng` drives only the per-frame noise.

    `background` (from `make_background()`) saves recomputing it for every frame of a video.
    """
    img = make_background(look, width, height) if background is None else background.copy()
    if shape is not None:
        draw_shape(img, shape)
    if look.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), look.blur_sigma * height)
    if look.noise_sigma > 0:
        img += rng.normal(0, look.noise_sigma, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if look.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def random_look(rng: np.random.Generator) -> Look:
    return Look(
        background_seed=int(rng.integers(0, 2**31)),
        style=str(rng.choice(["gradient", "texture", "clutter"])),
        noise_sigma=float(rng.uniform(0, 10)),
        blur_sigma=float(rng.uniform(0, 0.006)),
        jpeg_quality=int(rng.choice([0, rng.integers(35, 95)])),
    )


# Circumradius as a fraction of the frame height: what the demo models learned. A camera
# mounted farther away sees smaller shapes (`FAR`), which they were never shown.
NEAR = (0.18, 0.38)
FAR = (0.10, 0.16)


def random_shape(rng: np.random.Generator, kind: str, look: Look, width: int,
                 height: int, sizes: tuple[float, float] = NEAR) -> Shape:
    """A shape of `kind` that fits in the frame and stands out from the background."""
    size = float(rng.uniform(*sizes))
    margin_x = size * height / width
    cx = float(rng.uniform(margin_x, 1 - margin_x))
    cy = float(rng.uniform(size, 1 - size))
    bg = make_background(look, 32, 18)
    mean = bg[int(cy * 17), int(cx * 31)]
    return Shape(kind, cx, cy, size, float(rng.uniform(0, 360)), contrasting_color(rng, mean))


def random_scene(rng: np.random.Generator, width: int = 320, height: int = 180,
                 sizes: tuple[float, float] = NEAR) -> tuple[np.ndarray, int]:
    """One training image and its label index."""
    label = int(rng.integers(0, len(LABELS)))
    look = random_look(rng)
    shape = None
    if LABELS[label] != "empty":
        shape = random_shape(rng, LABELS[label], look, width, height, sizes)
    return render(shape, look, width, height, rng), label


def moved(shape: Shape, dx: float, dy: float, dangle: float) -> Shape:
    """The shape shifted (fractions of the frame) and turned, kept inside the frame."""
    return replace(shape, cx=min(max(shape.cx + dx, 0.0), 1.0),
                   cy=min(max(shape.cy + dy, 0.0), 1.0), angle=shape.angle + dangle)
