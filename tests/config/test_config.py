"""Config validation: every error names its file, line and key path, all reported at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeswin.config import load_config
from edgeswin.errors import ConfigError
from tests.harness import PRIMARY, REPO

DEVICE = f"""\
device_id: dev1
mqtt:
  host: 127.0.0.1
  port: 1883
engines:
  - name: primary
    model: {PRIMARY}
"""


def make(tmp_path: Path, device: str = DEVICE, cameras: dict[str, str] | None = None) -> Path:
    (tmp_path / "cameras").mkdir(parents=True)
    (tmp_path / "edgeswin.yaml").write_text(device)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")  # existence is what the config checks; decoding is the camera's job
    for name, text in (cameras or {"front": "source: ../clip.mp4\n"}).items():
        (tmp_path / "cameras" / f"{name}.yaml").write_text(text)
    return tmp_path


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(directory)
    return [str(i) for i in exc.value.issues]


def test_valid_directory_loads(tmp_path):
    config = load_config(make(tmp_path))
    assert config.device.topic_root == "edgeswin/dev1"
    (camera,) = config.cameras
    assert camera.config.name == "front" and camera.source.kind == "file"
    assert camera.source.target == str(tmp_path / "clip.mp4")


def test_unknown_key(tmp_path):
    d = make(tmp_path, DEVICE.replace("  port: 1883\n", "  port: 1883\n  prot: 1\n"))
    assert issues_of(d) == [f"{d}/edgeswin.yaml:5: mqtt.prot: unknown key"]


def test_wrong_type(tmp_path):
    d = make(tmp_path, cameras={"front": "source: ../clip.mp4\nfps: fast\n"})
    (issue,) = issues_of(d)
    assert issue.startswith(f"{d}/cameras/front.yaml:2: fps: ") and "number" in issue


def test_missing_required_key(tmp_path):
    d = make(tmp_path, cameras={"front": "fps: 5\n"})
    assert issues_of(d) == [f"{d}/cameras/front.yaml:1: source: required key is missing"]


def test_malformed_yaml(tmp_path):
    d = make(tmp_path, cameras={"front": "source: ../clip.mp4\nfps: [5\nloop: true\n"})
    (issue,) = issues_of(d)
    assert issue.startswith(f"{d}/cameras/front.yaml:3: malformed YAML")


def test_unparseable_source(tmp_path):
    d = make(tmp_path, cameras={"front": "fps: 5\nsource: 'ftp//::nowhere'\n"})
    (issue,) = issues_of(d)
    assert issue.startswith(f"{d}/cameras/front.yaml:2: source: ")
    assert "does not exist" in issue or "cannot parse" in issue
    d2 = make(tmp_path / "b", cameras={"front": "source: gopher://host/x\n"})
    assert "cannot parse source" in issues_of(d2)[0]
    d3 = make(tmp_path / "c", cameras={"front": "source: rtsp:///no-host\n"})
    assert "stream URL has no host" in issues_of(d3)[0]


def test_missing_model_file(tmp_path):
    """The only rung's model missing: nothing can serve, said at its line before a start."""
    from edgeswin.prestart import check_rungs
    d = make(tmp_path, DEVICE.replace(str(PRIMARY), "models/nope.onnx"))
    with pytest.raises(ConfigError) as exc:
        check_rungs(load_config(d))
    (issue,) = [str(i) for i in exc.value.issues]
    assert issue.startswith(f"{d}/edgeswin.yaml:7: engines.0.model: model file does not exist")


def test_two_cameras_with_one_name(tmp_path):
    d = make(tmp_path, cameras={"a": "source: ../clip.mp4\n",
                                "b": "name: a\nsource: ../clip.mp4\n"})
    (issue,) = issues_of(d)
    assert issue.startswith(f"{d}/cameras/b.yaml:1: name: camera name 'a' is also used by")


def test_every_error_in_every_file_at_once(tmp_path):
    d = make(tmp_path, DEVICE + "colour: red\n",
             {"a": "source: ../clip.mp4\nfps: -1\n", "b": "source: [\n"})
    issues = issues_of(d)
    assert len(issues) == 3
    assert any("edgeswin.yaml:8: colour: unknown key" in i for i in issues)
    assert any("a.yaml:2: fps:" in i for i in issues)
    assert any("b.yaml" in i and "malformed YAML" in i for i in issues)


def test_check_command_exits_1_and_lists_errors(tmp_path):
    d = make(tmp_path, cameras={"front": "source: ../clip.mp4\nfsp: 5\n"})
    run = subprocess.run([sys.executable, "-m", "edgeswin", "check", "-c", str(d)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1
    assert f"{d}/cameras/front.yaml:2: fsp: unknown key" in run.stderr


def test_check_command_accepts_the_demo_config():
    run = subprocess.run([sys.executable, "-m", "edgeswin", "check", "-c", "configs/example"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr


def test_opencv_threads_is_set_by_the_daemon_and_checked(tmp_path):
    import cv2

    from edgeswin.daemon import Daemon

    before = cv2.getNumThreads()
    state = f"state_dir: {tmp_path / 'state'}\n"
    try:
        cv2.setNumThreads(2)
        Daemon(load_config(make(tmp_path / "a", DEVICE + state)))
        assert cv2.getNumThreads() == 1  # the default: one thread, the capture thread's own
        Daemon(load_config(make(tmp_path / "b", DEVICE + state + "opencv_threads: 3\n")))
        assert cv2.getNumThreads() == 3
        cv2.setNumThreads(2)
        Daemon(load_config(make(tmp_path / "c", DEVICE + state + "opencv_threads: null\n")))
        assert cv2.getNumThreads() == 2  # left as OpenCV had it
    finally:
        cv2.setNumThreads(before)
    d = make(tmp_path / "d", DEVICE + "opencv_threads: 0\n")
    (issue,) = issues_of(d)
    assert issue.startswith(f"{d}/edgeswin.yaml:8: opencv_threads: ")
