"""What judging camera health costs: the daemon on 1 and 8 cameras (the bench video, a
synthetic 1 ms engine, unpaced), with `health.enabled` true and false, alternating for
`--rounds` rounds. Host CPU per classification (every thread) and classifications per second.

    python -m benchmarks.health_cost -o benchmarks/results/health-cost.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks import emit
from edgeswin.demo.assets import default_demo_model
from edgeswin.tools.bench import _broker, bench_video
from edgeswin.tools.measure import DaemonRun, daemon_run, machine

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    model = default_demo_model().resolve()
    video = bench_video(REPO / "build" / "bench" / "bench-640x360.mp4").resolve()
    runs: dict[str, list[dict]] = {}
    with _broker(None) as port:
        for i in range(args.rounds):
            for health in ((True, False) if i % 2 == 0 else (False, True)):
                for cameras in (1, 8):
                    r = daemon_run(DaemonRun(model, video, port, cameras, 1, args.seconds,
                                             warmup_s=1.0, engine_ms=1.0, health=health))
                    key = f"{cameras}cam_health_{'on' if health else 'off'}"
                    runs.setdefault(key, []).append(
                        {"fps": r["fps"], "cpu_ms": r["process_cpu_ms_per_classification"]})
                    print(key, runs[key][-1], flush=True)
    median = {k: {m: statistics.median(x[m] for x in v) for m in ("fps", "cpu_ms")}
              for k, v in runs.items()}
    ratio = {f"{n}cam_cpu_on_vs_off": round(median[f"{n}cam_health_on"]["cpu_ms"] /
                                            median[f"{n}cam_health_off"]["cpu_ms"], 3)
             for n in (1, 8)}
    report = {"machine": machine(), "engine": "synthetic 1 ms", "video": video.name,
              "median": median, "ratios": ratio, "runs": runs}
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
