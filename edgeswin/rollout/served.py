"""Which model each rung serves, kept in the model store so that it survives restarts: decided
at start (`rung_plan`), recorded whenever a rung starts serving, and compared with the model
files a reload names.

Hands on the specs to load and the rollouts to queue, as (rung, spec, file, sha256, what serves
meanwhile, replacement) tuples for `ModelRollouts`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import EngineRung, RolloutConfig
from .rung_plan import plan_rung, sha256_or_say
from .store import ModelStore, StoredModel

log = logging.getLogger(__name__)

Waiting = tuple[int, EngineRung, Path, str, "StoredModel | None", bool]


class ServedModels:
    def __init__(self, store: ModelStore):
        self.store = store
        self.by_rung: dict[int, StoredModel] = {}

    def get(self, rung: int) -> StoredModel | None:
        return self.by_rung.get(rung)

    def __setitem__(self, rung: int, model: StoredModel) -> None:
        self.by_rung[rung] = model

    def startup(self, specs: list[EngineRung], cfg: RolloutConfig
                ) -> tuple[list[EngineRung], list[Waiting]]:
        """The specs to load now, as `rung_plan` decides: a rung whose model is rolled out or
        was refused starts on the model it served last time (its stored copy); every other
        rung on its configured file. And the rollouts that wait."""
        out, waiting = [], []
        for rung, spec in enumerate(specs):
            configured = Path(spec.model)
            sha = sha256_or_say(rung, spec)
            if sha is None:
                out.append(spec)
                continue
            plan = plan_rung(spec, sha, self.store, cfg)
            if plan.action != "configured":
                log.log(logging.WARNING if plan.action in ("refused", "replace") else logging.INFO,
                        "engine rung %d (%s): %s", rung, spec.name, plan.text)
            if plan.served is not None:
                if plan.action == "rollout":
                    waiting.append((rung, spec, configured, sha, plan.served, plan.replacement))
                out.append(spec.model_copy(update={"model": str(plan.served.path)}))
                self.by_rung[rung] = plan.served
            else:
                self.by_rung[rung] = StoredModel(configured, sha, str(configured))
                out.append(spec)
        return out, waiting

    def now_serving(self, rung: int, name: str) -> None:
        """Keep a copy of what the rung now serves and record it as current, so that a later
        rollout has a previous model to go back to."""
        model = self.by_rung.get(rung)
        if model is None:
            return
        stored = self.store.keep(Path(model.path), model.sha256)
        stored = StoredModel(stored.path, stored.sha256, model.source)
        self.by_rung[rung] = stored
        entry = self.store.record.get(name, {})
        if (entry.get("current") or {}).get("sha256") != stored.sha256:
            self.store.set_current(name, stored, self.store.stored(entry.get("current")))

    def changed(self, specs: list[EngineRung], rungs: list[int], cfg: RolloutConfig,
                pending: set[tuple[int, str]]) -> list[Waiting]:
        """The rollouts a reload asks for: each of `rungs` whose file differs from what it
        serves and is not already on its way (`pending`: rung and sha256)."""
        out: list[Waiting] = []
        for rung in rungs:
            spec = specs[rung]
            configured = Path(spec.model)
            sha = sha256_or_say(rung, spec)
            if sha is None:
                continue
            current = self.by_rung.get(rung)
            if (current and current.sha256 == sha) or (rung, sha) in pending:
                continue
            if not cfg.enabled:
                log.warning("reload: engine rung %d (%s): %s changed; rollout.enabled is false, "
                            "so it serves from the next restart", rung, spec.name, configured)
                continue
            plan = plan_rung(spec, sha, self.store, cfg)
            if plan.action == "refused":
                log.warning("reload: engine rung %d (%s): %s", rung, spec.name, plan.text)
                continue
            out.append((rung, spec, configured, sha, current, plan.replacement))
        return out
