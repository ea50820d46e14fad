"""The install path a user follows: the Python set resolves for each Jetson target's aarch64
Python, and systemd/install.sh installs into a staging root, keeps the config on a second run,
gives a config that `check` accepts and a daemon that classifies the bundled clip, and removes
itself again."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeswin.demo.assets import read_ground_truth
from edgeswin.demo.live import Scoreboard
from tests.harness import REPO, Subscriber

TARGETS = sorted(p.stem for p in (REPO / "constraints").glob("jetpack*.txt"))


def _header(target: str, key: str) -> str:
    text = (REPO / "constraints" / f"{target}.txt").read_text()
    found = re.search(rf"^# {key}: (\S+)$", text, re.M)
    assert found, f"constraints/{target}.txt has no '# {key}:' line"
    return found.group(1)


def _requirements() -> list[str]:
    """The daemon's requirements and the extras install.sh always adds (metrics, review)."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in ("metrics", "review"):
        lines += cfg["options.extras_require"][extra].splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_both_jetpack_targets_have_constraints():
    assert TARGETS == ["jetpack6", "jetpack7"]


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_the_daemons_requirements_resolve_for_the_targets_aarch64_python(target, tmp_path):
    """pip's resolver, for aarch64 wheels of the target's Python and glibc, over the daemon's
    requirements plus the target's constraints: a release can never ship an unresolvable set."""
    python, glibc = _header(target, "python"), _header(target, "glibc")
    minor = int(glibc.split(".")[1])
    platforms = [f"manylinux_2_{m}_aarch64" for m in range(17, minor + 1)] + ["manylinux2014_aarch64"]
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
         *[f"--platform={p}" for p in platforms], "--target", str(tmp_path / "t"),
         "--report", str(report), "-c", str(REPO / "constraints" / f"{target}.txt"),
         *_requirements()], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    print(target, python, {k: chosen[k] for k in ("numpy", "onnxruntime", "onnx") if k in chosen})
    assert int(chosen["numpy"].split(".")[0]) == 1  # JetPack's OpenCV is built against 1.x
    assert {"onnxruntime", "onnx", "pydantic", "paho-mqtt", "pyyaml", "prometheus-client",
            "flask"} <= chosen.keys()
    for item in json.loads(report.read_text())["install"]:
        wheel = item["download_info"]["url"].rsplit("/", 1)[-1]
        assert wheel.endswith(("-any.whl", "aarch64.whl")), wheel
        assert "-none-any" in wheel or f"cp{python.replace('.', '')}" in wheel \
            or "abi3" in wheel, wheel


def test_select_picks_the_jetpack_from_the_release_file_and_refuses_jetpack5(tmp_path):
    select = REPO / "constraints" / "select.sh"
    out = subprocess.run(["sh", str(select), sys.executable, "jetpack6"], capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines()[0] == "# target: jetpack6" and "numpy>=1.21.6,<2" in out
    bad = subprocess.run(["sh", str(select), sys.executable, "jetpack5"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown target" in bad.stderr


def _install(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "systemd" / "install.sh"), "--root", str(root),
                           "--no-pycuda", *args], capture_output=True, text=True, timeout=900)


def _edgeswin(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    exe = root / "opt" / "edgeswin" / "venv" / "bin" / "edgeswin"
    # Run from / : nothing may depend on the current directory being a checkout.
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd="/", **kw)


@pytest.mark.slow
@pytest.mark.mqtt
def test_install_into_a_staging_root_runs_keeps_the_config_and_uninstalls(tmp_path, broker):
    if not Path("/usr/bin/python3").exists():
        pytest.skip("needs the system Python the installer uses")
    root = tmp_path / "root"
    first = _install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    prefix, etc = root / "opt" / "edgeswin", root / "etc" / "edgeswin"

    # The installed config points at the installed models and clip, by absolute paths.
    device = (etc / "edgeswin.yaml").read_text()
    assert f"model: {prefix}/models/swin-demo-112.onnx" in device
    assert "../" not in device and f"state_dir: {root}/var/lib/edgeswin" in device
    clip_camera = (etc / "cameras" / "demo-clip.yaml").read_text()
    assert f"source: {prefix}/clips/demo.mp4" in clip_camera
    assert (prefix / "clips" / "demo.mp4").is_file() and (etc / "mqtt_password").is_file()
    unit = (root / "etc" / "systemd" / "system" / "edgeswin.service").read_text()
    assert f"ExecStart={prefix}/venv/bin/edgeswin run" in unit
    assert "edgeswin check" in first.stdout or "done:" in first.stdout

    check = _edgeswin(root, "check", "-c", str(etc))
    assert check.returncode == 0, check.stderr

    # The user points it at their broker; a second run upgrades the code and keeps that.
    (etc / "edgeswin.yaml").write_text(device.replace("port: 1883", f"port: {broker.port}"))
    (prefix / "edgeswin" / "stale_module.py").write_text("# removed upstream\n")
    # ... and for another target (a JetPack upgrade), it makes the venv again.
    second = _install(root, "--target", "jetpack6")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "kept the config" in second.stdout and "making it again" in second.stdout
    assert "# target: jetpack6" in (prefix / "constraints.txt").read_text()
    assert f"port: {broker.port}" in (etc / "edgeswin.yaml").read_text()
    assert not (prefix / "edgeswin" / "stale_module.py").exists()

    # The self-test finds the installed demo model although the cwd is not a checkout.
    selftest = _edgeswin(root, "probe", "--selftest", timeout=300)
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr
    assert "verdict: PASS" in selftest.stdout

    # Out of the box it classifies the bundled clip and publishes what the clip shows.
    truth = read_ground_truth(prefix / "clips" / "demo.mp4")
    board = Scoreboard({"demo-clip": truth})
    sub = Subscriber(broker.port)
    exe = prefix / "venv" / "bin" / "edgeswin"
    daemon = subprocess.Popen([str(exe), "run", "-c", str(etc)], cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    topic = "edgeswin/jetson-01/demo-clip/classification"
    try:
        assert sub.wait_for(lambda: len(sub.on(topic)) >= 20, 60), sub.messages[-5:]
    finally:
        daemon.terminate()
        output = daemon.communicate(timeout=30)[0]
        sub.close()
    assert daemon.returncode == 0, output[-3000:]
    for payload in sub.json_on(topic):
        board(payload)
    assert board.scored["demo-clip"] >= 10
    assert board.agreement("demo-clip") >= 0.85, (board.hits, board.scored)

    # --uninstall keeps the config and the state; --purge removes them too.
    gone = _install(root, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not prefix.exists() and not (root / "etc/systemd/system/edgeswin.service").exists()
    assert (etc / "edgeswin.yaml").is_file()
    purged = _install(root, "--uninstall", "--purge")
    assert purged.returncode == 0 and not etc.exists()
    assert not (root / "var" / "lib" / "edgeswin").exists()


@pytest.mark.parametrize("args, message", [
    (["--frobnicate"], "unknown argument: --frobnicate"),
    (["--root", "/tmp/a b#c"], "use a path of letters, digits and / . _ + - only"),
    (["--root", "ROOT", "--config-from", "/nonexistent"], "no edgeswin.yaml there"),
    (["--root", "ROOT", "--mqtt-password-file", "/nonexistent"], "not a readable file"),
])
def test_install_refuses_bad_arguments_before_touching_anything(args, message, tmp_path):
    root = tmp_path / "root"
    args = [str(root) if a == "ROOT" else a for a in args]
    bad = subprocess.run(["bash", str(REPO / "systemd" / "install.sh"), *args],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    assert not root.exists()
    if args == ["--frobnicate"]:
        assert "--uninstall [--purge]" in bad.stderr


def test_every_package_data_pattern_ships_files():
    """Templates, static files and schemas reach an installed package: each pattern of
    setup.cfg's package_data, as setuptools reads it, matches files (a list written across
    lines with commas once matched nothing, and the installed board had no page)."""
    from setuptools.config.setupcfg import read_configuration

    patterns = read_configuration(str(REPO / "setup.cfg"))["options"]["package_data"]["edgeswin"]
    for wanted in ("schemas/*.json", "review/templates/*.html", "watch/templates/*.html",
                   "watch/static/*"):
        assert wanted in patterns, patterns
    for pattern in patterns:
        assert list((REPO / "edgeswin").glob(pattern)), f"{pattern} matches no file"
