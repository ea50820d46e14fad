"""`edgeswin demo`: generates missing assets, runs the daemon, prints a live view and a summary."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.harness import REPO, write_config

pytestmark = pytest.mark.mqtt


def test_demo_generates_assets_runs_and_summarises(tmp_path, broker, subscriber):
    assets = tmp_path / "assets"
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "lobby": {"source": str(assets / "lobby.mp4"), "fps": 10},
        "yard": {"source": str(assets / "yard.mp4"), "fps": 10}})
    # The camera files name videos that do not exist yet: the demo must make them first.
    run = subprocess.run([sys.executable, "-m", "edgeswin", "demo", "-c", str(cfg),
                          "--seconds", "6"],
                         capture_output=True, text=True, cwd=REPO, timeout=180)
    assert run.returncode == 0, run.stderr
    assert (assets / "lobby.mp4").is_file() and (assets / "yard.labels.csv").is_file()
    assert re.search(r"lobby +online +[\d.]+ fps", run.stdout), run.stdout  # the live view
    summary = run.stdout.strip().splitlines()[-1]
    assert summary.startswith("Demo finished after") and "every source has ended" in summary
    agreements = [float(a) for a in re.findall(r"([\d.]+)% agreement with ground truth", summary)]
    assert len(agreements) == 2 and min(agreements) >= 90, summary
    assert subscriber.on("edgeswin/testdev/lobby/classification")
