#!/bin/sh
# A venv of its own with Home Assistant core, for the tests that run edgeswin against a real
# Home Assistant (tests/system/test_homeassistant_real.py). The newest release that installs on this
# Python (2024.3.3 on Python 3.11), installed with Home Assistant's own pins
# (homeassistant/package_constraints.txt in its wheel) plus the requirements of the
# integrations the tests load, so Home Assistant runs with --skip-pip and installs nothing.
#   sh scripts/homeassistant-venv.sh PYTHON VENV
set -eu
python=$1
venv=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" download -q --no-deps -d "$tmp" homeassistant
wheel=$(ls "$tmp"/homeassistant-*.whl)
"$venv/bin/python" - "$wheel" "$tmp/constraints.txt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    open(sys.argv[2], "wb").write(z.read("homeassistant/package_constraints.txt"))
PY
# josepy: acme (through hass-nabucasa, which the http integration imports) needs 1.x.
# The rest: the integrations HA loads at start (frontend and what it needs), mqtt, recorder.
"$venv/bin/pip" install -q "$wheel" "josepy<2" paho-mqtt SQLAlchemy fnv-hash-fast \
    psutil-home-assistant home-assistant-frontend Pillow janus securetar PyTurboJPEG \
    -c "$tmp/constraints.txt"
"$venv/bin/hass" --version
