"""What a new user meets first: paths written relative to their file, `check` catching what
`run` would stop on, every problem at its key, documented sources, one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edgeswin.config import load_config
from edgeswin.errors import ConfigError
from tests.harness import PRIMARY, REPO, SMALL, Subscriber, write_config

CLIP = REPO / "clips" / "demo.mp4"


def edgeswin(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "edgeswin", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def relative_config(root: Path, port: int) -> Path:
    """A config whose every path is written relative to the file that holds it."""
    cfg = root / "site" / "cfg"
    (cfg / "cameras").mkdir(parents=True)
    shutil.copy(SMALL, root / "site" / "m.onnx")
    shutil.copy(SMALL.with_suffix(".json"), root / "site" / "m.json")
    shutil.copy(CLIP, root / "site" / "clip.mp4")
    (cfg / "pw").write_text("secret\n")
    (cfg / "edgeswin.yaml").write_text(yaml.safe_dump({
        "device_id": "rel", "state_dir": "../state",
        "mqtt": {"host": "127.0.0.1", "port": port, "username": "u", "password_file": "pw"},
        "engines": [{"name": "only", "model": "../m.onnx"}],
        "fallback": {"thermal_root": "../thermal"},
        "power": {"hwmon_root": "../hwmon", "devfreq_root": "../devfreq",
                  "nvpmodel_conf": "nvpmodel.conf", "nvpmodel": "./bin/nvpmodel"},
        "stats_interval_s": 1}))
    (cfg / "cameras" / "gate.yaml").write_text("source: ../../clip.mp4\nfps: 0\n"
                                               "realtime: false\n")
    return cfg


def test_relative_paths_are_taken_from_their_file_not_the_working_directory(tmp_path, broker):
    cfg = relative_config(tmp_path, broker.port)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    site = tmp_path / "site"
    old = Path.cwd()
    try:
        os.chdir(elsewhere)
        device = load_config(os.path.relpath(cfg, elsewhere)).device
    finally:
        os.chdir(old)
    assert device.state_dir == str(site / "state")
    assert device.mqtt.password_file == str(cfg / "pw")
    assert device.fallback.thermal_root == str(site / "thermal")
    assert (device.power.hwmon_root, device.power.devfreq_root) == (str(site / "hwmon"),
                                                                    str(site / "devfreq"))
    assert device.power.nvpmodel_conf == str(cfg / "nvpmodel.conf")
    assert device.power.nvpmodel == str(cfg / "bin" / "nvpmodel")
    assert load_config(cfg).device.power.model_copy().nvpmodel.endswith("bin/nvpmodel")

    check = edgeswin("check", "-c", os.path.relpath(cfg, elsewhere), cwd=elsewhere)
    assert check.returncode == 0, check.stderr
    assert "1 camera(s) (1 enabled)" in check.stdout
    # run from there too: the clip plays to its end, the state lands beside the config
    run = edgeswin("run", "-c", os.path.relpath(cfg, elsewhere), cwd=elsewhere, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (site / "state" / "outbox.sqlite3").is_file()
    assert not (elsewhere / "state").exists() and not (tmp_path / "state").exists()
    assert "every source has ended" in run.stderr


def test_the_demo_config_keeps_its_state_inside_the_checkout():
    text = (REPO / "configs" / "demo" / "edgeswin.yaml").read_text()
    state = yaml.safe_load(text)["state_dir"]
    assert (REPO / "configs" / "demo" / state).resolve() == REPO / "build" / "state"


def _issues(cfg: Path) -> list[str]:
    """What `check` refuses: the config, then whether any engine rung can serve."""
    from edgeswin.prestart import check_rungs
    with pytest.raises(ConfigError) as exc:
        check_rungs(load_config(cfg))
    return [str(i) for i in exc.value.issues]


def test_check_reads_what_run_would_stop_on(tmp_path, monkeypatch):
    video = tmp_path / "v.mp4"
    shutil.copy(CLIP, video)
    cams = {"cam": {"source": str(video)}}
    # a password file that is not there, and a password with no user name to go with it
    cfg = write_config(tmp_path / "a", 1883, cams, {"mqtt": {"username": "u",
                                                             "password_file": "nope"}})
    assert any("edgeswin.yaml:" in i and "mqtt.password_file: file does not exist" in i
               for i in _issues(cfg))
    (tmp_path / "a" / "pw").write_text("x")
    cfg = write_config(tmp_path / "a", 1883, cams, {"mqtt": {"password_file": "pw"}})
    assert any("mqtt.password_file: password_file without username" in i for i in _issues(cfg))
    monkeypatch.delenv("EDGESWIN_TEST_PW", raising=False)
    cfg = write_config(tmp_path / "a", 1883, cams, {"mqtt": {"username": "u",
                                                             "password_env": "EDGESWIN_TEST_PW"}})
    assert any("mqtt.password_env: variable EDGESWIN_TEST_PW is not set" in i
               for i in _issues(cfg))
    monkeypatch.setenv("EDGESWIN_TEST_PW", "pw")
    assert load_config(cfg).device.mqtt.password_env == "EDGESWIN_TEST_PW"
    # a model without its sidecar
    bare = tmp_path / "bare.onnx"
    shutil.copy(SMALL, bare)
    cfg = write_config(tmp_path / "b", 1883, cams,
                       {"engines": [{"name": "a", "model": str(bare)}]})
    assert any("engines.0.model:" in i and "bare.json is missing" in i for i in _issues(cfg))
    # a sidecar that does not fit its model: the other model's labels and input size
    shutil.copy(PRIMARY.with_suffix(".json"), bare.with_suffix(".json"))
    assert any("engines.0.model:" in i and "input shape" in i for i in _issues(cfg))
    # metrics on, with no prometheus-client for this Python
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "prometheus_client" else real(name, *a))
    cfg = write_config(tmp_path / "c", 1883, cams, {"metrics": {"enabled": True}})
    assert any("metrics.enabled: metrics need prometheus-client" in i and "bin/pip install" in i
               for i in _issues(cfg))


def test_every_problem_is_reported_at_its_key_even_beside_field_errors(tmp_path):
    video = tmp_path / "v.mp4"
    shutil.copy(CLIP, video)
    cfg = write_config(tmp_path / "a", 1883, {
        "cam": {"source": str(video), "fps": 2, "min_fps": 5, "topk": "three",
                "regions": [{"name": "a", "box": [0, 0, 0.5, 1]},
                            {"name": "a", "box": [0.5, 0, 1, 1]}]}},
        {"stats_interval_s": -1,
         "fallback": {"degrade_above_c": 70, "levers": ["power_mode"]}})
    issues = "\n".join(_issues(cfg))
    for expected in ("cam.yaml:2: min_fps: min_fps 5 is above fps 2",
                     "cam.yaml:", "regions.1.name: region name a used more than once",
                     "topk: Input should be a valid integer",
                     "edgeswin.yaml:", "stats_interval_s: Input should be greater than 0",
                     "fallback.recover_below_c: recover_below_c (75) must be below "
                     "degrade_above_c (70)",
                     "fallback.power_modes: levers has power_mode but power_modes is empty"):
        assert expected in issues, issues
    lines = {i.split(": ")[1]: i.split(": ")[0] for i in _issues(cfg)}
    assert not any(where.endswith(":1") for key, where in lines.items()
                   if key.startswith(("min_fps", "regions", "fallback"))), lines
    # a check against the ladder, at its key
    cfg = write_config(tmp_path / "b", 1883, {"cam": {"source": str(video)}},
                       {"fallback": {"pinned_rung": 5}})
    assert any("edgeswin.yaml:" in i and "fallback.pinned_rung: pinned_rung 5 but the ladder "
               "has 2 rung(s)" in i for i in _issues(cfg))


def test_a_camera_file_name_that_cannot_be_a_camera_name_says_so(tmp_path):
    video = tmp_path / "v.mp4"
    shutil.copy(CLIP, video)
    cfg = write_config(tmp_path / "a", 1883, {"front.door": {"source": str(video)}})
    issues = _issues(cfg)
    assert len(issues) == 1 and "front.door.yaml:1: file name front.door.yaml" in issues[0]
    (cfg / "cameras" / "front.door.yaml").write_text(f"name: front-door\nsource: {video}\n")
    assert load_config(cfg).cameras[0].config.name == "front-door"


def test_a_bare_device_index_is_a_source(tmp_path):
    cfg = write_config(tmp_path / "a", 1883, {"usb": {"source": 0}})
    entry = load_config(cfg).cameras[0]
    assert (entry.source.kind, entry.source.target) == ("v4l2", 0)


def test_verbs_fail_in_one_line_and_take_the_log_level_after_the_verb(tmp_path):
    cfg = write_config(tmp_path / "a", 1883, {"down": {"source": "rtsp://127.0.0.1:1/x",
                                                       "open_timeout_s": 1}})
    snap = edgeswin("snapshot", "down", "-c", str(cfg), "--log-level", "warning", cwd=tmp_path)
    assert snap.returncode == 1 and "Traceback" not in snap.stderr, snap.stderr
    assert snap.stderr.strip().splitlines()[-1].startswith("edgeswin: error: 127.0.0.1:1 "
                                                           "takes no connection")
    bench = edgeswin("bench", "--cameras", "x", cwd=tmp_path)
    assert bench.returncode == 1 and "Traceback" not in bench.stderr
    assert "--cameras: comma-separated camera counts" in bench.stderr
    assert not (tmp_path / "build").exists(), "nothing generated before the error"
    ev = edgeswin("eval", str(tmp_path / "missing.onnx"), "--data", str(tmp_path), cwd=tmp_path)
    assert ev.returncode == 1 and "Traceback" not in ev.stderr
    assert "missing.onnx" in ev.stderr
    helptext = edgeswin("check", "--help", cwd=tmp_path).stdout
    assert "(default: /etc/edgeswin)" in helptext


def test_the_demo_config_is_found_from_any_directory(tmp_path):
    started = time.monotonic()
    # a copy whose camera files point at videos that are not there: made before the run
    cfg = tmp_path / "demo"
    shutil.copytree(REPO / "configs" / "demo", cfg)
    for camera in (cfg / "cameras").glob("*.yaml"):
        camera.write_text(camera.read_text().replace("../../../build/demo/", "../../videos/"))
    text = (cfg / "edgeswin.yaml").read_text().replace("../../models/", f"{REPO}/models/")
    (cfg / "edgeswin.yaml").write_text(text.replace("../../build/state", "../state"))
    done = edgeswin("demo", "--prepare", "--seconds", "2", "-c", str(cfg), cwd=tmp_path / "..")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "videos" / "lobby.mp4").is_file()
    # a problem other than the videos is said before any video is made
    shutil.rmtree(tmp_path / "videos")
    (cfg / "edgeswin.yaml").write_text(text.replace("stats_interval_s: 10", "stats_interval_s: x"))
    bad = edgeswin("demo", "--prepare", "--seconds", "2", "-c", str(cfg), cwd=tmp_path)
    assert bad.returncode == 1 and "stats_interval_s" in bad.stderr
    assert not (tmp_path / "videos").exists()
    # without -c, from another directory: the bundled config, found from the package
    from edgeswin.demo.live import default_demo_config
    assert default_demo_config() == REPO / "configs" / "demo"
    assert time.monotonic() - started < 600


def test_a_region_state_payload_has_what_the_docs_say(tmp_path, broker, subscriber: Subscriber):
    cfg = write_config(tmp_path / "a", broker.port, {"split": {
        "source": str(CLIP), "fps": 0, "realtime": False,
        "regions": [{"name": "left", "box": [0, 0, 0.5, 1]}]}})
    run = edgeswin("run", "-c", str(cfg), cwd=tmp_path, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert subscriber.wait_for(lambda: subscriber.json_on("edgeswin/testdev/split/left/state"), 10)
    state = subscriber.json_on("edgeswin/testdev/split/left/state")[-1]
    assert set(state) == {"label", "score", "since"}
