"""Writes models/check/<label>/*.jpg: the demo models' check images, which their sidecars name
as `check_images` (the canary's images by default, and a labelled folder for `edgeswin eval`).

Procedural scenes from a fixed seed, kept only when both demo models answer them right with a
clear margin (top score at least 0.9): a canary image must be one a healthy engine never gets
wrong, so a wrong answer means the engine, not the image.

    .venv/bin/python models/make_check_images.py [--per-label 2]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2

from edgeswin.engine import open_engine
from edgeswin.prepare.preprocess import Preprocessor
from edgeswin.scenes import LABELS, random_scene

HERE = Path(__file__).resolve().parent
MODELS = [HERE / "swin-demo-112.onnx", HERE / "swin-demo-64.onnx"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args()
    import numpy as np
    engines = [open_engine(m) for m in MODELS]
    preps = [Preprocessor(e.info.input) for e in engines]
    out = HERE / "check"
    shutil.rmtree(out, ignore_errors=True)
    kept = {label: 0 for label in LABELS}
    rng = np.random.default_rng(args.seed)
    tried = 0
    while min(kept.values()) < args.per_label:
        tried += 1
        image, index = random_scene(rng)
        label = LABELS[index]
        data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1]
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # judged as it will be read
        if kept[label] >= args.per_label:
            continue
        sure = True
        for engine, prep in zip(engines, preps):
            logits = engine.infer(prep(image)).reshape(-1)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            sure &= int(p.argmax()) == index and float(p.max()) >= 0.9
        if sure:
            (out / label).mkdir(parents=True, exist_ok=True)
            (out / label / f"{kept[label]:02d}.jpg").write_bytes(data.tobytes())
            kept[label] += 1
    print(f"kept {sum(kept.values())} of {tried} scenes in {out}")


if __name__ == "__main__":
    main()
