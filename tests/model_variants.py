"""Other versions of a real model, as an update would deliver them: the same network saved
again (other bytes, same answers), the same shape with random weights, the same weights under
reordered labels; and `median_ms` to time a model on this machine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


def _save(model, src: Path, dst: Path, name: str, labels: list[str] | None = None) -> Path:
    tmp = dst.with_name(f".{dst.name}.new")  # written aside and renamed, as OTA tools do
    onnx.save(model, str(tmp))
    meta = json.loads(src.with_suffix(".json").read_text())
    meta["name"] = name
    if labels is not None:
        meta["labels"] = labels
    dst.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    tmp.replace(dst)
    return dst


def reexported(src: Path, dst: Path, name: str) -> Path:
    model = onnx.load(str(src))
    model.doc_string = f"{name}: exported again"
    return _save(model, src, dst, name)


def random_weights(src: Path, dst: Path, name: str, seed: int = 7) -> Path:
    """Every float tensor of more than one value replaced by noise of its own spread."""
    model = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    for i, init in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32 and a.size > 1:
            noise = (rng.standard_normal(a.shape) * (float(a.std()) or 0.02)).astype(np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(noise, init.name))
    return _save(model, src, dst, name)


def relabelled(src: Path, dst: Path, name: str) -> Path:
    """The same network, its labels in reverse order: another label set, wrong answers."""
    labels = json.loads(src.with_suffix(".json").read_text())["labels"]
    model = onnx.load(str(src))
    model.doc_string = name
    return _save(model, src, dst, name, labels[::-1])


def median_ms(model: Path, runs: int = 21) -> float:
    from edgeswin.engine import open_engine
    engine = open_engine(model)  # warmed up by open_engine
    x = np.zeros(engine.info.input.shape, np.float32)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.infer(x)
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[runs // 2]
