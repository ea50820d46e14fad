#!/bin/sh
# Prints the pip constraints for the machine this runs on, first line "# target: NAME".
#   constraints/select.sh [PYTHON] [TARGET]
# TARGET (jetpack6 | jetpack7 | generic) defaults to what /etc/nv_tegra_release says.
# On a Jetson, that target's file; elsewhere, where a system OpenCV exists, NumPy stays at the
# major version that OpenCV was built against (a NumPy 2 under a NumPy 1 OpenCV breaks cv2).
set -eu
here=$(dirname "$0")
python=${1:-/usr/bin/python3}
target=${2:-}
if [ -z "$target" ]; then
  target=generic
  if [ -r /etc/nv_tegra_release ]; then
    release=$(sed -n '1s/^# R\([0-9]*\) .*/\1/p' /etc/nv_tegra_release)
    case "$release" in
      36) target=jetpack6 ;;
      3[89]|[4-9][0-9]) target=jetpack7 ;;
      *) echo "Jetson Linux R$release is not supported: edgeswin needs JetPack 6 or 7" \
              "(Python >= 3.10)" >&2; exit 1 ;;
    esac
  fi
fi
echo "# target: $target"
case "$target" in
  jetpack6|jetpack7) grep -v '^#' "$here/$target.txt" ;;
  generic)
    "$python" - <<'PY'
try:
    import cv2, numpy  # noqa: F401  (the system OpenCV, if any)
except ImportError:
    pass
else:
    print("numpy<2" if numpy.__version__.startswith("1.") else "numpy>=2")
PY
    ;;
  *) echo "unknown target $target (jetpack6 | jetpack7 | generic)" >&2; exit 2 ;;
esac
