"""The ladder policy against scripted traces with a fake clock: exact switch times, no flapping.
Settings: degrade above 85 C, recover below 75 C, hold 5 s, cooldown 30 s, dwell 10 s,
p95 budget 50 ms, latency retry 300 s; readings once a second; three rungs."""

from __future__ import annotations

import pytest

from edgeswin.config import FallbackConfig
from edgeswin.govern.fallback import FallbackPolicy, Readings
from edgeswin.govern.sensors import ThermalSensor

CFG = FallbackConfig(degrade_above_c=85, recover_below_c=75, hold_s=5, cooldown_s=30,
                     min_dwell_s=10, latency_budget_ms=50, latency_retry_s=300)


def run(trace, cfg=CFG, thermal=True, rungs=3):
    """trace: t -> (temperature or None, p95 or None); returns [(t, from, to, reason)]."""
    policy = FallbackPolicy(cfg, rungs, now=0.0, thermal=thermal)
    switches = []
    for t in range(len(trace)):
        temp, p95 = trace[t]
        temps = {"tj-thermal": temp} if temp is not None else {}
        s = policy.update(Readings(float(t), temps, p95))
        if s:
            switches.append((t, s.frm, s.to, s.reason.split(":")[0]))
    return switches


def test_heat_ramp_steps_down_one_rung_at_a_time_after_hold_and_dwell():
    trace = [(60 + t, 20.0) for t in range(100)]  # 86 C first at t=26
    assert run(trace) == [(31, 0, 1, "hot"), (41, 1, 2, "hot")]


def test_spike_shorter_than_hold_is_ignored():
    trace = [(95 if 10 <= t <= 13 else 60, 20.0) for t in range(60)]
    assert run(trace) == []


def test_noisy_plateau_around_thresholds_never_flaps():
    # 84/86 alternating never stays above 85 for 5 s: no step down.
    assert run([(84 + 2 * (t % 2), 20.0) for t in range(200)]) == []
    # Hot from the start -> down at 10 (the starting rung's dwell); then a noisy 74-82 plateau
    # that dips under 75 now and then:
    # never 30 s continuously below 75, so no step up; its last sample (t=299) reads 74, then
    # steady 60 -> 30 s below 75 from t=299 -> up at 329.
    trace = [(90, 20.0)] * 20 + [(74 + (t * 7) % 9, 20.0) for t in range(280)] + [(60, 20.0)] * 60
    assert run(trace) == [(10, 0, 1, "hot"), (329, 1, 0, "recovered")]


def test_recovery_waits_for_cooldown():
    trace = [(90, 20.0)] * 20 + [(70, 20.0)] * 60
    assert run(trace) == [(10, 0, 1, "hot"), (50, 1, 0, "recovered")]


def test_latency_overload_with_cool_device_and_slow_rung_retry():
    # Rung 0 is slow (p95 80 ms) from t=10; rung 1 meets the budget (20 ms).
    policy = FallbackPolicy(CFG, 3, now=0.0, thermal=True)
    switches = []
    for t in range(700):
        p95 = 80.0 if policy.rung == 0 and t >= 10 else 20.0
        s = policy.update(Readings(float(t), {"tj": 50.0}, p95))
        if s:
            switches.append((t, s.frm, s.to, s.reason.split(":")[0]))
    # Down at 15; rung 0 is retried only after latency_retry_s (315) + cooldown (30) = 345,
    # found slow again -> down at 355 (dwell); retried again at 355 + 300 + 30 = 685.
    assert switches == [(15, 0, 1, "slow"), (345, 1, 0, "recovered"), (355, 0, 1, "slow"),
                        (685, 1, 0, "recovered"), (695, 0, 1, "slow")]


def test_sensors_disappearing_hold_the_rung_until_they_return():
    trace = [(90, 20.0)] * 20 + [(None, 20.0)] * 100 + [(60, 20.0)] * 40
    assert run(trace) == [(10, 0, 1, "hot"), (150, 1, 0, "recovered")]


def test_latency_only_mode_without_any_thermal_zone():
    trace = [(None, 80.0)] * 12 + [(None, 20.0)] * 40
    cfg = CFG.model_copy(update={"latency_retry_s": 0})
    assert run(trace, cfg, thermal=False) == [(10, 0, 1, "slow"), (42, 1, 0, "recovered")]


def test_a_camera_over_its_own_budget_steps_down_and_says_which():
    # The engine meets the device budget (20 ms) but camera "gate" waits 120 ms p95 from t=10.
    policy = FallbackPolicy(CFG.model_copy(update={"latency_retry_s": 0}), 3, 0.0, thermal=False)
    switches = []
    for t in range(60):
        slow = {"gate": (120.0, 100.0)} if 10 <= t < 20 else {}
        s = policy.update(Readings(float(t), {}, 20.0, slow))
        if s:
            switches.append((t, s.frm, s.to, s.reason))
    assert [(t, a, b) for t, a, b, _ in switches] == [(15, 0, 1), (50, 1, 0)]
    assert switches[0][3] == ("slow: camera gate p95 capture-to-publish 120.0 ms over its "
                              "100 ms budget for 5s")
    assert Readings(0.0, {}, 20.0, {"gate": (120.0, 100.0)}).as_dict()["slow_cameras"] == {
        "gate": {"p95_ms": 120.0, "budget_ms": 100.0}}


def test_pinned_rung_never_switches():
    cfg = CFG.model_copy(update={"pinned_rung": 1})
    policy = FallbackPolicy(cfg, 3, now=0.0, thermal=True)
    assert policy.rung == 1
    assert all(policy.update(Readings(float(t), {"tj": 99.0}, 500.0)) is None for t in range(60))


def test_hysteresis_is_required_by_the_config():
    with pytest.raises(ValueError, match=r"recover_below_c \(\d+\) must be below"):
        FallbackConfig(degrade_above_c=80, recover_below_c=80)


def test_thermal_sensor_reads_a_jetson_like_tree(tmp_path, caplog):
    zones = {"CPU-therm": "45500", "GPU-therm": "-256000", "TJ-therm": "51250",
             "PMIC-Die": "100000", "SOC0-therm": "garbage"}
    for i, (kind, temp) in enumerate(zones.items()):
        (tmp_path / f"thermal_zone{i}").mkdir()
        (tmp_path / f"thermal_zone{i}" / "type").write_text(kind + "\n")
        (tmp_path / f"thermal_zone{i}" / "temp").write_text(temp + "\n")
    sensor = ThermalSensor(tmp_path, ["tj", "gpu", "cpu", "soc"])
    assert sorted(z.type for z in sensor.zones) == ["CPU-therm", "GPU-therm", "SOC0-therm",
                                                     "TJ-therm"]  # PMIC not selected
    assert sensor.read() == {"CPU-therm": 45.5, "TJ-therm": 51.25}
    assert sensor.read() == {"CPU-therm": 45.5, "TJ-therm": 51.25}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one per bad zone, not one per read
    assert any("GPU-therm" in w and "out of range" in w for w in warnings)


def _zone(root, i, kind, temp, trips=()):
    zone = root / f"thermal_zone{i}"
    zone.mkdir()
    (zone / "type").write_text(kind + "\n")
    (zone / "temp").write_text(temp + "\n")
    for n, (trip_type, trip_temp) in enumerate(trips):
        (zone / f"trip_point_{n}_type").write_text(trip_type + "\n")
        (zone / f"trip_point_{n}_temp").write_text(trip_temp + "\n")


def test_trip_points_are_read_and_a_late_threshold_is_named(tmp_path):
    _zone(tmp_path, 0, "tj-thermal", "50000", [("critical", "104500"), ("passive", "99000")])
    _zone(tmp_path, 1, "gpu-thermal", "48000", [("active", "50000"), ("passive", "80000")])
    _zone(tmp_path, 2, "cpu-thermal", "47000")  # no trip points at all
    sensor = ThermalSensor(tmp_path, ["tj", "gpu", "cpu"])
    trips = {z.type: [(t.type, t.temp_c) for t in z.trips] for z in sensor.zones}
    assert trips["tj-thermal"] == [("critical", 104.5), ("passive", 99.0)]
    assert sensor.zones[0].first_trip().temp_c == 99.0  # passive comes before critical
    assert sensor.zones[2].trips == ()
    # The GPU throttles (passive) at 80 C: a degrade threshold of 85 C would act too late.
    assert sensor.throttling_before(85.0) == ["gpu-thermal (passive trip at 80 C)"]
    assert sensor.throttling_before(79.0) == []  # an active (fan) trip point does not count


class FakeNvml:
    """The subset of nvidia-ml-py's pynvml used, with its conventions: calls before nvmlInit
    raise NVMLError (NVML_ERROR_UNINITIALIZED = 1), temperatures are integer degrees C,
    NVML_TEMPERATURE_GPU = 0, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1."""

    NVML_TEMPERATURE_GPU = 0
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1

    class NVMLError(Exception):
        def __init__(self, value):
            super().__init__(f"NVML error {value}")
            self.value = value

    def __init__(self, temps, slowdown=87):
        self.temps, self.slowdown, self.ready = temps, slowdown, False

    def _check(self):
        if not self.ready:
            raise self.NVMLError(1)

    def nvmlInit(self):
        self.ready = True

    def nvmlDeviceGetCount(self):
        self._check()
        return len(self.temps)

    def nvmlDeviceGetHandleByIndex(self, i):
        self._check()
        return ("handle", i)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        self._check()
        assert sensor == self.NVML_TEMPERATURE_GPU
        value = self.temps[handle[1]]
        if value is None:
            raise self.NVMLError(15)  # NVML_ERROR_GPU_IS_LOST
        return value

    def nvmlDeviceGetTemperatureThreshold(self, handle, kind):
        self._check()
        assert kind == self.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
        return self.slowdown


def test_discrete_gpu_temperatures_through_nvml(tmp_path, monkeypatch, caplog):
    import sys
    fake = FakeNvml([64, None])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    _zone(tmp_path, 0, "cpu-thermal", "41000")
    sensor = ThermalSensor(tmp_path, ["gpu", "cpu"], nvml=True)
    assert [z.type for z in sensor.zones] == ["cpu-thermal", "GPU0-nvml", "GPU1-nvml"]
    assert sensor.read() == {"cpu-thermal": 41.0, "GPU0-nvml": 64.0}  # GPU1 lost: skipped
    sensor.read()
    lost = [r.getMessage() for r in caplog.records if "GPU1-nvml" in r.getMessage()]
    assert len(lost) == 1 and "unreadable" in lost[0]
    assert sensor.throttling_before(90.0) == ["GPU0-nvml (passive trip at 87 C)",
                                              "GPU1-nvml (passive trip at 87 C)"]
    assert ThermalSensor(tmp_path, ["cpu"], nvml=True).read() == {"cpu-thermal": 41.0}
    assert [z.type for z in ThermalSensor(tmp_path, ["gpu"], nvml=False).zones] == []


def test_fallback_sim_replays_the_bundled_jetson_trace():
    import subprocess
    import sys

    from tests.harness import REPO

    run = subprocess.run([sys.executable, "-m", "edgeswin", "fallback-sim", "--trace",
                          "configs/traces/orin-heating.csv"], capture_output=True, text=True,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    # Default levers: fps first (two steps), then the rung; recovery in reverse.
    assert run.stdout.splitlines()[0] == "     0.0s  start: fps 0, rung 0"
    assert [line.split(":")[0].split("s  ")[1] for line in lines[1:-1]] == [
        "fps 0 -> 1", "fps 1 -> 2", "rung 0 -> 1", "rung 1 -> 0", "fps 2 -> 1", "fps 1 -> 0"]
    assert lines[1].startswith("   220.0s  fps 0 -> 1: hot: 85.9 C above degrade_above_c 85")
    assert lines[4].startswith("   580.0s  rung 1 -> 0: recovered: 72.2 C below 75 for 30s")
    assert lines[-1] == "   898.0s  end: fps 0, rung 0 (6 action(s))"


def test_probe_lists_zones_and_marks_the_selected(tmp_path):
    from edgeswin.tools.probe import probe

    _zone(tmp_path, 0, "TJ-therm", "48000", [("passive", "99000"), ("critical", "105000")])
    _zone(tmp_path, 1, "PMIC-Die", "100000")
    cfg_dir = tmp_path / "cfg"
    from tests.harness import write_config
    write_config(cfg_dir, 1883, {"a": {"source": "rtsp://h/x"}},
                 {"fallback": {"thermal_root": str(tmp_path), "zones": ["tj"]}})
    lines = probe(cfg_dir)
    assert any(line.split() == ["*", "thermal_zone0", "TJ-therm", "48.0", "C", "trips:",
                                "passive", "99,", "critical", "105"] for line in lines)
    assert any(line.split()[:3] == ["thermal_zone1", "PMIC-Die", "100.0"] for line in lines)
    assert any(line.startswith("onnxruntime ") for line in lines)


def test_fallback_sim_shows_every_lever_with_the_power_of_the_orin_nano_trace(tmp_path):
    import subprocess
    import sys

    from tests.harness import REPO, write_config

    # The levers of a config: fps (a camera with a min_fps), the rung, and a power mode.
    cfg = write_config(tmp_path / "cfg", 1883, {"gate": {"source": "rtsp://h/x", "fps": 10,
                                                         "min_fps": 2}},
                       {"fallback": {"levers": ["fps", "rung", "power_mode"], "fps_steps": 1,
                                     "power_modes": ["7W"]}})
    run = subprocess.run([sys.executable, "-m", "edgeswin", "fallback-sim", "--trace",
                          "configs/traces/orin-nano-15w.csv", "-c", str(cfg)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "     0.0s  start: fps 0, rung 0, power_mode 0"
    moves = [(line.split("s  ")[0].strip(), line.split("s  ")[1].split(":")[0])
             for line in lines[1:-1]]
    # The trace's temperature eases after each step it was made with, so each lever waits
    # for the next time it runs hot; recovery undoes them in reverse.
    assert moves == [("642.0", "fps 0 -> 1"), ("1038.0", "rung 0 -> 1"),
                     ("1442.0", "power_mode 0 -> 1"), ("1838.0", "power_mode 1 -> 0"),
                     ("2112.0", "rung 1 -> 0"), ("2436.0", "fps 1 -> 0")]
    assert lines[1].endswith("[VDD_IN 14.1 W]")
    assert lines[-1].startswith("  2800.0s  end: fps 0, rung 0, power_mode 0 (6 action(s)); "
                                "the trace's recorded power: 32755 J in 2800 s, 11.70 W mean")


def test_an_engine_that_answers_wrong_is_stepped_away_from_until_it_passes_again():
    policy = FallbackPolicy(CFG, 3, now=0.0, thermal=True)
    r = Readings(1.0, {"tj-thermal": 50.0}, 5.0)
    action = policy.drop(0, r, "canary: 12 of 12 wrong")
    assert (action.lever, action.frm, action.to) == ("rung", 0, 1), action
    assert policy.serving == 1 and 0 not in policy.usable
    # Cool and fast for far longer than the cooldown: never back up to the wrong one.
    for t in range(2, 400):
        assert policy.update(Readings(float(t), {"tj-thermal": 50.0}, 5.0)) is None
    assert policy.drop(2, r, "canary") is None, "not serving: only marked"
    again = policy.adopt(0, Readings(400.0, {"tj-thermal": 50.0}, 5.0), "canary passes again")
    assert (again.frm, again.to) == (1, 0) and policy.serving == 0


def test_the_last_usable_engine_and_a_pinned_one_stay():
    policy = FallbackPolicy(CFG, 1, now=0.0, thermal=True)
    assert policy.drop(0, Readings(1.0, {}, None), "canary") is None and policy.serving == 0
    pinned = FallbackPolicy(FallbackConfig(pinned_rung=0), 2, now=0.0, thermal=True)
    assert pinned.drop(0, Readings(1.0, {}, None), "canary") is None
    assert pinned.serving == 0
    bottom = FallbackPolicy(CFG, 3, now=0.0, thermal=True, start=2)
    assert bottom.drop(2, Readings(1.0, {}, None), "canary").to == 1  # none below: up
