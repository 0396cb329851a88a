#!/usr/bin/env bash
# Set up a fresh machine for the marketplace: a virtual environment in .venv with the CPU build of
# torch, the project and its test extras, and (where the machine allows) Debian's real-text packages
# used by the provider corpora and headless Chromium with its driver (the portal's browser tests and the
# screenshots of benchmarks/). Idempotent: when everything is in place it only checks (about a second).
#
#   bash infra/bootstrap.sh                     # everything
#   MKT_SKIP_APT=1 bash infra/bootstrap.sh      # no apt-get (the corpora use the sources that are present;
#                                               # the browser tests skip, unless MKT_REQUIRE_BROWSER is set)
#
# Each step prints one line saying what it installs and how long it usually takes (2 CPU cores, packages
# from a local mirror or disk; a slow network makes the downloads longer).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TEXT_PACKAGES="dict-foldoc dict-jargon dict-gcide wordnet-base fortunes fortunes-min"
BROWSER_PACKAGES="chromium chromium-driver fonts-dejavu-core"
STAMP="$VENV/.bootstrap-stamp"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

missing_debs() {
  local missing=""
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  printf '%s' "$missing"
}

apt_install() {  # apt_install WHAT PACKAGES...: only what is missing; recommends never (no GUIs pulled in)
  local what=$1; shift
  local missing
  missing=$(missing_debs "$@")
  [ -z "$missing" ] && return 0
  log "installing $what:$missing (apt-get, usually 20-60 s)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $missing >/dev/null) \
    || log "could not install$missing; $what will be missing (see README, Installing)"
}

# 1. Real English text from Debian (optional: FOLDOC, Jargon File, GCIDE, WordNet, fortunes), and
#    headless Chromium with chromedriver (the portal's real-browser tests, the screenshots of benchmarks/).
if [ "${MKT_SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt_install "Debian text packages for the demo corpora" $TEXT_PACKAGES
  apt_install "headless Chromium and chromedriver for the browser tests and screenshots" $BROWSER_PACKAGES
fi

# 2. Virtual environment. torch first, pinned to the CPU build: a bare `torch` requirement would pull a
#    multi-GB CUDA build from PyPI.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the virtual environment $VENV (usually 5 s)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
fi
PIP="$VENV/bin/python -m pip"
has_module() { "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }
if ! has_module torch; then
  log "installing torch 2.13.0, CPU build (about 200 MB; usually 1-3 min)"
  # On this kind of machine pip finds the CPU wheel on local disk; elsewhere point pip at a CPU index
  # (PIP_INDEX_URL / PIP_EXTRA_INDEX_URL) before running this script.
  $PIP install -q "torch==2.13.0"
fi

# 3. The project and its test extras, again only when pyproject.toml changed since the last install.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$VENV/bin/marketplace" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "installing the project with its test extras (transformers, MLflow, Prefect, Dask...; usually 1-4 min)"
  # setuptools warns on every editable install that a folder named like the package could shadow it:
  # the checkout is that folder, by design.
  PYTHONWARNINGS="ignore:Editable installation" $PIP install -q -e ".[test]"
  printf '%s\n' "$want" >"$STAMP"
fi
log "ready: $VENV/bin/marketplace --help (or: source $VENV/bin/activate, then marketplace --help)"
