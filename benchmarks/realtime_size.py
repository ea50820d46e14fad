"""One realtime camera's capture-to-publish minus inference, with the frame at full 1080p
against the frame already at 640x360 (what `decoder: auto` hands over on a Jetson, and
`decoder: gstreamer` elsewhere, for an rtsp:// camera: the decoder scales before Python sees
the frame). The same rendered scenes at both sizes, a synthetic 1 ms engine (as TensorRT's
wait on its stream), the two sizes alternating for `--rounds` rounds of `--seconds`.

    python -m benchmarks.realtime_size -o benchmarks/results/realtime-size.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import emit
from edgeswin.demo.assets import (
    VideoSpec,
    default_demo_model,
    make_video,
)
from edgeswin.tools.bench import _broker
from edgeswin.tools.measure import DaemonRun, daemon_run, machine

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    model = default_demo_model().resolve()
    videos = {}
    for w, h in ((1920, 1080), (640, 360)):
        path = REPO / "build" / "bench" / f"bench-{w}x{h}.mp4"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            make_video(path, VideoSpec(seconds=10, fps=15, width=w, height=h, seed=5))
        videos[f"{w}x{h}"] = path
    runs: dict[str, list[dict]] = {}
    with _broker(None) as port:
        for _ in range(args.rounds):
            for name, video in videos.items():
                r = daemon_run(DaemonRun(model, video, port, 1, 1, args.seconds, warmup_s=1.0,
                                         realtime=True, engine_ms=1.0))
                runs.setdefault(name, []).append(
                    {"overhead_ms": r["overhead_ms"], "n": r["n"],
                     "p50_ms": {k: v["p50"] for k, v in r["latency_ms"].items()}})
                print(name, runs[name][-1], flush=True)
    medians = {name: sorted(r["overhead_ms"]["p50"] for r in rs)[len(rs) // 2]
               for name, rs in runs.items()}
    report = {"machine": machine(), "engine": "synthetic 1 ms", "seconds_per_run": args.seconds,
              "overhead_p50_ms": medians,
              "ratio_640_to_1080": round(medians["640x360"] / medians["1920x1080"], 3),
              "runs": runs}
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
