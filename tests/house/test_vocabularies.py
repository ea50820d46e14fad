"""Each vocabulary has one place in the code, and the schemas and config fields say the same:
health kinds, rollout states, capture states, build states, fallback levers. A kind added in one
place and forgotten in another fails here, not on a device."""

from __future__ import annotations

import ast
import json
import re
import typing

import pytest

from edgeswin.capture.camera import STATES as CAPTURE_STATES
from edgeswin.config.fallback import LEVERS, FallbackConfig
from edgeswin.config.health import KINDS, HealthConfig
from edgeswin.engine.cache import BUILD_STATES
from edgeswin.errors import ConfigError
from edgeswin.govern.fallback import FallbackPolicy
from edgeswin.rollout.gate import STATES as ROLLOUT_STATES
from edgeswin.topics import RESERVED_REGION_NAMES, TOPICS, at, parse, per_camera
from tests.harness import REPO, write_config

SCHEMAS = REPO / "edgeswin" / "schemas"


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def test_health_kinds_agree_with_the_schema_and_each_has_its_hold():
    problem = _schema("health")["properties"]["problems"]["items"]["properties"]["kind"]
    assert tuple(problem["enum"]) == KINDS
    holds = {f.removesuffix("_after_s") for f in HealthConfig.model_fields
             if f.endswith("_after_s") and f != "clear_after_s"}
    # drift has no hold of its own: its window is its hold (docs/health.md)
    assert holds == set(KINDS) - {"drift"}, holds
    cfg = HealthConfig()
    assert all(cfg.hold_s(k) == getattr(cfg, f"{k}_after_s") for k in holds)
    with pytest.raises(KeyError):
        cfg.hold_s("fogged")  # a kind without a hold is an error, not a zero


def test_rollout_capture_and_build_states_agree_with_the_schemas():
    assert tuple(_schema("rollout")["properties"]["state"]["enum"]) == ROLLOUT_STATES
    cameras = _schema("stats")["properties"]["cameras"]["additionalProperties"]["allOf"][1]
    assert tuple(cameras["properties"]["state"]["enum"]) == CAPTURE_STATES
    builds = _schema("engine")["properties"]["builds"]["additionalProperties"]
    assert tuple(builds["properties"]["state"]["enum"]) == BUILD_STATES


def test_levers_agree_between_the_config_and_the_engine_schema():
    lever = _schema("engine")["properties"]["lever"]["properties"]["name"]["enum"]
    configured = typing.get_args(typing.get_args(FallbackConfig.model_fields["levers"]
                                                 .annotation)[0])
    assert tuple(lever) == configured == LEVERS
    policy = FallbackPolicy(FallbackConfig(), 2, 0.0, False)
    assert set(policy.limits) == set(LEVERS)  # each lever has a limit and a level
    assert set(policy.level) | {"rung"} == set(LEVERS)


def test_a_capture_state_outside_the_vocabulary_is_refused():
    import pytest

    from edgeswin.capture.camera import Capture

    capture = Capture.__new__(Capture)  # only the state check is exercised
    with pytest.raises(ValueError, match="not one of"):
        capture._set_state("sleeping", "no such state")


def test_every_topic_has_one_row_that_the_docs_and_schemas_agree_with():
    """docs/mqtt.md's table lists the same topics, retained as the table says, and every
    payload schema belongs to one topic."""
    rows = {}
    for line in (REPO / "docs" / "mqtt.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1] in ("yes", "no", "no, yes"):
            for name in re.findall(r"`([^`]+)`", cells[0]):
                if not name.startswith(".../"):  # `.../state`: the row's first topic's sibling
                    rows[name.removeprefix("<root>/")] = cells
    for key, topic in TOPICS.items():
        written = topic.pattern.replace("{camera}", "<camera>").replace("{unit}", "<camera>")
        assert written in rows, f"docs/mqtt.md has no row for {written} ({key})"
        cells = rows[written]
        assert cells[1] in ("yes" if topic.retained else "no", "no, yes"), written
        read_by_device = "(to the device)" in cells[0] or "read by a device" in cells[2]
        assert read_by_device == topic.to_device, written
    schemas = sorted(t.schema for t in TOPICS.values() if t.schema)
    files = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
    assert schemas == files


def test_every_topic_reads_back_as_itself():
    for key, topic in TOPICS.items():
        for camera, unit in (("lobby", "lobby"), ("lobby", "lobby/door")):
            if "{camera}" in topic.pattern and unit != camera:
                continue
            full = at("edgeswin/dev1", key, camera=camera, unit=unit)
            owner = None if "{" not in topic.pattern else unit
            assert parse(full.removeprefix("edgeswin/dev1/").split("/")) == (key, owner), full
    assert parse(["lobby", "door", "nothing"]) is None
    keys = {k for k, _ in per_camera("r", "lobby", ["door"])}
    assert keys == {k for k, t in TOPICS.items() if "{" in t.pattern}


def test_topics_are_built_only_from_the_table():
    """No f-string writes `{...root}/...` outside topics.py: a topic written by hand is one the
    table, the clean-up and the subscribers do not know."""
    written = []
    for path in (REPO / "edgeswin").rglob("*.py"):
        if path.name == "topics.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                parts = node.values
                for a, b in zip(parts, parts[1:]):
                    if isinstance(a, ast.FormattedValue) and "root" in ast.unparse(a.value) \
                            and isinstance(b, ast.Constant) and str(b.value).startswith("/"):
                        written.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not written, written


@pytest.mark.parametrize("name", sorted(RESERVED_REGION_NAMES))
def test_a_region_named_like_a_camera_topic_level_is_refused_at_its_line(tmp_path, name):
    from edgeswin.config import load_config
    cfg = write_config(tmp_path, 1883, {"lobby": {"source": "0", "regions": [
        {"name": "door", "box": [0, 0, 0.5, 0.5]}, {"name": name, "box": [0.5, 0.5, 1, 1]}]}})
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    text = str(exc.value)
    assert "cameras/lobby.yaml" in text and f"region name {name}" in text, text
