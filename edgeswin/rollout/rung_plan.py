"""What a start does with each engine rung's model, decided in one place for the daemon's
start (`ModelRollouts.startup`) and for `edgeswin check`, which says it before it happens.

Hands on a `RungPlan` per rung. The rules:
- nothing served before, the same file, or rollout off: the configured file serves;
- a different file with another label set, named by an edited config (not the file the rung
  served, replaced in place): an intentional replacement. It serves at once when no gate can
  run, or goes through the `rollout.check_images` accuracy gate when that is set;
- any other change: the old model serves and the new file goes through the shadow gate;
- a file refused before (rejected, or rolled back) stays refused until it changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import EngineRung, RolloutConfig
from ..engine import read_model_info
from ..errors import EdgeswinError
from .store import ModelStore, StoredModel, sha256_of

log = logging.getLogger(__name__)

# Refusals written before a replacement could serve without a gate: not a refusal now.
_OLD_LABEL_REFUSAL = "the label sets differ, so agreement cannot be measured"

WAY_OUT = ("to serve it anyway, restart once with rollout.enabled: false, or give the rung a "
           "new name; `edgeswin rollback` serves the previous model again")


@dataclass(frozen=True)
class RungPlan:
    action: str  # "configured" | "replace" | "rollout" | "refused"
    served: StoredModel | None  # what serves meanwhile, for rollout and refused
    replacement: bool  # another label set, named by an edited config
    text: str  # one line for `check` and the log


def plan_rung(spec: EngineRung, sha: str, store: ModelStore, cfg: RolloutConfig) -> RungPlan:
    configured = Path(spec.model)
    entry = store.record.get(spec.name, {})
    served = store.stored(entry.get("current"))
    if served is None or served.sha256 == sha:
        return RungPlan("configured", None, False, f"serves {configured}")
    if not cfg.enabled:
        return RungPlan("configured", None, False, f"serves {configured} (changed since it "
                        f"last served {served.source}; rollout.enabled is false: no gate)")
    replacement = served.source != str(configured) and _labels(configured) != \
        _labels(Path(served.path))
    refused = store.refused(spec.name, sha)
    if refused and not (replacement and refused.startswith(_OLD_LABEL_REFUSAL)):
        return RungPlan("refused", served, replacement, f"keeps serving {served.source}: "
                        f"{configured} was refused earlier ({refused}); {WAY_OUT}")
    if replacement and not cfg.check_images:
        return RungPlan("replace", None, True, f"serves {configured}, which replaces "
                        f"{served.source} with another label set (no gate can compare them; "
                        "set rollout.check_images to gate it on labelled images)")
    gate = ("the rollout.check_images accuracy gate" if replacement
            else "the shadow gate on live frames")
    return RungPlan("rollout", served, replacement, f"serves {served.source} while {configured} "
                    f"goes through {gate}")


def _labels(model: Path) -> tuple[str, ...] | None:
    try:
        return read_model_info(model).labels
    except EdgeswinError:
        return None


def sha256_or_say(rung: int, spec: EngineRung) -> str | None:
    """The model file's sha256, or None after saying why it cannot be read (the rung then
    loads or keeps what it has, and its own errors speak)."""
    try:
        return sha256_of(Path(spec.model))
    except OSError as exc:
        log.error("engine rung %d (%s): cannot read %s: %s", rung, spec.name, spec.model, exc)
        return None
