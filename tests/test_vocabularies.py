"""Each vocabulary has one place in the code, and the schemas and config fields say the same:
health kinds, rollout states, capture states, build states, fallback levers. A kind added in one
place and forgotten in another fails here, not on a device."""

from __future__ import annotations

import json
import typing

from edgeswin.capture.camera import STATES as CAPTURE_STATES
from edgeswin.config.fallback import FallbackConfig
from edgeswin.config.health import HealthConfig
from edgeswin.engine.cache import BUILD_STATES
from edgeswin.health.judge import KINDS
from edgeswin.rollout.gate import STATES as ROLLOUT_STATES

from .conftest import REPO

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
    assert tuple(lever) == configured


def test_a_capture_state_outside_the_vocabulary_is_refused():
    import pytest

    from edgeswin.capture.camera import Capture

    capture = Capture.__new__(Capture)  # only the state check is exercised
    with pytest.raises(ValueError, match="not one of"):
        capture._set_state("sleeping", "no such state")
