"""`<root>/measured`, what Home Assistant records of the device: a value reaches it only when it
moved a whole step itself, also when another value's step sends the message."""

from __future__ import annotations

import json

from edgeswin.publish.measured import Measured


def stats(temp: float, energy: float, watts: float = 12.0) -> dict:
    return {"temp_max_c": temp, "power": {"total_w": watts, "watts": {"VDD_IN": watts},
                                          "energy_mj_per_classification": energy,
                                          "mode": {"name": "MAXN"}}}


def test_a_step_of_energy_does_not_carry_the_temperatures_jitter():
    m = Measured("edgeswin/dev")
    sent = [m.after(s) for s in (stats(55.2, 1000), stats(54.9, 1050), stats(54.7, 1200),
                                 stats(56.3, 1210), stats(56.1, 1220, 12.1))]
    assert [s is not None for s in sent] == [True, False, True, True, False]
    values = [json.loads(s.payload) for s in sent if s is not None]
    assert [(v["temp_max_c"], v["energy_mj_per_classification"]) for v in values] == \
        [(55.2, 1000), (55.2, 1200), (56.3, 1200)]
    assert all(v["power_w"] == 12.0 and v["watts"] == {"VDD_IN": 12.0} for v in values)
