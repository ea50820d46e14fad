"""The canary through the real daemon, a real broker and the demo models: a healthy engine
publishes `ok` every interval with the check images its sidecar names; a rung whose model is
replaced by a wrong one (the same network with random weights) is caught, stepped away from,
and not stepped back up to while it stays wrong."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests import model_variants
from tests.harness import MODELS, PRIMARY, REPO, SMALL, write_config

SCHEMA = json.loads((REPO / "edgeswin" / "schemas" / "canary.schema.json").read_text())
TOPIC = "edgeswin/testdev/canary"


def _camera(videos) -> dict:
    return {"lobby": {"source": str(videos["north"]), "fps": 5, "loop": True,
                      "health": {"enabled": False}}}


@pytest.mark.mqtt
def test_a_healthy_engine_says_ok_every_interval(tmp_path, broker, subscriber, videos,
                                                daemon_factory):
    cfg = write_config(tmp_path / "cfg", broker.port, _camera(videos),
                       {"canary": {"interval_s": 2}})
    daemon = daemon_factory(cfg)
    assert subscriber.wait_for(lambda: len(subscriber.on(TOPIC)) >= 3, 60), daemon.log()
    runs = subscriber.json_on(TOPIC)
    for run in runs:
        jsonschema.validate(run, SCHEMA)
        assert run["ok"] and run["wrong"] == [] and run["rung"] == 0, run
        assert run["engine"] == "primary" and run["model"] == "swin-demo-112"
        assert run["checked"] == 12 and run["latency_ms"] > 0  # models/check: 2 per label
    classified = subscriber.json_on("edgeswin/testdev/lobby/classification")
    assert classified and all(c["rung"] == 0 for c in classified)
    assert daemon.terminate()[0] == 0


@pytest.mark.mqtt
def test_a_rung_whose_model_turned_wrong_is_stepped_away_from(tmp_path, broker, subscriber,
                                                             videos, daemon_factory):
    wrong = model_variants.random_weights(PRIMARY, tmp_path / "primary.onnx", "swin-demo-112")
    cfg = write_config(tmp_path / "cfg", broker.port, _camera(videos), {
        "engines": [{"name": "primary", "model": str(wrong)},
                    {"name": "small", "model": str(SMALL)}],
        "canary": {"interval_s": 2, "images": str(MODELS / "check")},
        "fallback": {"cooldown_s": 1, "min_dwell_s": 1}})
    daemon = daemon_factory(cfg)

    def served_after_canary():
        return [m for m in subscriber.json_on("edgeswin/testdev/engine")
                if m["rung"] == 1 and m["reason"].startswith("canary:")]

    assert subscriber.wait_for(served_after_canary, 60), daemon.log()
    runs = subscriber.json_on(TOPIC)
    assert not runs[0]["ok"] and runs[0]["rung"] == 0 and runs[0]["wrong"], runs[0]
    jsonschema.validate(runs[0], SCHEMA)
    switch = served_after_canary()[0]
    assert (switch["from"], switch["lever"]["name"]) == (0, "rung"), switch
    # The small rung answers right, and the wrong one is re-checked but never served again,
    # however cool the device stays (cooldown 1 s).
    assert subscriber.wait_for(lambda: sum(r["ok"] and r["rung"] == 1
                                           for r in subscriber.json_on(TOPIC)) >= 3, 60)
    after = subscriber.json_on(TOPIC)[1:]
    assert all(r["rung"] == 1 and r["ok"] for r in after), after
    engine = subscriber.json_on("edgeswin/testdev/engine")
    assert all(m["rung"] == 1 for m in engine[engine.index(switch):]), engine
    log = daemon.log()
    assert " ERROR " in log and "canary: " in log and "wrong on primary" in log
    assert daemon.terminate()[0] == 0


def test_a_stored_model_keeps_its_canary_after_the_original_folder_is_replaced(tmp_path):
    """A rung rolled back to a stored copy and restarted reads its canary from the copy: the
    next release shipped other check images, or none, beside the file the config names."""
    import shutil

    from edgeswin.canary.images import CanaryImages
    from edgeswin.config.canary import CanaryConfig
    from edgeswin.engine import read_model_info
    from edgeswin.rollout.store import ModelStore

    release = tmp_path / "release"
    release.mkdir()
    model = release / PRIMARY.name
    shutil.copyfile(PRIMARY, model)
    shutil.copyfile(PRIMARY.with_suffix(".json"), model.with_suffix(".json"))
    shutil.copytree(MODELS / "check", release / "check")
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["check_images"] == "check"

    store = ModelStore(tmp_path / "state")
    kept = store.keep(model)
    shutil.rmtree(release / "check")  # the original's images are gone
    model.with_suffix(".json").write_text(json.dumps({**sidecar, "check_images": "gone"}))

    again = ModelStore(tmp_path / "state").stored(kept.as_dict())  # as after a restart
    assert again is not None and again.path != model
    # What `edgeswin rollback` answers it serves: the model by name and digest, as a copy.
    assert again.describe() == (f"{sidecar['name']} (sha256 {kept.sha256[:12]}, the stored "
                                f"copy {again.path} of what {model} held)")
    stored_sidecar = json.loads(again.path.with_suffix(".json").read_text())
    assert {k: v for k, v in stored_sidecar.items() if k != "check_images"} == \
        {k: v for k, v in sidecar.items() if k != "check_images"}
    images = CanaryImages(CanaryConfig()).for_engine(again.path, read_model_info(again.path))
    assert len(images) == 12 and {label for _, label, _ in images} == set(sidecar["labels"])
    # A model whose sidecar names no check images is stored as it was.
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copyfile(SMALL, plain / SMALL.name)
    meta = json.loads(SMALL.with_suffix(".json").read_text())
    meta.pop("check_images", None)
    (plain / SMALL.name).with_suffix(".json").write_text(json.dumps(meta))
    stored = store.keep(plain / SMALL.name)
    assert not (stored.path.parent / "check_images").exists()
    assert json.loads(stored.path.with_suffix(".json").read_text()) == meta
