"""What Home Assistant records of the device's measurements: `<root>/measured`, retained, QoS 1.

`<root>/stats` changes every `stats_interval_s` (10 s): a temperature that moves by a tenth of
a degree, power by milliwatts. Home Assistant writes a state row (and its attributes) for every
change of an entity it reads, and its recorder keeps them: read from `stats`, four device
sensors made about 1,400 rows an hour on a Jetson. Taken from `stats` by `after`, this topic
changes only when a value moved by a whole step from the value last sent (temperature 1 degree,
power 0.5 W or 5 %, energy per classification 10 %) or the power mode changed, and then
carries each value as last sent unless it moved a step itself, so Home Assistant records what
a person would look at in its history, not the sensors' noise.

Hands on the message to publish, or None when nothing moved far enough.
"""

from __future__ import annotations

from .message import Message, topic_message

TEMP_STEP_C = 1.0
POWER_STEP_W, POWER_STEP_OF = 0.5, 0.05
ENERGY_STEP_OF = 0.10


def _moved(new: float | None, old: float | None, step: float) -> bool:
    if new is None or old is None:
        return new is not old
    return abs(new - old) >= step


class Measured:
    def __init__(self, root: str):
        self.root = root
        self._sent: dict | None = None

    def after(self, stats: dict) -> Message | None:
        power = stats.get("power") or {}
        mode = power.get("mode") or {}
        now = {"temp_max_c": _rounded(stats.get("temp_max_c"), 1),
               "power_w": _rounded(power.get("total_w"), 2),
               "energy_mj_per_classification": _rounded(
                   power.get("energy_mj_per_classification"), 3),
               "power_mode": mode.get("name"),
               "watts": {rail: round(w, 1) for rail, w in (power.get("watts") or {}).items()}}
        if self._sent is not None:
            now = self._held(now, self._sent)
            if now == self._sent:
                return None
        self._sent = now
        return topic_message(self.root, "measured", now)

    @staticmethod
    def _held(now: dict, last: dict) -> dict:
        """Each value as last sent unless it moved a whole step itself, so a step of one
        (energy, say) does not carry the others' noise into Home Assistant's history."""
        power, energy = last["power_w"], last["energy_mj_per_classification"]
        held = dict(now)
        if not _moved(now["temp_max_c"], last["temp_max_c"], TEMP_STEP_C):
            held["temp_max_c"] = last["temp_max_c"]
        if not _moved(now["power_w"], power, max(POWER_STEP_W, POWER_STEP_OF * abs(power or 0.0))) \
                and set(now["watts"]) == set(last["watts"]):
            held["power_w"], held["watts"] = power, last["watts"]
        if not _moved(now["energy_mj_per_classification"], energy,
                      ENERGY_STEP_OF * abs(energy or 0.0) or 1e-9):
            held["energy_mj_per_classification"] = energy
        return held


def _rounded(value, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)
