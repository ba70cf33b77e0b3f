#!/usr/bin/env bash
# Check the system libraries the course needs: cairo (raster images via cairocffi) and Graphviz's `dot`
# (architecture diagrams). On Debian/Ubuntu as root, install what is missing; elsewhere, stop with the
# exact command to run. Set HANDWRITING_SKIP_SYSDEPS=1 to skip the check (e.g. inside conda, which brings both).
set -euo pipefail
[ "${HANDWRITING_SKIP_SYSDEPS:-0}" = 1 ] && exit 0

missing=()
if ! { ldconfig -p 2>/dev/null | grep -q 'libcairo\.so\.2' || [ -e /usr/lib/x86_64-linux-gnu/libcairo.so.2 ] \
       || [ -n "${CONDA_PREFIX:-}" -a -e "${CONDA_PREFIX:-/nonexistent}/lib/libcairo.so.2" ] \
       || [ -e /opt/homebrew/lib/libcairo.2.dylib ] || [ -e /usr/local/lib/libcairo.2.dylib ]; }; then
  missing+=(libcairo2)
fi
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing system packages: ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "Missing system libraries: ${missing[*]}" >&2
if command -v apt-get >/dev/null 2>&1; then
  echo "Install them with:  sudo apt-get install -y ${missing[*]}" >&2
elif command -v brew >/dev/null 2>&1; then
  echo "Install them with:  brew install cairo graphviz" >&2
else
  echo "Install cairo and graphviz with your package manager, or use conda: conda env create -f environment.yml" >&2
fi
exit 1
