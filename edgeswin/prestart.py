"""What can serve, checked before a start by `check` and `run`: each engine rung's model read
as the engine reads it first (`engine.check`: the file, its sidecar, an ONNX graph against
it), unless the model store still holds a model the rung served before (then that one serves,
and the broken file is refused by the rollout: an update cut short must not stop the service).
Config validation stays the schema and its cross-field rules; files are read here.

`report` is `edgeswin check`'s answer: the config is OK, which rungs are skipped and why, and
what each other rung serves at the next start (from the model record in state_dir).

Hands on `RungCheck`: the rungs that can serve, and for each one that cannot a `ConfigIssue` at
its `engines.<i>.model` line, which `check` prints and the daemon logs: the rung is skipped
and the others serve. Only when no rung can serve is it a `ConfigError`, as a broken config
is: one damaged file must not take every camera of a device down.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .config.reading import _read_yaml
from .engine.check import check_model
from .errors import ConfigError, ConfigIssue, EdgeswinError
from .rollout.rung_plan import plan_rung
from .rollout.store import ModelStore, sha256_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RungCheck:
    serving: list[int]  # rungs that can serve, in ladder order
    skipped: list[tuple[int, ConfigIssue]]  # rungs that cannot, and why


def check_rungs(config: Config, log_skipped: bool = False) -> RungCheck:
    """Raises ConfigError naming every rung when none can serve; `log_skipped`: each rung that
    cannot is said in the log (a start), else the caller says it (`check`)."""
    device = config.device
    device_file = config.directory / "edgeswin.yaml"
    parsed = _read_yaml(device_file, [])
    lines = parsed[1] if parsed else {}
    store = ModelStore(Path(device.state_dir))
    serving, skipped = [], []
    for i, spec in enumerate(device.engines):
        problem = _problem(Path(spec.model))
        if problem is None or store.stored(store.record.get(spec.name, {}).get("current")):
            serving.append(i)
            continue
        skipped.append((i, ConfigIssue(str(device_file), lines.get(("engines", i, "model"), 1),
                                       f"engines.{i}.model", problem)))
    if not serving:
        raise ConfigError([issue for _, issue in skipped])
    for rung, issue in skipped if log_skipped else ():
        log.error("engine rung %d (%s) is skipped, the others serve: %s", rung,
                  device.engines[rung].name, issue)
    return RungCheck(serving, skipped)


def _problem(model: Path) -> str | None:
    if not model.is_file():
        return (f"model is not a regular file: {model}" if model.exists()
                else f"model file does not exist: {model}")
    try:
        check_model(model)
    except EdgeswinError as exc:
        return str(exc)
    return None


def report(config: Config, named: Path) -> int:
    """What `edgeswin check` prints when the config is valid and some rung can serve."""
    rungs = check_rungs(config)  # nothing can serve: a ConfigError, exit 1
    device = config.device
    enabled = sum(e.config.enabled for e in config.cameras)
    print(f"{named}: OK: device {device.device_id}, {len(config.cameras)} camera(s) "
          f"({enabled} enabled), engine ladder: {', '.join(e.name for e in device.engines)}")
    for rung, issue in rungs.skipped:
        print(f"  rung {rung} ({device.engines[rung].name}) is skipped: {issue}")
    record = ModelStore.record_of(Path(device.state_dir))
    if record.exists() and not os.access(record, os.R_OK):
        print(f"  (cannot read {record} as this user: what each rung serves next is not "
              "known here; run check as the service's user)")
        return 0
    store = ModelStore(Path(device.state_dir))
    for i in rungs.serving:
        spec = device.engines[i]
        if not Path(spec.model).is_file():  # what it served before, from the model store
            print(f"  rung {i} ({spec.name}): {spec.model} is missing; it serves the model "
                  "it served before")
            continue
        plan = plan_rung(spec, sha256_of(Path(spec.model)), store, device.rollout)
        print(f"  rung {i} ({spec.name}): {plan.text}")
    return 0
