"""The README's five-minute tour, run as written: each shell block is taken from README.md and
run in a scratch checkout-like folder (the repository's models, clips and venv linked in), so
a sentence of the tour cannot stop being true without this failing. The install step is run
under --root by tests/system/test_install.py."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import pytest

from tests.harness import REPO, Broker

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def tour_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    tour = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", tour, re.S)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def local_broker(tmp_path):
    """The broker the README's commands talk to, on 127.0.0.1:1883: the machine's own where
    one runs, else one started here for the test."""
    if _port_open(1883):
        yield None
        return
    broker = Broker(tmp_path)
    broker.port = 1883
    broker.conf.write_text(broker.conf.read_text().replace(
        next(line for line in broker.conf.read_text().splitlines() if line.startswith("listener")),
        "listener 1883 127.0.0.1"))
    broker.start()
    yield broker
    broker.stop()


def test_the_tour_has_the_blocks_this_test_runs():
    blocks = tour_blocks()
    assert len(blocks) == 4, blocks
    assert blocks[0].strip().startswith("mosquitto_sub ")
    assert "edgeswin check -c mysite" in blocks[1] and "edgeswin run -c mysite" in blocks[1]
    assert "edgeswin check -c mysite" in blocks[2]
    assert blocks[3].strip() == "sudo systemd/install.sh"  # tests/system/test_install.py, --root


def test_the_tour_runs_as_written(tmp_path, local_broker):
    if not (REPO / ".venv" / "bin" / "edgeswin").exists():
        pytest.skip("the tour runs .venv/bin/edgeswin, which `make test` makes")
    if shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto_sub (Debian's mosquitto-clients) is not installed")
    watch, add_camera, add_model, _ = tour_blocks()
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("models", "clips", ".venv"):
        (work / name).symlink_to(REPO / name)

    # 1. the demo's messages, seen by the README's own mosquitto_sub while the demo runs
    # Into files, not pipes: a pipe nobody reads while the demo runs fills and stalls the
    # subscriber, which then sees only the first messages.
    seen, said = tmp_path / "sub.out", tmp_path / "sub.err"
    with seen.open("wb") as out_file, said.open("wb") as err_file:
        sub = subprocess.Popen(["bash", "-c", "exec " + watch.strip()], cwd=work,
                               stdout=out_file, stderr=err_file)
        try:
            demo = subprocess.run(["make", "demo"], cwd=REPO, capture_output=True, text=True,
                                  timeout=600)
        finally:
            sub.terminate()
            sub.wait(timeout=60)
    out, err = (f.read_bytes().decode(errors="replace") for f in (seen, said))
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "Demo finished after" in demo.stdout
    assert re.search(r"^edgeswin/demo/(lobby|yard)/classification \{", out, re.M), (out + err)[-3000:]
    # the JPEG snapshots (the door camera raises health snapshots too) are left out
    assert not re.search(r"^edgeswin/\S*snapshot ", out, re.M), out[-3000:]
    assert "\ufffd" not in out, "binary bytes reached the terminal"
    assert (REPO / "build" / "state" / "outbox.sqlite3").is_file(), "state inside the checkout"

    # 2. a camera added by hand: checked, then run to the clip's end
    run = subprocess.run(["bash", "-e", "-c", add_camera], cwd=work, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "mysite: OK: device mysite, 1 camera(s) (1 enabled)" in run.stdout
    assert "every source has ended" in run.stderr
    assert (work / "build" / "mysite-state").is_dir()

    # 3. another model on the rung: check says what the next start does with it
    run = subprocess.run(["bash", "-e", "-c", add_model], cwd=work, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "swin-demo-64.onnx goes through the shadow gate on live frames" in run.stdout, \
        run.stdout
