"""How often the rollout gate rejects a model that is the current one saved again, with the CPU
idle and with every core kept busy by other processes; and that a truly slower copy is still
rejected. Two ways of timing, each judged as its gate judged it:

- `paired` (the gate now, `rollout.shadow.compare_on` + `rollout.gate.verdict`): both models on the
  same frame, back to back, alternating which goes first; the median paired ratio, proven.
- `apart` (the gate before): the current model timed on the live frame, the candidate later
  in the loop's spare time (after the classification's tail: postprocessing, publishing),
  and the two p95s compared.

    python -m benchmarks.gate_noise --trials 100 --out benchmarks/results/gate-noise.json

Writes one JSON with, per load and way, the trials, rejections and the ratios seen.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeswin.config import EngineRung, RolloutConfig
from edgeswin.engine import open_engine
from edgeswin.engine.ladder import activate
from edgeswin.rollout.gate import Comparison, latency_frames, verdict
from edgeswin.rollout.shadow import _timed, compare_on
from edgeswin.scenes import random_scene
from tests.model_variants import reexported
from tests.slow_model import slowed_copy

REPO = Path(__file__).resolve().parents[1]

MODEL = REPO / "models" / "swin-demo-112.onnx"


def busy(stop) -> None:
    a = np.random.default_rng(0).standard_normal((256, 256))
    while not stop.is_set():
        a = np.tanh(a @ a)


def tail_work() -> None:
    """What separated the two timings before: a classification's tail (a few ms of Python)."""
    x = np.random.default_rng(1).standard_normal(20_000)
    for _ in range(20):
        x = np.sort(x)


def gate_paired(current, candidate, images, cfg) -> tuple[str, float]:
    cmp, i = Comparison(True), 0
    while (decided := verdict(cmp, cfg, None)) is None:
        compare_on(current, candidate, images[i % len(images)], cmp, old_first=i % 2 == 0)
        i += 1
    return decided[0], cmp.slowdown()[0]


def gate_apart(current, candidate, images, cfg) -> tuple[str, float]:
    """The gate before: p95 against p95, the two timed at other moments."""
    cur, cand = [], []
    limit = cfg.max_latency_ratio
    for i in range(5 * latency_frames(cfg)):
        image = images[i % len(images)]
        cur.append(_timed(current, image)[1])
        tail_work()
        cand.append(_timed(candidate, image)[1])
        if len(cur) >= cfg.min_frames:
            ratio = float(np.percentile(cand, 95) / np.percentile(cur, 95))
            if ratio <= limit:
                return "promote", ratio
            if len(cur) >= latency_frames(cfg):
                return "reject", ratio
    return "reject", ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--min-frames", type=int, default=50, help="rollout.min_frames (default)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cfg = RolloutConfig(min_frames=args.min_frames, max_latency_ratio=1.5)
    tmp = Path(tempfile.mkdtemp())
    same = reexported(MODEL, tmp / "same.onnx", "same")
    slow = slowed_copy(MODEL, tmp / "slow.onnx", products=4)

    def rung(path):
        return activate(0, EngineRung(name="r", model=str(path)), open_engine(path))

    current, twin, slower = rung(MODEL), rung(same), rung(slow)
    rng = np.random.default_rng(3)
    images = [random_scene(rng, 320, 180)[0] for _ in range(16)]
    results = {"machine": {"cpu": platform.processor() or platform.machine(),
                           "cores": os.cpu_count()},
               "model": MODEL.name, "min_frames": args.min_frames, "limit": 1.5, "cells": []}
    ctx = multiprocessing.get_context("spawn")
    for hogs in (0, os.cpu_count() or 2):
        stop = ctx.Event()
        procs = [ctx.Process(target=busy, args=(stop,), daemon=True) for _ in range(hogs)]
        for p in procs:
            p.start()
        try:
            for way, gate in (("paired", gate_paired), ("apart", gate_apart)):
                for name, candidate, trials in (("identical", twin, args.trials),
                                                ("slower", slower, max(args.trials // 10, 3))):
                    t0 = time.monotonic()
                    seen = [gate(current, candidate, images, cfg) for _ in range(trials)]
                    ratios = [r for _, r in seen]
                    cell = {"busy_processes": hogs, "way": way, "candidate": name,
                            "trials": trials,
                            "rejected": sum(d == "reject" for d, _ in seen),
                            "ratio_min": round(min(ratios), 3),
                            "ratio_median": round(float(np.median(ratios)), 3),
                            "ratio_max": round(max(ratios), 3),
                            "seconds": round(time.monotonic() - t0, 1)}
                    results["cells"].append(cell)
                    print(json.dumps(cell), flush=True)
        finally:
            stop.set()
            for p in procs:
                p.join(10)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    broken = [c for c in results["cells"] if c["way"] == "paired" and (
        (c["candidate"] == "identical" and c["rejected"]) or
        (c["candidate"] == "slower" and c["rejected"] != c["trials"]))]
    for c in broken:
        print(f"BROKEN: {c}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
