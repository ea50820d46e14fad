"""The governor end to end: the daemon as a subprocess on a real video and broker, a scripted
thermal tree that heats and cools, scripted power rails (one unreadable) and the nvpmodel
double. It must lower the rate first, then step down the ladder, then the power mode, and come
back in reverse, with no gap in seq and the labels still right."""

from __future__ import annotations

import json
import statistics
from datetime import datetime

import jsonschema
import pytest

from edgeswin.demo.assets import read_ground_truth
from tests.govern.test_power import FAKE_NVPMODEL, NVPMODEL_CONF, jetson_hwmon
from tests.harness import REPO, get, samples, write_config
from tests.streams import free_port

pytestmark = pytest.mark.mqtt

ROOT = "edgeswin/testdev"
ENGINE_SCHEMA = json.loads((REPO / "edgeswin/schemas/engine.schema.json").read_text())


def _ts(message: dict) -> datetime:
    return datetime.fromisoformat(message["ts"])


def _stable(truth: list[str], i: int, guard: int = 3) -> bool:
    return all(label == truth[i] for label in truth[max(0, i - guard):i + guard + 1])


def test_heat_lowers_fps_then_the_rung_then_the_power_mode_and_recovery_undoes_them_in_reverse(
        tmp_path, broker, subscriber, videos, daemon_factory):
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("TJ-therm\n")
    temp = zone / "temp"
    temp.write_text("50000\n")
    jetson_hwmon(tmp_path / "hwmon")
    (tmp_path / "hwmon" / "hwmon1" / "curr1_input").write_text("garbage\n")  # VIN_SYS_5V0
    conf = tmp_path / "nvpmodel.conf"
    conf.write_text(NVPMODEL_CONF)
    state = tmp_path / "nvpmodel.state"
    env = {"NVPMODEL_CONF": str(conf), "NVPMODEL_STATE": str(state)}
    cfg = write_config(
        tmp_path / "cfg", broker.port,
        {"north": {"source": str(videos["north"]), "loop": True, "fps": 6, "min_fps": 2}},
        {"stats_interval_s": 1, "metrics": {"enabled": True, "port": (port := free_port())},
         "fallback": {"thermal_root": str(tmp_path / "thermal"), "zones": ["tj"],
                      "degrade_above_c": 85, "recover_below_c": 75, "hold_s": 1,
                      "cooldown_s": 2, "min_dwell_s": 4, "poll_s": 0.2,
                      "levers": ["fps", "rung", "power_mode"], "fps_steps": 1,
                      "power_modes": ["7W"],
                      "power_mode_command": [str(FAKE_NVPMODEL), "-m", "{id}"]},
         "power": {"hwmon_root": str(tmp_path / "hwmon"), "devfreq_root": str(tmp_path / "none"),
                   "nvpmodel_conf": str(conf), "nvpmodel": str(FAKE_NVPMODEL)}})
    daemon = daemon_factory(cfg, env)
    topic = f"{ROOT}/north/classification"
    assert subscriber.wait_for(lambda: len(subscriber.on(topic)) >= 12, 30), daemon.log()

    def moves() -> list[tuple[str, int, int]]:
        return [(m["lever"]["name"], m["lever"]["from"], m["lever"]["to"])
                for m in subscriber.json_on(f"{ROOT}/engine") if m["lever"]]

    temp.write_text("95000\n")  # the device heats up
    assert subscriber.wait_for(lambda: ("power_mode", 0, 1) in moves(), 40), daemon.log()
    assert state.read_text().strip() == "1"  # nvpmodel was asked for 7W
    temp.write_text("60000\n")  # and cools down
    assert subscriber.wait_for(lambda: ("fps", 1, 0) in moves(), 60), daemon.log()
    metrics = samples(get(f"http://127.0.0.1:{port}/metrics")[1])
    code, _ = daemon.terminate(timeout=10)
    assert code == 0, daemon.log()

    assert moves() == [("fps", 0, 1), ("rung", 0, 1), ("power_mode", 0, 1),
                       ("power_mode", 1, 0), ("rung", 1, 0), ("fps", 1, 0)]
    assert state.read_text().strip() == "0"  # back in the mode it started in (15W)
    engine = [m for m in subscriber.json_on(f"{ROOT}/engine") if m["lever"]]
    for m in engine:
        jsonschema.validate(m, ENGINE_SCHEMA)
    assert engine[0]["reason"].startswith("hot") and engine[3]["reason"].startswith("recovered")
    assert engine[2]["levels"] == {"fps": 1, "rung": 1, "power_mode": 1}
    assert engine[0]["readings"]["watts"]["VDD_IN"] == 12.0
    log = daemon.log()
    assert "fallback: fps 0 -> 1 (north 2/s): hot" in log
    assert "fallback: power_mode 0 -> 1 (mode 7W): hot" in log
    assert log.count("VIN_SYS_5V0") == 2, log  # the start's rail list and one warning

    msgs = subscriber.json_on(topic)
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1)), "no gap across levers"
    fps_down, rung_down = _ts(engine[0]), _ts(engine[1])
    full = [m for m in msgs if _ts(m) < fps_down]
    slowed = [m for m in msgs if fps_down <= _ts(m) < rung_down]
    assert len(full) >= 6 and len(slowed) >= 4, (len(full), len(slowed))
    assert all(m["rung"] == 0 for m in full + slowed)

    def median_gap(batch):
        return statistics.median(b["frame_index"] - a["frame_index"]
                                 for a, b in zip(batch, batch[1:]) if b["frame_index"] > a["frame_index"])
    # The 15 fps video at 6/s: every 2-3rd frame; at 2/s: every 7-8th.
    assert median_gap(full) <= 3 and median_gap(slowed) >= 6, (median_gap(full),
                                                               median_gap(slowed))
    truth = read_ground_truth(videos["north"])
    scored = [m for m in slowed if _stable(truth, m["frame_index"])]
    assert scored and sum(m["label"] == truth[m["frame_index"]] for m in scored) / len(scored) \
        >= 0.95, "the labels stay right at the lower rate"
    assert [m["rung"] for m in msgs][-1] == 0

    stats = subscriber.json_on(f"{ROOT}/stats")
    power = [s["power"] for s in stats]
    assert all(p["total_rail"] == "VDD_IN" and p["total_w"] == 12.0 for p in power)
    assert all("VIN_SYS_5V0" not in p["watts"] and p["watts"]["ina238"] == 19.0 for p in power)
    assert {p["mode"]["name"] for p in power} == {"15W", "7W"}
    per = [p["energy_mj_per_classification"] for p in power
           if p["energy_mj_per_classification"] is not None]
    assert per and all(value > 0 for value in per)
    assert any(s["levels"] == {"fps": 1, "rung": 1, "power_mode": 1} for s in stats)
    assert metrics[("edgeswin_power_watts", (("rail", "VDD_IN"),))] == 12.0
    assert metrics[("edgeswin_power_mode", (("id", "0"), ("name", "15W")))] == 1
    assert {lever: metrics[("edgeswin_fallback_actions_total", (("lever", lever),))]
            for lever in ("fps", "rung", "power_mode")} == {"fps": 2, "rung": 2, "power_mode": 2}
    assert metrics[("edgeswin_fallback_level", (("lever", "fps"),))] == 0


def test_the_dla_lever_moves_the_primary_to_its_dla_build_before_the_rung_lever(
        tmp_path, broker, subscriber, videos, trt):
    # The daemon in this process with the TensorRT double (10.3, two DLA cores): the primary's
    # GPU and DLA plans are built on the device in the background; heat moves the primary to
    # its DLA build first, then down the ladder, and recovery comes back the same way.
    import threading

    from edgeswin.config import load_config
    from edgeswin.daemon import Daemon
    from tests.harness import PRIMARY, SMALL
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("TJ-therm\n")
    temp = zone / "temp"
    temp.write_text("50000\n")
    cfg = write_config(
        tmp_path / "cfg", broker.port,
        {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
        {"engines": [{"name": "gpu", "model": str(PRIMARY), "backend": "tensorrt",
                      "precision": "fp16"},
                     {"name": "small", "model": str(SMALL)},
                     {"name": "dla", "model": str(PRIMARY), "backend": "tensorrt",
                      "precision": "fp16", "dla_core": 0}],
         "fallback": {"thermal_root": str(tmp_path / "thermal"), "zones": ["tj"],
                      "hold_s": 1, "cooldown_s": 1, "min_dwell_s": 2, "poll_s": 0.2,
                      "levers": ["dla", "rung"]}})
    daemon = Daemon(load_config(cfg))
    runner = threading.Thread(target=daemon.run, name="daemon-under-test")
    runner.start()
    topic = f"{ROOT}/north/classification"

    def moves() -> list[tuple[str, int, int, str]]:
        return [(m["lever"]["name"], m["lever"]["from"], m["lever"]["to"], m["name"])
                for m in subscriber.json_on(f"{ROOT}/engine") if m["lever"]]

    try:
        # Both plans built, and the primary serves on the GPU.
        assert subscriber.wait_for(lambda: subscriber.json_on(topic) and
                                   subscriber.json_on(topic)[-1]["engine"] == "gpu" and
                                   daemon.engines.rungs[2] is not None, 120), moves()
        temp.write_text("95000\n")
        assert subscriber.wait_for(lambda: ("rung", 0, 1, "small") in moves(), 30), moves()
        temp.write_text("60000\n")
        assert subscriber.wait_for(lambda: ("dla", 1, 0, "gpu") in moves(), 30), moves()
        seen = len(subscriber.on(topic))
        assert subscriber.wait_for(lambda: len(subscriber.on(topic)) >= seen + 3, 20)
        assert runner.is_alive() and not daemon.failure
    finally:
        daemon.request_stop("test done")
        runner.join(30)
    assert not runner.is_alive()
    # (Before them, maybe ("rung", 1, 0, "gpu"): the GPU plan finished building after the
    # daemon started on the small rung, and was served at once.)
    assert moves()[-4:] == [("dla", 0, 1, "dla"), ("rung", 0, 1, "small"),
                            ("rung", 1, 0, "dla"), ("dla", 1, 0, "gpu")], moves()
    msgs = subscriber.json_on(topic)
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
    engines = [m["engine"] for m in msgs]
    blocks = [e for i, e in enumerate(engines) if i == 0 or e != engines[i - 1]]
    assert blocks[-5:] == ["gpu", "dla", "small", "dla", "gpu"], blocks
    assert {m["model"] for m in msgs if m["engine"] == "dla"} == {"swin-demo-112-fp16"}
