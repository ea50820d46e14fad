"""Twenty real daemons on one real broker take one signed push: every one reports it applied,
with one config_sha256, and each sent two reports for it (rolling_out, applied). The figures
(time to converge, bytes) are the benchmark's: benchmarks/fleet_converge.py, which this runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.harness import REPO

pytestmark = pytest.mark.mqtt


def test_twenty_devices_converge_on_one_push(tmp_path):
    out = tmp_path / "fleet.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.fleet_converge", "--devices", "20",
                           "-o", str(out)], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(out.read_text())["runs"][0]
    assert run["online_before_push"] == 20, run
    assert run["applied"] == 20 and run["distinct_config_sha256"] == 1, run
    assert run["per_device"]["sent"]["messages"] == 2, run  # rolling_out, applied
    assert run["per_device"]["received"]["bytes"] > 0
