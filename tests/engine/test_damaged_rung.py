"""One damaged model never stops a device that another rung can serve: each kind of damage a
power cut or a bad copy leaves, on either rung of two, is named by `check` at its line with the
rung skipped (exit 0, the unit's ExecStartPre passes); `run` serves the other rung; only when
every rung is damaged is it a config error and nothing starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.harness import PRIMARY, REPO, SMALL, Subscriber, write_config
from tests.streams import free_port

DAMAGE = {
    "truncated model": ("model", lambda m: m.write_bytes(m.read_bytes()[:5000]),
                        "not a readable ONNX model"),
    "random bytes": ("model", lambda m: m.write_bytes(os.urandom(4096)),
                     "not a readable ONNX model"),
    "empty model": ("model", lambda m: m.write_bytes(b""), ""),
    "the other model's graph": ("model", lambda m: shutil.copyfile(
        SMALL if m.name.startswith(PRIMARY.stem) else PRIMARY, m), "shape"),
    "missing sidecar": ("sidecar", lambda m: m.with_suffix(".json").unlink(), "is missing"),
    "cut sidecar": ("sidecar", lambda m: m.with_suffix(".json").write_bytes(
        m.with_suffix(".json").read_bytes()[:40]), ""),
    "binary sidecar": ("sidecar", lambda m: m.with_suffix(".json").write_bytes(os.urandom(300)),
                       ""),
    "missing model": ("model", lambda m: m.unlink(), "model file does not exist"),
}


def _ladder(tmp_path, damaged: set[int], kind: str, videos, port: int = 1,
            **device):
    models = []
    for rung, src in enumerate((PRIMARY, SMALL)):
        dst = tmp_path / "models" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
        if rung in damaged:
            DAMAGE[kind][1](dst)
        models.append(dst)
    return write_config(tmp_path / "cfg", port, {
        "north": {"source": str(videos["north"]), "fps": 5}},
        {"engines": [{"name": "primary", "model": str(models[0])},
                     {"name": "small", "model": str(models[1])}], **device})


def _edgeswin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeswin", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_check_names_a_damaged_rung_and_skips_it_and_refuses_only_when_none_can_serve(
        tmp_path, videos, kind):
    for damaged in ({0}, {1}, {0, 1}):
        cfg = _ladder(tmp_path / f"r{'-'.join(map(str, sorted(damaged)))}", damaged, kind,
                      videos)
        done = _edgeswin("check", "-c", str(cfg))
        yaml_file = f"{cfg}/edgeswin.yaml:"
        if damaged == {0, 1}:
            assert done.returncode == 1, done.stdout
            assert "2 config error(s)" in done.stderr and done.stderr.count(yaml_file) == 2, \
                done.stderr
            continue
        assert done.returncode == 0, (kind, damaged, done.stderr)
        (rung,) = damaged
        name = ("primary", "small")[rung]
        skipped = [line for line in done.stdout.splitlines() if "is skipped" in line]
        assert len(skipped) == 1 and skipped[0].startswith(
            f"  rung {rung} ({name}) is skipped: {yaml_file}") and \
            f"engines.{rung}.model: " in skipped[0] and DAMAGE[kind][2] in skipped[0], \
            done.stdout
        other = 1 - rung
        assert f"  rung {other} ({('primary', 'small')[other]}): " in done.stdout, done.stdout


@pytest.mark.mqtt
@pytest.mark.parametrize("kind, rung", [("truncated model", 0), ("missing sidecar", 1),
                                        ("missing model", 0)])
def test_run_serves_the_rung_that_can_and_says_which_is_skipped(tmp_path, broker, videos,
                                                                 daemon_factory, kind, rung):
    port = free_port()
    cfg = _ladder(tmp_path, {rung}, kind, videos, broker.port,
                  metrics={"enabled": True, "port": port})
    name = ("primary", "small")[rung]
    sub = Subscriber(broker.port)
    try:
        daemon = daemon_factory(cfg)
        assert sub.wait_for(lambda: sub.on("edgeswin/testdev/engine"), 60), daemon.log()
        # The operator sees the skipped rung where they look: the retained engine message
        # and the metrics, not only the log.
        said = sub.json_on("edgeswin/testdev/engine")[-1]
        assert (PRIMARY, SMALL)[rung].stem in said["skipped"][name], said
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert f'edgeswin_engine_rung_usable{{engine="{name}",rung="{rung}"}} 0.0' in metrics
        other = ("primary", "small")[1 - rung]
        assert f'edgeswin_engine_rung_usable{{engine="{other}",rung="{1 - rung}"}} 1.0' \
            in metrics, metrics
        assert daemon.proc.wait(120) == 0, daemon.log()[-3000:]
        served = {m["engine"] for m in map(json.loads, sub.on(
            "edgeswin/testdev/north/classification"))}
        assert served == {other}, (served, daemon.log()[-3000:])
        assert f"engine rung {rung} ({name}) is skipped, the others serve" in daemon.log()
    finally:
        sub.close()
