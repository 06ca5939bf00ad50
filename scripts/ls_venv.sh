#!/usr/bin/env bash
# Create (or reuse) the cached virtualenv that holds Label Studio; print its path.
# Label Studio pins clash with ours, so it lives in its own venv, keyed by version.
#   LABEL_STUDIO_VERSION  version to install (default 1.23.2)
#   RECMETA_LS_VENV       venv path (default ~/.cache/recmeta/label-studio-<version>-venv)
#   PYTHON                interpreter that creates the venv (default python3)
set -euo pipefail

version="${LABEL_STUDIO_VERSION:-1.23.2}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/recmeta"
venv="${RECMETA_LS_VENV:-$cache/label-studio-$version-venv}"
python="${PYTHON:-python3}"

mkdir -p "$(dirname "$venv")"
# One creator at a time: parallel test runs wait here instead of racing pip.
exec 9>"$venv.lock"
flock 9

works() {
  [[ -f "$venv/.ready" && -x "$venv/bin/label-studio" ]] &&
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$version')" 2>/dev/null
}

if ! works; then
  echo "ls_venv: installing label-studio==$version into $venv (about a minute)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "label-studio==$version" >&2
  touch "$venv/.ready"
  works || { echo "ls_venv: label-studio $version did not install into $venv" >&2; exit 1; }
fi
echo "$venv"
