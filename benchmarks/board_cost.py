"""What an open `edgeswin watch --web` page costs the device: the daemon's CPU per
classification with the page closed, then open in a headless Chromium (reading every second),
then closed again, one daemon, one run. The page reads the broker, never the device, so the
difference is the noise of this machine.

    .venv/bin/python -m benchmarks.board_cost --seconds 40 -o benchmarks/results/board-cost.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import emit
from edgeswin.demo.assets import VideoSpec, make_video
from edgeswin.tools.broker import PrivateBroker
from tests.harness import Subscriber, free_port

REPO = Path(__file__).resolve().parent.parent


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(pid: int, sub: Subscriber, seconds: float) -> dict:
    n0, c0 = len(sub.messages), cpu_s(pid)
    time.sleep(seconds)
    n, c = len(sub.messages) - n0, cpu_s(pid) - c0
    return {"classifications": n, "cpu_ms_per_classification": round(1000 * c / max(n, 1), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    work = Path(tempfile.mkdtemp(prefix="edgeswin-board-"))
    video = work / "cam.mp4"
    make_video(video, VideoSpec(seconds=10, fps=15, width=640, height=360, seed=3))
    broker = PrivateBroker(work)
    broker.start()
    cfg = work / "cfg"
    (cfg / "cameras").mkdir(parents=True)
    (cfg / "edgeswin.yaml").write_text(yaml.safe_dump({
        "device_id": "cost", "state_dir": str(work / "state"), "stats_interval_s": 2,
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "qos": 1},
        "engines": [{"name": "primary", "model": str(REPO / "models/swin-demo-112.onnx")}],
        "fallback": {"thermal_root": str(work / "none")}}))
    for name in ("a", "b"):
        (cfg / "cameras" / f"{name}.yaml").write_text(yaml.safe_dump(
            {"source": str(video), "loop": True, "fps": 10}))
    daemon = subprocess.Popen([sys.executable, "-m", "edgeswin", "run", "-c", str(cfg)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    sub = Subscriber(broker.port, "edgeswin/cost/+/classification")
    port = free_port()
    board = subprocess.Popen([sys.executable, "-m", "edgeswin", "watch", "--web", "--port",
                              str(broker.port), "--web-port", str(port), "--every", "1"],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        time.sleep(15)  # warm: engines, first snapshots
        closed = phase(daemon.pid, sub, args.seconds)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            options.add_argument(arg)
        browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                   options=options)
        browser.get(f"http://127.0.0.1:{port}/")
        time.sleep(3)
        opened = phase(daemon.pid, sub, args.seconds)
        browser.quit()
        again = phase(daemon.pid, sub, args.seconds)
    finally:
        board.terminate()
        daemon.terminate()
        daemon.wait(20)
        board.wait(20)
        sub.close()
        broker.stop()
    report = {"seconds_per_phase": args.seconds, "cameras": 2, "page_closed": closed,
              "page_open": opened, "page_closed_again": again,
              "ratio_open_vs_closed": round(opened["cpu_ms_per_classification"] /
                                            closed["cpu_ms_per_classification"], 3)}
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
