"""The governor's discrete-GPU measuring on a real NVIDIA GPU: NVML temperature (a zone
`GPU0-nvml` with its slowdown trip point) and board power (a rail `GPU0-nvml`) read by
edgeswin.govern.sensors and edgeswin.govern.power, and the energy the daemon integrates from those power
samples (EnergyMeter, trapezoids every `--poll` s, as the daemon does every `poll_s`) against
NVML's own energy counter (nvmlDeviceGetTotalEnergyConsumption) over the same window.

Idle, then PyTorch FP16 matrix products as the load, then idle; prints and writes JSON.
Needs nvidia-ml-py, numpy and torch:  python3 -m benchmarks.nvml_check --out nvml.json
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from benchmarks import emit
from edgeswin.govern.power import EnergyMeter, PowerSensor
from edgeswin.govern.sensors import ThermalSensor

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--idle", type=float, default=4.0)
    parser.add_argument("--load", type=float, default=8.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import pynvml
    import torch

    thermal = ThermalSensor("/nonexistent", ["gpu"], nvml=True)
    power = PowerSensor("/nonexistent", "/nonexistent", ["GPU0-nvml"], nvml=True)
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    meter = EnergyMeter()
    samples: list[dict] = []
    phases: list[tuple[float, str]] = []
    stop = threading.Event()
    products = [0]

    def load() -> None:
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
        b = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
        while not stop.is_set():
            for _ in range(10):
                a @ b
            torch.cuda.synchronize()
            products[0] += 10

    t0 = time.monotonic()
    worker = None
    for phase, seconds in (("idle", args.idle), ("load", args.load), ("idle after", args.idle)):
        phases.append((round(time.monotonic() - t0, 2), phase))
        if phase == "load":
            worker = threading.Thread(target=load)
            worker.start()
        elif worker is not None:
            stop.set()
            worker.join()
            worker = None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = time.monotonic()
            watts = power.read()
            total = power.total(watts)
            meter.add(now, total[1] if total else None)
            samples.append({"t": round(now - t0, 2), "phase": phase, "watts": watts,
                            "temps": thermal.read(),
                            # mJ since the driver loaded, at the same moment
                            "counter_mj": pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)})
            time.sleep(args.poll)
    joules, seconds = meter.take()
    nvml_joules = (samples[-1]["counter_mj"] - samples[0]["counter_mj"]) / 1000

    def mean(phase: str) -> float:
        values = [s["watts"]["GPU0-nvml"] for s in samples if s["phase"] == phase]
        return round(sum(values) / len(values), 1)

    report = {
        "gpu": pynvml.nvmlDeviceGetName(handle),
        "zones": [{"type": z.type, "trips": [[t.type, t.temp_c] for t in z.trips]}
                  for z in thermal.zones],
        "rails": [r.name for r in power.rails],
        "mean_watts": {p: mean(p) for p in ("idle", "load", "idle after")},
        "temps_c_first_last": [samples[0]["temps"], samples[-1]["temps"]],
        "energy_j_integrated": round(joules, 1), "seconds_integrated": round(seconds, 2),
        "energy_j_nvml_counter": round(nvml_joules, 1),
        "integrated_over_counter": round(joules / nvml_joules, 4) if nvml_joules else None,
        "products_fp16_8192": products[0],
        "mj_per_product_under_load": round(
            (mean("load") - mean("idle")) * args.load * 1000 / products[0], 1)
        if products[0] else None,
        "poll_s": args.poll, "phases": phases, "samples": len(samples)}
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
