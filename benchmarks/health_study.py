"""Camera health on fixed-camera videos (edgeswin/demo/fixed_camera.py), judged as the daemon
judges (every 0.5 s of video, the default settings but drift's baseline and window, which are
shortened to fit the videos): for each kind, the delay from the start of the tampering to the
alarm beyond its hold time, and to the clearing beyond `clear_after_s`; for drift, a night
(a third of the light, a noisy sensor) from 120 s to 240 s of a 360 s video, the delay to the
alarm and past the night's end to the clearing; and the alarms raised on clean videos of the
same kind of camera (other views, other seeds).

    python -m benchmarks.health_study -o benchmarks/results/health-study.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks import emit
from edgeswin.config import HealthConfig
from edgeswin.config.health import DriftConfig
from edgeswin.demo import fixed_camera
from edgeswin.tools.measure import machine
from tests.footage import EVENTS, FPS, SECONDS, judged_video

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="tampered and clean videos each")
    ap.add_argument("--clean-seconds", type=float, default=300.0)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    cfg = HealthConfig(drift=DriftConfig(baseline_s=60, window_s=60))
    night = (120.0, 240.0)
    delays: dict[str, list] = {k: [] for k in [*EVENTS, "drift"]}
    false_alarms = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            video = fixed_camera.make(Path(tmp) / f"t{seed}.mp4", SECONDS, FPS, EVENTS, seed)
            changes = judged_video(video, cfg)
            for kind, (start, end) in EVENTS.items():
                raised = next((t for t, kinds in changes if kind in kinds), None)
                cleared = next((t for t, kinds in changes
                                if raised is not None and t > raised and kind not in kinds), None)
                delays[kind].append({
                    "seed": seed,
                    "raise_s_beyond_hold": None if raised is None else
                    round(raised - start - getattr(cfg, f"{kind}_after_s"), 2),
                    "clear_s_beyond_hold": None if cleared is None else
                    round(cleared - end - cfg.clear_after_s, 2)})
            other = [(t, k) for t, k in changes
                     if not any(a <= t < b + cfg.clear_after_s + 3 for a, b in EVENTS.values())]
            false_alarms.append({"tampered_video_seed": seed, "outside_the_events": other})
            dark = fixed_camera.make(Path(tmp) / f"d{seed}.mp4", 360.0, FPS,
                                     {"dark": night}, 200 + seed)
            changes = judged_video(dark, cfg)
            raised = next((t for t, kinds in changes if "drift" in kinds), None)
            cleared = next((t for t, kinds in changes
                            if raised is not None and t > raised and "drift" not in kinds), None)
            delays["drift"].append({
                "seed": 200 + seed, "changes": changes,
                "raise_s_after_start": None if raised is None else round(raised - night[0], 2),
                "clear_s_after_end": None if cleared is None else round(cleared - night[1], 2)})
            clean = fixed_camera.make(Path(tmp) / f"c{seed}.mp4", args.clean_seconds, FPS,
                                      seed=100 + seed)
            false_alarms.append({"clean_video_seed": 100 + seed, "seconds": args.clean_seconds,
                                 "changes": judged_video(clean, cfg)})
            print(seed, {k: v[-1] for k, v in delays.items()}, false_alarms[-1], flush=True)
    report = {"machine": machine(), "settings": cfg.model_dump(),
              "events": {**EVENTS, "drift (own videos)": night},
              "delays": delays, "false_alarms": false_alarms}
    emit(report, args.output, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
