"""Hostile and careless config files: each is refused by `check` with file:line and a reason
(never a traceback, a hang or gigabytes of memory), and what `check` accepts, `run` runs."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeswin.config import load_config
from edgeswin.config.fields import MAX_FILE_BYTES
from edgeswin.errors import ConfigError
from edgeswin.publish.homeassistant import device_configs
from tests.config.test_config import DEVICE, issues_of, make
from tests.harness import REPO


def check(directory: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """`edgeswin check` as a user runs it, under a 1.5 GB address-space cap."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
    return subprocess.run([sys.executable, "-m", "edgeswin", "check", "-c", str(directory)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          preexec_fn=cap)


@pytest.mark.parametrize("content,line", [
    pytest.param("source: ../clip.mp4\nname: caf\xe9\n".encode("latin-1"), 2, id="latin-1"),
    pytest.param("source: ../clip.mp4\n".encode("utf-16"), 1, id="utf-16"),
    pytest.param(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), 2, id="binary"),
])
@pytest.mark.parametrize("where", ["camera", "device"])
def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path, content, line, where):
    d = make(tmp_path)
    target = d / "cameras" / "front.yaml" if where == "camera" else d / "edgeswin.yaml"
    target.write_bytes(content)
    run = check(d)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"{target}:{line}: not UTF-8 text" in run.stderr, run.stderr


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    d = make(tmp_path, cameras={"front": "source: ../clip.mp4\nfps: " + "[" * 5000 + "\n"})
    run = check(d)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "front.yaml:1: nested more than 64 levels deep" in run.stderr
    d2 = make(tmp_path / "b", cameras={"front": "source: ../clip.mp4\nx: " + "[" * 100 +
                                       "]" * 100 + "\n"})
    assert "front.yaml:2: nested more than 64 levels deep" in check(d2).stderr


def test_an_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    d = make(tmp_path, cameras={"front": "source: ../clip.mp4\n" + "\n".join(lines) + "\n"})
    t0 = time.monotonic()
    run = check(d)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "expands to more than 100,000 values" in run.stderr
    assert time.monotonic() - t0 < 30
    # A cycle through an alias is refused too, and ordinary anchors keep working.
    d2 = make(tmp_path / "b", cameras={"front": "source: ../clip.mp4\nx: &x [1, *x]\n"})
    assert "front.yaml:2:" in check(d2).stderr
    d3 = make(tmp_path / "c", cameras={
        "front": "source: ../clip.mp4\nreconnect: &r {initial_s: 2, max_s: 8}\n",
        "back": "source: ../clip.mp4\nsmoothing: &s {window: 3}\npublish: {mode: change}\n"})
    cameras = {c.config.name: c.config for c in load_config(d3).cameras}
    assert cameras["front"].reconnect.max_s == 8 and cameras["back"].smoothing.window == 3


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path):
    d = make(tmp_path)
    big = d / "cameras" / "front.yaml"
    with big.open("w") as f:
        f.write("source: ../clip.mp4\n")
        f.write("# padding\n" * (MAX_FILE_BYTES // 10 * 5))
    t0 = time.monotonic()
    run = check(d)
    assert f"{big}:1: larger than 1,000,000 bytes" in run.stderr, run.stderr
    assert time.monotonic() - t0 < 20


def test_a_fifo_or_directory_among_camera_files_is_refused_not_waited_on(tmp_path):
    d = make(tmp_path)
    os.mkfifo(d / "cameras" / "x.yaml")
    (d / "cameras" / "y.yaml").mkdir()
    run = check(d, timeout=30)
    assert run.returncode == 1
    assert f"{d}/cameras/x.yaml:1: not a regular file" in run.stderr
    assert f"{d}/cameras/y.yaml:1: not a regular file" in run.stderr


def test_yml_files_are_cameras_too(tmp_path):
    d = make(tmp_path, cameras={"front": "source: ../clip.mp4\n"})
    (d / "cameras" / "back.yml").write_text("source: ../clip.mp4\n")
    assert sorted(c.config.name for c in load_config(d).cameras) == ["back", "front"]
    (d / "cameras" / "front.yml").write_text("source: ../clip.mp4\n")  # front twice
    assert any("camera name 'front' is also used by" in i for i in issues_of(d))


MQTT = DEVICE.split("engines:")[0].replace("  port: 1883\n", "  port: 1883\n  {key}: {value}\n")


@pytest.mark.parametrize("key,value,message", [
    ("outbox_max_mb", ".inf", "finite number"),
    ("outbox_max_mb", ".nan", "finite number"),
    ("outbox_max_mb", "1.0e+300", "less than or equal"),
    ("topic_root", "'site/+/cams'", "wildcard"),
    ("topic_root", "'site/#'", "wildcard"),
    ("topic_root", '"site/\\0x"', "NUL"),
    ("topic_root", "''", "empty"),
    ("topic_root", "'$SYS/edgeswin'", "belong to the broker"),
    ("topic_root", "'x" + "y" * 70_000 + "'", "bytes in UTF-8; MQTT allows 65535"),
    ("client_id", "'" + "c" * 70_000 + "'", "bytes in UTF-8; MQTT allows 65535"),
    ("client_id", '"a\\0b"', "NUL"),
])
def test_mqtt_settings_beyond_mqtts_limits_are_refused(tmp_path, key, value, message):
    text = MQTT.format(key=key, value=value) + "engines:" + DEVICE.split("engines:")[1]
    (issue,) = issues_of(make(tmp_path, text))
    assert f"edgeswin.yaml:5: mqtt.{key}: " in issue and message in issue, issue[:300]


def test_an_empty_broker_host_and_overlong_names_are_refused(tmp_path):
    (issue,) = issues_of(make(tmp_path, DEVICE.replace("host: 127.0.0.1", "host: ''")))
    assert "edgeswin.yaml:3: mqtt.host: " in issue
    long = "c" * 70_000
    (issue,) = issues_of(make(tmp_path / "b", cameras={"front": f"name: {long}\n"
                                                                "source: ../clip.mp4\n"}))
    assert ":1: name: String should have at most 64 characters" in issue
    (issue,) = issues_of(make(tmp_path / "c", DEVICE.replace("dev1", "d" * 100)))
    assert "device_id: String should have at most 64 characters" in issue


@pytest.mark.parametrize("key,value", [("hold_s", ".inf"), ("poll_s", "1e12"),
                                       ("degrade_above_c", ".nan")])
def test_durations_and_temperatures_must_be_finite_and_sane(tmp_path, key, value):
    (issue,) = issues_of(make(tmp_path, DEVICE + f"fallback:\n  {key}: {value}\n"))
    assert f"fallback.{key}: " in issue


def test_home_assistant_ids_are_sanitised_for_a_dotted_device_id():
    import re
    for message in device_configs("homeassistant", "cam.site-1", "edgeswin/cam.site-1"):
        # Home Assistant's discovery topic pattern: <prefix>/<component>/[<node_id>/]<obj>/config
        assert re.fullmatch(r"homeassistant/\w+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config",
                            message.topic), message.topic


def test_check_accepts_only_what_run_can_start(tmp_path):
    """A sweep over hostile values: each is refused by check, or accepted and then run
    starts (no traceback in its first seconds); the loaded config never raises past check."""
    values = ["''", "' '", '"\\0"', ".inf", "-.inf", ".nan", "1.0e+308", "-1", "0", "1e-300",
              "'+'", "'#'", "'a/b'", "'ü'", "[]", "{}", "null", "true"]
    keys = ["host", "port", "topic_root", "client_id", "keepalive_s", "outbox_max_mb",
            "reconnect_max_s", "username"]
    accepted = []
    for key in keys:
        for value in values:
            text = MQTT.format(key=key, value=value) + "engines:" + DEVICE.split("engines:")[1]
            d = make(tmp_path / f"{key}-{len(accepted)}-{abs(hash(value))}", text)
            try:
                config = load_config(d)
            except ConfigError as exc:
                assert all(str(i).startswith(f"{d}/") for i in exc.issues)
                continue
            accepted.append((key, value, config))
    # What was accepted must make a Publisher (its constructor is where run broke before),
    # and paho must take a publish to the longest topic (where the sender thread died).
    from edgeswin.publish.mqtt import Publisher
    for _key, _value, config in accepted:
        publisher = Publisher(config.device.mqtt, config.device.topic_root,
                              config.device.mqtt.client_id or f"edgeswin-{config.device.device_id}")
        publisher._client.publish(f"{config.device.topic_root}/front/classification", b"x", 1)
    assert ("host", "' '", ) not in [(k, v) for k, v, _ in accepted]


def test_a_huge_integer_and_a_non_scalar_key_are_refused_not_tracebacks(tmp_path):
    d = make(tmp_path, DEVICE + "? [a, b]\n: 1\n",
             {"front": "source: ../clip.mp4\nfps: " + "9" * 5000 + "\n"})
    run = check(d)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"{d}/cameras/front.yaml:2: a number of 5000 digits: refused" in run.stderr
    assert f"{d}/edgeswin.yaml:8: a key must be a plain name" in run.stderr
