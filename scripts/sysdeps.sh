#!/usr/bin/env bash
# Check the system libraries the course needs: cairo (raster images via cairocffi) and Graphviz's `dot`
# (architecture diagrams). On Debian/Ubuntu as root, install what is missing; elsewhere, stop with the
# exact command to run. Set HANDWRITING_SKIP_SYSDEPS=1 to skip the check (e.g. inside conda, which brings both).
#
# Optional: Chromium, for the real-browser test (tests/test_browser.py drives JupyterLab with Playwright and
# skips without it). On Debian as root it is installed too (set HANDWRITING_SKIP_CHROMIUM=1 not to);
# elsewhere a missing Chromium is only reported.
set -euo pipefail
[ "${HANDWRITING_SKIP_SYSDEPS:-0}" = 1 ] && exit 0

missing=()
if ! { ldconfig -p 2>/dev/null | grep -q 'libcairo\.so\.2' || [ -e /usr/lib/x86_64-linux-gnu/libcairo.so.2 ] \
       || [ -n "${CONDA_PREFIX:-}" -a -e "${CONDA_PREFIX:-/nonexistent}/lib/libcairo.so.2" ] \
       || [ -e /opt/homebrew/lib/libcairo.2.dylib ] || [ -e /usr/local/lib/libcairo.2.dylib ]; }; then
  missing+=(libcairo2)
fi
command -v dot >/dev/null 2>&1 || missing+=(graphviz)

# Chromium (optional): Debian's package is `chromium` (/usr/bin/chromium); Ubuntu ships it as a snap instead.
optional=()
have_chromium() {
  [ -n "${HANDWRITING_CHROMIUM:-}" ] && [ -e "${HANDWRITING_CHROMIUM}" ] && return 0
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -e /usr/bin/chromium ]
}
is_debian() { [ -r /etc/os-release ] && grep -q '^ID=debian$' /etc/os-release; }
if [ "${HANDWRITING_SKIP_CHROMIUM:-0}" != 1 ] && ! have_chromium; then
  optional+=(chromium)
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if [ ${#missing[@]} -gt 0 ] || { [ ${#optional[@]} -gt 0 ] && is_debian; }; then
    apt-get update -qq >/dev/null
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing system packages: ${missing[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ${#optional[@]} -gt 0 ]; then
    if is_debian; then
      echo "== installing the optional system package: ${optional[*]} (apt-get; for tests/test_browser.py)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${optional[@]}" >/dev/null \
        || echo "warning: could not install ${optional[*]}; the real-browser test will be skipped" >&2
    else
      echo "note: no Chromium found; tests/test_browser.py will be skipped (install Chromium and set HANDWRITING_CHROMIUM to use it)" >&2
    fi
  fi
  exit 0
fi

if [ ${#optional[@]} -gt 0 ]; then
  echo "note: no Chromium found; tests/test_browser.py will be skipped (Debian: sudo apt-get install -y chromium)" >&2
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Missing system libraries: ${missing[*]}" >&2
if command -v apt-get >/dev/null 2>&1; then
  echo "Install them with:  sudo apt-get install -y ${missing[*]}" >&2
elif command -v brew >/dev/null 2>&1; then
  echo "Install them with:  brew install cairo graphviz" >&2
else
  echo "Install cairo and graphviz with your package manager, or use conda: conda env create -f environment.yml" >&2
fi
exit 1
