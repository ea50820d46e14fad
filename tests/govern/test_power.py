"""Power measurement and the power mode, on scripted sysfs trees shaped like a Jetson's: INA3221
rails (JetPack 5/6), an INA238 (JetPack 7), the GPU's devfreq node, an nvpmodel configuration;
nvpmodel itself is a double (tests/fakes/nvpmodel) with its output format. The root helper
script runs for real against that double."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeswin.govern.nvpmodel import Mode, PowerModes, query, read_modes
from edgeswin.govern.power import EnergyMeter, PowerSensor, discover_rails
from tests.harness import REPO

FAKE_NVPMODEL = REPO / "tests" / "fakes" / "nvpmodel"
HELPER = REPO / "systemd" / "edgeswin-power-mode"

# Lines as an Orin Nano's /etc/nvpmodel.conf has them (JetPack 6), between other settings.
NVPMODEL_CONF = """\
< PARAM TYPE=FILE NAME=CPU_ONLINE >
CORE_0 /sys/devices/system/cpu/cpu0/online
< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=7W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
< PM_CONFIG DEFAULT=0 >
"""


def hwmon(root: Path, index: int, name: str, files: dict[str, str]) -> Path:
    node = root / f"hwmon{index}"
    node.mkdir(parents=True)
    (node / "name").write_text(name + "\n")
    for file, value in files.items():
        (node / file).write_text(value + "\n")
    return node


def jetson_hwmon(root: Path) -> None:
    """An Orin Nano's INA3221 (with the sum channel), an AGX-style second one with an NC
    channel, a JetPack 7 INA238 and a device that is not a power monitor."""
    hwmon(root, 0, "ina3221", {"in1_label": "VDD_IN", "in1_input": "5000", "curr1_input": "2400",
                               "in2_label": "VDD_CPU_GPU_CV", "in2_input": "4992",
                               "curr2_input": "1002", "in3_label": "VDD_SOC",
                               "in3_input": "5000", "curr3_input": "580",
                               "in7_label": "sum of shunt voltages", "in7_input": "3"})
    hwmon(root, 1, "ina3221", {"in1_label": "VIN_SYS_5V0", "in1_input": "5000",
                               "curr1_input": "400", "in4_label": "NC", "in4_input": "0",
                               "curr4_input": "0"})
    hwmon(root, 2, "ina238", {"in1_input": "19000", "curr1_input": "1000",
                              "power1_input": "19000000"})
    hwmon(root, 3, "nvme", {"temp1_input": "41000"})


def test_rails_of_jetpack_6_and_7_monitors_are_read_in_watts(tmp_path, caplog):
    jetson_hwmon(tmp_path)
    rails = [r.name for r in discover_rails(tmp_path)]
    assert rails == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC", "VIN_SYS_5V0", "ina238"]
    sensor = PowerSensor(tmp_path, tmp_path / "devfreq", ["VDD_IN", "POM_5V_IN", "VIN"])
    watts = sensor.read()
    assert watts == pytest.approx({"VDD_IN": 12.0, "VDD_CPU_GPU_CV": 5.001984, "VDD_SOC": 2.9,
                                   "VIN_SYS_5V0": 2.0, "ina238": 19.0})
    assert sensor.total(watts) == ("VDD_IN", 12.0)
    # No total rail configured that exists: the sum of every rail.
    summed = PowerSensor(tmp_path, tmp_path, ["POM_5V_IN"]).total(watts)
    assert summed[0] == "sum of rails" and summed[1] == pytest.approx(40.901984)
    # A rail that turns unreadable is skipped with one warning; the others are still read.
    (tmp_path / "hwmon0" / "curr3_input").write_text("garbage\n")
    (tmp_path / "hwmon2" / "power1_input").unlink()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            watts = sensor.read()
    assert set(watts) == {"VDD_IN", "VDD_CPU_GPU_CV", "VIN_SYS_5V0"}
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and any("VDD_SOC" in w and "ValueError" in w for w in warned)
    assert any("ina238" in w and "FileNotFoundError" in w for w in warned)
    # No monitor at all (a PC, a container without /sys): nothing, and no error.
    assert PowerSensor(tmp_path / "absent", tmp_path / "absent", ["VDD_IN"]).read() == {}


def test_gpu_load_and_clock_from_devfreq(tmp_path):
    device = tmp_path / "devices" / "17000000.gpu"
    (device / "of_node").mkdir(parents=True)
    (device / "of_node" / "name").write_text("ga10b\n")
    (device / "load").write_text("734\n")  # tenths of a percent
    node = tmp_path / "devfreq" / "17000000.gpu"
    node.mkdir(parents=True)
    (node / "device").symlink_to(device)
    (node / "cur_freq").write_text("624750000\n")
    other = tmp_path / "devfreq" / "13e40000.host1x"
    other.mkdir()
    sensor = PowerSensor(tmp_path / "hwmon", tmp_path / "devfreq", ["VDD_IN"])
    assert sensor.gpu_state() == {"load_pct": 73.4, "freq_mhz": 624.8}
    (device / "load").unlink()
    assert sensor.gpu_state() == {"freq_mhz": 624.8}


def test_energy_is_integrated_between_reports():
    meter = EnergyMeter()
    for t in range(31):
        meter.add(float(t), 10.0)  # 10 W for 30 s
    assert meter.take() == pytest.approx((300.0, 30.0))
    meter.add(31.0, None)  # a gap in readings is not integrated across
    meter.add(40.0, 10.0)
    meter.add(41.0, 20.0)
    assert meter.take() == pytest.approx((15.0, 1.0))


@pytest.fixture
def nvpmodel(tmp_path, monkeypatch):
    conf = tmp_path / "nvpmodel.conf"
    conf.write_text(NVPMODEL_CONF)
    monkeypatch.setenv("NVPMODEL_CONF", str(conf))
    monkeypatch.setenv("NVPMODEL_STATE", str(tmp_path / "nvpmodel.state"))
    return conf


def test_modes_are_read_from_the_devices_configuration(nvpmodel, tmp_path, caplog):
    assert read_modes(nvpmodel) == [Mode(0, "15W"), Mode(1, "7W"), Mode(2, "MAXN_SUPER")]
    assert read_modes(tmp_path / "absent.conf") == []
    assert query(str(FAKE_NVPMODEL)) == Mode(0, "15W")
    assert query(str(tmp_path / "no-such-nvpmodel")) is None
    request = tmp_path / "power-mode.request"
    modes = PowerModes(nvpmodel, str(FAKE_NVPMODEL), ["7w"], [], request)
    assert modes.steps == [Mode(1, "7W")]  # names match in any case
    with caplog.at_level(logging.WARNING):
        off = PowerModes(nvpmodel, str(FAKE_NVPMODEL), ["5W"], [], request)
    assert off.steps == [] and "not in" in caplog.text and "15W, 7W, MAXN_SUPER" in caplog.text


def test_a_mode_is_set_by_command_or_through_the_root_helper(nvpmodel, tmp_path):
    request = tmp_path / "state" / "power-mode.request"
    request.parent.mkdir()
    direct = PowerModes(nvpmodel, str(FAKE_NVPMODEL), ["7W"], [str(FAKE_NVPMODEL), "-m", "{id}"],
                        request)
    assert direct.set(Mode(1, "7W")) is None and direct.current() == Mode(1, "7W")
    error = direct.set(Mode(9, "nine"))
    assert error and "NVPM ERROR" in error and direct.current() == Mode(1, "7W")

    # Under systemd: the daemon writes the request, the root helper applies it.
    helped = PowerModes(nvpmodel, str(FAKE_NVPMODEL), ["7W"], [], request)
    assert helped.set(Mode(0, "15W")) is None and request.read_text() == "0\n"
    env = {**os.environ, "NVPMODEL": str(FAKE_NVPMODEL)}
    run = subprocess.run([str(HELPER), str(request)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert helped.current() == Mode(0, "15W")


@pytest.mark.parametrize("content", ["1; reboot", "$(id)", "", "1 2", "-m 1"])
def test_the_root_helper_accepts_a_mode_id_and_nothing_else(nvpmodel, tmp_path, content):
    request = tmp_path / "power-mode.request"
    request.write_text(content)
    env = {**os.environ, "NVPMODEL": str(FAKE_NVPMODEL)}
    run = subprocess.run([str(HELPER), str(request)], capture_output=True, text=True, env=env)
    assert run.returncode == 1 and "does not hold a mode id" in run.stderr
    assert content not in run.stderr or content == ""  # never echoed
    assert query(str(FAKE_NVPMODEL)) == Mode(0, "15W")  # unchanged
    # A link to another file is refused before anything is read.
    secret = tmp_path / "secret"
    secret.write_text("1\n")
    link = tmp_path / "link.request"
    link.symlink_to(secret)
    run = subprocess.run([str(HELPER), str(link)], capture_output=True, text=True, env=env)
    assert run.returncode == 1 and "not a regular file" in run.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_helper_units_verify(tmp_path):
    for name in ("edgeswin-power-mode.path", "edgeswin-power-mode.service"):
        text = (REPO / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/opt/edgeswin/systemd/edgeswin-power-mode",
                                                  str(HELPER)))
    run = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no",
                          str(tmp_path / "edgeswin-power-mode.path"),
                          str(tmp_path / "edgeswin-power-mode.service")],
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
    path_unit = (REPO / "systemd" / "edgeswin-power-mode.path").read_text()
    assert "PathChanged=/var/lib/edgeswin/power-mode.request" in path_unit


def test_probe_shows_rails_gpu_and_modes(tmp_path, nvpmodel):
    from edgeswin.tools.probe import probe
    from tests.harness import write_config

    jetson_hwmon(tmp_path / "hwmon")
    cfg = write_config(tmp_path / "cfg", 1883, {"a": {"source": "rtsp://h/x"}},
                       {"power": {"hwmon_root": str(tmp_path / "hwmon"),
                                  "devfreq_root": str(tmp_path / "none"),
                                  "nvpmodel_conf": str(nvpmodel),
                                  "nvpmodel": str(FAKE_NVPMODEL)}})
    lines = probe(cfg)
    assert f"power rails under {tmp_path / 'hwmon'} (total: VDD_IN):" in lines
    assert any(line.split() == ["VDD_IN", "12.00", "W"] for line in lines)
    assert any(line.split() == ["ina238", "19.00", "W"] for line in lines)
    assert any(line.endswith("15W (id 0) *active*, 7W (id 1), MAXN_SUPER (id 2)")
               for line in lines), lines


def test_a_run_that_stops_with_the_power_mode_lowered_restores_it(nvpmodel, tmp_path, caplog):
    from edgeswin.config import load_config
    from edgeswin.govern.governor import Governor
    from tests.harness import write_config

    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("tj-thermal\n")
    (zone / "temp").write_text("95000\n")  # hot from the start
    cfg = write_config(tmp_path / "cfg", 1883, {"a": {"source": "rtsp://h/x"}}, {
        "fallback": {"thermal_root": str(tmp_path / "thermal"), "hold_s": 0, "min_dwell_s": 0,
                     "levers": ["power_mode"], "power_modes": ["7W"],
                     "power_mode_command": [str(FAKE_NVPMODEL), "-m", "{id}"]},
        "power": {"hwmon_root": str(tmp_path / "none"), "nvpmodel_conf": str(nvpmodel),
                  "nvpmodel": str(FAKE_NVPMODEL)}})
    device = load_config(cfg).device
    record = Path(device.state_dir) / "power-mode.start"
    Path(device.state_dir).mkdir(parents=True)

    def lowered() -> Governor:
        governor = Governor(device)
        governor.start(0.0, 0, {0, 1}, 0)
        action = governor.poll(1.0, None, {})
        assert (action.lever, action.to) == ("power_mode", 1)
        assert query(str(FAKE_NVPMODEL)) == Mode(1, "7W") and record.read_text() == "0\n"
        return governor

    # A run killed with the lever down: the next start puts the device back in 15W.
    lowered()
    with caplog.at_level(logging.WARNING):
        again = Governor(device)
        again.start(10.0, 0, {0, 1}, 0)
    assert query(str(FAKE_NVPMODEL)) == Mode(0, "15W") and not record.exists()
    assert "the last run stopped with the power mode lowered to 7W: back to 15W" in caplog.text
    assert again.modes.start == Mode(0, "15W")
    # A clean stop with the lever down does the same at once.
    lowered().close(20.0)
    assert query(str(FAKE_NVPMODEL)) == Mode(0, "15W") and not record.exists()
