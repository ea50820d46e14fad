"""System tests: the whole product against the world (real footage, Home Assistant,
Prometheus, camera faults, a year of running, the README's tour, the install)."""
