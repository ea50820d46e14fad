"""A year on the device in minutes (`benchmarks/longrun.py`, short): model updates and
rollbacks, reloads, cameras added and removed, broker restarts and pauses, a daemon killed,
against a real broker; it must pass its own judgement. And that judgement fails on what it
looks for: a reordered or lost classification, a stray duplicate, a store over its bound, a
removed camera's retained topic."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys

import pytest

from tests.harness import REPO


def _longrun():
    return importlib.import_module("benchmarks.longrun")


def _report(seqs, events=(), last_mb=None, removed=(), lives=()):
    lr = _longrun()
    return lr, {
        "events": [list(e) for e in events], "daemon_kills": 0, "exit_code": 0,
        "memory": {"per_life": list(lives)},
        "disk": {"bounds_mb": {"snapshots": 10}, "last_mb": last_mb or {"snapshots": 1},
                 "state_mb_first_half_max": 10, "state_mb_last_quarter": 10.5},
        "retained": {"second_quarter_max": 40, "last": 38, "of_removed_camera": list(removed)},
        "classifications": lr.sequence_report(seqs)}


def _verdicts(lr, report) -> dict[str, bool]:
    args = argparse.Namespace(judge_memory_after=100_000)
    return {c["claim"].split(": ", 1)[-1]: c["ok"] for c in lr.judge(report, args)}


def test_the_judgement_fails_on_what_it_looks_for():
    clean = [("door", s, s * 0.1) for s in range(1, 50)] + [("door", s, 10 + s) for s in (1, 2)]
    lr, report = _report(clean)
    assert all(_verdicts(lr, report).values()), lr.judge(report, argparse.Namespace(
        judge_memory_after=100_000))
    assert report["classifications"]["door"]["runs"] == 2, "a restart starts a run of seq"

    swapped = [("door", s, s * 0.1) for s in (1, 2, 4, 3, 5)]
    said = _verdicts(*_report(swapped))
    assert said["none out of order per camera"] is False and said["none lost"] is True
    gap = [("door", s, s * 0.1) for s in (1, 2, 3, 5, 6)]
    assert _verdicts(*_report(gap))["none lost"] is False
    twice = [("door", s, s * 1.0) for s in (1, 2, 3, 3, 4)]
    stray = "duplicates only within 30 s after a broker restart or pause or a daemon kill"
    assert _verdicts(*_report(twice))[stray] is False
    assert _verdicts(*_report(twice, events=[(1.0, "week 0: broker restart")]))[stray] is True
    over = _verdicts(*_report(clean, last_mb={"snapshots": 12}))
    assert over["every store within its bound at the end"] is False
    def life(first, last):
        return {"classifications": 150_000, "rss_mb_first_third": first,
                "rss_mb_last_third": last, "rss_growth_mb": last - first}

    grows = "within each daemon's life RSS grows at most 5.0 % (or 16.0 MB) from its first " \
            "third of weeks to its last"
    assert _verdicts(*_report(clean, lives=[life(320, 330)]))[grows] is True
    assert _verdicts(*_report(clean, lives=[life(320, 330), life(320, 380)]))[grows] is False
    assert grows not in _verdicts(*_report(clean)), "no long life: memory is not judged"
    left = _verdicts(*_report(clean, removed=["edgeswin/longrun/extra/state"]))
    assert left["nothing of the removed camera is left"] is False


@pytest.mark.mqtt
def test_a_short_year_passes_its_own_judgement(tmp_path):
    out = tmp_path / "longrun.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.longrun", "--minutes", "2.5",
         "--week-s", "15", "--kill-every-weeks", "6", "--sample", "4", "--warmup-s", "30",
         "--out", str(out), "--keep", str(tmp_path / "daemon.log")],
        capture_output=True, text=True, cwd=REPO, timeout=900)
    report = json.loads(out.read_text()) if out.exists() else {}
    broken = [c for c in report.get("claims", []) if not c["ok"]]
    assert done.returncode == 0 and not broken, (broken, done.stdout[-3000:],
                                                 done.stderr[-3000:])
    events = " ".join(what for _, what in report["events"])
    for happened in ("model update", "rollback by hand", "broker restart", "camera added",
                     "camera removed", "daemon SIGKILL"):
        assert happened in events, (happened, report["events"])
    assert report["daemon_kills"] == 1 and report["classifications"]["door"]["runs"] >= 2
