"""Writes configs/traces/orin-nano-15w.csv: a synthetic trace shaped like an Orin Nano in its
15 W mode, in a closed enclosure whose air warms from 35 to 56 C over 23 minutes and cools to
30 C over the next 23 (sun on a pole-mounted box).

A first-order thermal model, driven by the default fallback policy itself (levers fps then
rung, two fps steps, two rungs) so the power columns follow the actions the replay will show:
  T' = (ambient + R * P - T) / tau,  R = 3.0 C/W, tau = 90 s
  P  = 6 W (idle module, cameras' decode) + 8 W x fps fraction (1, 0.75, 0.5) x rung cost
       (1.0 for the primary, 0.55 for the smaller engine)
The rails are the Orin Nano's INA3221 channels: VDD_IN (module input) and its parts
VDD_CPU_GPU_CV and VDD_SOC. Nothing here is measured on a device: it exercises the policy and
`edgeswin fallback-sim` with readings of the right size.

    python -m benchmarks.orin_nano_trace
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgeswin.config import FallbackConfig
from edgeswin.govern.fallback import FallbackPolicy, Readings

REPO = Path(__file__).resolve().parent.parent

STEP_S, LENGTH_S = 2.0, 2800.0
R_C_PER_W, TAU_S = 3.0, 90.0
FPS_FRACTION = (1.0, 0.75, 0.5)
RUNG_COST = (1.0, 0.55)
RUNG_P95_MS = (11.5, 6.8)


def ambient(t: float) -> float:
    return 35 + 21 * t / 1400 if t <= 1400 else 56 - 26 * (t - 1400) / 1400


def main() -> None:
    rng = np.random.default_rng(15)
    policy = FallbackPolicy(FallbackConfig(), 2, 0.0, thermal=True, fps_steps=2)
    temp = 50.0
    rows = []
    for t in np.arange(0.0, LENGTH_S + STEP_S, STEP_S):
        watts = 6.0 + 8.0 * FPS_FRACTION[policy.level["fps"]] * RUNG_COST[policy.rung]
        temp += (ambient(t) + R_C_PER_W * watts - temp) / TAU_S * STEP_S
        tj = temp + rng.normal(0, 0.25)
        p95 = RUNG_P95_MS[policy.rung] * (1 + abs(rng.normal(0, 0.05)))
        vdd_in = watts + rng.normal(0, 0.08)
        rows.append({"t": f"{t:.0f}", "latency_p95_ms": f"{p95:.1f}",
                     "tj-thermal": f"{tj:.1f}", "gpu-thermal": f"{tj - 1.8:.1f}",
                     "cpu-thermal": f"{tj - 2.6:.1f}", "VDD_IN_w": f"{vdd_in:.2f}",
                     "VDD_CPU_GPU_CV_w": f"{0.52 * (watts - 6.0) + 1.9:.2f}",
                     "VDD_SOC_w": f"{0.18 * (watts - 6.0) + 1.4:.2f}"})
        policy.update(Readings(float(t), {"tj-thermal": tj}, p95))
    out = REPO / "configs/traces/orin-nano-15w.csv"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
