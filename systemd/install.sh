#!/usr/bin/env bash
# Install, upgrade or remove edgeswin as a systemd service on a Jetson (JetPack 6 or 7) or any
# Debian/Ubuntu machine with systemd >= 247.
#
#   sudo systemd/install.sh [--config-from DIR] [--mqtt-password-file FILE] [--target T]
#                           [--python PY] [--no-pycuda]
#   sudo systemd/install.sh --uninstall [--purge]
#   systemd/install.sh --root DIR ...        everything under DIR, nothing else touched
#
# What it does, in order (each step is safe to repeat; a second run upgrades the code and keeps
# the config):
#   1. the system user `edgeswin` (groups video, render where they exist);
#   2. the code, the bundled models and the bundled clip in /opt/edgeswin;
#   3. a venv in /opt/edgeswin/venv that sees the system OpenCV and TensorRT
#      (--system-site-packages), with the constraints of this JetPack (constraints/select.sh);
#   4. pycuda, built against this machine's CUDA, when a CUDA toolkit (nvcc) is present, and
#      the GPU preprocessing kernel compiled for this GPU into /var/lib/edgeswin/kernels;
#   5. a starting config in /etc/edgeswin (only if none is there): absolute model paths into
#      /opt/edgeswin/models and a camera that plays the bundled clip, so a fresh install
#      classifies something at once;
#   6. the unit in /etc/systemd/system, enabled (not started);
#   7. `edgeswin check` on the installed config.
#
# --root DIR installs under DIR, and every path written (config, unit, venv) points inside DIR,
# so the result runs from there: for trying an install, and for tests. No user is created,
# systemd is not told, and root is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

usage() {
  sed -n '5,8p' "$0" | sed 's/^#  *//' >&2
  exit 2
}

root=""
config_from=configs/example
password_file=""
target=""
python=/usr/bin/python3
pycuda=auto
action=install
purge=no
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$(realpath -m "$2"); shift 2 ;;
    --config-from) config_from="$2"; shift 2 ;;
    --mqtt-password-file) password_file="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --no-pycuda) pycuda=no; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done

# The root goes into sed expressions, YAML values and the unit: plain path characters only.
case "$root" in
  *[!A-Za-z0-9/._+-]*) echo "--root $root: use a path of letters, digits and / . _ + - only" >&2
                       exit 2 ;;
esac
if [ "$action" = install ]; then
  [ -f "$config_from/edgeswin.yaml" ] || {
    echo "--config-from $config_from: no edgeswin.yaml there" >&2; exit 2; }
  [ -z "$password_file" ] || [ -r "$password_file" ] || {
    echo "--mqtt-password-file $password_file: not a readable file" >&2; exit 2; }
fi

prefix=$root/opt/edgeswin
etc=$root/etc/edgeswin
state=$root/var/lib/edgeswin
unit=$root/etc/systemd/system/edgeswin.service
system=no               # a real install: a user, systemd, ownership
[ -z "$root" ] && system=yes
say() { echo "edgeswin install: $*"; }

if [ "$system" = yes ] && [ "$(id -u)" != 0 ]; then
  echo "run as root (sudo), or with --root DIR for an install under DIR" >&2
  exit 1
fi
# systemd is there to be told only on a booted system (not in a chroot or a container build).
systemd_running=no
if [ "$system" = yes ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemd_running=yes
fi

if [ "$action" = uninstall ]; then
  if [ "$systemd_running" = yes ]; then
    systemctl disable --now edgeswin.service edgeswin-power-mode.path 2>/dev/null || true
  fi
  rm -f "$unit" "$(dirname "$unit")"/edgeswin-power-mode.{path,service}
  [ "$systemd_running" = yes ] && systemctl daemon-reload
  rm -rf "$prefix"
  if [ "$purge" = yes ]; then
    rm -rf "$etc" "$state"
    if [ "$system" = yes ] && getent passwd edgeswin >/dev/null; then
      userdel edgeswin
    fi
    say "removed the code, the unit, the config ($etc) and the state ($state)"
  else
    say "removed the code and the unit; kept $etc and $state (--purge removes them)"
  fi
  exit 0
fi

# LoadCredential= (the broker password) needs systemd 247; JetPack 6 has 249, JetPack 7 255.
if [ "$systemd_running" = yes ]; then
  version=$(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
  if [ "${version:-0}" -lt 247 ]; then
    echo "systemd $version is too old: the unit needs 247 or later (LoadCredential=)" >&2
    exit 1
  fi
fi

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "$python is $("$python" -V 2>&1): edgeswin needs Python 3.10 or later" >&2; exit 1; }
"$python" -c 'import venv, ensurepip' 2>/dev/null || {
  echo "$python cannot make a venv: install python3-venv" >&2; exit 1; }
constraints=$(sh constraints/select.sh "$python" $target)
target=$(echo "$constraints" | sed -n '1s/^# target: //p')
say "target $target, $("$python" -V 2>&1)"
case "$target" in
  jetpack6) expected=3.10 ;;
  jetpack7) expected=3.12 ;;
  *) expected="" ;;
esac
actual=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
  say "warning: $target ships Python $expected, this is $actual" \
      "(TensorRT's bindings are built for the system Python)"
fi

# 1. the user
if [ "$system" = yes ]; then
  getent passwd edgeswin >/dev/null || useradd --system --no-create-home \
    --home-dir /var/lib/edgeswin --shell /usr/sbin/nologin edgeswin
  for group in video render; do
    getent group "$group" >/dev/null && usermod -aG "$group" edgeswin
  done
fi

# 2. the code: replaced whole, so files removed upstream do not linger
install -d -m 0755 "$prefix"
# configs/: `edgeswin demo` finds its config there, beside the venv.
for item in edgeswin models clips configs constraints systemd; do
  rm -rf "${prefix:?}/$item"
  cp -r "$item" "$prefix/"
done
cp setup.cfg pyproject.toml README.md SECURITY.md "$prefix/"
find "$prefix/edgeswin" -name __pycache__ -prune -exec rm -rf {} +

# 3. the venv. The project itself is reinstalled every time: its version number may not change.
echo "$constraints" > "$prefix/constraints.txt"
# A venv is tied to one Python and one target (a JetPack upgrade changes both): start afresh
# when either changed, rather than leave packages built for the other one.
stamp="$target $actual"
if [ -x "$prefix/venv/bin/python" ] && [ "$(cat "$prefix/venv/.edgeswin-target" 2>/dev/null)" != "$stamp" ]; then
  say "the venv was made for $(cat "$prefix/venv/.edgeswin-target" 2>/dev/null || echo "an unknown target"): making it again"
  rm -rf "$prefix/venv"
fi
if [ ! -x "$prefix/venv/bin/python" ]; then
  "$python" -m venv --system-site-packages "$prefix/venv"
  echo "$stamp" > "$prefix/venv/.edgeswin-target"
fi
pip=("$prefix/venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
# prometheus-client and Flask (pure Python, small) always: turning metrics on, or reviewing the
# hard examples on the device (`edgeswin review`), must not need an install.
extras="[metrics,review]"
# The pip OpenCV where there is no system one; once installed, it is kept under the constraints.
if "${pip[@]}" show -q opencv-python-headless 2>/dev/null; then
  extras="[opencv,metrics,review]"
elif ! "$prefix/venv/bin/python" -c "import cv2" 2>/dev/null; then
  say "no system OpenCV: installing opencv-python-headless (no GStreamer: gst: cameras refused)"
  extras="[opencv,metrics,review]"
fi
say "installing the Python packages (pip, constraints $prefix/constraints.txt)"
"${pip[@]}" install -q -c "$prefix/constraints.txt" "$prefix$extras"
"${pip[@]}" install -q --no-deps --force-reinstall "$prefix"
rm -rf "$prefix/build" "$prefix"/*.egg-info   # what building the wheel left in the tree

install -d -m 0750 "$state"

# 4. pycuda: JetPack has no package for it; it is built here against the device's CUDA.
cuda=""
for candidate in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -n "$candidate" ] && [ -x "$candidate/bin/nvcc" ]; then cuda=$candidate; break; fi
done
if [ "$pycuda" = no ]; then
  say "pycuda skipped (--no-pycuda): TensorRT rungs will be skipped"
elif "$prefix/venv/bin/python" -c "import pycuda" 2>/dev/null; then
  say "pycuda already installed"
elif [ -z "$cuda" ]; then
  say "no CUDA toolkit (nvcc) found: pycuda not installed, TensorRT rungs will be skipped" \
      "(on a Jetson: apt install cuda-toolkit python3-dev, then run this again)"
else
  say "building pycuda against $cuda (a few minutes on an Orin; needs python3-dev)"
  start=$(date +%s)
  log=$prefix/pycuda-build.log
  if PATH="$cuda/bin:$PATH" CUDA_ROOT="$cuda" "${pip[@]}" install -c "$prefix/constraints.txt" \
       pycuda > "$log" 2>&1; then
    say "pycuda built in $(( $(date +%s) - start )) s"
  else
    grep -E "error|Error" "$log" | tail -n 5 >&2 || true
    say "warning: pycuda did not build (log: $log): TensorRT rungs will be skipped until it" \
        "does (apt install python3-dev build-essential and CUDA's dev packages, then run this again)"
  fi
fi

# 4b. the GPU preprocessing kernel, compiled now for this GPU into the state dir, so that the
# service never needs nvcc (it loads the cached cubin; without one it preprocesses on the CPU).
if [ "$pycuda" != no ] && [ -n "$cuda" ] && "$prefix/venv/bin/python" -c "import pycuda" 2>/dev/null; then
  if PATH="$cuda/bin:$PATH" "$prefix/venv/bin/python" - "$state/kernels" <<'PY'
import sys
from pathlib import Path

import pycuda.driver as cuda

from edgeswin.prepare.preprocess_cuda import kernel_module

cuda.init()
context = cuda.Device(0).retain_primary_context()
context.push()
try:
    kernel_module(Path(sys.argv[1]))
finally:
    cuda.Context.pop()
    context.detach()
PY
  then
    say "GPU preprocessing kernel compiled into $state/kernels"
  else
    say "warning: the GPU preprocessing kernel was not compiled (no GPU here?): the service" \
        "compiles it at its first start if nvcc is there, else preprocesses on the CPU"
  fi
fi

# 5. the config: only when there is none, so an upgrade never touches the user's.
# Paths in the shipped configs are relative to the checkout; installed, they are absolute.
install -d -m 0750 "$etc" "$etc/cameras"
localize() {
  sed -e "s#\.\./\.\./\.\./clips/#$prefix/clips/#g" -e "s#\.\./\.\./models/#$prefix/models/#g" \
      -e "s#^state_dir: /var/lib/edgeswin#state_dir: $state#" "$1"
}
if [ ! -f "$etc/edgeswin.yaml" ]; then
  localize "$config_from/edgeswin.yaml" > "$etc/edgeswin.yaml"
  for camera in "$config_from"/cameras/*.yaml "$config_from"/cameras/*.yml; do
    [ -f "$camera" ] && localize "$camera" > "$etc/cameras/$(basename "$camera")"
  done
  say "installed a starting config from $config_from in $etc: edit it before starting"
else
  say "kept the config in $etc"
fi
# LoadCredential= fails the start when the file is missing: an empty file means no password.
if [ -n "$password_file" ]; then
  install -m 0600 "$password_file" "$etc/mqtt_password"
elif [ ! -f "$etc/mqtt_password" ]; then
  install -m 0600 /dev/null "$etc/mqtt_password"
fi
if [ "$system" = yes ]; then
  chgrp -R edgeswin "$etc"
  chown -R edgeswin:edgeswin "$state"
fi

# 6. the unit
install -d -m 0755 "$(dirname "$unit")"
# SupplementaryGroups= names only groups this machine has: a missing one fails the start
# (status 216/GROUP). Debian, Ubuntu and L4T have both.
groups=""
for group in video render; do
  getent group "$group" >/dev/null && groups="$groups $group"
done
sed -e "s#/opt/edgeswin/#$prefix/#g" -e "s#/etc/edgeswin/#$etc/#g" \
    -e "s#^SupplementaryGroups=.*#SupplementaryGroups=${groups# }#" systemd/edgeswin.service \
  | { [ -n "$groups" ] && cat || grep -v '^SupplementaryGroups='; } > "$unit"
chmod 0644 "$unit"
# The power_mode lever's root helper: written, not enabled (it is off unless configured).
for helper in edgeswin-power-mode.path edgeswin-power-mode.service; do
  sed -e "s#/opt/edgeswin/#$prefix/#g" -e "s#/var/lib/edgeswin/#$state/#g" "systemd/$helper" \
    > "$(dirname "$unit")/$helper"
  chmod 0644 "$(dirname "$unit")/$helper"
done
if [ "$systemd_running" = yes ]; then
  systemctl daemon-reload
  systemctl enable edgeswin.service
  say "enabled. start: systemctl start edgeswin; logs: journalctl -u edgeswin -f;" \
      "reload the config: systemctl reload edgeswin"
  say "for the power_mode fallback lever: systemctl enable --now edgeswin-power-mode.path"
else
  say "unit written to $unit (systemd not told: not a booted system, or --root)"
fi

# 7. the check
if "$prefix/venv/bin/edgeswin" check -c "$etc"; then
  say "done: $prefix/venv/bin/edgeswin probe --selftest checks the engines on this device"
else
  say "the config in $etc has errors (above): fix them, then: systemctl start edgeswin"
  exit 1
fi
