#!/usr/bin/env bash
# Run scripts/browser_check.py against a running demo (bash scripts/run.sh --with-label-studio):
# Debian's chromium driven by Playwright's Python package (Apache-2.0) from its own cached venv;
# Playwright never downloads a browser here. Arguments go to browser_check.py (--url, --out, ...).
#   PLAYWRIGHT_VERSION  pip version of playwright (default 1.65.3)
#   RECMETA_PW_VENV     venv path (default ~/.cache/recmeta/playwright-<version>-venv)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
  echo "browser_check: needs Debian's chromium: apt-get update && apt-get install -y chromium" >&2
  exit 2
fi
version="${PLAYWRIGHT_VERSION:-1.65.3}"
venv="${RECMETA_PW_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/recmeta/playwright-$version-venv}"
if [[ ! -f "$venv/.ready" ]]; then
  echo "browser_check: installing playwright==$version into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "playwright==$version" pillow requests >&2
  touch "$venv/.ready"
fi
exec "$venv/bin/python" scripts/browser_check.py --chromium "$(command -v chromium)" "$@"
