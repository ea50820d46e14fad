"""CPU per frame of a 1080p H.264 rtsp:// camera: FFmpeg at full size (decoder: ffmpeg) against
GStreamer decoding and scaling to 640 px before Python sees the frame (decoder: auto off a
Jetson), and GStreamer at full size for reference; each followed by the demo model's CPU
preprocessing of the frame it hands over.

A real RTSP server (gst-rtsp-server, tests/rtsp_server.py) streams a 1920x1080 H.264 file of
demo scenes at 15 fps from another process, so only the receiving side is measured: process
CPU time (every thread: FFmpeg's and GStreamer's decoders included) per second of stream and
per frame handed over, reading as fast as frames come for `--seconds`, the variants
alternating for `--rounds` rounds.

    python -m benchmarks.decode_study -o benchmarks/results/decode-study.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from edgeswin.capture.camera import open_capture
from edgeswin.config import CameraConfig, parse_source
from edgeswin.demo.assets import VideoSpec, make_video
from edgeswin.engine import read_model_info
from edgeswin.prepare.preprocess import Preprocessor
from tests.rtsp_server import RtspCamera, h264_copy
from tests.streams import free_port

REPO = Path(__file__).resolve().parent.parent

VARIANTS = (("ffmpeg, full size", "ffmpeg", 640), ("gstreamer, scaled to 640", "gstreamer", 640),
            ("gstreamer, full size", "gstreamer", 1920))


def measure(url: str, decoder: str, width: int, seconds: float, prepare) -> dict:
    """Read for `seconds` after the first frame: the process's CPU per second of stream (a
    live camera costs that whether or not each frame is used) and per frame delivered."""
    cfg = CameraConfig(name="study", source=url, decoder=decoder)
    cap, how = open_capture(parse_source(url, Path(".")), cfg, width)
    for _ in range(15):  # the connection's set-up and any backlog: not counted
        ok, image = cap.read()
        if not ok:
            raise RuntimeError(f"{decoder}: no frame from {url}")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    prep_s, frames = 0.0, 0
    while time.perf_counter() - wall0 < seconds:
        ok, image = cap.read()
        if not ok:
            raise RuntimeError(f"{decoder}: the stream ended early")
        t0 = time.process_time()
        prepare(image)
        prep_s += time.process_time() - t0
        frames += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    cap.release()
    return {"decoder": how, "shape": list(image.shape), "frames": frames,
            "cpu_ms_per_stream_second": round(cpu * 1000 / wall, 1),
            "cpu_ms_per_frame": round(cpu * 1000 / frames, 3),
            "preprocess_cpu_ms_per_frame": round(prep_s * 1000 / frames, 3),
            "fps": round(frames / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()
    model = REPO / "models" / "swin-demo-112.onnx"
    prepare = Preprocessor(read_model_info(model).input)
    with tempfile.TemporaryDirectory() as tmp:
        scenes = Path(tmp) / "scenes.mp4"
        seconds = args.rounds * len(VARIANTS) * (args.seconds + 3) + 10
        make_video(scenes, VideoSpec(seconds=int(seconds), fps=15, width=1920, height=1080,
                                     seed=7))
        stream = h264_copy(scenes, Path(tmp) / "scenes-1080p.mp4", 1920, 1080)
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in VARIANTS}
        with RtspCamera(stream, free_port()) as camera:
            for _ in range(args.rounds):
                for name, decoder, width in VARIANTS:
                    runs[name].append(measure(camera.url, decoder, width, args.seconds,
                                              prepare))
                    print(name, runs[name][-1], flush=True)
    summary = {name: {key: statistics.median(r[key] for r in rs)
                      for key in ("cpu_ms_per_stream_second", "cpu_ms_per_frame",
                                  "preprocess_cpu_ms_per_frame", "fps")}
               | {"shape": rs[0]["shape"]}
               for name, rs in runs.items()}
    base = summary["ffmpeg, full size"]["cpu_ms_per_stream_second"]
    for row in summary.values():
        row["x_ffmpeg"] = round(row["cpu_ms_per_stream_second"] / base, 3)
    result = {"host": {"cpu": platform.processor() or platform.machine(),
                       "opencv": cv2.__version__},
              "stream": "1920x1080 H.264, 15 fps, demo scenes, RTSP over TCP on loopback",
              "seconds_per_run": args.seconds, "rounds": args.rounds, "median": summary,
              "runs": runs}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
