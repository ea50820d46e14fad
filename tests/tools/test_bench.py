"""`edgeswin bench` runs end to end on the real daemon and reports every figure it promises
(figures themselves are measured, not asserted: this machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.harness import REPO


@pytest.mark.mqtt
def test_bench_reports_every_figure(tmp_path, videos):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "edgeswin", "--log-level", "error", "bench",
                          "--video", str(videos["north"]), "--cameras", "1,2", "--seconds", "1",
                          "--rounds", "1", "-o", str(out)], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert [d["cameras"] for d in report["daemon"]] == [1, 2]
    for run_ in report["daemon"] + [report["latency_realtime_1cam"]]:
        assert run_["n"] > 0 and run_["fps"] > 0 and 0 < run_["engine_busy_fraction"] <= 1.05
        assert {"decode", "wait", "preprocess", "inference", "postprocess",
                "capture_to_publish"} == run_["latency_ms"].keys()
    shares = report["daemon"][1]["per_camera_fps"]
    assert set(shares) == {"cam0", "cam1"}
    assert min(shares.values()) >= 0.7 * max(shares.values()), f"cameras take turns: {shares}"
    split = report["regions_vs_cameras"]
    # One camera cut into 4 regions decodes each frame once for 4 classifications; 4 cameras
    # decode a frame for each.
    assert split["1cam_4regions"]["frames_decoded_per_classification"] <= 0.3
    assert split["4cams"]["frames_decoded_per_classification"] >= 0.9
    assert split["1cam_4regions"]["process_cpu_ms_per_classification"] > 0
    assert report["ratios"]["4regions_vs_4cams"] > 0
    assert report["raw_engine"]["fps"] > 0 and report["serial_loop"]["fps"] > 0
    assert report["preprocess_1080p"]["ms_p50"] > 0
    assert report["health"]["on"]["n"] > 0 and report["health"]["off"]["n"] > 0
    assert report["ratios"]["health_on_vs_off_cpu_per_classification"] > 0
    assert report["mqtt"]["per_second"]["qos0"] > 0 and report["mqtt"]["per_second"]["qos1"] > 0
    assert set(report["goals"]) == {"daemon_1cam_vs_raw >= 0.95", "daemon_8cam_vs_raw >= 0.90",
                                    "overhead p50 <= 3 ms", "preprocess 1080p p50 <= 2 ms"}


def test_bench_charts_the_daemon_against_a_synthetic_engines_cost(tmp_path, videos):
    """`--engine-ms`: an engine that only waits (without the GIL, as a GPU engine does) shows
    what the daemon around it costs. A 20 ms engine caps everything near 50/s; the daemon with
    two cameras keeps it busy at least as well as the serial loop does."""
    out = tmp_path / "sweep.json"
    run = subprocess.run([sys.executable, "-m", "edgeswin", "--log-level", "error", "bench",
                          "--video", str(videos["north"]), "--cameras", "1,2", "--seconds", "2",
                          "--engine-ms", "0,20", "-o", str(out)], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    free, slow = json.loads(out.read_text())["engine_sweep"]
    assert (free["engine_ms"], slow["engine_ms"]) == (0, 20)
    assert free["raw_fps"] > 10 * slow["raw_fps"] and 40 <= slow["raw_fps"] <= 51
    for row in (free, slow):
        assert set(row["daemon"]) == {"1", "2"}
        for n in ("1", "2"):
            assert row["daemon"][n]["host_cpu_ms_per_classification"] > 0
    assert slow["daemon"]["2"]["fps"] <= 51 and slow["daemon"]["2"]["vs_serial"] >= 0.9
    bad = subprocess.run([sys.executable, "-m", "edgeswin", "bench", "--engine-ms", "5,x"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 1 and "--engine-ms: comma-separated numbers" in bad.stderr
