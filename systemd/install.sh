#!/usr/bin/env bash
# Install edgeswin as a systemd service on a Jetson (or any Debian/Ubuntu machine):
#   sudo systemd/install.sh [--config-from DIR] [--mqtt-password-file FILE]
# Creates the system user `edgeswin` (groups video, render), a venv in /opt/edgeswin/venv that
# sees the system OpenCV and TensorRT (--system-site-packages), /etc/edgeswin (config) and
# /var/lib/edgeswin (state, via StateDirectory=), installs the unit and enables it.
# Re-running it upgrades the code and keeps the config.
set -euo pipefail
cd "$(dirname "$0")/.."
config_from=configs/example
password_file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config-from) config_from="$2"; shift 2 ;;
    --mqtt-password-file) password_file="$2"; shift 2 ;;
    *) echo "usage: $0 [--config-from DIR] [--mqtt-password-file FILE]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root (sudo)" >&2; exit 1; }

getent passwd edgeswin >/dev/null || useradd --system --no-create-home --home-dir /var/lib/edgeswin \
  --shell /usr/sbin/nologin edgeswin
for group in video render; do
  getent group "$group" >/dev/null && usermod -aG "$group" edgeswin
done

install -d -m 0755 /opt/edgeswin
cp -r edgeswin models setup.cfg pyproject.toml README.md /opt/edgeswin/
/usr/bin/python3 -m venv --system-site-packages /opt/edgeswin/venv
/opt/edgeswin/venv/bin/pip install -q --upgrade pip
/opt/edgeswin/venv/bin/python -c "import cv2" 2>/dev/null || \
  /opt/edgeswin/venv/bin/pip install -q "/opt/edgeswin[opencv]"
/opt/edgeswin/venv/bin/pip install -q /opt/edgeswin

install -d -m 0750 -g edgeswin /etc/edgeswin /etc/edgeswin/cameras
if [ ! -f /etc/edgeswin/edgeswin.yaml ]; then
  cp "$config_from/edgeswin.yaml" /etc/edgeswin/
  cp "$config_from"/cameras/*.yaml /etc/edgeswin/cameras/ 2>/dev/null || true
  echo "installed a starting config from $config_from: edit /etc/edgeswin before starting"
fi
# LoadCredential= fails the start when the file is missing: an empty file means no password.
if [ -n "$password_file" ]; then
  install -m 0600 "$password_file" /etc/edgeswin/mqtt_password
elif [ ! -f /etc/edgeswin/mqtt_password ]; then
  install -m 0600 /dev/null /etc/edgeswin/mqtt_password
fi
chgrp -R edgeswin /etc/edgeswin

install -m 0644 systemd/edgeswin.service /etc/systemd/system/edgeswin.service
systemctl daemon-reload
/opt/edgeswin/venv/bin/edgeswin check -c /etc/edgeswin || \
  echo "fix the config above, then: systemctl start edgeswin"
systemctl enable edgeswin.service
echo "enabled. start: systemctl start edgeswin; logs: journalctl -u edgeswin -f;" \
  "reload cameras: systemctl reload edgeswin"
