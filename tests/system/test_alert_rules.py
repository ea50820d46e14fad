"""The shipped Prometheus alert rules are valid and fire on what they are for: promtool checks
deploy/prometheus/edgeswin-alerts.yml and runs its unit tests (edgeswin-alerts.test.yml: each
alert after its hold, none on a healthy device), and every metric they read is one the daemon
serves."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.harness import REPO

RULES = REPO / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: make test installs it (Debian package prometheus)"
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=RULES, timeout=120)


def test_the_rules_are_valid():
    done = promtool("check", "rules", "edgeswin-alerts.yml")
    assert done.returncode == 0 and "SUCCESS: 6 rules found" in done.stdout, done


def test_each_alert_fires_after_its_hold_and_not_before():
    done = promtool("test", "rules", "edgeswin-alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_read_metrics_the_daemon_serves():
    served = (REPO / "edgeswin" / "publish" / "metrics.py").read_text()
    used = set(re.findall(r"\b(edgeswin_[a-z_]+)", (RULES / "edgeswin-alerts.yml").read_text()))
    assert used, "the rules read edgeswin metrics"
    for name in used:
        assert f'"{name.removesuffix("_total")}"' in served, f"{name} is not served"
