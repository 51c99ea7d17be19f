#!/usr/bin/env bash
# Installs everything genesis-drive needs on a fresh Debian/Ubuntu machine (as root) or in a venv.
# System libraries: EGL + Mesa (headless moderngl rendering), libusb/libgomp (open3d-cpu); chromium (report test).
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=0
python - <<'PY' 2>/dev/null || need_apt=1
import ctypes
for lib in ("libEGL.so.1", "libusb-1.0.so.0", "libgomp.so.1"):
    ctypes.CDLL(lib)
PY
if [ "$need_apt" = 1 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1-mesa-dri libegl-mesa0 libusb-1.0-0 libgomp1 >/dev/null
  else
    echo "genesis-drive needs the system libraries libegl1 libgl1-mesa-dri libegl-mesa0 libusb-1.0-0 libgomp1;" >&2
    echo "install them with your package manager (apt-get install ...) and rerun." >&2
    exit 1
  fi
fi
# Headless Chromium (Debian's package) for the HTML report's browser test; without it that test is skipped.
if ! [ -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "genesis-drive: could not install chromium; the report browser test will be skipped" >&2
  else
    echo "genesis-drive: /usr/bin/chromium not found and not root; the report browser test will be skipped" >&2
  fi
fi
python -m pip install -q --disable-pip-version-check -e ".[test]"
