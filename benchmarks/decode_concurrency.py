"""What decoding costs per frame when 1 or 8 cameras decode at once: each camera a thread
reading the bench video (640x360) through OpenCV's FFmpeg backend as fast as it decodes, with
nothing else running. Process CPU (every thread: FFmpeg's own decoder threads too) and the
reading threads' own CPU, per frame; the counts alternating for `--rounds` rounds.

It separates the eight-camera extra that decoding brings by itself (the decoders' working
sets competing for the caches) from what the daemon adds around it.

    python -m benchmarks.decode_concurrency -o benchmarks/results/decode-concurrency.json
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import cv2

from benchmarks import emit
from edgeswin.tools.bench import bench_video, machine

REPO = Path(__file__).resolve().parent.parent

FRAMES = 300


def decode(video: Path, cameras: int) -> dict:
    own: dict[int, float] = {}

    def read(i: int) -> None:
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        t0 = time.thread_time()
        for _ in range(FRAMES):
            ok, _frame = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        own[i] = time.thread_time() - t0
        cap.release()

    cpu0 = time.process_time()
    threads = [threading.Thread(target=read, args=(i,)) for i in range(cameras)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    frames = cameras * FRAMES
    return {"process_cpu_ms_per_frame": round((time.process_time() - cpu0) * 1000 / frames, 3),
            "reading_thread_cpu_ms_per_frame": round(sum(own.values()) * 1000 / frames, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # as the daemon sets it (`opencv_threads`)
    video = bench_video(REPO / "build" / "bench" / "bench-640x360.mp4")
    runs: dict[str, list[dict]] = {"1": [], "8": []}
    for _ in range(args.rounds):
        for n in (1, 8):
            runs[str(n)].append(decode(video, n))
    median = {n: sorted(r["process_cpu_ms_per_frame"] for r in rs)[len(rs) // 2]
              for n, rs in runs.items()}
    report = {"machine": machine(), "video": video.name, "frames_per_camera": FRAMES,
              "median_process_cpu_ms_per_frame": median,
              "ratio_8_to_1": round(median["8"] / median["1"], 3), "runs": runs}
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
